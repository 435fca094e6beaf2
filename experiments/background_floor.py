"""How far below the bin-affine Gaussian floor does a run model the black background?

    python experiments/background_floor.py --runs=black=RUN_A,shapes=RUN_B \
        [--data_dir=DATA_SHAPES] [--num_clips=64] [--name=background_floor]

For every checkpoint of every run: the bits per pixel of `--num_clips` empty
(all-black) clips of 1 context + 2 target frames (the shapes protocol), with the same
seeded dequantisation noise for every checkpoint, next to the run's own dev bpp at that
step (`train_log.jsonl`), against `motion.BIN_AFFINE_FLOOR_BITS` = 0.2546: what a flow
that is affine inside each 1/256 bin pays per constant sub-pixel. Prints a table and
writes `experiments/results/NAME.json`.

The runs of `background_floor.json` (2,000 steps each, the CPU set's model and rates with
the schedule compressed; `--save_checkpoints_steps=400 --keep_checkpoint_max=10` on the
shapes run):

    t2t-videoflow-trainer --t2t_usr_dir=experiments/usr_black --problem=black_32 \
        --hparams_set=videoflow_shapes_cpu \
        --hparams=train_steps=2000,learning_rate_decay_steps=500 \
        --generate_data --data_dir=DATA_BLACK --output_dir=RUN_A
    t2t-videoflow-trainer --problem=stochastic_shapes_32 \
        --hparams_set=videoflow_shapes_cpu \
        --hparams=train_steps=2000,learning_rate_decay_steps=500 \
        --generate_data --data_dir=DATA_SHAPES --output_dir=RUN_B
"""

import argparse
import math
import os
import re
import sys

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "benchmarks"))  # common.py
sys.path.insert(0, HERE)
import common  # noqa: E402
common.RESULTS_DIR = os.path.join(HERE, "results")  # experiments/results/

from t2t_videoflow.evaluation import motion  # noqa: E402
from t2t_videoflow.cli import motion as motion_main
from t2t_videoflow.config import registry
from t2t_videoflow.training import restore
from t2t_videoflow.training import trainer as trainer_lib
from t2t_videoflow.cli.decoder import dev_clips  # noqa: E402


def checkpoints(run):
    state = tf.train.get_checkpoint_state(run)
    if state is None:
        raise SystemExit(f"{run}: no checkpoint")
    return list(state.all_model_checkpoint_paths)


ACTNORM_LOGS = re.compile(
    r"model/flow/levels/(\d+)/sequence/(\d+)/actnorm/logs/\.ATTRIBUTES/VARIABLE_VALUE$")
NOISE_STD = 1.0 / (256.0 * math.sqrt(12.0))   # std of u ~ U[0, 1/256)


def actnorm_scales(path):
    """The flow's own actnorms (not the coupling nets'): the noise std after the first
    one, and per level the gain exp(sum over steps of the channel-mean log-scale).
    Affine couplings only contract (scale sigmoid(h + 2) < 1) and 1x1 convs have a
    data-independent log-det, so these gains are what widens the 1/256 bins."""
    reader = tf.train.load_checkpoint(path)
    logs = {}
    for name, _ in tf.train.list_variables(path):
        match = ACTNORM_LOGS.fullmatch(name)
        if match:
            logs[tuple(int(g) for g in match.groups())] = 3.0 * reader.get_tensor(name)
    first = float(np.exp(logs[(0, 0)]).mean()) * NOISE_STD
    levels = sorted({level for level, _ in logs})
    gains = [float(np.exp(sum(v.mean() for (l, _), v in logs.items() if l == level)))
             for level in levels]
    return {"noise_std_after_first_actnorm": first, "actnorm_gain_per_level": gains}


def measure_run(run, num_clips, seed=0, batch=16):
    evals = {step: r for step, r in trainer_lib.train_log(run).items() if "eval_bpp" in r}
    rows = []
    for path in checkpoints(run):
        model, hparams, _, _ = restore.restore_model(run, checkpoint_path=path)
        size = hparams.frame_height
        empty = np.zeros((num_clips, 3, size, size, 3), np.uint8)
        bpp = motion_main.score_clips(model, empty, 1, seed, batch)
        step = int(path.rsplit("-", 1)[1])
        rows.append({"step": step, "checkpoint": path,
                     "empty_clip_bpp": float(bpp.mean()),
                     "dev_bpp": evals.get(step, {}).get("eval_bpp"),
                     **actnorm_scales(path)})
        row = rows[-1]
        dev = row["dev_bpp"]
        print(f"  step {step:6d}  empty clip {row['empty_clip_bpp']:.4f}  dev "
              + ("-" if dev is None else f"{dev:.4f}")
              + f"  noise std after first actnorm "
              f"{row['noise_std_after_first_actnorm']:.4f}  actnorm gain per level "
              + " ".join(f"{g:.1f}" for g in row["actnorm_gain_per_level"]), flush=True)
    curve = [{"step": s, "dev_bpp": r["eval_bpp"], "elapsed_seconds": r.get("elapsed_seconds")}
             for s, r in sorted(evals.items())]
    return {"output_dir": run, "checkpoints": rows, "dev_curve": curve}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="name=run_dir,...")
    parser.add_argument("--num_clips", type=int, default=64)
    parser.add_argument("--name", default="background_floor")
    parser.add_argument("--data_dir", help="stochastic_shapes_32 data: records the black "
                        "share of the dev targets' sub-pixels")
    args = parser.parse_args()
    floor = motion.BIN_AFFINE_FLOOR_BITS
    print(f"bin-affine Gaussian floor: {floor:.4f} bits per sub-pixel")
    extra = {}
    if args.data_dir:
        problem = registry.problem("stochastic_shapes_32")
        hparams = registry.create_hparams("videoflow_shapes_cpu", "", problem.name)
        _, truths = dev_clips(problem, hparams, args.data_dir, 909, False)
        black = float(np.mean(truths == 0))
        extra = {"dev_target_black_share": black, "data_floor_bpp": black * floor}
        print(f"dev targets: {100 * black:.1f}% of sub-pixels black; "
              f"black share x floor = {black * floor:.4f} bpp")
    runs = {}
    for item in args.runs.split(","):
        name, run = item.split("=", 1)
        print(f"{name}: {run}")
        runs[name] = measure_run(run, args.num_clips)
    common.write_results(args.name, {"gaussian_floor_bits": floor, **extra,
                                     "num_clips": args.num_clips, "runs": runs})


if __name__ == "__main__":
    main()
