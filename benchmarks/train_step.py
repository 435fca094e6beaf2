"""Benchmark: the trainer's own training step (`Trainer.train_step`).

The step timed is the product's: `benchmarks/common.make_trainer` builds the
`Trainer` that `t2t-videoflow-trainer` builds (its model, its fused legacy Adam with
T2T's betas and epsilon, its per-clip dequantisation noise, its distribution
strategy) on in-memory clips (`common.SyntheticClipsProblem`: smooth random blobs) and
runs its data-dependent init, untimed, on one batch. Each config is run

  * `function`: the trainer's compiled step (its default),
  * `xla`: the same with `jit_compile=True` (`t2t-videoflow-trainer --jit_compile`),

and reported as the median step time over `--repeats` steps after `--warmup` steps
(the first call, tracing included, is reported separately), frames/s (batch x frames
per clip / step time), GFLOP/s and its fraction of the CPU's 3x3 conv rate measured
in the same run, and the ratio against T2T's own step time measured once on this
machine kind (0.118 s for cpu_small, 2.2-2.4 s for paper_b1; `benchmarks/vs_t2t.py`
times both side by side). The trainer's Adam update alone is timed too, to show its
share.

FLOPs are counted on the traced graph of the compiled step (`common.graph_flops`):
2 x multiply-adds of every Conv2D/Conv3D (forward, backprop-input and
backprop-filter ops) and MatMul, from their static shapes. Elementwise work is not
counted, so the GFLOP/s figure is directly comparable with the conv peak.

    python benchmarks/train_step.py                       # all configs, writes json
    python benchmarks/train_step.py --configs=cpu_small --modes=function,xla
    python benchmarks/train_step.py --configs=paper_b1 --modes=function --profile=/tmp/prof
"""

import argparse
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

try:
    import common
except ImportError:  # run as `python -m benchmarks.train_step`
    from benchmarks import common
from t2t_videoflow.config import registry

# T2T's own step times on this machine kind (measured once with T2T's code), seconds.
T2T_STEP_S = {"cpu_small": 0.118, "paper_b1": 2.3}
T2T_STEP_RANGE = {"cpu_small": "0.118", "paper_b1": "2.2-2.4"}


def cpu_small_hparams():
    """`cpu_small`: 32x32x3, 2 levels x 8, affine 128 gatu; conv3d_net prior
    2 blocks x 64, gatu, dilations on; 1 context + 1 target; batch 8.

    Everything else is T2T's `next_frame_glow_hparams` default (latent_skip on,
    dilation rates [1, 3]).
    """
    hp = registry.hparams("next_frame_glow_hparams")
    hp.frame_height, hp.frame_width = 32, 32
    hp.n_levels, hp.depth = 2, 8
    hp.coupling, hp.coupling_width, hp.activation = "affine", 128, "gatu"
    hp.latent_dist_encoder = "conv3d_net"
    hp.latent_encoder_depth, hp.latent_encoder_width = 2, 64
    hp.latent_activation, hp.latent_apply_dilations = "gatu", True
    hp.num_cond_latents = 1
    hp.video_num_input_frames, hp.video_num_target_frames = 1, 1
    hp.batch_size = 8
    return hp


def paper_b1_hparams():
    """`paper_b1`: videoflow_bpp (3 x 24, affine 512 gatu; conv3d_net 5 x 256,
    gatu, dilations [1, 3], skip); 3 context + 1 target; batch 1."""
    hp = registry.hparams("videoflow_bpp")
    hp.video_num_input_frames, hp.video_num_target_frames = 3, 1
    hp.batch_size = 1
    return hp


def shapes_cpu_hparams():
    """videoflow_shapes_cpu as the trainer runs it: windows of `num_train_frames`
    (2), the first `video_num_input_frames` (1) conditioning, batch `batch_size` (16)."""
    hp = registry.hparams("videoflow_shapes_cpu")
    hp.video_num_target_frames = hp.num_train_frames - hp.video_num_input_frames
    return hp


def paper_shapes_hparams():
    """T2T's `next_frame_glow_shapes` (the paper's stochastic-shapes model, section 5.1:
    64x64, 3 x 24 additive 512 gatu; conv3d_net 10 x 256; batch 10) as the trainer runs
    it: 2-frame windows, 1 conditioning and 1 scored frame. What training the paper's
    shapes model costs per step on this machine."""
    hp = registry.hparams("next_frame_glow_shapes")
    hp.video_num_target_frames = hp.num_train_frames - hp.video_num_input_frames
    return hp


CONFIGS = {"cpu_small": cpu_small_hparams, "paper_b1": paper_b1_hparams,
           "shapes_cpu": shapes_cpu_hparams, "paper_shapes": paper_shapes_hparams}


def clip_spec(hp):
    """(batch, frames per clip, context frames, frame shape) of a config."""
    frames = hp.video_num_input_frames + hp.video_num_target_frames
    return (hp.batch_size, frames, hp.video_num_input_frames,
            (hp.frame_height, hp.frame_width, hp.frame_channels))


def adam_update_fn(trainer):
    """The trainer's Adam update alone (fixed small gradients), to time its share."""
    grads = [tf.fill(v.shape, 1e-6) for v in trainer.variables]

    @tf.function
    def update():
        trainer.optimizer.apply_gradients(zip(grads, trainer.variables))
        return tf.constant(0.0)

    return update


def run_steps(trainer, warmup, repeats):
    """(first-call seconds, list of step seconds) of `trainer.train_step()`."""
    call = lambda: float(trainer.train_step()["bpp"])   # noqa: E731  (blocks)
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    return first, common.time_calls(call, max(warmup - 1, 0), repeats)


def profile_steps(trainer, logdir, steps=3):
    """Traces `steps` calls of the trainer's (warm) step with the TF profiler."""
    tf.profiler.experimental.start(logdir)
    for k in range(steps):
        with tf.profiler.experimental.Trace("train", step_num=k, _r=1):
            float(trainer.train_step()["bpp"])
    tf.profiler.experimental.stop()
    print(f"profile written under {logdir} (op table: benchmarks/profile_ops.py)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="cpu_small,paper_b1,shapes_cpu")
    parser.add_argument("--modes", default="function,xla",
                        help="function: the trainer's compiled step; xla: with "
                        "--jit_compile")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", default="",
                        help="write a TF profiler trace of the compiled step here")
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/train_step.json; '-' to skip)")
    args = parser.parse_args()

    load_start = common.load_average()
    peak, _ = common.conv_peak_gflops()
    print(f"conv peak: {peak:.0f} GFLOP/s (3x3 conv [16,32,32,128]->128), "
          f"load {load_start}")
    results = {"conv_peak_gflops": peak, "t2t_step_s": T2T_STEP_S,
               "load_average_start": load_start, "configs": {}}
    header = ["config", "mode", "first call s", "median step s", "frames/s", "GFLOP/s",
              "conv peak", "% conv peak", "vs T2T", "load"]
    rows = []
    for name in args.configs.split(","):
        hp = CONFIGS[name]()
        hp.init_batch_size = hp.batch_size   # untimed data-dependent init: keep it short
        batch, frames, num_context, frame_shape = clip_spec(hp)
        timings, entry, flops_by_op = {}, None, None
        for mode in args.modes.split(","):
            if mode not in ("function", "xla"):
                raise SystemExit(f"--modes: {mode!r} is not function or xla")
            trainer = common.make_trainer(hp, tempfile.mkdtemp(prefix="train_step_"),
                                          jit_compile=(mode == "xla"))
            if entry is None:
                variables = trainer.variables
                n_params = sum(int(np.prod(v.shape)) for v in variables)
                entry = {"hparams_set": name, "batch": batch, "frames": frames,
                         "context_frames": num_context, "frame_shape": list(frame_shape),
                         "parameters": n_params, "variables": len(variables),
                         "modes": {}}
                print(f"{name}: {n_params} parameters in {len(variables)} variables")
                adam_s = statistics.median(common.time_calls(
                    lambda update=adam_update_fn(trainer): update().numpy(),
                    2, args.repeats))
                entry["adam_update_s"] = adam_s
                print(f"  Adam update alone (the trainer's): {adam_s:.4f} s")
            timings[mode] = run_steps(trainer, args.warmup, args.repeats) + (
                common.load_average(),)
            print(f"  {mode}: first call {timings[mode][0]:.2f} s, median "
                  f"{statistics.median(timings[mode][1]):.4f} s")
            if flops_by_op is None and mode == "function":
                flops_by_op = common.graph_flops(trainer.train_step_graph())
            if args.profile:
                profile_steps(trainer, f"{args.profile}/{name}_{mode}")
        if flops_by_op is None:
            flops_by_op = common.graph_flops(common.make_trainer(
                hp, tempfile.mkdtemp(prefix="train_step_")).train_step_graph())
        # The CPU is shared: the peak measured right after this config's timings is the
        # fairer reference for its fraction (the run's first measurement is kept too).
        config_peak, _ = common.conv_peak_gflops()
        entry["conv_peak_gflops"] = config_peak
        print(f"  conv peak now: {config_peak:.0f} GFLOP/s")
        flops = sum(flops_by_op.values())
        entry["gflop_per_step"] = flops / 1e9
        entry["gflop_by_op"] = {k: v / 1e9 for k, v in sorted(flops_by_op.items())}
        print(f"  {flops / 1e9:.1f} GFLOP per step (conv/matmul, graph count)")
        for mode, (first, times, load) in timings.items():
            median = statistics.median(times)
            gflops = flops / median / 1e9
            vs_t2t = T2T_STEP_S[name] / median if name in T2T_STEP_S else None
            entry["modes"][mode] = {
                "first_call_s": first, "median_step_s": median, "step_s": times,
                "frames_per_s": batch * frames / median, "gflops": gflops,
                "fraction_of_conv_peak": gflops / config_peak, "speedup_vs_t2t": vs_t2t,
                "load_average": load}
            rows.append([name, mode, f"{first:.2f}", f"{median:.4f}",
                         f"{batch * frames / median:.1f}", f"{gflops:.0f}",
                         f"{config_peak:.0f}", f"{100 * gflops / config_peak:.0f}%",
                         "-" if vs_t2t is None else f"{vs_t2t:.2f}x", f"{load:.1f}"])
        results["configs"][name] = entry
    results["load_average_end"] = common.load_average()
    print()
    common.print_table(header, rows)
    print("T2T reference (T2T's own code, same machine kind): "
          + ", ".join(f"{k} {v} s" for k, v in T2T_STEP_RANGE.items()))
    if args.output != "-":
        common.write_results("train_step", results, args.output or None)


if __name__ == "__main__":
    main()
