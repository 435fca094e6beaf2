"""Split between levels and the marginal level prior (T2T `glow_ops.split`,
`glow_ops.single_conv_dist`).

    split:  x [B, h, w, C] -> x1 = x[..., :C/2] (kept, goes to the next level),
                              z  = x[..., C/2:] (factored out: the level latent)
    merge:  concat([x1, z], -1)

The split is a plain partition (log-det 0). What the multi-scale objective adds at a
split is `ln p(z | x1, ...)` under a prior supplied from outside the flow (the
model's marginal `level_prior` head on `x1`, or the video model's conditional priors,
which use that head's mean as an input feature; T2T `glow_ops.compute_prior`,
docs/t2t.md, Split and the level prior).
"""

import tensorflow as tf


def split_channels(x):
    """`[..., C]` -> `(x[..., :C/2], x[..., C/2:])`."""
    half = x.shape[-1] // 2
    return tf.split(x, [half, x.shape[-1] - half], axis=-1)


def merge_channels(x1, z):
    """Inverse of `split_channels`."""
    return tf.concat([x1, z], axis=-1)
