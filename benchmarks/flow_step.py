"""Benchmark: forward + backward of the flow's negative log-likelihood.

For each config it times, side by side in one process:
  * our `MultiScaleFlow` (standard-normal prior on every latent, so the work is the
    flow's), under `tf.function` and under `tf.function(jit_compile=True)`;
  * `tfp.bijectors.Glow` configured as closely as it allows (same image size, levels,
    steps per level, hidden width; its default ReLU coupling network, which has no
    actnorm inside and uses SAME zero padding instead of T2T's edge-bias channel; it
    also adds its own exit networks);
  * the CPU's 3x3 conv throughput ([16, 32, 32, 128] -> 128), as the "peak".

Figures are medians over `--repeats` steps after `--warmup` steps. GFLOP/s counts the
flow's convolutions analytically (multiply-add = 2 FLOPs; backward = 2x forward).

Our flow runs in up to three forms per config: `ours` (the config's coupling network,
e.g. the paper's GATU), `ours_relu` (a ReLU coupling network, the same kind of network
as tfb.Glow's default: the like-for-like row; only where the config's is GATU) and,
with `--bf16`, `ours_bf16` (the config's network with `network_dtype=bfloat16`).

    python benchmarks/flow_step.py                 # both configs, writes results json
    python benchmarks/flow_step.py --configs=small --repeats=5
"""

import argparse
import os

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

try:
    import common
except ImportError:  # run as `python -m benchmarks.flow_step`
    from benchmarks import common
from t2t_videoflow.flow.multiscale import MultiScaleFlow

CONFIGS = {
    # A small CPU config (the flow sizes of `train_step.py`'s `cpu_small`), batch 8.
    "small": dict(image=(32, 32, 3), levels=2, depth=8, width=128, coupling="affine",
                  activation="relu", batch=8),
    # videoflow_bpp's flow at batch 1.
    "paper_b1": dict(image=(64, 64, 3), levels=3, depth=24, width=512, coupling="affine",
                     activation="gatu", batch=1),
}

RESULTS = os.path.join(common.RESULTS_DIR, "flow_step.json")
median_time = common.median_time
conv_peak_gflops = common.conv_peak_gflops


def flow_forward_flops(cfg):
    """Multiply-adds x 2 of one forward pass of our flow for one example."""
    height, width, channels = cfg["image"]
    hidden, flops = cfg["width"], 0
    for level in range(cfg["levels"]):
        h, w = height >> (level + 1), width >> (level + 1)
        c = 4 * channels * 2 ** level
        out = c if cfg["coupling"] == "affine" else c // 2
        second = 2 if cfg["activation"] == "gatu" else 1
        per_step = (9 * (c // 2 + 1) * hidden + second * hidden * hidden
                    + 9 * (hidden + 1) * out + c * c)
        flops += 2 * h * w * per_step * cfg["depth"]
    return flops * cfg["batch"]


def our_step(cfg, jit_compile, network_dtype="float32"):
    flow = MultiScaleFlow(cfg["image"], cfg["levels"], cfg["depth"], cfg["coupling"],
                          cfg["width"], cfg["activation"], seed=0,
                          network_dtype=network_dtype)
    x = tf.random.stateless_uniform([cfg["batch"], *cfg["image"]], [0, 1], -0.5, 0.5)
    flow.data_init(x)
    variables = flow.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(frames):
        with tf.GradientTape() as tape:
            enc = flow.encode(frames)
            sq = sum(tf.reduce_sum(tf.square(z), [1, 2, 3]) for z in [*enc.latents, enc.top])
            nll = tf.reduce_mean(0.5 * sq - enc.log_det)
        return nll, tape.gradient(nll, variables)

    return lambda: step(x)[0].numpy()


def tfp_glow_step(cfg, jit_compile):
    tfb, tfd = tfp.bijectors, tfp.distributions
    glow = tfb.Glow(
        output_shape=cfg["image"], num_glow_blocks=cfg["levels"],
        num_steps_per_block=cfg["depth"],
        coupling_bijector_fn=lambda shape: tfb.GlowDefaultNetwork(shape, cfg["width"]),
        exit_bijector_fn=tfb.GlowDefaultExitNetwork,
        seed=0)
    dim = int(np.prod(cfg["image"]))
    dist = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), [dim]), glow)
    x = tf.random.stateless_uniform([cfg["batch"], *cfg["image"]], [0, 1], -0.5, 0.5)
    dist.log_prob(x)  # builds the variables
    variables = dist.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(frames):
        with tf.GradientTape() as tape:
            nll = -tf.reduce_mean(dist.log_prob(frames))
        return nll, tape.gradient(nll, variables)

    return lambda: step(tf.identity(x))[0].numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="small,paper_b1")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no_xla", action="store_true", help="skip the XLA variants")
    parser.add_argument("--bf16", action="store_true",
                        help="also time our flow with network_dtype=bfloat16")
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args()

    load_start = common.load_average()
    peak, _ = conv_peak_gflops()
    print(f"conv peak: {peak:.0f} GFLOP/s (3x3 conv [16,32,32,128]->128), load {load_start}")
    results = {"conv_peak_gflops": peak, "load_average_start": load_start, "configs": {}}
    header = f"{'config':<10} {'impl':<16} {'step s':>9} {'GFLOP/s':>9} {'% peak':>7} {'vs tfb.Glow':>11}"
    print(header)
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        flops = 3 * flow_forward_flops(cfg)  # forward + backward
        relu = {**cfg, "activation": "relu"}
        rows, impl_flops = {}, {}
        for xla in ([False] if args.no_xla else [False, True]):
            tag = "_xla" if xla else ""
            rows["tfb_glow" + tag] = median_time(tfp_glow_step(cfg, xla), args.warmup,
                                                 args.repeats)
            # tfb.Glow's default network is ReLU: count its convs as such.
            impl_flops["tfb_glow" + tag] = 3 * flow_forward_flops(relu)
            rows["ours" + tag] = median_time(our_step(cfg, xla), args.warmup, args.repeats)
            if cfg["activation"] != "relu":
                rows["ours_relu" + tag] = median_time(our_step(relu, xla), args.warmup,
                                                      args.repeats)
                impl_flops["ours_relu" + tag] = 3 * flow_forward_flops(relu)
            if args.bf16:
                rows["ours_bf16" + tag] = median_time(our_step(cfg, xla, "bfloat16"),
                                                      args.warmup, args.repeats)
        entry = {"config": {**cfg, "image": list(cfg["image"])},
                 "flow_gflop_per_step": flops / 1e9, "median_step_s": rows}
        for impl, seconds in rows.items():
            gflops = impl_flops.get(impl, flops) / seconds / 1e9
            ratio = rows["tfb_glow" + ("_xla" if impl.endswith("_xla") else "")] / seconds
            entry.setdefault("gflops", {})[impl] = gflops
            entry.setdefault("fraction_of_peak", {})[impl] = gflops / peak
            entry.setdefault("speedup_vs_tfb_glow", {})[impl] = ratio
            print(f"{name:<10} {impl:<16} {seconds:>9.4f} {gflops:>9.1f} "
                  f"{100 * gflops / peak:>6.1f}% {ratio:>10.2f}x")
        results["configs"][name] = entry
    results["load_average_end"] = common.load_average()
    common.write_results("flow_step", results, args.output)


if __name__ == "__main__":
    main()
