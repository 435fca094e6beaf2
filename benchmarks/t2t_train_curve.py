"""Training faithfulness: the ORIGINAL T2T VideoFlow and this port, trained side by side.

Does the port train as T2T does, from the same weights, data and noise? For every
seed, in one run:

  1. clips: `steps` batches of `batch_size` stochastic-shapes training windows (uint8
     [steps, B, T, H, W, 3]; train-split videos of `stochastic_shapes` at the set's frame
     size, rendered with `problems/stochastic_shapes.py`, a random `num_train_frames`
     window of frames 0..inputs+targets-1 each, as the pipeline cuts them) and an init
     batch of `init_batch_size` clips;
  2. dequantisation noise: the trainer's own, `stateless_uniform([B, T, H, W, C],
     (random_seed, step), 0, 1/256, philox)` for step = 0, 1, ...;
  3. T2T (subprocess, the oracle venv `$T2T_ORACLE_HOME/venv/bin/python`, this same file
     with `--worker`): T2T's `NextFrameGlow.body` in TRAIN mode (init tower + train
     tower, `glow_ops.uniform_binning_correction`'s `tf.random_uniform` replaced by
     placeholders fed with the noise above), DDI once on the init batch, then the
     post-DDI weights are saved by T2T variable name; then `steps` updates with
     `tf.train.AdamOptimizer` (= T2T's LazyAdam for dense gradients) at T2T's own
     `learning_rate.learning_rate_schedule(hparams)` (T2T's `global_step`, 0 at the first
     update), loss = mean over the batch of `losses["training"]`, as T2T's
     `average_sharded_losses`;
  4. the port: a real `trainer_lib.Trainer` (its model, optimizer, schedule, noise and
     train step) on a stand-in problem whose train dataset yields exactly these batches;
     T2T's post-DDI weights are loaded with `load_t2t_weights` (the port's DDI is not
     run), then `Trainer.train()`; per-step bpp, learning rate and gradient norm from its
     `train_log.jsonl`;
  5. weights after `--compare_weights_at` updates are compared by T2T name;
  6. with `--ulp_control`, the port is trained once more from T2T's weights changed by
     one rounding (x (1 +- 2^-23)): how far two runs that differ only by float noise
     drift apart, the yardstick for the T2T-vs-port gap after the curves part.

Writes `benchmarks/results/t2t_train_curve.json`: per-step losses (and learning rates,
gradient norms) of both, and per seed the max |difference| over the first 10 steps,
window means, step times.

Both sides run single-threaded (`--threads`, default 1); pin the process to one core
with taskset on a shared machine. Needs a T2T side that is not part of this
repository, set up once: a venv with tensor2tensor installed from a T2T
git checkout (`--t2t_python`, default `$T2T_ORACLE_HOME/venv/bin/python`) and a harness
directory (`--harness_dir`, default `$T2T_ORACLE_HARNESS`) holding `dump.py`, which imports
T2T's `glow_ops` and `next_frame_glow`, and `setup.sh T2T_GIT_DIR`, which builds that
venv.

    taskset -c 1 python benchmarks/t2t_train_curve.py --steps=30 --seeds=0
    taskset -c 1 python benchmarks/t2t_train_curve.py --steps=600 --seeds=0,1,2 --ulp_control
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_HARNESS = ""
ORACLE_HOME = os.environ.get("T2T_ORACLE_HOME", os.path.expanduser("~/.cache/t2t-oracle"))

# Port hparams copied into T2T's next_frame_glow_hparams (same names, same meaning on one
# device). Frame size, batch sizes and frame counts are set from the clips.
T2T_MODEL_KEYS = (
    "n_levels", "depth", "coupling", "coupling_width", "coupling_dropout", "activation",
    "top_prior", "level_scale", "gen_mode", "learn_top_scale", "latent_dist_encoder",
    "num_cond_latents", "latent_architecture", "latent_apply_dilations",
    "latent_dilation_rates", "cond_first_frame", "latent_skip", "latent_encoder_depth",
    "latent_encoder_width", "latent_dropout", "latent_pre_output_channels",
    "latent_activation", "latent_noise", "pretrain_steps", "model_input")
T2T_OPT_KEYS = (
    "learning_rate_schedule", "learning_rate", "learning_rate_constant",
    "learning_rate_warmup_steps", "learning_rate_decay_steps", "learning_rate_decay_scheme",
    "optimizer_adam_beta1", "optimizer_adam_beta2", "optimizer_adam_epsilon")


# =====================================================================================
# T2T side (runs under the oracle venv; imports T2T at run time, nothing copied here)
# =====================================================================================

def t2t_worker(args):
    """Builds T2T's graph, runs DDI, saves the weights, trains, writes per-step losses."""
    sys.path.insert(0, args.harness_dir)
    import dump  # noqa: E402  (t2t_bootstrap.setup(); imports glow_ops, next_frame_glow)
    tf, glow_ops = dump.tf, dump.glow_ops
    next_frame_glow, common_layers = dump.next_frame_glow, dump.common_layers
    from tensor2tensor.utils import learning_rate as t2t_learning_rate

    # T2T's own code path (undo dump.py's recording patches) ...
    glow_ops.revnet = dump._orig_revnet
    glow_ops.split = dump._orig_split
    glow_ops.compute_prior = dump._orig_compute_prior
    glow_ops.uniform_binning_correction = dump._orig_ubc
    glow_ops.get_variable_ddi = dump._orig_get_variable_ddi

    # ... except that the dequantisation noise is fed: every tf.random_uniform that
    # glow_ops draws becomes a placeholder of the same shape (one per frame and tower).
    class FedNoiseTF(object):
        def __init__(self, real):
            self._real = real
            self.placeholders = []

        def __getattr__(self, name):
            return getattr(self._real, name)

        def random_uniform(self, shape, minval=0.0, maxval=None, dtype=None, seed=None,
                           name=None):
            del seed, name
            assert dtype in (None, self._real.float32), dtype
            assert minval == 0.0 and abs(maxval - 1.0 / 256) < 1e-12, (minval, maxval)
            p = self._real.placeholder(self._real.float32, [int(s) for s in shape])
            self.placeholders.append(p)
            return p

    noise_tf = FedNoiseTF(tf)
    glow_ops.tf = noise_tf

    data = np.load(args.data)
    train, init, noise = data["train"], data["init"], data["noise"]
    init_noise = data["init_noise"]
    cfg = json.load(open(args.config))
    steps, b, t, h, w, c = train.shape
    n_in = cfg["video_num_input_frames"]
    model_cfg = {k: cfg[k] for k in T2T_MODEL_KEYS if k in cfg}
    model_cfg.update(frame_shape=[h, w, c], video_num_input_frames=n_in,
                     video_num_target_frames=t - n_in, num_train_frames=-1,
                     batch_size=b, init_batch_size=init.shape[0])
    hp = dump.make_hparams(model_cfg)
    for k in T2T_OPT_KEYS:
        if k in cfg and hasattr(hp, k):
            hp.set_hparam(k, cfg[k])
    if hasattr(hp, "train_steps"):
        hp.set_hparam("train_steps", cfg["train_steps"])
    else:
        hp.add_hparam("train_steps", cfg["train_steps"])    # T2T's flag; linear_decay

    class CurveNFG(next_frame_glow.NextFrameGlow):
        def __init__(self, hparams, init_features):  # pylint: disable=super-init-not-called
            self._hparams = hparams
            self._init_features = init_features

        def create_init_batch(self, features):
            del features
            return dict(self._init_features)

    g = tf.Graph()
    g.seed = args.seed
    np.random.seed(args.seed)        # T2T's 1x1 conv init draws from numpy's global RNG
    with g.as_default():
        global_step = tf.train.get_or_create_global_step()
        vid = tf.placeholder(tf.uint8, [b, t, h, w, c])

        def feats(x):
            return {"inputs": common_layers.convert_rgb_to_real(x[:, :n_in]),
                    "targets": common_layers.convert_rgb_to_real(x[:, n_in:])}

        model = CurveNFG(hp, feats(tf.constant(init)))
        with tf.variable_scope("next_frame_glow"):
            with tf.variable_scope("body"):
                _, losses = model.body(feats(vid))
        init_op = tf.get_collection("glow_init_op")[0]
        ph = noise_tf.placeholders
        assert len(ph) == 2 * t, f"expected {2 * t} noise draws, got {len(ph)}"
        init_ph, train_ph = ph[:t], ph[t:]        # init tower first, frame order
        loss = tf.reduce_mean(losses["training"])   # T2T average_sharded_losses
        lr = t2t_learning_rate.learning_rate_schedule(hp)
        opt = tf.train.AdamOptimizer(lr, beta1=hp.optimizer_adam_beta1,
                                     beta2=hp.optimizer_adam_beta2,
                                     epsilon=hp.optimizer_adam_epsilon)
        grads_and_vars = opt.compute_gradients(loss)
        grad_norm = tf.linalg.global_norm([gr for gr, _ in grads_and_vars])
        assert not cfg.get("weight_decay"), "weight decay is not reproduced here"
        if cfg.get("clip_grad_norm", 0.0) > 0:    # T2T: optimize_loss(clip_gradients=...)
            clipped, _ = tf.clip_by_global_norm([gr for gr, _ in grads_and_vars],
                                                cfg["clip_grad_norm"], use_norm=grad_norm)
            grads_and_vars = list(zip(clipped, [v for _, v in grads_and_vars]))
        train_op = opt.apply_gradients(grads_and_vars, global_step=global_step)
        model_vars = sorted([v for v in tf.global_variables()
                             if v.name.startswith("next_frame_glow/")], key=lambda v: v.name)
        trainable = sorted(v.name[:-2] for v in tf.trainable_variables())

        def weights(sess):
            vals = sess.run(model_vars)
            return {v.name[:-2]: np.asarray(a) for v, a in zip(model_vars, vals)}

        cp = tf.ConfigProto(inter_op_parallelism_threads=args.threads,
                            intra_op_parallelism_threads=args.threads)
        with tf.Session(config=cp) as sess:
            sess.run(tf.global_variables_initializer())
            t0 = time.time()
            init_bpp = sess.run(init_op, {p: init_noise[:, i] for i, p in enumerate(init_ph)})
            ddi_s = time.time() - t0
            np.savez(args.weights_out, **weights(sess))
            rows = []
            for s in range(steps):
                feed = {vid: train[s]}
                feed.update({p: noise[s][:, i] for i, p in enumerate(train_ph)})
                t0 = time.time()
                _, l, r, gn = sess.run([train_op, loss, lr, grad_norm], feed)
                rows.append({"step": s + 1, "bpp": float(l), "learning_rate": float(r),
                             "grad_norm": float(gn), "seconds": time.time() - t0})
                if s + 1 == args.compare_weights_at:
                    np.savez(args.weights_at_out, **weights(sess))
                if (s + 1) % 50 == 0:
                    print(f"  t2t step {s + 1} bpp {l:.4f}", flush=True)
            gs = int(sess.run(global_step))
    with open(args.out, "w") as f:
        json.dump({"rows": rows, "init_bpp": float(np.mean(init_bpp)), "ddi_seconds": ddi_s,
                   "trainable": trainable, "global_step": gs,
                   "hparams": {k: (v if isinstance(v, (int, float, str, bool, list))
                                   else str(v)) for k, v in hp.values().items()}}, f)


# =====================================================================================
# Port side
# =====================================================================================

def render_clips(hparams, steps, seed):
    """uint8 train [steps, B, T, H, W, 3] and init [init_batch_size, T, H, W, 3]."""
    from t2t_videoflow.problems import stochastic_shapes as shapes
    from t2t_videoflow.training.trainer import train_frames_per_clip
    size = hparams.frame_height
    problem = shapes.StochasticShapes(frame_size=size)
    params = shapes.draw_video_params(problem.num_videos, problem.seed)
    train_ids = np.concatenate(problem.split_videos()["train"])
    clip_len = hparams.video_num_input_frames + hparams.video_num_target_frames
    window = train_frames_per_clip(hparams)
    rng = np.random.RandomState(10000 + seed)
    cache = {}

    def clip(v, start):
        if v not in cache:
            cache[v] = shapes.render_video(size, clip_len, params["direction"][v],
                                           params["colour"][v], params["shape"][v],
                                           params["size"][v])
        return cache[v][start:start + window]

    def batch(n):
        ids = rng.choice(train_ids, n, replace=False)
        starts = rng.randint(0, clip_len - window + 1, size=n)
        return np.stack([clip(v, s) for v, s in zip(ids, starts)])

    init = batch(hparams.init_batch_size)
    train = np.stack([batch(hparams.batch_size) for _ in range(steps)])
    return train.astype(np.uint8), init.astype(np.uint8)


def trainer_noise(shape, seed, step):
    """The trainer's dequantisation noise of `step` (trainer_lib._replica_step)."""
    import tensorflow as tf
    from t2t_videoflow.model.noise import batch_noise
    return batch_noise(shape, tf.constant([seed, step], tf.int64)).numpy()


class ClipsProblem:
    """Stand-in problem: the train dataset yields the given batches, in order."""

    name = "stochastic_shapes_clips"

    def __init__(self, train):
        self.train = train

    def dataset(self, mode, data_dir, hparams, **kwargs):
        import tensorflow as tf
        del data_dir, hparams, kwargs
        if mode != "train":
            raise ValueError("only the train dataset is provided")
        return tf.data.Dataset.from_tensor_slices({"video": self.train})


def run_port(hparams, train, weights, seed, compare_weights_at, workdir):
    """Trains the port's Trainer from T2T's weights; returns rows, timings, checks."""
    import tensorflow as tf
    from t2t_videoflow.training import trainer as trainer_lib
    from t2t_videoflow.model.videoflow import T2T_BODY_SCOPE, load_t2t_weights
    hp = hparams.copy()
    hp.train_steps = int(hparams.train_steps)     # the schedule's decay end, unchanged
    steps = train.shape[0]
    config = trainer_lib.TrainConfig(
        output_dir=workdir, data_dir=workdir, train_steps=steps, log_every_steps=1,
        save_checkpoints_steps=10 ** 9, random_seed=seed, eval_sample_clips=0)
    trainer = trainer_lib.Trainer(ClipsProblem(train), hp, config, log=lambda msg: None)
    loaded = load_t2t_weights(trainer.model, weights)
    # Keras 3 weights wrap a tf.Variable (`.value`); the trainer trains the tf.Variables.
    def tf_var(v):
        return v if isinstance(v, tf.Variable) else v.value
    by_id = {id(tf_var(v)): name for name, v in trainer.model.t2t_variables().items()}
    port_trainable = sorted(T2T_BODY_SCOPE + by_id[id(v)] if id(v) in by_id
                            else "UNMAPPED:" + v.name for v in trainer.variables)
    t0 = time.perf_counter()
    trainer.train(train_steps=1)                  # traces the step
    first_seconds = time.perf_counter() - t0
    weights_at = None
    if 1 < compare_weights_at < steps:
        trainer.train(train_steps=compare_weights_at)
    if 0 < compare_weights_at < steps:
        weights_at = {T2T_BODY_SCOPE + k: v.numpy()
                      for k, v in trainer.model.t2t_variables().items()}
    trainer.train(train_steps=steps)
    seconds = (time.perf_counter() - t0 - first_seconds) / max(steps - 1, 1)
    log = trainer_lib.train_log(workdir)
    rows = [{"step": s, "bpp": log[s]["bpp"], "learning_rate": log[s]["learning_rate"],
             "grad_norm": log[s]["grad_norm"]} for s in sorted(log)]
    return dict(rows=rows, step_seconds=seconds, first_step_seconds=first_seconds,
                loaded=len(loaded),
                trainable=port_trainable, weights_at=weights_at)


def perturb_ulp(weights, names, seed):
    """`weights` with every array in `names` multiplied by (1 +- 2^-23): one rounding."""
    rng = np.random.RandomState(20000 + seed)
    out = dict(weights)
    for k in sorted(names):
        w = weights[k]
        out[k] = (w * (1.0 + np.float32(2.0 ** -23) * rng.choice(
            np.float32([-1, 1]), size=w.shape))).astype(w.dtype)
    return out


def divergence(ref, other):
    """First step whose |difference| exceeds 1e-4 ... 1e-1, and window stats."""
    d = np.abs(np.asarray(other) - np.asarray(ref))
    return {str(tol): (int(np.argmax(d > tol)) + 1 if (d > tol).any() else None)
            for tol in (1e-4, 1e-3, 1e-2, 1e-1)}


def window_stats(t2t, port, lo, hi):
    a, b = np.asarray(t2t[lo - 1:hi]), np.asarray(port[lo - 1:hi])
    return {"steps": f"{lo}-{hi}", "t2t_mean": float(a.mean()), "port_mean": float(b.mean()),
            "mean_diff_port_minus_t2t": float((b - a).mean()),
            "mean_abs_diff": float(np.abs(b - a).mean()),
            "max_abs_diff": float(np.abs(b - a).max())}


def windows_for(steps):
    wins = [(1, min(10, steps))]
    for lo in range(1, steps + 1, 50):
        wins.append((lo, min(lo + 49, steps)))
    for lo, hi in ((101, 150), (251, 300), (351, 400)):   # the issue's first comparison
        if hi <= steps and (lo, hi) not in wins:
            wins.append((lo, hi))
    return sorted(set(wins))


def run_seed(args, hparams, seed, tmp):
    import tensorflow as tf
    train, init = render_clips(hparams, args.steps, seed)
    b, t = train.shape[1], train.shape[2]
    shape = [b, *train.shape[2:]]
    noise = np.stack([trainer_noise(shape, seed, s) for s in range(args.steps)])
    init_noise = tf.random.stateless_uniform(
        [init.shape[0], *init.shape[1:]], tf.constant([seed, 1], tf.int64), 0.0,
        1.0 / 256.0, alg="philox").numpy()
    data_path = os.path.join(tmp, f"data_{seed}.npz")
    np.savez(data_path, train=train, init=init, noise=noise, init_noise=init_noise)
    cfg = dict(hparams.values())
    cfg_path = os.path.join(tmp, f"hparams_{seed}.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    paths = {k: os.path.join(tmp, f"{k}_{seed}{ext}") for k, ext in
             (("t2t_out", ".json"), ("weights", ".npz"), ("weights_at", ".npz"))}
    cmd = [args.t2t_python, os.path.abspath(__file__), "--worker",
           "--harness_dir", args.harness_dir, "--data", data_path, "--config", cfg_path,
           "--out", paths["t2t_out"], "--weights_out", paths["weights"],
           "--weights_at_out", paths["weights_at"], "--seed", str(seed),
           "--threads", str(args.threads), "--compare_weights_at",
           str(args.compare_weights_at)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_NUM_INTRAOP_THREADS=str(args.threads),
               TF_NUM_INTEROP_THREADS=str(args.threads))
    print(f"seed {seed}: T2T, {args.steps} steps of batch {b} x {t} frames", flush=True)
    t0 = time.perf_counter()
    log_path = os.path.join(tmp, f"t2t_{seed}.log")
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log_path) as log:
            sys.exit(f"T2T worker failed ({proc.returncode}):\n{log.read()[-4000:]}")
    t2t_wall = time.perf_counter() - t0
    with open(paths["t2t_out"]) as f:
        t2t = json.load(f)
    weights = dict(np.load(paths["weights"]))
    print(f"seed {seed}: port", flush=True)
    port = run_port(hparams, train, weights, seed, args.compare_weights_at,
                    os.path.join(tmp, f"port_{seed}"))

    t2t_bpp = [r["bpp"] for r in t2t["rows"]]
    port_bpp = [r["bpp"] for r in port["rows"]]
    assert len(port_bpp) == len(t2t_bpp) == args.steps, (len(port_bpp), len(t2t_bpp))
    diff = np.abs(np.asarray(port_bpp) - np.asarray(t2t_bpp))
    lr_diff = max(abs(a["learning_rate"] - p["learning_rate"])
                  for a, p in zip(t2t["rows"], port["rows"]))
    n_first = min(10, args.steps)
    result = {
        "seed": seed,
        "first_step_abs_diff": float(diff[0]),
        "first10_max_abs_diff": float(diff[:n_first].max()),
        "first10_abs_diff": [float(d) for d in diff[:n_first]],
        "first_step_exceeding": divergence(t2t_bpp, port_bpp),
        "max_abs_learning_rate_diff": lr_diff,
        "windows": [window_stats(t2t_bpp, port_bpp, lo, hi)
                    for lo, hi in windows_for(args.steps)],
        "t2t_init_bpp_ddi": t2t["init_bpp"],
        "t2t_global_step_after": t2t["global_step"],
        "weights_loaded": port["loaded"],
        "trainable_t2t_not_in_port": sorted(set(t2t["trainable"]) - set(port["trainable"])),
        "trainable_port_not_in_t2t": sorted(set(port["trainable"]) - set(t2t["trainable"])),
        "t2t_step_s_mean": float(np.mean([r["seconds"] for r in t2t["rows"][1:]]
                                         or [t2t["rows"][0]["seconds"]])),
        "t2t_wall_s": t2t_wall,
        "port_step_s_mean": port["step_seconds"],
        "port_first_step_s": port["first_step_seconds"],
        "t2t": t2t["rows"],
        "port": port["rows"],
    }
    if args.ulp_control:
        # Float-noise control: the port again, from T2T's weights changed by one
        # rounding (x (1 +- 2^-23)), against the port run above. Where this pair parts
        # and how far its window means drift apart is what float noise alone does.
        print(f"seed {seed}: port from 1-ulp-perturbed weights (control)", flush=True)
        ctrl = run_port(hparams, train, perturb_ulp(weights, t2t["trainable"], seed), seed,
                        0, os.path.join(tmp, f"port_ulp_{seed}"))
        ctrl_bpp = [r["bpp"] for r in ctrl["rows"]]
        result["ulp_control"] = {
            "first_step_exceeding": divergence(port_bpp, ctrl_bpp),
            "windows": [window_stats(port_bpp, ctrl_bpp, lo, hi)
                        for lo, hi in windows_for(args.steps)],
            "port_perturbed": ctrl["rows"]}
    if port["weights_at"] is not None and os.path.exists(paths["weights_at"]):
        ref = dict(np.load(paths["weights_at"]))
        per_var = {k: float(np.max(np.abs(ref[k] - v))) for k, v in port["weights_at"].items()
                   if k in ref}
        worst = sorted(per_var.items(), key=lambda kv: -kv[1])[:5]
        result["weights_after_step"] = {
            "step": args.compare_weights_at, "max_abs_diff": max(per_var.values()),
            "worst": [{"name": k, "max_abs_diff": v} for k, v in worst]}
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--hparams_set", default="videoflow_shapes_cpu")
    ap.add_argument("--hparams", default="", help="overrides, name=value,...")
    ap.add_argument("--out", default=None, help="results json (default "
                    "benchmarks/results/t2t_train_curve.json)")
    ap.add_argument("--threads", type=int, default=1, help="TF threads on both sides")
    ap.add_argument("--compare_weights_at", type=int, default=10,
                    help="compare all weights by T2T name after this many updates (0: off)")
    ap.add_argument("--ulp_control", action="store_true",
                    help="also train the port from T2T's weights x (1 +- 2^-23) and compare "
                    "it with the unperturbed port run (what float noise alone does)")
    ap.add_argument("--t2t_python", default=os.path.join(ORACLE_HOME, "venv", "bin", "python"))
    ap.add_argument("--harness_dir", default=os.environ.get("T2T_ORACLE_HARNESS",
                                                            DEFAULT_HARNESS))
    ap.add_argument("--keep_dir", default=None, help="keep the exchanged files here")
    # worker mode (T2T side, oracle venv)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for k in ("data", "config", "weights_out", "weights_at_out"):
        ap.add_argument("--" + k, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        t2t_worker(args)
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common
    from t2t_videoflow.config import registry
    if not args.harness_dir or not os.path.isdir(args.harness_dir):
        sys.exit("Pass --harness_dir (or set T2T_ORACLE_HARNESS): a T2T harness "
                 "directory holding dump.py; it is not part of this repository.")
    if not os.path.exists(args.t2t_python):
        sys.exit(f"No oracle venv at {args.t2t_python}: run "
                 f"{os.path.join(args.harness_dir, 'setup.sh')} T2T_GIT_DIR first.")
    hparams = registry.create_hparams(args.hparams_set, args.hparams)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    load_start = common.load_average()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep_dir or tmp
        os.makedirs(tmp, exist_ok=True)
        for seed in seeds:
            res = run_seed(args, hparams, seed, tmp)
            results.append(res)
            print(f"seed {seed}: first-step |diff| {res['first_step_abs_diff']:.2e}, "
                  f"max over first 10 {res['first10_max_abs_diff']:.2e}; "
                  f"step s: T2T {res['t2t_step_s_mean']:.2f}, "
                  f"port {res['port_step_s_mean']:.2f}")
            if "weights_after_step" in res:
                wa = res["weights_after_step"]
                print(f"  weights after {wa['step']} updates: max |diff| "
                      f"{wa['max_abs_diff']:.2e} ({wa['worst'][0]['name']})")
            common.print_table(
                ["steps", "T2T", "port", "port-T2T", "mean|d|", "max|d|"],
                [[w["steps"], f"{w['t2t_mean']:.4f}", f"{w['port_mean']:.4f}",
                  f"{w['mean_diff_port_minus_t2t']:+.4f}", f"{w['mean_abs_diff']:.4f}",
                  f"{w['max_abs_diff']:.4f}"] for w in res["windows"]])
            if "ulp_control" in res:
                ctrl = res["ulp_control"]
                print(f"  control (port vs port from 1-ulp-perturbed weights): first step "
                      f"|diff| > 1e-3 at {ctrl['first_step_exceeding']['0.001']} (T2T vs "
                      f"port: {res['first_step_exceeding']['0.001']})")
                common.print_table(
                    ["steps", "port", "port_ulp", "diff", "mean|d|", "max|d|"],
                    [[w["steps"], f"{w['t2t_mean']:.4f}", f"{w['port_mean']:.4f}",
                      f"{w['mean_diff_port_minus_t2t']:+.4f}", f"{w['mean_abs_diff']:.4f}",
                      f"{w['max_abs_diff']:.4f}"] for w in ctrl["windows"]])
    summary = {
        "first10_max_abs_diff": {r["seed"]: r["first10_max_abs_diff"] for r in results},
        "windows_mean_over_seeds": [
            {"steps": w["steps"],
             "t2t_mean": float(np.mean([r["windows"][i]["t2t_mean"] for r in results])),
             "port_mean": float(np.mean([r["windows"][i]["port_mean"] for r in results]))}
            for i, w in enumerate(results[0]["windows"])],
    }
    common.write_results("t2t_train_curve", {
        "hparams_set": args.hparams_set, "hparams_overrides": args.hparams,
        "hparams": hparams.values(),
        "steps": args.steps, "seeds": seeds, "threads": args.threads,
        "load_average_start": load_start, "load_average_end": common.load_average(),
        "summary": summary, "per_seed": results}, path=args.out,
        indent=None)   # per-step rows of 4 curves x seeds: compact keeps it under 1 MB


if __name__ == "__main__":
    main()
