r"""`out_of_sequence`: bits per pixel of later frames scored as the NEXT frame (paper 5.4,
Fig. 4).

For each clip of the split, with context `c = x_1 .. x_n` (the set's
`video_num_input_frames`, BAIR n = 3) and frame numbers t = n+1 .. n+K (1-based; BAIR
4 .. 13, K = 10), frame `x_t` is scored AS IF it came right after the context:

    bpp(t) = -J(x_t | x_1 .. x_n) / (D ln 2)

i.e. `model.bits_per_pixel` of the clip `[x_1 .. x_n, x_t]` (`[B, n + 1, H, W, 3]`),
last frame. A model that has learnt the dynamics finds far-away frames less likely
as the next frame, so the curve should rise with t. At t = n + 1 this is the
ordinary bits per pixel of the first target (`bpp` experiment, same seed).

Dequantisation noise: `noise.clip_noise` of the whole clip read
(`[B, num_frames, ...]`, the pair (seed, 0) as the `bpp` experiment's draw 0, clip i's
noise independent of the batching); the context
keeps its slots and frame t keeps ITS OWN slot t, so x_t is dequantised exactly as
the `bpp` experiment dequantises it, whatever position it is scored at.

Reported per t: the mean over the split's clips and its standard error
`std_ddof1 / sqrt(N)`; whether the curve rises monotonically (`is_monotonic`, rule
there) and the first t where it falls; a plot (bpp vs t with error bars) with `plots`.
T2T has no such code.
"""

import math
import os
import time

import numpy as np
import tensorflow as tf

from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import bpp as bpp_lib
from t2t_videoflow.model.noise import clip_noise
from t2t_videoflow.evaluation import report

NAME = "out_of_sequence"
OPTIONS = {"seed": "random_seed", "num_frames": "num_frames", "batch_size": "batch_size",
           "max_clips": "max_clips", "plots": "plots", "jit_compile": "jit_compile"}

RULE = ("non-decreasing: the step from t to t+1 is a decrease when mean(t+1) < mean(t) "
        "- sqrt(se(t)^2 + se(t+1)^2) (one combined standard error; 0 without errors)")


def first_decrease(means, errors=None):
    """Index i+1 of the first step where the curve falls, or None if it never does.

    Rule: the step `i -> i+1` is a decrease when

        means[i+1] < means[i] - sqrt(errors[i]^2 + errors[i+1]^2)

    so a drop smaller than one combined standard error is not counted (without
    `errors`, or where an error is None, the tolerance is 0 and any drop counts).

    Args:
      means: sequence of floats (finite).
      errors: None or a sequence of the same length of standard errors (>= 0 or None).

    Raises:
      ValueError for non-finite means, negative errors or mismatched lengths.
    """
    means = [float(m) for m in means]
    if not all(math.isfinite(m) for m in means):
        raise ValueError(f"means must be finite; got {means}.")
    if errors is None:
        errors = [0.0] * len(means)
    errors = [0.0 if e is None else float(e) for e in errors]
    if len(errors) != len(means):
        raise ValueError(f"{len(means)} means but {len(errors)} errors.")
    if any(not e >= 0.0 for e in errors):
        raise ValueError(f"errors must be >= 0; got {errors}.")
    for i in range(len(means) - 1):
        tolerance = math.sqrt(errors[i] ** 2 + errors[i + 1] ** 2)
        if means[i + 1] < means[i] - tolerance:
            return i + 1
    return None


def is_monotonic(means, errors=None):
    """True when the curve never falls by `first_decrease`'s rule (non-decreasing up
    to one combined standard error per step; a curve of 0 or 1 point is monotonic)."""
    return first_decrease(means, errors) is None


class OutOfSequenceScorer:
    """bpp `[b, K]` of frames n+1 .. n+K of each clip, each scored right after the
    clip's n context frames; one trace for a fixed batch size (padded as
    `bpp.Scorer` pads: copies of the last clip, scores dropped).

    Args:
      model: a conditional `VideoFlow`.
      num_context: n, the context frames.
      batch_size: the batch every call is padded to.
      jit_compile: compile the scoring with XLA.
    """

    def __init__(self, model, num_context, batch_size, jit_compile=False):
        self.model = model
        self.num_context = int(num_context)
        self.batch_size = int(batch_size)
        self._score = tf.function(self._score_frame, jit_compile=jit_compile)

    def _score_frame(self, video, clip_indices, seed, index):
        """bpp `[b]` of frame `video[:, index]` (0-based) after `video[:, :n]`."""
        n = self.num_context
        noise = clip_noise(tf.shape(video), tf.stack([seed, tf.zeros_like(seed)]), clip_indices)
        pick = lambda v: tf.concat([v[:, :n], tf.gather(v, [index], axis=1)], axis=1)
        scores = self.model.bits_per_pixel(pick(video), n, noise=pick(noise),
                                           training=False)
        return scores[:, 0]

    def __call__(self, video, first_index, seed):
        """bpp `[b, T - n]` (numpy) of uint8 clips `video [b, T, ...]` (clips numbered
        `first_index, first_index + 1, ...` in the split): column k scores frame
        n + k (0-based) as frame n."""
        frames = np.shape(video)[1]
        if frames <= self.num_context:
            raise ValueError(f"clips of {frames} frames; need more than the "
                             f"{self.num_context} context frames.")
        video, indices, b = bpp_lib.pad_batch(video, first_index, self.batch_size)
        seed = tf.constant(seed, tf.int64)
        columns = [self._score(video, indices, seed, tf.constant(k, tf.int32)).numpy()
                   for k in range(self.num_context, frames)]
        return np.stack(columns, axis=1)[:b]


def default_num_frames(context):
    """The set's `video_num_input_frames + video_num_target_frames`, capped by the
    data's frames per video."""
    hp = context.hparams
    frames = hp.video_num_input_frames + hp.video_num_target_frames
    available = context.frames_per_video()
    return min(frames, available) if available else frames


def run(context, seed=0, num_frames=None, batch_size=8, max_clips=None, plots=True,
        jit_compile=False, results_dir=None):
    """The `out_of_sequence` experiment on a `RunContext`; writes
    `out_of_sequence.json` (and `out_of_sequence.png` with `plots`) to `results_dir`.

    Args:
      num_frames: frames read per clip (context plus the K frames scored); default
        `default_num_frames(context)` (BAIR 13: t = 4 .. 13).
    """
    if context.hparams.gen_mode != "conditional":
        raise UsageError("out_of_sequence needs a conditional model: an unconditional "
                         "one scores every frame alone, so its position does not matter.")
    n = context.num_context
    num_frames = default_num_frames(context) if num_frames is None else int(num_frames)
    if num_frames <= n:
        raise UsageError(f"--num_frames={num_frames} leaves no frame to score after the "
                         f"{n} context frame(s); give at least {n + 1}.")
    began = time.time()
    scorer = OutOfSequenceScorer(context.model, n, batch_size, jit_compile)
    frames = list(range(n + 1, num_frames + 1))
    context.log(f"{NAME}: scoring frames {frames[0]}..{frames[-1]} of each "
                f"{context.split} clip as frame {n + 1}, after its {n} context frame(s)")
    rows, count = [], 0
    for k, video in enumerate(context.clips(num_frames, batch_size, max_clips)):
        rows.append(scorer(video, count, seed))
        count += len(video)
        if (k + 1) % 10 == 0:
            context.log(f"{NAME}: {count} clips scored ({time.time() - began:.0f} s)")
    if not rows:
        raise UsageError("No clips to score.")
    scores = np.concatenate(rows).astype(np.float64)            # [N, K]
    means = scores.mean(axis=0)
    errors = (scores.std(axis=0, ddof=1) / math.sqrt(len(scores)) if len(scores) > 1
              else None)
    error_list = errors.tolist() if errors is not None else [None] * len(frames)
    drop = first_decrease(means, errors)
    result = {"experiment": NAME, **context.provenance(),
              "context_frames": n, "clips": int(len(scores)),
              "seed": seed, "frames": frames, "bpp_mean": means.tolist(),
              "bpp_stderr": error_list, "monotonic": drop is None,
              "first_decrease": frames[drop] if drop is not None else None,
              "monotonic_rule": RULE, "seconds": time.time() - began}
    if results_dir:
        files = []
        if report.plots_wanted(plots, NAME, context.log):
            files.append(plot(result, os.path.join(results_dir, f"{NAME}.png")))
        result["files"] = [report.write_json(results_dir, NAME, result)] + files
    return result


def plot(result, path):
    """bpp vs frame number with standard-error bars, saved as PNG at `path`."""
    plt = report.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    errors = [0.0 if e is None else e for e in result["bpp_stderr"]]
    ax.errorbar(result["frames"], result["bpp_mean"], yerr=errors, marker="o",
                capsize=3)
    ax.set_xticks(result["frames"][::max(1, len(result["frames"]) // 15)])
    ax.set_xlabel(f"frame t scored as frame {result['context_frames'] + 1}")
    ax.set_ylabel("bits per pixel")
    verdict = ("rises monotonically" if result["monotonic"]
               else f"first falls at t = {result['first_decrease']}")
    ax.set_title(f"Out-of-sequence frames ({result['clips']} clips): {verdict}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    return report.save_figure(fig, path)


def format_result(result):
    """The printed table: t, mean bpp, standard error; then the monotonicity verdict."""
    rows = [[t, m, "-" if e is None else e]
            for t, m, e in zip(result["frames"], result["bpp_mean"], result["bpp_stderr"])]
    verdict = ("rises monotonically" if result["monotonic"]
               else f"not monotonic: first falls at t = {result['first_decrease']}")
    return "\n".join([
        report.format_table(["t", "mean bpp", "stderr"], rows),
        f"frame t scored after the first {result['context_frames']} frame(s) of each of "
        f"{result['clips']} clips; the curve {verdict} (rule: {result['monotonic_rule']})"])
