"""Benchmark: sampling latency of the paper model.

20 frames of 64x64 conditioned on 3 context frames, batch 1, videoflow_bpp (3 levels
x 24 steps, affine 512 gatu; conv3d_net prior 5 x 256, gatu, dilations),
temperature 1. Timed

  * eagerly (`VideoFlow.sample`),
  * under `tf.function`: the decoder's `Sampler` (a graph-mode frame loop in chunks
    of 10 frames, what `t2t-videoflow-decoder` runs),
  * the same compiled with XLA (`t2t-videoflow-decoder --jit_compile`),
  * optionally (`--modes=...,function_unrolled`) `VideoFlow.sample` under one
    `tf.function` (its `tf.while_loop` over frames, all 20 in one call; the mode's
    name is kept from when the loop was a Python loop unrolled at trace time),

as the median over `--repeats` calls after `--warmup` calls (the first call, with
tracing / compilation, is reported separately). The roofline is the sampler's FLOP
count divided by the CPU's 3x3 conv rate measured in the same run; the issue's target
is a latency of at most 2x that roofline. FLOPs are counted on the traced graph
(`common.graph_flops`: 2 x multiply-adds of every conv and matmul, static shapes:
the context encoding, every prior network and every inverse flow step; see
`sampling_flops`).

The weights are the model's initial ones after data-dependent init on the context
(the latency does not depend on the values).

    python benchmarks/sampling.py
    python benchmarks/sampling.py --modes=function --frames=5 --output=-
    python benchmarks/sampling.py --modes=function --hparams=loop_flow_steps=True
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

try:
    import common
except ImportError:  # run as `python -m benchmarks.sampling`
    from benchmarks import common
from t2t_videoflow.model import sampling
from t2t_videoflow.config import registry
from t2t_videoflow.model.videoflow import build_model


def make_context(batch, frames, size, seed=0):
    """Uint8 context clips: smooth random blobs plus a little noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (batch, frames, size // 8, size // 8, 3))
    video = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)
    video += rng.normal(0, 8, video.shape)
    return tf.constant(np.clip(video, 0, 255).astype(np.uint8))


def sampler(model, num_frames, temperature, mode, chunk=10):
    """`fn(context, seed) -> uint8 frames` in `mode`.

    "eager": `VideoFlow.sample` eagerly. "function" / "xla": the decoder's `Sampler`
    (graph-mode frame loop over chunks of `chunk` frames, the per-frame body traced
    once; "xla" compiles it, as `t2t-videoflow-decoder --jit_compile`).
    "function_unrolled": `VideoFlow.sample` under one `tf.function` (one
    `tf.while_loop` over all frames).
    """
    if mode == "eager":
        return lambda context, seed: model.sample(context, num_frames, temperature,
                                                  seed=seed)
    if mode == "function_unrolled":
        return tf.function(lambda context, seed: model.sample(
            context, num_frames, temperature=temperature, seed=seed))
    loop = sampling.Sampler(model, jit_compile=(mode == "xla"))
    return lambda context, seed: loop.sample(context.numpy(), num_frames, temperature,
                                             int(seed), chunk=chunk)


def sampling_flops(model, num_frames, temperature, context):
    """FLOPs of `VideoFlow.sample` for `num_frames`, from traced graphs.

    `sampling_start` (the context encoding) and one `sampling_step` (the priors and
    the inverse flow of one frame) are traced, not run: every generated frame does
    the same work, so the count is `start + num_frames * step`. The flow is traced
    unrolled (`loop_flow_steps` off for the count): the graph counter sees a
    `tf.while_loop` body once, not once per iteration.
    """
    looped = [level.loop_steps for level in model.flow.levels]
    for level in model.flow.levels:
        level.loop_steps = False
    start = tf.function(model.sampling_start).get_concrete_function(context)
    carry = model.sampling_start(context)
    step = tf.function(lambda carry, seed: model.sampling_step(
        carry, 0, temperature, seed)).get_concrete_function(carry, tf.constant(0))
    counts = [common.graph_flops(start.graph), common.graph_flops(step.graph)]
    for level, loop in zip(model.flow.levels, looped):
        level.loop_steps = loop
    return {k: counts[0].get(k, 0) + num_frames * counts[1].get(k, 0)
            for k in set(counts[0]) | set(counts[1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams_set", default="videoflow_bpp")
    parser.add_argument("--hparams", default="",
                        help="overrides, e.g. loop_flow_steps=True")
    parser.add_argument("--frames", type=int, default=20, help="frames to generate")
    parser.add_argument("--context", type=int, default=3, help="context frames")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--modes", default="eager,function,xla")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eager_repeats", type=int, default=2)
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/sampling.json; '-' to skip)")
    args = parser.parse_args()

    load_start = common.load_average()
    peak, _ = common.conv_peak_gflops()
    print(f"conv peak: {peak:.0f} GFLOP/s (3x3 conv [16,32,32,128]->128), "
          f"load {load_start}")
    hp = registry.create_hparams(args.hparams_set, args.hparams)
    frame_shape = (hp.frame_height, hp.frame_width, hp.frame_channels)
    model = build_model(hp, frame_shape, seed=0)
    context = make_context(args.batch, args.context, hp.frame_height)
    model.data_init(context)

    flops_by_op = sampling_flops(model, args.frames, args.temperature, context)
    flops = sum(flops_by_op.values())
    roofline = flops / (peak * 1e9)
    print(f"{args.hparams_set}: {flops / 1e9:.1f} GFLOP per call (conv/matmul, graph "
          f"count); roofline at the conv peak {roofline:.2f} s")

    results = {"hparams_set": args.hparams_set, "hparams": args.hparams,
               "frames": args.frames,
               "context_frames": args.context, "batch": args.batch,
               "frame_shape": list(frame_shape), "temperature": args.temperature,
               "conv_peak_gflops": peak, "gflop_per_call": flops / 1e9,
               "gflop_by_op": {k: v / 1e9 for k, v in sorted(flops_by_op.items())},
               "roofline_s": roofline, "load_average_start": load_start, "modes": {}}
    rows = []
    for mode in args.modes.split(","):
        fn = sampler(model, args.frames, args.temperature, mode)
        counter = [0]

        def call():
            counter[0] += 1
            return np.asarray(fn(context, tf.constant(counter[0])))

        start = time.perf_counter()
        call()
        first = time.perf_counter() - start
        repeats = args.eager_repeats if mode == "eager" else args.repeats
        times = common.time_calls(call, args.warmup - 1 if mode != "eager" else 0,
                                  repeats)
        median = statistics.median(times)
        load = common.load_average()
        results["modes"][mode] = {
            "first_call_s": first, "median_s": median, "call_s": times,
            "per_frame_s": median / args.frames, "gflops": flops / median / 1e9,
            "fraction_of_conv_peak": flops / median / 1e9 / peak,
            "x_roofline": median / roofline, "load_average": load}
        rows.append([mode, f"{first:.1f}", f"{median:.2f}", f"{median / args.frames:.3f}",
                     f"{flops / median / 1e9:.0f}", f"{100 * flops / median / 1e9 / peak:.0f}%",
                     f"{median / roofline:.2f}x", f"{load:.1f}"])
        print("  " + "  ".join(rows[-1]))
    results["load_average_end"] = common.load_average()
    print(f"\n{args.frames} frames of {frame_shape[0]}x{frame_shape[1]} from "
          f"{args.context} context frames, batch {args.batch}, {args.hparams_set}; "
          f"roofline {roofline:.2f} s ({flops / 1e9:.0f} GFLOP at {peak:.0f} GFLOP/s)")
    common.print_table(["mode", "first call s", "median s", "s/frame", "GFLOP/s",
                        "% conv peak", "x roofline", "load"], rows)
    if args.output != "-":
        common.write_results("sampling", results, args.output or None)


if __name__ == "__main__":
    main()
