"""2-D convolution blocks of T2T's Glow: edge-bias padding, actnorm'd conv, zero conv.

These are the non-invertible pieces used *inside* coupling networks and prior heads
(T2T `glow_ops.actnorm`, `glow_ops.conv`, `glow_ops.add_edge_bias`). They are Keras 3
layers so the latent prior can be built from them as Keras models; the flow's coupling
bijector keeps their variables on itself (see `flow/coupling.py`) because Keras 3
weights are invisible to `tf.Module` tracking.

Conventions (T2T's, kept so T2T checkpoints map one-to-one):
  * Kernels are HWIO `[kh, kw, C_in (+1 edge channel LAST), C_out]`.
  * Actnorm stores its log-scale divided by `logscale_factor` (3): the effective
    log-scale is `3 * logs`. The zero conv's output scale is `exp(3 * logs)` too.
  * Every layer accepts `init=True` on call: actnorms then set themselves from the
    statistics of their own input (data-dependent init) before applying, so one
    call of a whole network initialises it sequentially, layer after layer.
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.keras_tracking import deferrable_initializer
from t2t_videoflow.layers.variable_binding import read

LOGSCALE_FACTOR = 3.0
# T2T's `conv` initialiser for non-zero kernels: N(0, 0.05^2).
KERNEL_STDDEV = 0.05
# Inputs up to this many channels take `edge_bias_conv2d`'s concat form.
CONCAT_EDGE_MAX_CHANNELS = 64


def actnorm_statistics(x, axes, logscale_factor=LOGSCALE_FACTOR):
    """Data-dependent actnorm values for input `x`, exactly as T2T computes them.

    bias = -mean(x);  v = mean((x + bias)^2);  logs = ln(1 / (sqrt(v) + 1e-6)) / factor

    Args:
      x: float tensor.
      axes: axes to reduce over (all but channels; for per-time-step 3-D actnorm
        all but time and channels).
      logscale_factor: the stored log-scale is divided by this.

    Returns:
      `(bias, logs)` with the reduced axes kept as size 1.
    """
    bias = -tf.reduce_mean(x, axis=axes, keepdims=True)
    variance = tf.reduce_mean(tf.square(x + bias), axis=axes, keepdims=True)
    logs = tf.math.log(1.0 / (tf.sqrt(variance) + 1e-6)) / logscale_factor
    return bias, logs


def add_edge_bias(x, kernel_size):
    """Pads `[B, H, W, C]` for a VALID conv and appends a border-indicator channel.

    Pads `(k - 1) / 2` zeros on every spatial side and appends, as the LAST channel,
    a map that is 1 on the padded border and 0 inside, so the following VALID conv
    keeps the spatial size and can tell padding from real zeros (T2T `add_edge_bias`).

    Args:
      x: `[B, H, W, C]`.
      kernel_size: `(kh, kw)`, both odd.

    Returns:
      `[B, H + kh - 1, W + kw - 1, C + 1]`.
    """
    ph, pw = (kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2
    paddings = [[0, 0], [ph, ph], [pw, pw], [0, 0]]
    x_padded = tf.pad(x, paddings)
    border = tf.pad(tf.zeros_like(x[..., :1]), paddings, constant_values=1.0)
    return tf.concat([x_padded, border], axis=-1)


def edge_bias_conv2d(x, kernel, kernel_size, bias=None):
    """`conv2d(add_edge_bias(x), kernel, VALID) (+ bias)`, computed without the concat.

    The edge channel is the same for every example, so its contribution is a
    batch-independent map: a SAME conv of `x` with the first `C` input channels of the
    kernel (SAME pads with zeros, exactly like `add_edge_bias`) plus a VALID conv of
    the `[1, H + kh - 1, W + kw - 1, 1]` border indicator with the last input channel.
    This avoids copying the input into an odd channel count (e.g. 513), which is
    markedly slower on CPU; the result is the same up to float rounding.

    For a narrow input (at most `CONCAT_EDGE_MAX_CHANNELS` channels, e.g. the first
    conv of a coupling network) the copy is cheap and the concat form is used instead:
    it is one conv op, into which TF also fuses the bias and a following ReLU.

    `bias` (`[C_out]`, optional) is added right after the main conv so that TF fuses
    it into the conv op; the border map is added last.

    The conv runs in `x`'s dtype: `kernel` and `bias` are cast to it (a no-op for
    float32), so a network can compute in bfloat16 while its weights stay float32.
    """
    kernel = tf.cast(kernel, x.dtype)
    bias = None if bias is None else tf.cast(bias, x.dtype)
    if tuple(kernel_size) == (1, 1):
        y = tf.nn.conv2d(x, kernel, strides=1, padding="VALID")
        return y if bias is None else tf.nn.bias_add(y, bias)
    if x.shape[-1] is not None and x.shape[-1] <= CONCAT_EDGE_MAX_CHANNELS:
        y = tf.nn.conv2d(add_edge_bias(x, kernel_size), kernel, strides=1,
                         padding="VALID")
        return y if bias is None else tf.nn.bias_add(y, bias)
    data_kernel, border_kernel = tf.split(kernel, [x.shape[-1], 1], axis=2)
    y = tf.nn.conv2d(x, data_kernel, strides=1, padding="SAME")
    if bias is not None:
        y = tf.nn.bias_add(y, bias)
    border = add_edge_bias(_single_channel_zeros(x), kernel_size)[..., 1:]
    return y + tf.nn.conv2d(border, border_kernel, strides=1, padding="VALID")


def _single_channel_zeros(x):
    """`[1, H, W, 1]` zeros for `x [B, H, W, C]`, built from its shape alone.

    Slicing `x` for this (as `zeros_like(x[:1, ..., :1])`) would put a strided slice
    of the whole activation, and under a gradient tape its full-size gradient, into
    every step.
    """
    if x.shape[1:3].is_fully_defined():
        return tf.zeros([1, *x.shape[1:3], 1], x.dtype)
    return tf.zeros(tf.concat([[1], tf.shape(x)[1:3], [1]], axis=0), x.dtype)


_conv2d = edge_bias_conv2d


def _pair(kernel_size):
    if isinstance(kernel_size, int):
        return (kernel_size, kernel_size)
    kh, kw = kernel_size
    return (int(kh), int(kw))


class ActNorm(keras.layers.Layer):
    """Per-channel actnorm inside a network (no log-det): `y = (x + b) * exp(3 s)`.

    Input and output: `[..., C]`. Parameters `b` and `s` have shape `[1, 1, 1, C]`
    (T2T's shape for 4-D inputs). With `init=True` the parameters are first set from
    the input's statistics over every axis but the last (`actnorm_statistics`), unless
    the layer was already initialised: the non-trainable `initialized` flag is saved
    with the weights, so data-dependent init happens once and never after a restore.
    """

    def __init__(self, logscale_factor=LOGSCALE_FACTOR, **kwargs):
        kwargs.setdefault("autocast", False)  # compute in the input's dtype
        super().__init__(**kwargs)
        self.logscale_factor = float(logscale_factor)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.bias = self.add_weight(
            name="bias", shape=(1, 1, 1, channels), initializer="zeros")
        self.logs = self.add_weight(
            name="logs", shape=(1, 1, 1, channels), initializer="zeros")
        self.initialized = self.add_weight(
            name="initialized", shape=(), dtype="bool", initializer="zeros",
            trainable=False)

    def _initialize(self, x):
        axes = list(range(len(x.shape) - 1))
        bias, logs = actnorm_statistics(x, axes, self.logscale_factor)
        self.bias.assign(tf.reshape(bias, self.bias.shape))
        self.logs.assign(tf.reshape(logs, self.logs.shape))
        self.initialized.assign(True)
        return tf.constant(True)

    def bias_vector(self):
        """`b` as a `[C]` vector."""
        return tf.reshape(read(self.bias), [-1])

    def scale(self):
        """The per-channel scale `exp(3 s)` as a `[C]` vector."""
        return tf.exp(tf.reshape(read(self.logs), [-1]) * self.logscale_factor)

    def call(self, x, init=False):
        if init:
            tf.cond(self.initialized.value, lambda: tf.constant(False),
                    lambda: self._initialize(x))
        return ((x + tf.cast(self.bias_vector(), x.dtype))
                * tf.cast(self.scale(), x.dtype))

    def t2t_variables(self):
        """T2T names (relative to the actnorm scope) -> variables."""
        return {"actnorm_center/b": self.bias, "actnorm_scale/logs": self.logs}

    def get_config(self):
        return {**super().get_config(), "logscale_factor": self.logscale_factor}


class ConvActNorm2D(keras.layers.Layer):
    """T2T `conv(..., apply_actnorm=True)`: edge-bias conv (no bias) then actnorm.

    Input `[B, H, W, C_in]` -> output `[B, H, W, filters]`. Kernel ~ N(0, 0.05^2).
    """

    def __init__(self, filters, kernel_size=3, **kwargs):
        kwargs.setdefault("autocast", False)  # compute in the input's dtype
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        if self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        self.actnorm = ActNorm(name="actnorm")

    def build(self, input_shape):
        c_in = int(input_shape[-1]) + (0 if self.kernel_size == (1, 1) else 1)
        self.kernel = self.add_weight(
            name="W", shape=(*self.kernel_size, c_in, self.filters),
            initializer=deferrable_initializer(
                keras.initializers.RandomNormal(stddev=KERNEL_STDDEV)))
        self.actnorm.build((*input_shape[:-1], self.filters))

    def reseed(self, seed):
        """Redraws the initial kernel ~ N(0, 0.05^2) from the integer `seed`."""
        init = keras.initializers.RandomNormal(stddev=KERNEL_STDDEV, seed=int(seed))
        self.kernel.assign(init(self.kernel.shape))

    def call(self, x, init=False):
        if init:
            return self.actnorm(_conv2d(x, self.kernel, self.kernel_size), init=True)
        # actnorm(conv(x, W)) = (conv(x, W) + b) * s = conv(x, W * s) + b * s for the
        # per-output-channel s = exp(3 logs): scaling the small kernel instead of the
        # output saves a full elementwise pass forward and backward, and the bias add
        # fuses into the conv. Equal up to float rounding.
        scale = self.actnorm.scale()
        return _conv2d(x, read(self.kernel) * scale, self.kernel_size,
                       bias=self.actnorm.bias_vector() * scale)

    def t2t_variables(self):
        out = {"W": self.kernel}
        out.update({"actnorm/" + k: v for k, v in self.actnorm.t2t_variables().items()})
        return out

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size}


class ZeroConv2D(keras.layers.Layer):
    """T2T `conv(..., conv_init="zeros", apply_actnorm=False)`, the "zero conv".

    `y = (conv(edge_bias(x), W) + b) * exp(3 * logs)`, with `W`, `b`, `logs` all
    zero-initialised so the layer outputs exactly 0 at init (every coupling then
    starts near the identity and every prior head at N(0, 1)).

    Input `[B, H, W, C_in]` -> output `[B, H, W, filters]`.
    Weights: `W [kh, kw, C_in(+1), filters]`, `b [1, 1, 1, filters]`, `logs [1, filters]`.

    With `deinterleave=True` the output channels come in the order
    `[0, 2, 4, ..., 1, 3, 5, ...]` (weights stay in T2T's order; the small kernel is
    permuted instead): a consumer that reads even and odd channels as two quantities
    (the affine coupling's shift and scale, a prior head's mean and log-scale) then
    takes them with one `tf.split`, whose gradient is a concat, instead of two
    strided slices, whose gradients each fill a full-size tensor of zeros.
    """

    def __init__(self, filters, kernel_size=3, logscale_factor=LOGSCALE_FACTOR,
                 deinterleave=False, **kwargs):
        kwargs.setdefault("autocast", False)  # compute in the input's dtype
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        self.logscale_factor = float(logscale_factor)
        self.deinterleave = bool(deinterleave)
        if self.deinterleave and self.filters % 2:
            raise ValueError(
                f"deinterleave needs an even number of filters, got {self.filters}")

    def build(self, input_shape):
        c_in = int(input_shape[-1]) + (0 if self.kernel_size == (1, 1) else 1)
        self.kernel = self.add_weight(
            name="W", shape=(*self.kernel_size, c_in, self.filters), initializer="zeros")
        self.bias = self.add_weight(
            name="b", shape=(1, 1, 1, self.filters), initializer="zeros")
        self.logs = self.add_weight(
            name="logs", shape=(1, self.filters), initializer="zeros")

    def call(self, x, init=False):
        del init  # No actnorm inside; accepted so networks can pass it uniformly.
        # (conv(x, W) + b) * s = conv(x, W * s) + b * s: the scale goes on the small
        # kernel and bias instead of the output (equal up to float rounding).
        scale = tf.exp(tf.reshape(read(self.logs), [-1]) * self.logscale_factor)
        kernel, bias = read(self.kernel) * scale, tf.reshape(read(self.bias), [-1]) * scale
        if self.deinterleave:
            order = list(range(0, self.filters, 2)) + list(range(1, self.filters, 2))
            kernel, bias = tf.gather(kernel, order, axis=3), tf.gather(bias, order)
        return _conv2d(x, kernel, self.kernel_size, bias=bias)

    def t2t_variables(self):
        return {"W": self.kernel, "b": self.bias, "logs": self.logs}

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "logscale_factor": self.logscale_factor,
                "deinterleave": self.deinterleave}
