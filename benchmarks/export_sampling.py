"""Benchmark: SavedModel size and sampling latency through the exported `sample` signature.

For each config it builds the model (untrained: data-dependent init on random clips,
which is enough for timing), exports it with `export_lib.export_saved_model` exactly
as `t2t-videoflow-exporter` does, loads the SavedModel back with
`tf.saved_model.load` and times `signatures["sample"]` for `--num_frames` frames at
batch `--batch` after `--context` context frames (temperature 1, a new seed per call).

Reported: export wall time (tracing + writing), export size on disk, the first call
(graph optimisation and the first run), and the median of `--repeats` further calls,
also per generated frame. Against the port's sampling target (at most 2x the roofline), each
config's sampling FLOPs are counted as `benchmarks/sampling.py` counts them (conv and
matmul multiply-adds of encoding the context and of `num_frames` sampling steps, on
the traced graphs) and divided by the 3x3 conv rate measured at the start of the same
run: `roofline_s`, and `x_roofline` = median / roofline.

    python benchmarks/export_sampling.py                       # both configs
    python benchmarks/export_sampling.py --configs=shapes_cpu_64 --repeats=3
    python benchmarks/export_sampling.py --configs=videoflow_bpp --hparams=loop_flow_steps=True

Results go to benchmarks/results/export_sampling.json (with the command and machine).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

try:
    import common
    from sampling import sampling_flops
except ImportError:  # run as `python -m benchmarks.export_sampling`
    from benchmarks import common
    from benchmarks.sampling import sampling_flops
from t2t_videoflow.serving import saved_model as export_lib
from t2t_videoflow.config import registry
from t2t_videoflow.model.videoflow import build_model

CONFIGS = {
    # The CPU set at 64x64 (the set itself is 32x32; 64x64 frames need problem
    # stochastic_shapes).
    "shapes_cpu_64": ("videoflow_shapes_cpu", "frame_height=64,frame_width=64"),
    # The paper's BAIR bits-per-pixel config (64x64 natively).
    "videoflow_bpp": ("videoflow_bpp", ""),
}
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "export_sampling.json")


def build_untrained(hparams_set, overrides, init_batch=2, init_frames=3, seed=0):
    hparams = registry.create_hparams(hparams_set, overrides)
    shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    model = build_model(hparams, shape, seed=seed)
    clips = np.random.RandomState(seed).randint(
        0, 256, (init_batch, init_frames, *shape)).astype(np.uint8)
    model.data_init(clips)
    return model, hparams


def bench(name, args, workdir, peak_gflops):
    hparams_set, overrides = CONFIGS[name]
    overrides = ",".join(o for o in (overrides, args.hparams) if o)
    began = time.perf_counter()
    model, hparams = build_untrained(hparams_set, overrides)
    build_s = time.perf_counter() - began
    # tf.Module tracking finds the flow's variables and the prior's (kept on the model).
    params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    began = time.perf_counter()
    path = export_lib.export_saved_model(model, hparams, os.path.join(workdir, name))
    export_s = time.perf_counter() - began
    size = export_lib.export_size_bytes(path)

    began = time.perf_counter()
    loaded = tf.saved_model.load(path)
    load_s = time.perf_counter() - began
    sample = loaded.signatures["sample"]
    shape = model.frame_shape
    context = tf.constant(np.random.RandomState(1).randint(
        0, 256, (args.batch, args.context, *shape)).astype(np.uint8))

    flops = sum(sampling_flops(model, args.num_frames, 1.0, context).values())
    roofline_s = flops / (peak_gflops * 1e9)

    def call(seed):
        out = sample(context=context, num_frames=tf.constant(args.num_frames),
                     temperature=tf.constant(1.0), seed=tf.constant(seed))["frames"]
        assert out.shape == (args.batch, args.num_frames, *shape), out.shape
        return out

    began = time.perf_counter()
    call(0)
    first_s = time.perf_counter() - began
    times = []
    for r in range(args.repeats):
        began = time.perf_counter()
        call(r + 1)
        times.append(time.perf_counter() - began)
    median_s = statistics.median(times)
    row = dict(config=name, load_average_1min=os.getloadavg()[0], hparams_set=hparams_set, overrides=overrides,
               frame_shape=list(shape), params=params, build_and_init_s=build_s,
               export_s=export_s, export_mib=size / 2**20, load_s=load_s,
               first_call_s=first_s, median_s=median_s, gflop_per_call=flops / 1e9,
               conv_peak_gflops=peak_gflops, roofline_s=roofline_s,
               x_roofline=median_s / roofline_s,
               per_frame_ms=1000.0 * median_s / args.num_frames, times_s=times,
               num_frames=args.num_frames, batch=args.batch, context=args.context,
               repeats=args.repeats)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--num_frames", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hparams", default="",
                        help="overrides added to every config's, e.g. loop_flow_steps=True")
    parser.add_argument("--output", default=RESULTS, help="results json")
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    peak, _ = common.conv_peak_gflops()
    print(f"conv peak: {peak:.0f} GFLOP/s, load {common.load_average()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.configs.split(","):
            row = bench(name, args, workdir, peak)
            rows.append(row)
            print(f"{name}: export {row['export_mib']:.1f} MiB in {row['export_s']:.1f} s; "
                  f"first call {row['first_call_s']:.2f} s; median {row['median_s']:.2f} s "
                  f"({row['per_frame_ms']:.0f} ms/frame), {row['x_roofline']:.2f}x the "
                  f"roofline of {row['roofline_s']:.2f} s", flush=True)
    header = (f"{'config':<15} {'params':>10} {'export MiB':>10} {'export s':>9} "
              f"{'1st call s':>10} {'median s':>9} {'ms/frame':>9} {'roofline s':>10} "
              f"{'x roofline':>10}")
    print(f"\nsample: {args.num_frames} frames, batch {args.batch}, {args.context} context "
          f"frames, median of {args.repeats}")
    print(header)
    for r in rows:
        print(f"{r['config']:<15} {r['params']:>10,} {r['export_mib']:>10.1f} "
              f"{r['export_s']:>9.1f} {r['first_call_s']:>10.2f} {r['median_s']:>9.2f} "
              f"{r['per_frame_ms']:>9.0f} {r['roofline_s']:>10.2f} {r['x_roofline']:>10.2f}")
    if not args.no_write:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        result = dict(command="python " + " ".join(sys.argv),
                      machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                                   gpus=len(tf.config.list_physical_devices("GPU"))),
                      tensorflow=tf.__version__, configs=rows)
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
