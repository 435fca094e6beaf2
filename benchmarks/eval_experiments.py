"""Runs every `t2t-videoflow-eval` experiment on one trained run: runtime and output.

    python benchmarks/eval_experiments.py --output_dir=RUN --data_dir=DATA \
        --results_dir=/tmp/eval_files [--name=eval_experiments_shapes_cpu]

Each experiment runs through `evaluate.evaluate` (the CLI's function) with the settings
below (CPU-sized: the paper's N=100 samples and whole BAIR test split are GPU work),
timed from the call to its return (restore, tracing and I/O included). Writes the
wall-clock seconds and each experiment's result (its JSON, without file lists) to
`benchmarks/results/NAME.json`; the experiments' own files go to --results_dir.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  pylint: disable=wrong-import-position

from t2t_videoflow.cli import evaluate  # noqa: E402  pylint: disable=wrong-import-position
from t2t_videoflow.errors import UsageError  # noqa: E402  pylint: disable=wrong-import-position

SETTINGS = {
    "bpp": dict(num_draws=3, batch_size=16),
    "out_of_sequence": dict(num_frames=5, batch_size=16),
    "temperature_sweep": dict(temperatures="0.0,0.25,0.5,0.75,1.0", num_samples=10,
                              max_clips=32, batch_size=8),
    "long_rollout": dict(num_frames=100, temperature=0.5, num_samples=4, max_clips=1),
    "interpolate": dict(num_interp=11, max_clips=4),
    "fvd": dict(max_clips=16),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--results_dir", required=True)
    parser.add_argument("--name", default="eval_experiments")
    args = parser.parse_args()
    out = {"run": args.output_dir, "settings": SETTINGS, "load_before": common.load_average(),
           "experiments": {}}
    for name, options in SETTINGS.items():
        began = time.perf_counter()
        try:
            result = evaluate.evaluate(args.output_dir, name, args.data_dir,
                                       results_dir=os.path.join(args.results_dir, name),
                                       log=lambda m: print(m, flush=True), random_seed=0,
                                       plots=True, **options)
            result = {k: v for k, v in result.items() if k != "files"}
        except UsageError as e:           # fvd without a local I3D model
            result = {"error": str(e)}
            print(f"{name}: {e}")
        out["experiments"][name] = {"seconds": round(time.perf_counter() - began, 1),
                                    "result": result}
        print(f"{name}: {out['experiments'][name]['seconds']} s", flush=True)
    out["load_after"] = common.load_average()
    common.write_results(args.name, out, indent=None)


if __name__ == "__main__":
    main()
