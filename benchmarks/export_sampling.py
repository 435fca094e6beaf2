"""Benchmark: SavedModel size and sampling latency through the exported `sample` signature.

For each config it builds the model (untrained: data-dependent init on random clips,
which is enough for timing), exports it with `export_lib.export_saved_model` exactly
as `t2t-videoflow-exporter` does, loads the SavedModel back with
`tf.saved_model.load` and times `signatures["sample"]` for `--num_frames` frames at
batch `--batch` after `--context` context frames (temperature 1, a new seed per call).

Reported: export wall time (tracing + writing), export size on disk, the first call
(graph optimisation and the first run), and the median of `--repeats` further calls,
also per generated frame.

    python benchmarks/export_sampling.py                       # both configs
    python benchmarks/export_sampling.py --configs=shapes_cpu_64 --repeats=3

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

from t2t_videoflow import export_lib, registry
from t2t_videoflow.model import build_model

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


def bench(name, args, workdir):
    hparams_set, overrides = CONFIGS[name]
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
               first_call_s=first_s, median_s=median_s,
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
    parser.add_argument("--no_write", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.configs.split(","):
            row = bench(name, args, workdir)
            rows.append(row)
            print(f"{name}: export {row['export_mib']:.1f} MiB in {row['export_s']:.1f} s; "
                  f"first call {row['first_call_s']:.2f} s; median {row['median_s']:.2f} s "
                  f"({row['per_frame_ms']:.0f} ms/frame)", flush=True)
    header = (f"{'config':<15} {'params':>10} {'export MiB':>10} {'export s':>9} "
              f"{'1st call s':>10} {'median s':>9} {'ms/frame':>9}")
    print(f"\nsample: {args.num_frames} frames, batch {args.batch}, {args.context} context "
          f"frames, median of {args.repeats}")
    print(header)
    for r in rows:
        print(f"{r['config']:<15} {r['params']:>10,} {r['export_mib']:>10.1f} "
              f"{r['export_s']:>9.1f} {r['first_call_s']:>10.2f} {r['median_s']:>9.2f} "
              f"{r['per_frame_ms']:>9.0f}")
    if not args.no_write:
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        result = dict(command="python " + " ".join(sys.argv),
                      machine=dict(platform=platform.platform(), cpus=os.cpu_count(),
                                   gpus=len(tf.config.list_physical_devices("GPU"))),
                      tensorflow=tf.__version__, configs=rows)
        with open(RESULTS, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
