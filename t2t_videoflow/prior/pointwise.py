"""The `pointwise` latent prior (T2T `glow_ops.scale_gaussian_prior`,
`glow_ops.merge_level_and_latent_dist`).

    ScaleGaussianPrior:   p(z_t | z_{t-1}) = N(m * z_{t-1}, exp(3 rho))
    MergeLevelAndLatent:  mean = mu0 + latent_mean,
                          std  = sigma0 (prev_level) | latent_std (prev_step)
                                 | exp(3 * 0) = 1 (normal)

`m` (ones) and `rho` (zeros) have the FULL latent shape, batch dimension included,
as in T2T: the batch size must be static and the same for every call (T2T requires
`init_batch_size == batch_size` for this encoder).
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv import LOGSCALE_FACTOR

LEVEL_SCALES = ("prev_level", "prev_step", "normal")


def _full_shape(shape, layer_name):
    if any(d is None for d in shape):
        raise ValueError(
            f"{layer_name} parameters have the full latent shape (batch included); "
            f"every dimension must be static, got {shape}")
    return tuple(int(d) for d in shape)


class ScaleGaussianPrior(keras.layers.Layer):
    """`z [B, H, W, C]` -> `(loc, scale) = (m * z, exp(3 * rho))`, both `[B, H, W, C]`.

    At init `loc = z`, `scale = 1`.

    Args:
      learn_scale: whether `rho` is trainable (True for level priors, T2T's
        `learn_top_scale` for the top prior).
      logscale_factor: 3.

    T2T variables: `latent_multiplier` (m), `log_scale_latent` (rho).
    """

    def __init__(self, learn_scale=True, logscale_factor=LOGSCALE_FACTOR, **kwargs):
        super().__init__(**kwargs)
        self.learn_scale = bool(learn_scale)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        shape = _full_shape(input_shape, "ScaleGaussianPrior")
        self.multiplier = self.add_weight(
            name="latent_multiplier", shape=shape, initializer="ones")
        self.log_scale = self.add_weight(
            name="log_scale_latent", shape=shape, initializer="zeros",
            trainable=self.learn_scale)

    def call(self, z):
        return self.multiplier * z, tf.exp(self.log_scale * self.logscale_factor)

    def t2t_variables(self):
        return {"latent_multiplier": self.multiplier, "log_scale_latent": self.log_scale}

    def get_config(self):
        return {**super().get_config(), "learn_scale": self.learn_scale,
                "logscale_factor": self.logscale_factor}


class MergeLevelAndLatent(keras.layers.Layer):
    """Merges the marginal level prior with the pointwise latent prior.

    `call(level_loc, level_scale, latent_loc, latent_scale)` ->
    `(level_loc + latent_loc, std)` with `std` chosen by `level_scale`:
    "prev_level" -> `level_scale`, "prev_step" -> `latent_scale`, "normal" ->
    `exp(3 * s)` for a non-trainable zero variable `s` of the full latent shape
    (T2T name `merge_std`), i.e. 1.

    Raises:
      ValueError: unknown `level_scale` (the message lists the allowed names).
    """

    def __init__(self, level_scale="prev_level", logscale_factor=LOGSCALE_FACTOR, **kwargs):
        super().__init__(**kwargs)
        if level_scale not in LEVEL_SCALES:
            raise ValueError(
                f"Unknown level_scale {level_scale!r}; expected one of {LEVEL_SCALES}.")
        self.level_scale = level_scale
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        """`input_shape`: the shape of `level_loc` (the first call argument)."""
        if self.level_scale == "normal":
            self.merge_std = self.add_weight(
                name="merge_std", shape=_full_shape(input_shape, "MergeLevelAndLatent"),
                initializer="zeros", trainable=False)

    def call(self, level_loc, level_scale, latent_loc, latent_scale):
        loc = level_loc + latent_loc
        if self.level_scale == "prev_level":
            scale = level_scale
        elif self.level_scale == "prev_step":
            scale = latent_scale
        else:
            scale = tf.exp(self.merge_std * self.logscale_factor) * tf.ones_like(loc)
        return loc, scale

    def t2t_variables(self):
        return {"merge_std": self.merge_std} if self.level_scale == "normal" else {}

    def get_config(self):
        return {**super().get_config(), "level_scale": self.level_scale,
                "logscale_factor": self.logscale_factor}
