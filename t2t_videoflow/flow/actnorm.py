"""Activation normalisation (Kingma & Dhariwal 2018), T2T's variant (`glow_ops.actnorm`).

    forward:  y = (x + b) * exp(3 s)           (bias first, then scale)
    inverse:  x = y * exp(-3 s) - b
    log-det:  H * W * sum_c 3 s_c               (the same for every example)

`b` and the stored log-scale `s` have shape `[1, 1, 1, C]`; the effective log-scale is
`logscale_factor * s` with factor 3, as T2T stores it (so T2T checkpoints load as is).

Data-dependent init (`data_init(x)`, once): `b = -mean(x)`, `s = ln(1/(std + 1e-6))/3`
over batch and spatial axes, so the output on that batch has per-channel mean 0 and
std 1. A non-trainable `initialized` flag is part of the checkpoint: after it is set
(or restored) `data_init` only applies the layer and never re-initialises.
"""

import tensorflow as tf

from t2t_videoflow.flow.base import FlowBijector, batch_log_det, check_frame_tensor
from t2t_videoflow.layers.conv import LOGSCALE_FACTOR, actnorm_statistics
from t2t_videoflow.layers.variable_binding import read


class Actnorm(FlowBijector):
    """Per-channel affine bijector with data-dependent initialisation.

    Events `[H, W, C]`, any leading batch dimensions; the Jacobian is constant
    (`is_constant_jacobian`), so `tfd.TransformedDistribution` over it has a mean.
    Owns variables: no TFP cache, equal only to itself (`base.StatefulBijector`).

    Args:
      channels: number of channels C of the `[*batch, H, W, C]` input.
      logscale_factor: effective log-scale = factor * stored value (T2T: 3).
      validate_args: TFP's flag.
      name: bijector name.
    """

    def __init__(self, channels, logscale_factor=LOGSCALE_FACTOR, validate_args=False,
                 name="actnorm"):
        parameters = dict(locals())
        super().__init__(name=name, parameters=parameters, validate_args=validate_args,
                         is_constant_jacobian=True)
        self.channels = int(channels)
        self.logscale_factor = float(logscale_factor)
        with tf.name_scope(self.name):
            self.bias = tf.Variable(tf.zeros([1, 1, 1, self.channels]), name="bias")
            self.logs = tf.Variable(tf.zeros([1, 1, 1, self.channels]), name="logs")
            self.initialized = tf.Variable(False, trainable=False, name="initialized")

    def _log_det(self, x):
        hw = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], x.dtype)
        log_scale = tf.cast(read(self.logs), x.dtype) * self.logscale_factor
        return batch_log_det(hw * tf.reduce_sum(log_scale), x)

    def _forward_frames(self, x, training):
        check_frame_tensor(x, self.channels)
        bias = tf.cast(read(self.bias), x.dtype)
        scale = tf.exp(tf.cast(read(self.logs), x.dtype) * self.logscale_factor)
        return (x + bias) * scale, self._log_det(x)

    def _inverse_frames(self, y):
        check_frame_tensor(y, self.channels)
        bias = tf.cast(read(self.bias), y.dtype)
        inv_scale = tf.exp(-tf.cast(read(self.logs), y.dtype) * self.logscale_factor)
        return y * inv_scale - bias, -self._log_det(y)

    def _data_init_frames(self, x):
        """Initialises from `x` unless already initialised; returns forward(x)."""
        check_frame_tensor(x, self.channels)

        def initialize():
            bias, logs = actnorm_statistics(
                tf.cast(x, tf.float32), [0, 1, 2], self.logscale_factor)
            self.bias.assign(bias)
            self.logs.assign(logs)
            self.initialized.assign(True)
            return tf.constant(True)

        tf.cond(self.initialized, lambda: tf.constant(False), initialize)
        return self._forward_frames(x, False)[0]

    def t2t_variables(self):
        """T2T names (relative to the flow step) -> variables."""
        return {"actnorm/actnorm_center/b": self.bias,
                "actnorm/actnorm_scale/logs": self.logs}
