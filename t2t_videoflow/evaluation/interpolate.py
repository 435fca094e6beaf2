r"""`interpolate`: interpolation in latent space between two frames of a clip (paper 5.7;
T2T's `nfg_interpolate`; docs/t2t.md, Interpolation).

Endpoints: the clip's first input frame `x_a` (frame 1) and its last target frame
`x_b` (frame `video_num_input_frames + video_num_target_frames`, BAIR 13, or frame
--num_frames). Each is encoded ALONE (no conditioning: the marginal level priors)
after `v/255 - 0.5` plus dequantisation noise `u` (`noise.clip_noise` of the pair,
seeded per clip as in `bpp`):

    flow.encode(x + u) -> z^0 .. z^{L-2}, z^top and the kept halves x1^l
    eps^l = (z^l - mu0(x1^l)) / sigma0(x1^l),   (mu0, sigma0) = level_priors[l](x1^l)

giving the list `[eps^0, .., eps^{L-2}, z^top]` (levels standardised, top raw). For
alpha in linspace(0, 1, --num_interp) the chosen entries are `a + alpha (b - a)`, the
others stay at the first frame's (`--interp_levels`: `all` every entry, `top` the top
only, `bottom` level 0's eps only). Decoding runs the flow in reverse from the top,
each level re-standardised against the prior of the DECODED kept half,

    z^l = mu0(x1^l) + sigma0(x1^l) eps^l,

then T2T's `postprocess` (clip, x 256, truncate) to uint8. At alpha = 0 the first
frame comes back, and at alpha = 1 with `all` the last, up to quantisation: the
decoded value `v/255 - 0.5 + u` maps to `floor(v 256/255 + 256 u)`, v or v + 1 (plus
float round-off at bin edges).

T2T's `channel_interp=ranked` (only the `rank_interp`-th channel with the largest
squared difference, summed over space, is interpolated; the rest stay at `a`) is
`run(..., rank=k)` (`--interp_rank=k`). T2T ranks over its batch of one clip; here
each clip is ranked on its own.

Written per clip (results_dir/interpolate/): `clipNNN.gif` (the --num_interp frames)
and `clipNNN.png` (first endpoint | interpolated frames | last endpoint); the JSON
holds per-alpha pixel statistics over clips (`frame_stats`), the mean absolute
distance of each alpha's frame to both endpoints, and the endpoint reconstruction
errors.
"""

import os
import time

import numpy as np
import tensorflow as tf

from t2t_videoflow.data import media
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import frame_stats, report
from t2t_videoflow.model.noise import clip_noise
from t2t_videoflow.model.videoflow import postprocess

NAME = "interpolate"
OPTIONS = {"seed": "random_seed", "num_interp": "num_interp", "levels": "interp_levels",
           "num_frames": "num_frames", "batch_size": "batch_size",
           "max_clips": "max_clips", "rank": "interp_rank"}
LEVEL_CHOICES = ("all", "top", "bottom")


def encode_frame(model, x):
    """The list `[eps^0, .., eps^{L-2}, z^top]` of dequantised float frames
    `x [b, H, W, 3]` (values `v/255 - 0.5 + u`), encoded with the marginal level
    priors (see the module docstring)."""
    enc = model.flow.encode(x)
    entries = []
    for level, (z, x1) in enumerate(zip(enc.latents, enc.conditions)):
        mu0, sigma0 = model.level_priors[level](x1)
        entries.append((z - mu0) / sigma0)
    return entries + [enc.top]


def decode_entries(model, entries):
    """Inverse of `encode_frame`: `[eps^0, .., z^top]` (batch `[n, ...]`) -> float
    frames `[n, H, W, 3]` before `postprocess`."""
    eps, top = entries[:-1], entries[-1]

    def latent(level, x1):
        mu0, sigma0 = model.level_priors[level](x1)
        return mu0 + sigma0 * eps[level]

    x, _, _ = model.flow.decode(top, sample_latent=latent)
    return x


def interpolated_indices(levels, num_entries):
    """Indices of the entries `[eps^0, .., eps^{L-2}, z^top]` (`num_entries` = L) that
    `levels` interpolates."""
    if levels not in LEVEL_CHOICES:
        raise UsageError(f"--interp_levels must be one of {', '.join(LEVEL_CHOICES)}; "
                         f"got {levels!r}.")
    if levels == "all":
        return set(range(num_entries))
    if levels == "top":
        return {num_entries - 1}
    if num_entries < 2:
        raise UsageError("--interp_levels=bottom needs a model with at least 2 levels "
                         "(a one-level flow has only the top latent).")
    return {0}


def interpolate_entry(a, b, alphas, rank=None):
    """`a + alpha (b - a)` for every alpha: `[A, *a.shape]` from `a, b [n, h, w, c]`.

    With `rank=k` (T2T's `ranked`) only one channel per example moves: the k-th
    (1-based) largest of `sum_{h, w} (b - a)^2`; the others stay at `a`.
    """
    alphas = tf.reshape(tf.cast(alphas, a.dtype), [-1, 1, 1, 1, 1])
    step = b - a
    if rank is not None:
        channels = a.shape[-1]
        if not 1 <= rank <= channels:
            raise UsageError(f"rank must be in 1..{channels} (the latent's channels); "
                             f"got {rank}.")
        spread = tf.reduce_sum(tf.square(step), axis=[1, 2])               # [n, c]
        channel = tf.argsort(spread, axis=-1, direction="DESCENDING")[:, rank - 1]
        step = step * tf.one_hot(channel, channels, dtype=a.dtype)[:, None, None, :]
    return a[None] + alphas * step[None]


def interpolate_frames(model, first, last, num_interp, levels="all", noise=None,
                       rank=None):
    """uint8 `[b, num_interp, H, W, 3]` interpolated between uint8 frames `first` and
    `last` (`[b, H, W, 3]`); `noise [b, 2, H, W, 3]` in [0, 1/256) dequantises them
    (zeros if None)."""
    first, last = tf.convert_to_tensor(first), tf.convert_to_tensor(last)
    pair = tf.stack([first, last], axis=1)                                 # [b, 2, ...]
    x = model.dequantize(pair, noise=tf.zeros(pair.shape) if noise is None else noise)
    a, b = encode_frame(model, x[:, 0]), encode_frame(model, x[:, 1])
    chosen = interpolated_indices(levels, len(a))
    alphas = tf.linspace(0.0, 1.0, num_interp)
    entries = []
    for i, (za, zb) in enumerate(zip(a, b)):
        if i in chosen:
            z = interpolate_entry(za, zb, alphas, rank)
        else:
            z = tf.tile(za[None], [num_interp] + [1] * za.shape.rank)
        entries.append(tf.reshape(z, [-1, *z.shape[2:]]))                  # [A b, ...]
    frames = postprocess(decode_entries(model, entries), model.n_bits)
    frames = tf.reshape(frames, [num_interp, -1, *model.frame_shape])
    return tf.transpose(frames, [1, 0, 2, 3, 4]).numpy()


def endpoint_strip(first, frames, last):
    """One uint8 image: first | frames ... | last, `media.GROUP_GAP` white pixels
    between the groups."""
    h = first.shape[0]
    gap = np.full((h, media.GROUP_GAP, 3), media.GAP_VALUE, np.uint8)
    return np.concatenate([first, gap, *frames, gap, last], axis=1)


def run(context, seed=0, num_interp=11, levels="all", num_frames=None, batch_size=8,
        max_clips=None, rank=None, results_dir=None):
    """The `interpolate` experiment on a `RunContext`; writes `interpolate.json` and the
    per-clip GIFs and PNGs (results_dir/interpolate/).

    Args:
      num_interp: interpolation coefficients, >= 2 (T2T 11).
      levels: "all" | "top" | "bottom".
      num_frames: the last endpoint is frame `num_frames` (1-based); default the set's
        `video_num_input_frames + video_num_target_frames`.
      max_clips: None for every clip of the split.
      rank: None, or k for T2T's `ranked` channel option.
    """
    if num_interp < 2:
        raise UsageError(f"--num_interp must be >= 2; got {num_interp}.")
    interpolated_indices(levels, context.model.flow.n_levels)   # check before reading
    hp = context.hparams
    if num_frames is None:
        num_frames = hp.video_num_input_frames + hp.video_num_target_frames
    if num_frames < 2:
        raise UsageError(f"--num_frames={num_frames}: interpolation needs two different "
                         "endpoint frames (>= 2).")
    began = time.time()
    out_dir = os.path.join(results_dir, NAME) if results_dir else None
    context.log(f"{NAME}: frame 1 -> frame {num_frames} of each {context.split} clip, "
                f"{num_interp} coefficients, levels {levels}"
                + (f", ranked channel {rank}" if rank else ""))
    firsts, lasts, decoded, files, count = [], [], [], [], 0
    for video in context.clips(num_frames, batch_size, max_clips):
        pair = video[:, [0, -1]]
        noise = clip_noise(pair.shape, [seed, 0], np.arange(count, count + len(video)))
        frames = interpolate_frames(context.model, pair[:, 0], pair[:, 1], num_interp,
                                    levels, noise, rank)
        for j, clip in enumerate(frames):
            if out_dir:
                prefix = os.path.join(out_dir, f"clip{count + j:03d}")
                files.append(media.write_gif(f"{prefix}.gif", clip))
                files.append(media.write_png(f"{prefix}.png",
                                             endpoint_strip(pair[j, 0], clip, pair[j, 1])))
        firsts.append(pair[:, 0])
        lasts.append(pair[:, 1])
        decoded.append(frames)
        count += len(video)
    if not decoded:
        raise UsageError("No clips to interpolate.")
    first, last, decoded = (np.concatenate(v) for v in (firsts, lasts, decoded))
    distance = lambda end: np.abs(decoded.astype(np.float64)
                                  - end[:, None].astype(np.float64)).mean(axis=(0, 2, 3, 4))
    error = lambda k, end: int(np.abs(decoded[:, k].astype(int) - end.astype(int)).max())
    result = {"experiment": NAME, **context.provenance(),
              "clips": int(len(decoded)), "seed": seed,
              "levels": levels, "rank": rank, "endpoints": [1, int(num_frames)],
              "alphas": np.linspace(0.0, 1.0, num_interp).tolist(),
              "statistics": frame_stats.frame_statistics(decoded, previous=first),
              "distance_to_first": distance(first).tolist(),
              "distance_to_last": distance(last).tolist(),
              "first_reconstruction_max_abs": error(0, first),
              "last_reconstruction_max_abs": error(-1, last),
              "seconds": time.time() - began}
    if results_dir:
        context.log(f"{NAME}: wrote {len(files)} GIF / PNG files to {out_dir}")
        result["files"] = [report.write_json(results_dir, NAME, result), out_dir]
    return result


def format_result(result):
    """The printed table: per alpha the distances to the endpoints and the pixel
    statistics; then the endpoint reconstruction errors."""
    s = result["statistics"]
    rows = [[f"{a:.2f}", d0, d1, float(np.mean(m)), sd, nb]
            for a, d0, d1, m, sd, nb in zip(result["alphas"], result["distance_to_first"],
                                            result["distance_to_last"], s["mean"], s["std"],
                                            s["near_black"])]
    return "\n".join([
        report.format_table(["alpha", "|x-first|", "|x-last|", "mean", "std",
                             "near-black"], rows),
        f"frame {result['endpoints'][0]} -> frame {result['endpoints'][1]} of "
        f"{result['clips']} clip(s), levels {result['levels']}; largest pixel error at "
        f"alpha 0: {result['first_reconstruction_max_abs']}, at alpha 1: "
        f"{result['last_reconstruction_max_abs']} (of 255)"])
