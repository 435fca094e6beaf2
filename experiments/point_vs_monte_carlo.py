"""Bin-centre point estimate of bits per pixel against the Monte-Carlo estimate.

    python experiments/point_vs_monte_carlo.py --runs=demo=RUN[,...] --data_dir=DATA \
        [--num_clips=256] [--name=point_vs_monte_carlo]

The SavedModel's `bits_per_pixel` signature dequantises with u = 1/512 (every value at
its bin centre), `bits_per_pixel_monte_carlo` and the trainer with uniform noise (the
paper's estimate). For each run, both on the first `--num_clips` dev clips (one draw per
clip, seeds as the motion tool's); writes `experiments/results/NAME.json`.
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "benchmarks"))  # common.py
sys.path.insert(0, HERE)
import common  # noqa: E402
common.RESULTS_DIR = os.path.join(HERE, "results")  # experiments/results/

from t2t_videoflow.cli import motion as motion_main  # noqa: E402
from t2t_videoflow.training import restore
from t2t_videoflow.cli.decoder import dev_clips  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="name=run_dir,...")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--num_clips", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--name", default="point_vs_monte_carlo")
    args = parser.parse_args()
    results = {}
    for item in args.runs.split(","):
        name, run = item.split("=", 1)
        r = restore.restore_for_inference(run)
        model, hparams = r["model"], r["hparams"]
        contexts, truths = dev_clips(r["problem"], hparams, args.data_dir, args.num_clips,
                                     False)
        clips = np.concatenate([contexts, truths], axis=1)
        n_ctx = contexts.shape[1]
        centre = np.concatenate([
            model.bits_per_pixel(chunk, n_ctx,
                                 noise=np.full(chunk.shape, 1 / 512, np.float32)).numpy()
            for chunk in np.array_split(clips, max(1, len(clips) // args.batch))])
        draws = motion_main.score_clips(model, clips, n_ctx, 0, args.batch)
        results[name] = {"output_dir": run, "step": r["step"],
                         "bin_centre_bpp": float(centre.mean()),
                         "monte_carlo_bpp": float(draws.mean())}
        print(f"{name} (step {r['step']}): bin-centre {centre.mean():.4f}, "
              f"Monte-Carlo {draws.mean():.4f}", flush=True)
    common.write_results(args.name, {"num_clips": args.num_clips, "runs": results})


if __name__ == "__main__":
    main()
