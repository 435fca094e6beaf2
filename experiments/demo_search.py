r"""Which short CPU configuration makes the shapes demo's samples show a moving shape?

Collects, for several short training runs of the stochastic shapes problem, the
configuration (problem, set, overrides), steps and seconds of training, the final dev
bits per pixel, and the motion diagnostic of the run's own samples
(`t2t-videoflow-motion`, whose JSON must be in each run dir), into one results file:

    python experiments/demo_search.py --note="..." [--append] \
        --runs="name=RUN_DIR[:overrides],name=RUN_DIR[:overrides],..."

Each run was trained (one CPU core each, two runs side by side) with

    taskset -c CORE t2t-videoflow-trainer --problem=P --hparams_set=videoflow_shapes_cpu_demo \
        --data_dir=DATA --output_dir=RUN --local_eval_frequency=1000 --eval_steps=10 \
        --hparams=OVERRIDES

and diagnosed with

    t2t-videoflow-motion --output_dir=RUN --data_dir=DATA --num_clips=64 \
        --num_samples=4 --temperatures=1.0

The overrides are recorded as given; the run's `hparams.json` is the full truth.
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


def parse_runs(text):
    """"name=dir[:overrides],..." -> [(name, dir, overrides)]; overrides use ';' for ','."""
    runs = []
    for item in filter(None, text.split(",")):
        name, _, rest = item.partition("=")
        path, _, overrides = rest.partition(":")
        if not name or not path:
            raise SystemExit(f"demo_search: bad --runs item {item!r}; expected name=dir[:overrides]")
        runs.append((name, path, overrides.replace(";", ",")))
    return runs


def summarize_run(path):
    """The figures of one run dir: its last eval, its training time, its motion report."""
    from t2t_videoflow.training import run_dir
    from t2t_videoflow.training import trainer as trainer_lib
    hparams, info = run_dir.load_run(path)
    records = sorted(trainer_lib.train_log(path).items())
    evals = [r for _, r in records if "eval_bpp" in r]
    train = [r for _, r in records if "bpp" in r]
    if not evals or not train:
        raise SystemExit(f"demo_search: {path} has no eval or training points in train_log.jsonl")
    motion_path = os.path.join(path, "motion.json")
    if not os.path.exists(motion_path):
        raise SystemExit(f"demo_search: {motion_path} is missing; run t2t-videoflow-motion first")
    with open(motion_path) as f:
        motion = json.load(f)
    sample_rows = [row for row in motion["samples"] if row["temperature"] == 1.0]
    if not sample_rows:
        raise SystemExit(f"demo_search: {motion_path} has no temperature-1.0 samples")
    report = sample_rows[0]["motion"]
    return {
        "problem": info["problem"], "hparams_set": info["hparams_set"],
        "frame_size": hparams.frame_height, "n_levels": hparams.n_levels,
        "n_bits_x": hparams.n_bits_x,
        "context_frames": hparams.video_num_input_frames,
        "latent_skip": hparams.latent_skip, "steps": evals[-1]["step"],
        "training_seconds_one_core": round(train[-1]["elapsed_seconds"]),
        "dev_bpp": round(evals[-1]["eval_bpp"], 4), "dev_clips": evals[-1]["eval_clips"],
        "train_bpp_interval_mean_by_step": {
            str(r["step"]): round(r["bpp_interval_mean"], 4) for r in train
            if r["step"] % 200 == 0 and "bpp_interval_mean" in r},
        "max_grad_norm": round(max(r["grad_norm"] for r in train), 2),
        "max_grad_norm_after_step_200": round(
            max([r["grad_norm"] for r in train if r["step"] > 200] or [float("nan")]), 2),
        "samples_t1": {
            "samples": report["samples"],
            "intact": report["shares"]["intact"],
            "intact_coherent": report["shares"]["intact_coherent"],
            "coherent_any": report["shares"]["coherent"],
            "no_shape": report["shares"]["no_shape"],
            "following_context": report.get("share_following_context"),
            "mean_area_context": report["mean_area_context"],
            "mean_area_samples": report["mean_area_samples"],
            "own_samples_bpp": sample_rows[0].get("bpp"),
        },
        "empty_clip_bpp": motion["background"]["bpp"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True)
    parser.add_argument("--note", default="")
    parser.add_argument("--append", action="store_true",
                        help="keep the runs already in the results file (same names are "
                             "replaced) and add the note to its note")
    args = parser.parse_args()
    rows, note, earlier_commands = {}, args.note, []
    if args.append:
        with open(os.path.join(common.RESULTS_DIR, "demo_search.json")) as f:
            previous = json.load(f)
        rows, note = previous["runs"], " ".join(filter(None, [previous["note"], args.note]))
        earlier_commands = previous.get("earlier_commands", []) + [previous["command"]]
    for name, path, overrides in parse_runs(args.runs):
        rows[name] = dict(summarize_run(path), overrides=overrides)
        r = rows[name]
        print(f"{name:<22} {r['frame_size']:>3}px L{r['n_levels']} ctx{r['context_frames']} "
              f"{r['steps']:>5} steps {r['training_seconds_one_core']:>5} s  "
              f"dev {r['dev_bpp']:.3f}  intact {100 * r['samples_t1']['intact']:5.1f}%  "
              f"intact+coherent {100 * r['samples_t1']['intact_coherent']:5.1f}%  "
              f"no shape {100 * r['samples_t1']['no_shape']:5.1f}%")
    common.write_results("demo_search", {"note": note, "runs": rows,
                                         "earlier_commands": earlier_commands})


if __name__ == "__main__":
    main()
