"""3-D (time x space) convolution blocks of T2T's VideoFlow prior network.

The 3-D counterparts of `conv.py` (T2T `glow_ops.actnorm_3d`, `glow_ops.conv` with
`time_pad`, and `glow_ops.conv_stack`, 3-D case; docs/t2t.md, Conv helper),
used by the `conv3d_net` temporal prior (`prior/temporal_network.py`):

  * `time_pad`: causal padding in time (`kt - 1` zero frames on the LEFT only),
    "same" padding in space (`(eff - 1) / 2` per side, `eff = k + (k - 1)(d - 1)`
    for spatial dilation `d`) and a padding-indicator channel PREPENDED as channel
    0 (1 at every padded position, whole padded time frames included). The conv
    that follows is VALID, so the output keeps `[T, H, W]`, and output time `t`
    sees only inputs at times `<= t`.
  * `ActNorm3D`: one actnorm per time index (`2 * C * T` parameters, stacked in two
    variables).
  * `ConvActNorm3D`, `ZeroConv3D`: T2T's `conv` on 5-D inputs with and without
    actnorm.
  * `ConvStack3D`: T2T's `conv_stack` on 5-D inputs.

Conventions (T2T's, kept so T2T checkpoints map one-to-one):
  * Kernels are `[kt, kh, kw, (1 pad channel FIRST +) C_in, C_out]`. Time is never
    dilated: dilations are `[1, 1, d, d, 1]`.
  * The default kernel is `[2, 3, 3]`, or `[1, 3, 3]` when the input has a single
    time step; it is chosen in `build` from the static number of time steps.
  * A `[1, 1, 1]` kernel gets no padding and no indicator channel.
  * Every layer accepts `init=True` on call for data-dependent actnorm init, and
    has `t2t_variables()` mapping T2T names (relative to its own scope) to variables.
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv import KERNEL_STDDEV, LOGSCALE_FACTOR, actnorm_statistics
from t2t_videoflow.layers.coupling_network import ACTIVATIONS, ConvStack
from t2t_videoflow.layers.keras_tracking import deferrable_initializer
from t2t_videoflow.layers.stacked_slice import StackedSlice
from t2t_videoflow.layers.variable_binding import read



def default_kernel_size(num_steps):
    """T2T's default 3-D kernel: `[1, 3, 3]` for a single time step, else `[2, 3, 3]`."""
    return (1, 3, 3) if int(num_steps) == 1 else (2, 3, 3)


def _triple(kernel_size):
    if isinstance(kernel_size, int):
        return (kernel_size,) * 3
    kt, kh, kw = kernel_size
    return (int(kt), int(kh), int(kw))


def _check_kernel(kernel_size):
    _, kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0 or min(kernel_size) < 1:
        raise ValueError(
            f"spatial kernel sizes must be odd and positive, got {kernel_size}")


def time_pad(x, kernel_size, dilation=1):
    """Causal time padding + spatial padding + indicator channel (T2T `time_pad`).

    Args:
      x: `[B, T, H, W, C]`.
      kernel_size: `(kt, kh, kw)`, `kh` and `kw` odd.
      dilation: spatial dilation factor `d` (time is never dilated).

    Returns:
      `[B, T + kt - 1, H + 2 ph, W + 2 pw, C + 1]` with `ph = (eff_h - 1) / 2`,
      `eff_h = kh + (kh - 1)(d - 1)` (same for w); channel 0 is 1 on every padded
      position and 0 elsewhere. A `(1, 1, 1)` kernel returns `x` unchanged.
    """
    kt, kh, kw = _triple(kernel_size)
    if (kt, kh, kw) == (1, 1, 1):
        return x
    eff_h = kh + (kh - 1) * (dilation - 1)
    eff_w = kw + (kw - 1) * (dilation - 1)
    ph, pw = (eff_h - 1) // 2, (eff_w - 1) // 2
    paddings = [[0, 0], [kt - 1, 0], [ph, ph], [pw, pw], [0, 0]]
    x_padded = tf.pad(x, paddings)
    indicator = tf.pad(tf.zeros_like(x[..., :1]), paddings, constant_values=1.0)
    return tf.concat([indicator, x_padded], axis=-1)


def _conv3d(x, kernel, kernel_size, dilation):
    """`conv3d_valid(time_pad(x), kernel)` in `x`'s dtype (the kernel is cast to it)."""
    x = time_pad(x, kernel_size, dilation)
    return tf.nn.conv3d(x, tf.cast(kernel, x.dtype), strides=[1, 1, 1, 1, 1],
                        padding="VALID",
                        dilations=[1, 1, dilation, dilation, 1])


def _static_num_steps(input_shape, layer_name):
    if len(input_shape) != 5:
        raise ValueError(
            f"{layer_name} expects a 5-D input [B, T, H, W, C], got shape {input_shape}")
    if input_shape[1] is None:
        raise ValueError(
            f"{layer_name} needs the number of time steps at build time; got shape "
            f"{input_shape}")
    return int(input_shape[1])


class ActNorm3D(keras.layers.Layer):
    """Per-time-step actnorm (T2T `actnorm_3d`): `y[:, t] = (x[:, t] + b_t) * exp(3 s_t)`.

    Input and output: `[B, T, H, W, C]`; `T` must be static. Each time index `t` has
    its own parameters `b_t`, `s_t` (`2 * C * T` in total), stored stacked as two
    variables `bias` and `logs` of shape `[1, T, 1, 1, C]` (T2T keeps T pairs of
    `[1, 1, 1, C]` variables; `t2t_variables()` names each entry as T2T does, through
    `StackedSlice`). One variable per stack instead of one per time step: the paper
    model's prior had 720 of these, a third of all its variables, and every variable
    costs optimizer slots, checkpoint entries and graph plumbing at start-up (README,
    start-up).

    With `init=True` the parameters of step `t` are first set from the statistics of
    `x[:, t]` over batch and space, unless the layer was already initialised: as for
    the 2-D `ActNorm`, a non-trainable `initialized` flag is saved with the weights, so
    data-dependent init happens once and never after a restore or a T2T import. No
    log-det: this lives inside a non-invertible network.
    """

    def __init__(self, logscale_factor=LOGSCALE_FACTOR, **kwargs):
        kwargs.setdefault("autocast", False)  # compute in the input's dtype
        super().__init__(**kwargs)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        self.num_steps = _static_num_steps(input_shape, "ActNorm3D")
        shape = (1, self.num_steps, 1, 1, int(input_shape[-1]))
        self.bias = self.add_weight(name="bias", shape=shape, initializer="zeros")
        self.logs = self.add_weight(name="logs", shape=shape, initializer="zeros")
        self.initialized = self.add_weight(
            name="initialized", shape=(), dtype="bool", initializer="zeros",
            trainable=False)

    def _initialize(self, x):
        # Reduced over batch and space, kept as size 1: [1, T, 1, 1, C], the stacks' shape.
        bias, logs = actnorm_statistics(x, [0, 2, 3], self.logscale_factor)
        self.bias.assign(bias)
        self.logs.assign(logs)
        self.initialized.assign(True)
        return tf.constant(True)

    def call(self, x, init=False):
        if x.shape[1] != self.num_steps:
            raise ValueError(
                f"ActNorm3D was built for {self.num_steps} time steps, got {x.shape[1]}")
        if init:
            tf.cond(self.initialized.value, lambda: tf.constant(False),
                    lambda: self._initialize(x))
        # [1, T, 1, 1, C] broadcasts over [B, T, H, W, C].
        return ((x + tf.cast(read(self.bias), x.dtype))
                * tf.cast(tf.exp(read(self.logs) * self.logscale_factor), x.dtype))

    def t2t_variables(self):
        """T2T names (relative to the `actnorm` scope) -> entries of the stacks."""
        out = {}
        for t in range(self.num_steps):
            out[f"actnorm_{t}/actnorm_{t}_center/b"] = StackedSlice(self.bias, t, axis=1)
            out[f"actnorm_{t}/actnorm_{t}_scale/logs"] = StackedSlice(self.logs, t, axis=1)
        return out

    def get_config(self):
        return {**super().get_config(), "logscale_factor": self.logscale_factor}


class _Conv3DBase(keras.layers.Layer):
    """Shared kernel-size resolution of the 3-D convs."""

    def __init__(self, filters, kernel_size=None, dilation=1, **kwargs):
        kwargs.setdefault("autocast", False)  # compute in the input's dtype
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = None if kernel_size is None else _triple(kernel_size)
        if self.kernel_size is not None:
            _check_kernel(self.kernel_size)
        self.dilation = int(dilation)
        if self.dilation < 1:
            raise ValueError(f"dilation must be >= 1, got {dilation}")

    def _resolve(self, input_shape):
        """Returns (kernel_size, kernel shape) for this input shape."""
        num_steps = _static_num_steps(input_shape, type(self).__name__)
        kernel_size = self.kernel_size or default_kernel_size(num_steps)
        self._kernel_size = kernel_size
        c_in = int(input_shape[-1]) + (0 if kernel_size == (1, 1, 1) else 1)
        return (*kernel_size, c_in, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "dilation": self.dilation}


class ConvActNorm3D(_Conv3DBase):
    """T2T `conv(..., apply_actnorm=True)` on `[B, T, H, W, C]`: padded conv3d, actnorm.

    `y = ActNorm3D(conv3d_valid(time_pad(x), W, dilations=[1, 1, d, d, 1]))`.

    Input `[B, T, H, W, C_in]` -> output `[B, T, H, W, filters]`. Kernel
    `W [kt, kh, kw, C_in (+1 pad channel first), filters] ~ N(0, 0.05^2)`, no bias.

    Args:
      filters: output channels.
      kernel_size: `(kt, kh, kw)`; None picks T2T's default from the input's `T`.
      dilation: spatial dilation factor.
    """

    def __init__(self, filters, kernel_size=None, dilation=1, **kwargs):
        super().__init__(filters, kernel_size, dilation, **kwargs)
        self.actnorm = ActNorm3D(name="actnorm")

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="W", shape=self._resolve(input_shape),
            initializer=deferrable_initializer(
                keras.initializers.RandomNormal(stddev=KERNEL_STDDEV)))
        self.actnorm.build((*input_shape[:-1], self.filters))

    def reseed(self, seed):
        """Redraws the initial kernel ~ N(0, 0.05^2) from the integer `seed`."""
        init = keras.initializers.RandomNormal(stddev=KERNEL_STDDEV, seed=int(seed))
        self.kernel.assign(init(self.kernel.shape))

    def call(self, x, init=False):
        y = _conv3d(x, read(self.kernel), self._kernel_size, self.dilation)
        return self.actnorm(y, init=init)

    def t2t_variables(self):
        out = {"W": self.kernel}
        out.update({"actnorm/" + k: v for k, v in self.actnorm.t2t_variables().items()})
        return out


class ZeroConv3D(_Conv3DBase):
    """T2T `conv(..., conv_init="zeros", apply_actnorm=False)` on 5-D inputs.

    `y = (conv3d_valid(time_pad(x), W, dilations=[1, 1, d, d, 1]) + b) * exp(3 logs)`,
    with `W [kt, kh, kw, C_in(+1), filters]`, `b [1, 1, 1, filters]` and
    `logs [1, filters]` all zero-initialised: the output is exactly 0 at init.

    Input `[B, T, H, W, C_in]` -> output `[B, T, H, W, filters]`.
    """

    def __init__(self, filters, kernel_size=None, dilation=1,
                 logscale_factor=LOGSCALE_FACTOR, **kwargs):
        super().__init__(filters, kernel_size, dilation, **kwargs)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="W", shape=self._resolve(input_shape), initializer="zeros")
        self.bias = self.add_weight(
            name="b", shape=(1, 1, 1, self.filters), initializer="zeros")
        self.logs = self.add_weight(
            name="logs", shape=(1, self.filters), initializer="zeros")

    def call(self, x, init=False):
        del init  # No actnorm inside; accepted so networks can pass it uniformly.
        y = _conv3d(x, read(self.kernel), self._kernel_size, self.dilation)
        y = y + tf.cast(tf.reshape(read(self.bias), [-1]), y.dtype)
        return y * tf.cast(tf.exp(tf.reshape(read(self.logs), [-1])
                                  * self.logscale_factor), y.dtype)

    def t2t_variables(self):
        return {"W": self.kernel, "b": self.bias, "logs": self.logs}

    def get_config(self):
        return {**super().get_config(), "logscale_factor": self.logscale_factor}


class ConvStack3D(ConvStack):
    """T2T `conv_stack` on `[B, T, H, W, C]` (`glow_ops.conv_stack`, 3-D case).

        h = relu(ActNorm3D(conv_[kt,3,3], dilation d (x)))             "conv_block/1_1"
        h = dropout(h)
        relu: h = relu(ActNorm3D(conv_[1,1,1](h)))                       "conv_block/1_2"
        gatu: h = tanh(ActNorm3D(conv_a(h))) * sigmoid(ActNorm3D(conv_g(h)))
                                                          "conv_block/1_tanh", "1_sigm"
        h = dropout(h)
        out = ZeroConv3D_[kt,3,3], dilation d (h)                         "zeros"

    `kt` is 2, or 1 when `T == 1`. The first layer is always ReLU; `activation` selects
    the second. Dropout is inverted dropout at `dropout_rate` (`latent_dropout`),
    active only with `training=True` and never during data-dependent init.

    Input `[B, T, H, W, C_in]` -> output `[B, T, H, W, out_channels]`, exactly 0 at
    init. Output time `t` depends only on inputs at times `<= t`.

    Args:
      mid_channels: hidden width.
      out_channels: output channels.
      activation: "relu" or "gatu".
      dropout_rate: in [0, 1).
      dilation: spatial dilation of the first and the last conv.
      compute_dtype: "float32" or "bfloat16" (see `layers/coupling_network.py`).
    """

    def __init__(self, mid_channels, out_channels, activation="relu", dropout_rate=0.0,
                 dilation=1, compute_dtype="float32", **kwargs):
        super().__init__(mid_channels, out_channels, activation, dropout_rate,
                         compute_dtype, **kwargs)
        self.dilation = int(dilation)
        self._make_layers()

    def _conv_in(self, name):
        return ConvActNorm3D(self.mid_channels, dilation=self.dilation, name=name)

    def _conv_1x1(self, name):
        return ConvActNorm3D(self.mid_channels, (1, 1, 1), name=name)

    def _conv_out(self, name):
        return ZeroConv3D(self.out_channels, dilation=self.dilation, name=name)

    def get_config(self):
        return {**super().get_config(), "dilation": self.dilation}
