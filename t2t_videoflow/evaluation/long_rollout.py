r"""`long_rollout`: long sampled futures and their drift (paper 5.6: 100 frames from 3).

From the first clip(s) of the split (--max_clips; 0, the CLI default, means ONE clip
here, since every clip costs num_samples x num_frames sampled frames), the first
`video_num_input_frames` frames condition (at least the model's
`min_context_frames`), and --num_samples samples of --num_frames frames (default 100)
are drawn at --temperature (default 0.5, the paper's qualitative temperature; the
set's own `temperature` is not used). Sampling is `Sampler`: graph
`tf.while_loop`s in chunks of 10 frames with a progress line per chunk; the frames
are those of `model.sample` with seed `sampling.clip_seed(random_seed, clip index)`
and the context repeated once per sample (one seed gives each sample its own noise).

Written (results_dir/long_rollout/): `clipNNN_sampleMM.gif` (context then samples),
`clipNNN_strip.png` (one row per sample: context | every k-th sampled frame, k =
max(1, num_frames // 10); `strip_frames` lists them); with `plots`,
`long_rollout.png` (statistics vs frame). The JSON holds per sampled frame, over all
clips and samples, the pixel statistics of `frame_stats.frame_statistics` (mean
intensity per channel, contrast std, near-black fraction, mean absolute change from
the previous frame) and the same statistics of the context frames for reference, so
drift (fading to black or grey, freezing, flicker) shows as numbers.
"""

import os
import time

import numpy as np

from t2t_videoflow.model.sampling import Sampler
from t2t_videoflow.data import media
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import frame_stats, report

NAME = "long_rollout"
OPTIONS = {"seed": "random_seed", "num_frames": "num_frames",
           "temperature": "temperature", "num_samples": "num_samples",
           "max_clips": "max_clips", "plots": "plots", "jit_compile": "jit_compile"}
DEFAULT_NUM_FRAMES = 100
DEFAULT_TEMPERATURE = 0.5
DEFAULT_CLIPS = 1
CHUNK = 10


def strip_step(num_frames):
    """Every k-th sampled frame goes into the strip: k = max(1, num_frames // 10)."""
    return max(1, num_frames // 10)


def run(context, seed=0, num_frames=None, temperature=None, num_samples=10,
        max_clips=None, plots=True, jit_compile=False, results_dir=None):
    """The `long_rollout` experiment on a `RunContext`; see the module docstring.

    Args:
      num_frames: sampled frames per sample (default 100).
      temperature: tau >= 0 (default 0.5).
      num_samples: samples per clip.
      max_clips: clips of the split (None: 1).
    """
    num_frames = DEFAULT_NUM_FRAMES if num_frames is None else int(num_frames)
    temperature = DEFAULT_TEMPERATURE if temperature is None else float(temperature)
    max_clips = DEFAULT_CLIPS if max_clips is None else int(max_clips)
    for flag, value in (("num_frames", num_frames), ("num_samples", num_samples),
                        ("max_clips", max_clips)):
        if value < 1:
            raise UsageError(f"--{flag} must be >= 1; got {value}.")
    if not temperature >= 0.0:
        raise UsageError(f"--temperature must be >= 0; got {temperature}.")
    model = context.model
    n = max(context.hparams.video_num_input_frames, model.min_context_frames)
    sampler = Sampler.of(model, jit_compile=jit_compile)
    out_dir = os.path.join(results_dir, NAME) if results_dir else None
    every = strip_step(num_frames)
    began = time.time()
    context.log(f"{NAME}: {num_samples} sample(s) of {num_frames} frames at temperature "
                f"{temperature:g} after {n} context frame(s), {max_clips} "
                f"{context.split} clip(s)")
    contexts, samples, files = [], [], []
    for video in context.clips(n, 1, max_clips):
        i = len(contexts)

        def progress(done, total, seconds, i=i):
            context.log(f"{NAME}: clip {i + 1}: {done}/{total} frames ({seconds:.1f} s)")

        clip = sampler.sample_clip(video[0], i, num_samples, num_frames, temperature, seed,
                                   chunk=CHUNK, log=progress)
        contexts.append(video[0])
        samples.append(clip)
        if out_dir:
            prefix = os.path.join(out_dir, f"clip{i:03d}")
            for j, sample in enumerate(clip):
                files.append(media.write_gif(f"{prefix}_sample{j:02d}.gif",
                                             np.concatenate([video[0], sample])))
            files.append(media.write_png(f"{prefix}_strip.png", media.make_grid(
                video[0], None, clip[:, every - 1::every])))
    if not samples:
        raise UsageError("No clips to condition on.")
    contexts, samples = np.stack(contexts), np.stack(samples)   # [N, n, ...], [N, S, K, ...]
    last = np.broadcast_to(contexts[:, None, -1], samples.shape[:2] + samples.shape[3:])
    result = {"experiment": NAME, **context.provenance(),
              "clips": int(len(samples)),
              "samples_per_clip": int(num_samples), "context_frames": n,
              "num_frames": num_frames, "temperature": temperature, "seed": seed,
              "near_black_threshold": frame_stats.NEAR_BLACK,
              "strip_frames": list(range(every, num_frames + 1, every)),
              "statistics": frame_stats.frame_statistics(samples, previous=last),
              "context_statistics": frame_stats.frame_statistics(contexts),
              "seconds": time.time() - began}
    if results_dir:
        extra = ([plot(result, os.path.join(results_dir, f"{NAME}.png"))]
                 if report.plots_wanted(plots, NAME, context.log) else [])
        context.log(f"{NAME}: wrote {len(files)} GIF / PNG files to {out_dir}")
        result["files"] = [report.write_json(results_dir, NAME, result), out_dir] + extra
    return result


def plot(result, path):
    """The statistics vs sampled frame (2 x 2 panels); the context's mean as a dotted
    line for reference. Saved as PNG at `path`."""
    plt = report.pyplot()
    s, ref = result["statistics"], result["context_statistics"]
    frames = np.arange(1, result["num_frames"] + 1)
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True)
    mean, ref_mean = np.array(s["mean"]), np.array(ref["mean"]).mean(axis=0)
    for c, color in enumerate(("tab:red", "tab:green", "tab:blue")):
        axes[0, 0].plot(frames, mean[:, c], color=color)
        axes[0, 0].axhline(ref_mean[c], color=color, linestyle=":")
    panels = ((axes[0, 0], None, "mean intensity per channel"),
              (axes[0, 1], "std", "contrast (std of a frame)"),
              (axes[1, 0], "near_black",
               f"near-black fraction (< {result['near_black_threshold']})"),
              (axes[1, 1], "change", "mean |frame - previous|"))
    for ax, key, title in panels:
        if key is not None:
            ax.plot(frames, s[key])
            reference = [v for v in ref[key] if v is not None]
            if reference:
                ax.axhline(float(np.mean(reference)), color="gray", linestyle=":")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("sampled frame")
    fig.suptitle(f"{result['clips']} clip(s) x {result['samples_per_clip']} sample(s), "
                 f"temperature {result['temperature']:g} (dotted: context frames)",
                 fontsize=10)
    return report.save_figure(fig, path)


def format_result(result):
    """The printed table: the context frames' statistics, then the sampled frames'
    at frame 1 and every k-th frame (those of the strip)."""
    s, ref = result["statistics"], result["context_statistics"]
    row = lambda label, stats, t: [label, *stats["mean"][t], stats["std"][t],
                                   stats["near_black"][t],
                                   "-" if stats["change"][t] is None else stats["change"][t]]
    rows = [row(f"context {t + 1}", ref, t) for t in range(len(ref["std"]))]
    rows += [row(str(t), s, t - 1) for t in sorted({1, *result["strip_frames"]})]
    return "\n".join([
        report.format_table(["frame", "mean R", "mean G", "mean B", "std", "near-black",
                             "change"], rows),
        f"{result['clips']} clip(s) x {result['samples_per_clip']} sample(s) of "
        f"{result['num_frames']} frames at temperature {result['temperature']:g} "
        f"({result['seconds']:.1f} s); every frame's statistics are in the JSON"])
