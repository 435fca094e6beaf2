"""Affine and additive coupling layers (Dinh et al.; T2T's `glow_ops.affine_coupling`,
`glow_ops.additive_coupling`).

Split the channels in halves, `x1 = x[..., :C/2]` (passed through, conditions the
network) and `x2 = x[..., C/2:]` (transformed); `h = NN(x1)` (`CouplingNetwork`).

Affine:
    shift = h[..., 0::2],  scale = sigmoid(h[..., 1::2] + 2)
    forward:  y2 = (x2 + shift) * scale              (shift BEFORE scale)
    inverse:  x2 = y2 / scale - shift
    log-det:  sum_{h, w, c} ln scale                  (per example)
At init `h = 0`, so the scale is sigmoid(2) = 0.8808 and the log-det is
-0.1269 per transformed element. The scale lies in (0, 1): it can only contract.

Additive:
    forward:  y2 = x2 + NN(x1);  inverse: x2 = y2 - NN(x1);  log-det 0.

Output: `concat([x1, y2], -1)`.

Events `[H, W, C]`, any leading batch dimensions (log-det `[*batch]`). The Jacobian
depends on x (not `is_constant_jacobian`; the additive log-det is 0 nonetheless).

The network is a Keras 3 layer; Keras 3 weights are not found by `tf.Module`
tracking, so the bijector holds the layer untracked and its `tf.Variable`s in a
dict (`layers/keras_tracking.py`), making them part of `trainable_variables`, of any
`tfb.Chain` or module above it, and of checkpoints, once.
"""

import tensorflow as tf

from t2t_videoflow.flow.base import FlowBijector, check_frame_tensor
from t2t_videoflow.layers.coupling_network import CouplingNetwork
from t2t_videoflow.layers.keras_tracking import keras_variables, untracked

AFFINE_SCALE_SHIFT = 2.0


class _Coupling(FlowBijector):
    """Shared plumbing: splitting, the network, variable tracking."""

    _net_scope = None  # T2T's scope name: "affine" or "additive".

    def __init__(self, channels, mid_channels, activation, dropout_rate, net_outputs,
                 name, parameters, validate_args, network_dtype="float32",
                 deinterleave_output=False):
        super().__init__(name=name, parameters=parameters, validate_args=validate_args)
        if channels % 2:
            raise ValueError(f"Coupling needs an even channel count; got {channels}.")
        self.channels = int(channels)
        net = CouplingNetwork(mid_channels, net_outputs, activation=activation,
                              dropout_rate=dropout_rate,
                              deinterleave_output=deinterleave_output,
                              compute_dtype=network_dtype, name="nn")
        net.build((None, None, None, self.channels // 2))
        self.net = untracked(net)
        self.net_variables = keras_variables({"nn": net})

    def _halves(self, x):
        return tf.split(x, 2, axis=-1)

    def _net_output(self, x1, training=False, init=False):
        """The network's output for `x1` (fed as float32), cast back to `x1`'s dtype."""
        return tf.cast(self.net(tf.cast(x1, tf.float32), training=training, init=init),
                       x1.dtype)

    def _couple(self, x1, x2, h):
        """`(concat([x1, y2]), log_det)` from the network output `h`."""
        raise NotImplementedError

    def _forward_frames(self, x, training):
        check_frame_tensor(x, self.channels)
        x1, x2 = self._halves(x)
        return self._couple(x1, x2, self._net_output(x1, training))

    def _data_init_frames(self, x):
        """Initialises the network's actnorms from `x1`; returns forward(x).

        The init call's output is the initialised network's output (each actnorm is
        set, then applied), so it gives the forward pass without running the network
        a second time (equal up to float rounding; in float32 also when the network
        computes in bfloat16, as init always does).
        """
        check_frame_tensor(x, self.channels)
        x1, x2 = self._halves(x)
        return self._couple(x1, x2, self._net_output(x1, init=True))[0]

    def t2t_variables(self):
        return {f"{self._net_scope}/nn/{k}": v for k, v in self.net.t2t_variables().items()}


class AffineCoupling(_Coupling):
    """`y2 = (x2 + shift) * sigmoid(raw + 2)` with `(shift, raw) = NN(x1)` interleaved.

    Args:
      channels: C (even) of the `[*batch, H, W, C]` input.
      mid_channels: hidden width of the network (`coupling_width`).
      activation: "relu" or "gatu" (second network layer).
      dropout_rate: `coupling_dropout`, active only with `training=True`.
      network_dtype: "float32" | "bfloat16", the network's compute dtype (see
        `layers/coupling_network.py`); the coupling's own arithmetic stays float32.
    """

    _net_scope = "affine"

    def __init__(self, channels, mid_channels, activation="relu", dropout_rate=0.0,
                 network_dtype="float32", validate_args=False, name="affine_coupling"):
        parameters = dict(locals())
        super().__init__(channels, mid_channels, activation, dropout_rate, channels,
                         name, parameters, validate_args, network_dtype,
                         deinterleave_output=True)

    @staticmethod
    def _shift_and_scale(h):
        # The network outputs T2T's interleaved channels de-interleaved:
        # [h[..., 0::2], h[..., 1::2]] (see `ZeroConv2D`).
        shift, raw_scale = tf.split(h, 2, axis=-1)
        return shift, tf.sigmoid(raw_scale + AFFINE_SCALE_SHIFT)

    def _couple(self, x1, x2, h):
        shift, scale = self._shift_and_scale(h)
        y2 = (x2 + shift) * scale
        log_det = tf.reduce_sum(tf.math.log(scale), axis=[1, 2, 3])
        return tf.concat([x1, y2], axis=-1), log_det

    def _inverse_frames(self, y):
        check_frame_tensor(y, self.channels)
        y1, y2 = self._halves(y)
        shift, scale = self._shift_and_scale(self._net_output(y1))
        x2 = y2 / scale - shift
        log_det = -tf.reduce_sum(tf.math.log(scale), axis=[1, 2, 3])
        return tf.concat([y1, x2], axis=-1), log_det


class AdditiveCoupling(_Coupling):
    """`y2 = x2 + NN(x1)`; volume preserving. Args as `AffineCoupling`."""

    _net_scope = "additive"

    def __init__(self, channels, mid_channels, activation="relu", dropout_rate=0.0,
                 network_dtype="float32", validate_args=False, name="additive_coupling"):
        parameters = dict(locals())
        super().__init__(channels, mid_channels, activation, dropout_rate, channels // 2,
                         name, parameters, validate_args, network_dtype)

    def _couple(self, x1, x2, h):
        return tf.concat([x1, x2 + h], axis=-1), tf.zeros(tf.shape(x1)[:1], x1.dtype)

    def _inverse_frames(self, y):
        check_frame_tensor(y, self.channels)
        y1, y2 = self._halves(y)
        x2 = y2 - self._net_output(y1)
        return tf.concat([y1, x2], axis=-1), tf.zeros(tf.shape(y)[:1], y.dtype)


COUPLINGS = {"affine": AffineCoupling, "additive": AdditiveCoupling}


def make_coupling(kind, channels, mid_channels, activation="relu", dropout_rate=0.0,
                  network_dtype="float32", name=None):
    """Builds a coupling by T2T's `coupling` hparam value ("affine" | "additive")."""
    if kind not in COUPLINGS:
        raise ValueError(f"Unknown coupling {kind!r}; expected one of {sorted(COUPLINGS)}.")
    kwargs = {} if name is None else {"name": name}
    return COUPLINGS[kind](channels, mid_channels, activation=activation,
                           dropout_rate=dropout_rate, network_dtype=network_dtype,
                           **kwargs)
