r"""Does the moving average of the weights (`weight_ema_decay`) help a shapes run?

For each given run dir (trained with `weight_ema_decay > 0`, so its checkpoint holds
both the trained weights and their average), scores the run's newest checkpoint both
ways, with the trained weights (`--noema_weights`) and with the average:

  * dev bits per pixel over the whole split (`t2t-videoflow-eval --experiment=bpp`, the
    trainer's evaluation),
  * the motion diagnostic of the model's samples (`t2t-videoflow-motion`, 64 dev clips x
    4 samples at temperature 1.0 unless changed): shares intact, intact and moving
    coherently, without a shape, directions represented, and the bits the model gives
    its own samples,

and writes one JSON file. The runs of `experiments/results/weight_ema.json` were trained
side by side, one core each (`taskset -c 0` / `-c 1`), with

    t2t-videoflow-trainer --problem=stochastic_shapes_16 --hparams_set=videoflow_shapes16_demo \
        --data_dir=DATA --output_dir=RUN --schedule=train --hparams=OVERRIDES

and compared with

    python experiments/weight_ema.py --data_dir=DATA \
        --runs="name=RUN:overrides;as;given,name=RUN:..." --out=experiments/results/weight_ema.json
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir, "benchmarks"))  # common.py
sys.path.insert(0, HERE)
import common  # noqa: E402
common.RESULTS_DIR = os.path.join(HERE, "results")  # experiments/results/
from demo_search import parse_runs  # noqa: E402


def score(path, data_dir, ema, num_clips, num_samples, temperature):
    """Dev bpp and motion figures of the run's newest checkpoint with one kind of weights."""
    from t2t_videoflow.cli import evaluate
    from t2t_videoflow.cli import motion as motion_main
    quiet = lambda message: None  # noqa: E731
    bpp = evaluate.evaluate(path, "bpp", data_dir=data_dir, ema_weights=ema, log=quiet,
                            results_dir=os.path.join(path, "eval_ema" if ema else "eval_raw"))
    motion = motion_main.diagnose(
        path, data_dir, num_clips=num_clips, num_samples=num_samples,
        temperatures=[temperature], ema_weights=ema, log=quiet,
        results_file=os.path.join(path, f"motion_{'ema' if ema else 'raw'}.json"))
    return {"weights": motion["run"]["weights"], "step": motion["run"]["step"],
            "dev_bpp": bpp["bpp"], "dev_clips": bpp["clips"],
            **common.motion_sample_summary(motion["samples"][0])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="name=RUN_DIR[:overrides],...")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--num_clips", type=int, default=64)
    parser.add_argument("--num_samples", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", default=os.path.join(common.RESULTS_DIR, "weight_ema.json"))
    args = parser.parse_args()
    results = {"note": args.note, "load_average_start": common.load_average(), "runs": {}}
    for name, path, overrides in parse_runs(args.runs):
        from t2t_videoflow.training import run_dir
        hparams, _ = run_dir.load_run(path)
        if hparams.weight_ema_decay <= 0:
            raise SystemExit(f"weight_ema: {path} was trained without weight_ema_decay")
        rows = [score(path, args.data_dir, ema, args.num_clips, args.num_samples,
                      args.temperature) for ema in (False, True)]
        results["runs"][name] = {"run_dir": path, "overrides": overrides,
                                 "weight_ema_decay": hparams.weight_ema_decay,
                                 "trained": rows[0], "ema": rows[1]}
        for row in rows:
            print(f"{name:32s} {row['weights']:8s} dev {row['dev_bpp']:.4f}  intact "
                  f"{row['intact']:6.1%}  intact+coherent {row['intact_coherent']:6.1%}  "
                  f"no shape {row['no_shape']:6.1%}  own samples {row['own_samples_bpp']:.3f}",
                  flush=True)
    results["load_average_end"] = common.load_average()
    common.write_results("weight_ema", results, path=args.out)


if __name__ == "__main__":
    main()
