r"""`temperature_sweep`: PSNR, SSIM (and VGG cosine similarity) of samples against the
truth, per sampling temperature (paper section 5.5, appendix C).

Protocol. Every clip of the split gives one test context: its first
`video_num_input_frames` frames (BAIR 3, shapes 1). The truth is the next
`video_num_target_frames` frames (BAIR 10, shapes 2). For each temperature tau, N =
`num_samples` futures are drawn per context with `model.sample(context, K, tau)`.
The paper uses N = 100. The CLI's default is 10 for CPUs, and the paper's numbers
need `--num_samples=100`. Each sampled frame is scored against the true frame of the
same index (`metrics.frame_psnr`, `frame_ssim`, and with `--vgg_weights`
`VGGCosineSimilarity`), which gives per temperature an array `[N, clips, K]` per
metric. T2T's `reduce_to_best_decode` (`metrics.reduce_decodes`) turns it into
per-frame curves averaged over clips:

  best   best-of-N: per clip, the sample whose frame-averaged metric is highest,
         with its whole curve (the paper's Fig. 2 protocol).
  mean   the mean over the N samples (`std`, and `worst` for the lowest, are kept too).

Each curve is also averaged over the K frames (`best_avg`, `mean_avg`).

Best temperature: for each metric, the temperature with the highest frame-averaged
best-of-N value (ties go to the lower temperature). The paper tuned tau on the dev
split, so choose it with `--split=dev` and report the test split at that tau
(`--split=test --temperatures=TAU`).

Seeds. Clip i (its index in the split) samples with the seed
`sampling.clip_seed(seed, i)` (an int32), the SAME for every temperature.
So the temperatures are compared on common random numbers: the same standard-normal
noise, scaled by tau. A clip's samples depend on neither `--batch_size`, `--max_clips`
nor the other temperatures in the list. The N samples of a context are one
`model.sample` call whose batch is the context repeated N times: that seed gives each
row its own noise. Row r's noise is the philox stream at row r's offset, so the first
n of N samples equal an n-sample run's (tested). `--batch_size` only sets how many
clips are read at a time.

Outputs: `temperature_sweep.json` and, with plots, `temperature_sweep_<metric>.png`
(the best-of-N metric against the predicted frame, one line per temperature) and
`temperature_sweep_summary.png` (the frame-averaged best-of-N and mean against the
temperature, one panel per metric).
"""

import math
import os
import time

import numpy as np
import tensorflow as tf

from t2t_videoflow.config.temperatures import parse_temperatures
from t2t_videoflow.model.sampling import Sampler
from t2t_videoflow.errors import DataError, UsageError
from t2t_videoflow.evaluation import metrics, report

NAME = "temperature_sweep"
OPTIONS = {"temperatures": "temperatures", "num_samples": "num_samples",
           "seed": "random_seed", "batch_size": "batch_size", "max_clips": "max_clips",
           "vgg_weights": "vgg_weights", "plots": "plots", "jit_compile": "jit_compile"}
DEFAULT_TEMPERATURES = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "vgg": "VGG cosine similarity"}
SELECTION = ("per metric, the temperature with the highest frame-averaged best-of-N "
             "value (ties: the lower temperature)")


def sweep_temperatures(value):
    """The sweep's temperatures, sorted ascending: single numbers only (each is one
    point of the curves), parsed as every tool parses `--temperatures`.

    Raises:
      UsageError: as `config.temperatures.parse_temperatures`, or a per-level entry.
    """
    temperatures = parse_temperatures(value)
    for tau in temperatures:
        if isinstance(tau, list):
            raise UsageError(f"--temperatures: the sweep takes one temperature per "
                             f"point, not per-level values; got "
                             f"{'/'.join(f'{t:g}' for t in tau)}.")
    return sorted(temperatures)


@tf.function(reduce_retracing=True)
def _psnr_ssim(samples, truth):
    """(PSNR, SSIM) `[S, K]` of samples `[S, K, H, W, 3]` against truth `[K, H, W, 3]`."""
    return metrics.frame_psnr(samples, truth), metrics.frame_ssim(samples, truth)


def _summary(values):
    """JSON-able statistics of one metric `[N, clips, K]` (see `metrics.reduce_decodes`)."""
    stats = metrics.reduce_decodes(values)
    out = {key: curve.tolist() for key, curve in stats.items()}
    out["best_avg"] = float(stats["best"].mean())
    out["mean_avg"] = float(stats["mean"].mean())
    return out


def sweep(model, clips, num_context, temperatures, num_samples, seed=0, vgg=None,
          jit_compile=False, log=None):
    """The sweep on in-memory clips (see the module doc).

    Args:
      model: a `VideoFlow`.
      clips: uint8 `[clips, num_context + K, H, W, 3]`, clip i is the split's i-th.
      num_context: context frames per clip; the rest are the truth.
      temperatures: sequence of tau >= 0.
      num_samples: N samples per context and temperature.
      seed: base seed.
      vgg: a `metrics.VGGCosineSimilarity`, or None to skip VGG.
      log: progress messages (one per temperature), or None.

    Returns:
      list (one per temperature) of dicts: `temperature`, per metric its `_summary`
      (`best`, `mean`, `std`, `worst` per-frame curves, `best_avg`, `mean_avg`),
      `psnr_exact_frames` (sampled frames equal to the truth, scored at the PSNR
      ceiling), `seconds`.
    """
    clips = np.asarray(clips)
    num_frames = clips.shape[1] - num_context
    if num_frames < 1 or num_samples < 1 or len(clips) == 0:
        raise UsageError(f"Nothing to sample: {len(clips)} clip(s), {num_frames} target "
                         f"frame(s), {num_samples} sample(s).")
    sampler = Sampler.of(model, jit_compile)
    names = ["psnr", "ssim"] + (["vgg"] if vgg is not None else [])
    rows = []
    for t, tau in enumerate(temperatures):
        began = time.time()
        values = {name: np.zeros([num_samples, len(clips), num_frames]) for name in names}
        exact = 0
        for i, clip in enumerate(clips):
            samples = sampler.sample_clip(clip[:num_context], i, num_samples, num_frames,
                                          tau, seed, chunk=num_frames)
            truth = clip[num_context:]
            psnr, ssim = _psnr_ssim(tf.constant(samples), tf.constant(truth))
            values["psnr"][:, i], values["ssim"][:, i] = psnr.numpy(), ssim.numpy()
            if vgg is not None:
                values["vgg"][:, i] = vgg.similarity(samples, truth)
            exact += int(np.all(samples == truth, axis=(2, 3, 4)).sum())
        row = {"temperature": tau, **{name: _summary(values[name]) for name in names},
               "psnr_exact_frames": exact, "seconds": time.time() - began}
        rows.append(row)
        if log is not None:
            scores = ", ".join(f"{name.upper()} {row[name]['best_avg']:.4f}"
                               for name in names)
            log(f"{NAME}: temperature {_tau(tau)} ({t + 1}/{len(temperatures)}): best of "
                f"{num_samples} {scores} over {len(clips)} clips ({row['seconds']:.1f} s)")
    return rows


def best_temperatures(rows, names):
    """{metric: the temperature with the highest `best_avg`} (first on ties)."""
    best = {}
    for name in names:
        scores = [row[name]["best_avg"] for row in rows]
        best[name] = rows[int(np.argmax(scores))]["temperature"]
    return best


def run(context, temperatures=DEFAULT_TEMPERATURES, num_samples=10, seed=0, batch_size=8,
        max_clips=None, vgg_weights=None, plots=True, jit_compile=False,
        vgg_input_size=metrics.VGG_INPUT_SIZE, results_dir=None):
    """The `temperature_sweep` experiment on a `RunContext` (see the module doc).

    Args:
      context: a `context.RunContext`.
      temperatures: "0.1,0.5,1.0" or a sequence of numbers >= 0.
      num_samples: samples per context and temperature (paper: 100; CLI default 10).
      seed: base sampling seed.
      batch_size: clips read at a time.
      max_clips: use only the split's first clips (None: all).
      vgg_weights: a local VGG16 weights file (see `metrics.VGGCosineSimilarity`);
        None skips VGG (said in the result and the table).
      plots: also write PNG plots (with `results_dir`).
      jit_compile: compile the sampler with XLA.
      vgg_input_size: the VGG crop size (T2T's 224; tests use 32).
      results_dir: where `temperature_sweep.json` and the plots go (None: nowhere).

    Returns:
      JSON-able dict: the protocol, `per_temperature` (see `sweep`), `best_temperature`
      per metric, `files`.
    """
    temperatures = sweep_temperatures(temperatures)
    if num_samples < 1:
        raise UsageError(f"--num_samples must be >= 1; got {num_samples}.")
    hp = context.hparams
    num_context, num_targets = hp.video_num_input_frames, hp.video_num_target_frames
    if num_context < context.model.min_context_frames:
        raise UsageError(f"The model needs {context.model.min_context_frames} context "
                         f"frame(s); the set gives video_num_input_frames={num_context}.")
    vgg = (metrics.VGGCosineSimilarity(vgg_weights, vgg_input_size)
           if vgg_weights else None)
    vgg_note = (f"VGG cosine similarity with {vgg_weights}" if vgg is not None else
                "VGG cosine similarity skipped (no --vgg_weights given)")
    batches = list(context.clips(num_context + num_targets, batch_size, max_clips))
    if not batches:
        raise DataError(f"The {context.split} split holds no clip to sample from.")
    clips = np.concatenate(batches)
    context.log(f"{NAME}: {len(clips)} clips of the {context.split} split, "
                f"{num_context} context + {num_targets} target frames, {num_samples} "
                f"samples per context at {len(temperatures)} temperature(s); {vgg_note}")
    began = time.time()
    rows = sweep(context.model, clips, num_context, temperatures, num_samples, seed, vgg,
                 jit_compile, log=context.log)
    names = ["psnr", "ssim"] + (["vgg"] if vgg is not None else [])
    frame_values = int(np.prod(clips.shape[2:]))
    result = {
        "experiment": NAME, **context.provenance(),
        "context_frames": num_context,
        "target_frames": num_targets, "clips": int(len(clips)),
        "num_samples": int(num_samples), "seed": seed,
        "temperatures": temperatures, "metrics": names,
        "vgg": ({"weights": vgg_weights, "input_size": vgg.input_size,
                 "layers": vgg.layer_names} if vgg is not None else None),
        "vgg_skipped": None if vgg is not None else "no --vgg_weights given",
        "psnr_ceiling": metrics.psnr_ceiling(frame_values),
        "per_temperature": rows,
        "best_temperature": best_temperatures(rows, names),
        "selection": SELECTION,
        "seconds": time.time() - began,
    }
    if results_dir:
        files = (write_plots(result, results_dir)
                 if report.plots_wanted(plots, NAME, context.log) else [])
        result["files"] = [report.write_json(results_dir, NAME, result)] + files
    return result


def write_plots(result, results_dir):
    """One PNG per metric (best-of-N per predicted frame, a line per temperature) and a
    summary (frame-averaged best-of-N and mean per temperature); returns the paths."""
    plt = report.pyplot()
    rows, n = result["per_temperature"], result["num_samples"]
    frames = np.arange(1, result["target_frames"] + 1)
    colours = plt.get_cmap("viridis")
    files = []
    for name in result["metrics"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, row in enumerate(rows):
            ax.plot(frames, row[name]["best"], marker="o",
                    color=colours(i / max(1, len(rows) - 1)),
                    label=f"\u03c4 = {_tau(row['temperature'])}")
        ax.set_xlabel("predicted frame")
        ax.set_ylabel(f"{LABELS[name]}, best of {n}")
        ax.set_xticks(frames)
        ax.legend(fontsize="small", ncol=2)
        ax.set_title(f"{LABELS[name]} per frame ({result['split']}, {result['clips']} "
                     f"clips)")
        files.append(report.save_figure(fig, os.path.join(results_dir,
                                                          f"{NAME}_{name}.png")))
    names = result["metrics"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    temperatures = [row["temperature"] for row in rows]
    for ax, name in zip(axes[0], names):
        ax.plot(temperatures, [row[name]["best_avg"] for row in rows], "o-",
                label=f"best of {n}")
        ax.plot(temperatures, [row[name]["mean_avg"] for row in rows], "s--",
                label="mean")
        ax.axvline(result["best_temperature"][name], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("temperature")
        ax.set_ylabel(f"{LABELS[name]}, mean over frames")
        ax.legend(fontsize="small")
    fig.tight_layout()
    files.append(report.save_figure(fig, os.path.join(results_dir, f"{NAME}_summary.png")))
    return files


def _tau(tau):
    """A temperature as printed: 0.1, 0.25, 1.0."""
    text = f"{tau:g}"
    return text if any(c in text for c in ".en") else text + ".0"


def format_result(result):
    """The printed table: one row per temperature, frame-averaged best-of-N and mean."""
    names = result["metrics"]
    header = ["temperature"]
    for name in names:
        header += [f"{name.upper()} best", f"{name.upper()} mean"]
    rows = [[_tau(row["temperature"])]
            + [row[name][key] for name in names for key in ("best_avg", "mean_avg")]
            for row in result["per_temperature"]]
    best = ", ".join(f"{name.upper()} {_tau(tau)}"
                     for name, tau in result["best_temperature"].items())
    exact = sum(row["psnr_exact_frames"] for row in result["per_temperature"])
    lines = [report.format_table(header, rows),
             f"best = best of {result['num_samples']} samples per clip (the sample with "
             f"the highest frame-averaged metric), mean = over samples; "
             f"{result['clips']} clips, {result['target_frames']} predicted frames "
             f"averaged",
             f"best temperature (highest best-of-N): {best}"]
    if exact:
        lines.append(f"{exact} sampled frame(s) equal their true frame: PSNR counted as "
                     f"{result['psnr_ceiling']:.2f} dB (not inf)")
    if result["vgg_skipped"]:
        lines.append(f"VGG cosine similarity skipped ({result['vgg_skipped']})")
    return "\n".join(lines)
