r"""Where the shapes CPU sets' training-loss spikes come from, and which settings avoid them.

    python experiments/loss_spikes.py --data_dir=DATA --steps=300 \
        --configs="lr5e-4_additive:coupling=additive,learning_rate_constant=5e-4;lr2e-4_additive:coupling=additive;lr2e-4_affine:"

For each named config (hparams overrides on `--hparams_set`, default
`videoflow_shapes_cpu_demo` with its warmup but NO decay, so every config sees its
peak rate), trains a fresh model with the trainer's own model, optimizer, schedule,
data pipeline and noise (`trainer_lib.Trainer`, DDI included) one step at a time, and
records per step: the loss, the global gradient norm and, when it passes
`--report_norm`, the four variables with the largest gradient norms (names carry the
layer: `level_cond_prior/.../res_final` is a level prior's output conv). A loss spike
is a step whose bpp exceeds the median of the 10 steps before it (and itself) by more
than `--spike_bpp`. Prints per config the mean bpp per window, the spike count, the
largest gradient norm, and the variables that dominate the large-gradient steps;
writes everything to `experiments/results/loss_spikes.json`.

The data: `t2t-videoflow-datagen --problem=stochastic_shapes_32 --data_dir=DATA`.
"""

import argparse
import collections
import os
import sys
import tempfile

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "benchmarks"))  # common.py
sys.path.insert(0, HERE)
import common  # noqa: E402
common.RESULTS_DIR = os.path.join(HERE, "results")  # experiments/results/

from t2t_videoflow.config import registry  # noqa: E402
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.model.noise import RNG_ALG  # noqa: E402


def spikes(losses, threshold, window=10):
    """Indices of steps whose loss exceeds the running median of the last `window`+1."""
    losses = np.asarray(losses)
    med = np.array([np.median(losses[max(0, i - window):i + 1])
                    for i in range(len(losses))])
    return np.flatnonzero(losses - med > threshold).tolist()


def run_config(problem, set_name, overrides, steps, data_dir, report_norm, seed):
    hp = registry.create_hparams(set_name, overrides, problem_name=problem.name)
    hp.train_steps = steps
    hp.learning_rate_decay_steps = 1          # no decay within the measured steps
    cfg = trainer_lib.TrainConfig(output_dir=tempfile.mkdtemp(prefix="spikes_"),
                                  data_dir=data_dir, train_steps=steps, random_seed=seed)
    trainer = trainer_lib.Trainer(problem, hp, cfg, log=lambda *_: None)
    trainer.restore_or_initialize()
    names = [v.name for v in trainer.variables]

    @tf.function
    def loss_and_grads(video, step):
        noise = tf.random.stateless_uniform(
            tf.shape(video), tf.stack([tf.cast(seed, tf.int64), step]), 0.0, 1.0 / 256.0,
            alg=RNG_ALG)
        return trainer._grad_fn(video, noise, True)  # pylint: disable=protected-access

    rows = []
    for s in range(steps):
        video = next(trainer.train_iterator)["video"]
        loss, grads = loss_and_grads(video, tf.constant(s, tf.int64))
        norms = np.array([float(tf.norm(g)) for g in grads])
        row = {"step": s + 1, "bpp": float(loss), "grad_norm": float(np.sqrt(np.sum(norms ** 2))),
               "lr": float(trainer.schedule(tf.constant(s, tf.int64)))}
        if row["grad_norm"] > report_norm:
            top = np.argsort(-norms)[:4]
            row["top_variables"] = [[names[i], float(norms[i])] for i in top]
        rows.append(row)
        trainer.optimizer.apply_gradients(zip(grads, trainer.variables))
    return hp, rows


def summarize(rows, spike_bpp, window):
    losses = [r["bpp"] for r in rows]
    big = [r for r in rows if "top_variables" in r]
    leaders = collections.Counter(r["top_variables"][0][0] for r in big)
    return {
        "window_means": [{"steps": f"{i + 1}-{min(i + window, len(losses))}",
                          "bpp": float(np.mean(losses[i:i + window]))}
                         for i in range(0, len(losses), window)],
        "loss_spike_steps": [i + 1 for i in spikes(losses, spike_bpp)],
        "max_grad_norm": float(max(r["grad_norm"] for r in rows)),
        "large_gradient_steps": len(big),
        "largest_gradient_variable_counts": dict(leaders.most_common(5)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--problem", default="stochastic_shapes_32")
    parser.add_argument("--hparams_set", default="videoflow_shapes_cpu_demo")
    parser.add_argument("--configs", required=True,
                        help="'name:overrides;name:overrides' (overrides may be empty)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--spike_bpp", type=float, default=0.8)
    parser.add_argument("--report_norm", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    problem = registry.problem(args.problem)
    results = {}
    for item in args.configs.split(";"):
        name, _, overrides = item.partition(":")
        hp, rows = run_config(problem, args.hparams_set, overrides, args.steps,
                              args.data_dir, args.report_norm, args.seed)
        summary = summarize(rows, args.spike_bpp, args.window)
        results[name] = {"overrides": overrides, "coupling": hp.coupling,
                         "learning_rate_constant": hp.learning_rate_constant,
                         "clip_grad_norm": hp.clip_grad_norm,
                         "summary": summary, "rows": rows}
        means = " ".join(f"{w['bpp']:.3f}" for w in summary["window_means"])
        print(f"{name}: bpp per {args.window} steps {means}; loss spikes at "
              f"{summary['loss_spike_steps']}; max grad norm {summary['max_grad_norm']:.0f}; "
              f"largest-gradient variable on steps with norm > {args.report_norm:g}: "
              f"{summary['largest_gradient_variable_counts']}", flush=True)
    common.write_results("loss_spikes", {
        "hparams_set": args.hparams_set, "steps": args.steps, "seed": args.seed,
        "spike_bpp": args.spike_bpp, "configs": results}, path=args.out, indent=None)


if __name__ == "__main__":
    main()
