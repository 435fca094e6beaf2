r"""`bpp`: bits per pixel of a split with the paper's protocol (section 5.2).

Each clip's target frames (those after the set's `video_num_input_frames`) are scored
given their conditioning window, teacher-forced,

    bpp_t = -J_t / (D ln 2),   J_t = ln p(x_t + u_t | past) - D ln 256,

with dequantisation noise `u ~ U[0, 1/256)^D`. The result is the mean over targets and
over the WHOLE split (no clip dropped; the last batch is padded with copies of its
last clip, whose scores are discarded, so static-batch encoders work), the per-target-
index table, and the Monte-Carlo spread over the noise: draw d of clip i is that
clip's noise under the seed pair (seed, d) (`model/noise.py`), so it does not depend on
the batch size or on its batch, and the trainer's evaluation (draw 0) and this
experiment give the same number for the same checkpoint and seed.

With D draws the reported `bpp` is the mean of the D split means and `standard_error`
their standard deviation / sqrt(D) (the noise's share of the uncertainty, not the
sampling error over clips, which `clip_standard_error` gives).
"""

import math
import time

import numpy as np
import tensorflow as tf

from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import report
from t2t_videoflow.model.noise import clip_noise

NAME = "bpp"
OPTIONS = {"seed": "random_seed", "num_draws": "num_draws", "batch_size": "batch_size",
           "max_clips": "max_clips", "jit_compile": "jit_compile"}


class Scorer:
    """Scores batches of clips with per-clip noise; one trace for a fixed batch size.

    Args:
      model: a `VideoFlow`.
      num_context: leading frames not scored (0 when unconditional).
      batch_size: the batch every call is padded to (a static batch for the pointwise
        encoder, and one trace).
      jit_compile: compile the scoring with XLA.
    """

    def __init__(self, model, num_context, batch_size, jit_compile=False):
        self.model = model
        self.num_context = int(num_context)
        self.batch_size = int(batch_size)
        self._score = tf.function(self._score_padded, jit_compile=jit_compile,
                                  autograph=False)

    def _score_padded(self, video, clip_indices, seed, draw):
        noise = clip_noise(tf.shape(video), tf.stack([seed, draw]), clip_indices)
        return self.model.bits_per_pixel(video, self.num_context, noise=noise,
                                         training=False)

    def __call__(self, video, first_index, seed, draw):
        """bpp `[b, T - num_context]` (numpy) of uint8 clips `video [b, T, ...]`, the
        clips numbered `first_index, first_index + 1, ...` in the split."""
        video, indices, b = pad_batch(video, first_index, self.batch_size)
        bpp = self._score(video, indices, tf.constant(seed, tf.int64),
                          tf.constant(draw, tf.int64))
        return bpp.numpy()[:b]


def pad_batch(video, first_index, batch_size):
    """`(video, clip_indices, b)`: uint8 clips `video [b, T, ...]` numbered from
    `first_index`, padded to `batch_size` with copies of the last clip (which keep its
    index, so its noise; their scores are to be dropped), as tensors."""
    video = np.asarray(video)
    b = len(video)
    if not 0 < b <= batch_size:
        raise ValueError(f"batch of {b} clips; expected 1..{batch_size}.")
    indices = np.arange(first_index, first_index + batch_size)
    if b < batch_size:
        video = np.concatenate([video, np.repeat(video[-1:], batch_size - b, 0)])
        indices[b:] = indices[b - 1]
    return tf.constant(video), tf.constant(indices, tf.int64), b


def score_split(scorer, batches, seed=0, num_draws=1, log=None, progress_every=10):
    """Bits per pixel of every clip in `batches` (an iterable of uint8 batches), over
    `num_draws` noise draws.

    Returns:
      dict: `bpp` (mean), `bpp_per_frame` (per target index, mean over draws),
      `clips`, `draws` (each draw's split mean), `standard_error` (over draws; None
      for one draw), `clip_standard_error` (over clips, of the per-clip means),
      `seconds`.
    """
    if num_draws < 1:
        raise UsageError(f"--num_draws must be >= 1; got {num_draws}.")
    began = time.time()
    batches = list(batches) if num_draws > 1 else batches
    per_draw = []
    for draw in range(num_draws):
        rows, count = [], 0
        for k, video in enumerate(batches):
            rows.append(scorer(video, count, seed, draw))
            count += len(video)
            if log is not None and progress_every and (k + 1) % progress_every == 0:
                log(f"bpp: draw {draw + 1}/{num_draws}: {count} clips scored "
                    f"({time.time() - began:.0f} s)")
        if not rows:
            raise UsageError("No clips to score.")
        per_draw.append(np.concatenate(rows))              # [N, targets]
    scores = np.stack(per_draw).astype(np.float64)           # [D, N, targets]
    draw_means = scores.mean(axis=(1, 2))
    clip_means = scores.mean(axis=(0, 2))
    n = scores.shape[1]
    return {
        "bpp": float(draw_means.mean()),
        "bpp_per_frame": scores.mean(axis=(0, 1)).tolist(),
        "clips": int(n),
        "draws": draw_means.tolist(),
        "standard_error": (float(draw_means.std(ddof=1) / math.sqrt(num_draws))
                           if num_draws > 1 else None),
        "clip_standard_error": (float(clip_means.std(ddof=1) / math.sqrt(n))
                                if n > 1 else None),
        "seconds": time.time() - began,
    }


def run(context, seed=0, num_draws=1, batch_size=8, max_clips=None, jit_compile=False,
        results_dir=None):
    """The `bpp` experiment on a `RunContext`; writes `bpp.json` to `results_dir`.

    Scores `video_num_input_frames + video_num_target_frames` frames per clip (BAIR: 3
    + 10, shapes: 1 + 2) and returns `score_split`'s dict plus the protocol.
    """
    hp = context.hparams
    num_frames = hp.video_num_input_frames + hp.video_num_target_frames
    scorer = Scorer(context.model, context.num_context, batch_size, jit_compile)
    context.log(f"bpp: scoring {num_frames - context.num_context} target frame(s) per "
                f"clip of the {context.split} split, {num_draws} noise draw(s)")
    result = score_split(scorer, context.clips(num_frames, batch_size, max_clips),
                         seed=seed, num_draws=num_draws, log=context.log)
    result = {"experiment": NAME, **context.provenance(),
              "context_frames": context.num_context,
              "target_frames": num_frames - context.num_context, "seed": seed, **result}
    if results_dir:
        result["files"] = [report.write_json(results_dir, NAME, result)]
    return result


def format_result(result):
    """The printed table: one row per target index, then the mean and its errors."""
    rows = [[i + 1, v] for i, v in enumerate(result["bpp_per_frame"])]
    lines = [report.format_table(["target", "bpp"], rows),
             f"mean bpp {result['bpp']:.4f} over {result['clips']} clips "
             f"({len(result['draws'])} noise draw(s)"
             + (f", standard error over draws {result['standard_error']:.2g}"
                if result["standard_error"] is not None else "")
             + (f", over clips {result['clip_standard_error']:.2g}"
                if result["clip_standard_error"] is not None else "") + ")"]
    return "\n".join(lines)
