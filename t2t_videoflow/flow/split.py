"""Split between levels and the marginal level prior (T2T `split`, `single_conv_dist`;
REFERENCE 2.9).

    split:  x [B, h, w, C] -> x1 = x[..., :C/2] (kept, goes to the next level),
                              z  = x[..., C/2:] (factored out: the level latent)
    merge:  concat([x1, z], -1)

The split is a plain partition (log-det 0). What the multi-scale objective adds at a
split is `ln p(z | x1, ...)` under a prior supplied from outside the flow:
`ConvLevelPrior` here is T2T's marginal ("unconditional") level prior, and the video
model's conditional priors use its mean as an input feature (REFERENCE 3.3).
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv import ZeroConv2D


def split_channels(x):
    """`[..., C]` -> `(x[..., :C/2], x[..., C/2:])`."""
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def merge_channels(x1, z):
    """Inverse of `split_channels`."""
    return tf.concat([x1, z], axis=-1)


def interleaved_gaussian(h):
    """Prior-head output `[..., 2c]` -> `(loc, scale)`: even channels are the mean,
    odd channels the log-scale (every live T2T prior head; REFERENCE 10.2)."""
    return h[..., 0::2], tf.exp(h[..., 1::2])


class ConvLevelPrior(keras.layers.Layer):
    """Marginal level prior `p(z | x1) = N(mu, sigma)`, `(mu, ln sigma)` interleaved
    from a zero-initialised 3x3 edge-bias conv of `x1` (so N(0, 1) at init).

    Input `x1 [B, h, w, c]` -> `(loc, scale)`, each `[B, h, w, c_z]`.

    Args:
      latent_channels: c_z, channels of the factored-out latent (= c for a split).
    """

    def __init__(self, latent_channels, **kwargs):
        super().__init__(**kwargs)
        self.latent_channels = int(latent_channels)
        self.conv = ZeroConv2D(2 * self.latent_channels, 3, name="conv2d")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x1):
        return interleaved_gaussian(self.conv(x1))

    def t2t_variables(self):
        """Names relative to T2T's `split_{l}/prior_on_z2/`."""
        return {f"level_prior/conv2d/{k}": v for k, v in self.conv.t2t_variables().items()}

    def get_config(self):
        return {**super().get_config(), "latent_channels": self.latent_channels}
