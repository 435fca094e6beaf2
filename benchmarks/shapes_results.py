r"""The README's stochastic-shapes "Results" figures from one training run.

    python benchmarks/shapes_results.py --output_dir=RUN --data_dir=DATA \
        --motion_json=RUN/motion.json --name=shapes_cpu [--wallclock=FILE]

Reads the run's `train_log.jsonl` (training points with `bpp_interval_mean`, eval
points with `eval_bpp`, `wall_time` on both) and the motion diagnostic's JSON
(`t2t-videoflow-motion`), and writes

    docs/NAME_bpp.png          train bpp (interval means) and dev bpp against steps,
                               with hours of training on the top axis
    docs/NAME_samples.gif      animated grid: per dev clip, the real clip then
                               samples at temperature 1.0 (context frame, then samples)
    docs/NAME_directions.png   direction histogram of intact, coherently moving samples
                               (samples at each temperature of the motion JSON, and data)
    benchmarks/results/NAME.json   the figures the README quotes

Needs matplotlib (`pip install -e ".[plots]"`). `--wallclock` takes lines
`UNIX_TIME step N/...` (written beside runs whose train_log predates `wall_time`).
"""

import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_log(output_dir):
    """`(train, evals)`: lists of `(step, record)` sorted by step."""
    from t2t_videoflow.training import trainer as trainer_lib
    records = sorted(trainer_lib.train_log(output_dir).items())
    train = [(s, r) for s, r in records if "bpp" in r]
    evals = [(s, r) for s, r in records if "eval_bpp" in r]
    return train, evals


def read_wallclock(path):
    """`{step: unix_time}` from lines `UNIX_TIME step N/...`."""
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"(\d+)\s+step (\d+)/", line)
            if m:
                out.setdefault(int(m.group(2)), int(m.group(1)))
    return out


def grad_norm_ranges(last_step):
    """Step ranges `(lo, hi]` for the largest gradient norms: 0-1000, 1000-2000,
    2000-4000, 4000-end, cut at the run's last step."""
    bounds = [b for b in (0, 1000, 2000, 4000) if b < last_step] + [last_step]
    return list(zip(bounds[:-1], bounds[1:]))


def hours_at(steps, times):
    """Hours of training at `steps`, from `{step: unix_time}` (None if too few times).

    Time between two logged points counts at most 3x the run's median seconds per
    step, so a pause (a crash and resume, a stopped process) is not counted as
    training; the time before the first logged point is extrapolated at the median.
    """
    if len(times) < 2:
        return None
    known = sorted(times.items())
    s = np.array([k for k, _ in known], float)
    t = np.array([v for _, v in known], float)
    ds, dt = np.diff(s), np.diff(t)
    keep = ds > 0
    per_step = dt[keep] / ds[keep]
    median = float(np.median(per_step))
    capped = np.minimum(np.where(keep, dt / np.maximum(ds, 1), median), 3 * median) * ds
    cumulative = np.concatenate([[s[0] * median], s[0] * median + np.cumsum(capped)])
    return np.interp(steps, s, cumulative) / 3600.0


def plot_curve(path, train, evals, times, title, hardware="2 CPU cores", n_bits=8,
               batch_size=16):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = np.array([s for s, _ in train])
    bpp = np.array([r.get("bpp_interval_mean", r["bpp"]) for _, r in train])
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.plot(steps, bpp, lw=1, color="tab:blue", label="train (mean per log interval)")
    if evals:
        clips = evals[-1][1].get("eval_clips", "all")
        ax.plot([s for s, _ in evals], [r["eval_bpp"] for _, r in evals], "o-",
                color="tab:red", ms=4, label=f"dev ({clips} clips, 2 target frames)")
    ax.set_yscale("log")
    ax.set_xlabel(f"training step (batch {batch_size})")
    ax.set_ylabel("bits per pixel" if n_bits == 8 else f"bits per {n_bits}-bit pixel value")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title, fontsize=10)
    if times and len(times) >= 2:
        known = sorted(times)
        hours = hours_at(np.array(known, float), times)
        top = ax.secondary_xaxis(
            "top", functions=(lambda s: np.interp(s, known, hours),
                              lambda h: np.interp(h, hours, known)))
        top.set_xlabel(f"hours on {hardware}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_directions(path, motion):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = motion["data"]["motion"]["directions"]
    rows = [("data", motion["data"]["motion"])] + [
        (f"samples, T={row['temperature']:g}", row["motion"]) for row in motion["samples"]]
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    width = 0.8 / len(rows)
    x = np.arange(len(names))
    for i, (label, report) in enumerate(rows):
        hist = np.array([report["direction_histogram"][n] for n in names], float)
        share = hist / max(report["samples"], 1)
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, share, width, label=label)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("share of samples")
    ax.set_title("intact shapes moving coherently, by direction", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def sample_grid_gif(path, output_dir, data_dir, num_clips, num_samples, temperature,
                    seed, scale=3):
    """Rows: dev clips. Columns: the real clip, then `num_samples` samples. Each cell
    animates context frame(s) then target frames; a 1-px grey border between cells."""
    from t2t_videoflow.data import clips
    from t2t_videoflow.data import media
    from t2t_videoflow.training import restore
    run = restore.restore_for_inference(output_dir, None)
    model, hparams, problem = run["model"], run["hparams"], run["problem"]
    contexts, truths = clips.dev_clips(problem, hparams, data_dir, num_clips)
    k = truths.shape[1]
    reps = np.repeat(contexts, num_samples, axis=0)
    samples = model.sample(reps, k, temperature=temperature, seed=seed).numpy()
    samples = samples.reshape(num_clips, num_samples, *samples.shape[1:])
    clips = np.concatenate([np.concatenate([contexts, truths], 1)[:, None],
                            np.concatenate([np.repeat(contexts[:, None], num_samples, 1),
                                            samples], 2)], axis=1)   # [N, 1+K, T, H, W, 3]
    n, cols, t, h, w, _ = clips.shape
    pad = 2
    canvas = np.full((t, n * (h + pad) + pad, cols * (w + pad) + pad + pad, 3), 96, np.uint8)
    for i in range(n):
        for j in range(cols):
            x0 = pad + j * (w + pad) + (pad if j > 0 else 0)   # wider gap after the data
            canvas[:, pad + i * (h + pad):pad + i * (h + pad) + h, x0:x0 + w] = clips[i, j]
    canvas = canvas.repeat(scale, axis=1).repeat(scale, axis=2)
    media.write_gif(path, canvas, fps=2)
    return run["step"]


def motion_by_step(spec, final):
    """`[{step, dev clips' bpp, figures at temperature 1.0}, ...]` from the motion JSONs
    named in `spec` ("STEP=FILE,...") plus the final one, sorted by step; [] without
    `spec`."""
    if not spec:
        return []
    reports = []
    for item in filter(None, spec.split(",")):
        with open(item.split("=", 1)[1]) as f:
            reports.append(json.load(f))
    rows = []
    for report in reports + [final]:
        sample = next(r for r in report["samples"] if r["temperature"] == 1.0)
        rows.append({"step": report["run"]["step"], "data_bpp": report["data"]["bpp"],
                     **common.motion_sample_summary(sample)})
    return sorted(rows, key=lambda row: row["step"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--motion_json", default=None,
                        help="t2t-videoflow-motion results (default OUTPUT_DIR/motion.json)")
    parser.add_argument("--wallclock", default=None)
    parser.add_argument("--name", default="shapes_cpu")
    parser.add_argument("--title", default=None)
    parser.add_argument("--hardware", default="2 CPU cores",
                        help="What the run trained on, for the plot's hours axis.")
    parser.add_argument("--num_clips", type=int, default=4)
    parser.add_argument("--num_samples", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--motion_by_step", default="",
                        help="STEP=FILE,...: motion JSONs of earlier checkpoints of the run "
                             "(t2t-videoflow-motion --checkpoint_path=RUN/model.ckpt-STEP "
                             "--results_file=FILE), summarised per step in NAME.json")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("shapes_results.py needs matplotlib: pip install -e '.[plots]'")
    docs = os.path.join(ROOT, "docs")
    os.makedirs(docs, exist_ok=True)
    train, evals = read_log(args.output_dir)
    if not train:
        sys.exit(f"No training points in {args.output_dir}/train_log.jsonl.")
    times = read_wallclock(args.wallclock) if args.wallclock else {}
    times.update({s: r["wall_time"] for s, r in train if "wall_time" in r})
    title = args.title or f"{args.name}: stochastic shapes"
    from t2t_videoflow.training import run_dir
    hparams, _ = run_dir.load_run(args.output_dir)
    plot_curve(os.path.join(docs, f"{args.name}_bpp.png"), train, evals, times, title,
               args.hardware, hparams.n_bits_x, hparams.batch_size)
    motion_path = args.motion_json or os.path.join(args.output_dir, "motion.json")
    with open(motion_path) as f:
        motion = json.load(f)
    plot_directions(os.path.join(docs, f"{args.name}_directions.png"), motion)
    step = sample_grid_gif(os.path.join(docs, f"{args.name}_samples.gif"),
                           args.output_dir, args.data_dir, args.num_clips,
                           args.num_samples, args.temperature, args.seed)
    last = train[-1][1]
    total_hours = None
    if len(times) >= 2:
        total_hours = float(hours_at(np.array([train[-1][0]], float), times)[0])
    summary = {
        "run": os.path.abspath(args.output_dir), "checkpoint_step": step,
        "train_steps_logged": train[-1][0],
        "hours": total_hours,
        "final_train_bpp_interval_mean": last.get("bpp_interval_mean", last["bpp"]),
        "max_grad_norm_by_steps": {
            f"{lo + 1}-{hi}": max((r["grad_norm"] for s, r in train if lo < s <= hi),
                                  default=None)
            for lo, hi in grad_norm_ranges(train[-1][0])},
        "dev_bpp": [{"step": s, "bpp": r["eval_bpp"],
                     "per_frame": r.get("eval_bpp_per_frame")} for s, r in evals],
        "motion": {
            "checkpoint": motion["run"]["checkpoint"], "settings": motion["settings"],
            "data": {"bpp_per_frame": motion["data"]["bpp_per_frame"],
                     "shares": motion["data"]["motion"]["shares"]},
            "samples": [{"temperature": row["temperature"],
                         "bpp_per_frame": row["bpp_per_frame"],
                         "shares": row["motion"]["shares"],
                         "direction_histogram": row["motion"]["direction_histogram"],
                         "uniformity": row["motion"]["uniformity"],
                         "mean_area_samples": row["motion"]["mean_area_samples"],
                         "mean_area_context": row["motion"]["mean_area_context"]}
                        for row in motion["samples"]],
        },
        "motion_by_step": motion_by_step(args.motion_by_step, motion),
        "command": "python benchmarks/shapes_results.py " + " ".join(
            sys.argv[1:] if argv is None else argv),
    }
    out = os.path.join(ROOT, "benchmarks", "results", f"{args.name}.json")
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: summary[k] for k in ("checkpoint_step", "hours",
                                               "final_train_bpp_interval_mean")}))
    for row in summary["motion"]["samples"]:
        print(f"T={row['temperature']:g}: shares {row['shares']}")
    print(f"wrote docs/{args.name}_*.png, docs/{args.name}_samples.gif, {out}")


if __name__ == "__main__":
    main()
