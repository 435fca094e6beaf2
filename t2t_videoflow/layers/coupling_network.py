"""T2T's `conv_stack` for 2-D inputs: the network inside every coupling layer.

    h = relu(actnorm(conv3x3(edge_bias(x))))                  # "conv_block/1_1"
    h = dropout(h)
    relu: h = relu(actnorm(conv1x1(h)))                       # "conv_block/1_2"
    gatu: h = tanh(actnorm(conv1x1_a(h))) * sigmoid(actnorm(conv1x1_g(h)))
                                                              # "1_tanh", "1_sigm"
    h = dropout(h)
    out = (conv3x3(edge_bias(h), W) + b) * exp(3 logs)       # "zeros", all zero-init

With `compute_dtype="bfloat16"` the convolutions and ReLUs run in bfloat16 (about
1.7x the float32 conv rate on a CPU with AVX512_BF16): the input is cast once, the
output once back to the input's dtype; the weights stay float32 (cast at each call,
so gradients and Adam stay float32), the GATU's tanh and sigmoid run in float32, and
data-dependent init always runs in float32. Deterministic, so a flow that uses the
network still inverts exactly; the values differ from float32 by bfloat16 rounding.

(T2T `glow_ops.conv_block`, `glow_ops.conv_stack`.) The first layer's activation is
always ReLU; `activation` only selects the second layer. Dropout is inverted dropout at
`dropout_rate`, active only when `training=True` and never during data-dependent init.

Input `[B, H, W, C_in]` -> output `[B, H, W, out_channels]`, exactly 0 at init.
"""

import keras
import tensorflow as tf

COMPUTE_DTYPES = ("float32", "bfloat16")

from t2t_videoflow.layers.conv import ConvActNorm2D, ZeroConv2D

ACTIVATIONS = ("relu", "gatu")


class ConvStack(keras.layers.Layer):
    """T2T's `conv_stack`, independent of dimensionality (see the module docstring).

    Subclasses say how to make the three kinds of conv (`_conv_in`, `_conv_1x1`,
    `_conv_out`); everything else (argument checks, activations, dropout, T2T names,
    config) is shared by the 2-D coupling network and the 3-D prior blocks.

    Args:
      mid_channels: hidden width.
      out_channels: output channels.
      activation: "relu" or "gatu" for the second (1x1) layer.
      dropout_rate: inverted dropout rate, training only, never during init.
      compute_dtype: "float32" or "bfloat16" (see the module docstring).
    """

    def __init__(self, mid_channels, out_channels, activation="relu", dropout_rate=0.0,
                 compute_dtype="float32", **kwargs):
        super().__init__(**kwargs)
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"Unknown compute_dtype {compute_dtype!r}; expected one of "
                             f"{COMPUTE_DTYPES}.")
        self.compute_dtype_name = compute_dtype
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}.")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
        self.mid_channels = int(mid_channels)
        self.out_channels = int(out_channels)
        self.activation = activation
        self.dropout_rate = float(dropout_rate)

    def _make_layers(self):
        """Creates the sub-layers; subclasses call it at the end of `__init__`."""
        self.conv_in = self._conv_in("1_1")
        if self.activation == "relu":
            self.conv_mid = self._conv_1x1("1_2")
        else:
            self.conv_tanh = self._conv_1x1("1_tanh")
            self.conv_sigm = self._conv_1x1("1_sigm")
        self.conv_out = self._conv_out("zeros")

    def _conv_in(self, name):
        raise NotImplementedError

    def _conv_1x1(self, name):
        raise NotImplementedError

    def _conv_out(self, name):
        raise NotImplementedError

    def build(self, input_shape):
        mid_shape = (*input_shape[:-1], self.mid_channels)
        self.conv_in.build(input_shape)
        if self.activation == "relu":
            self.conv_mid.build(mid_shape)
        else:
            self.conv_tanh.build(mid_shape)
            self.conv_sigm.build(mid_shape)
        self.conv_out.build(mid_shape)

    def _dropout(self, h, training, init):
        if training and not init and self.dropout_rate > 0.0:
            return tf.nn.dropout(h, rate=self.dropout_rate)
        return h

    def call(self, x, training=False, init=False):
        dtype = tf.float32 if init else tf.dtypes.as_dtype(self.compute_dtype_name)
        out_dtype = x.dtype
        h = tf.nn.relu(self.conv_in(tf.cast(x, dtype), init=init))
        h = self._dropout(h, training, init)
        if self.activation == "relu":
            h = tf.nn.relu(self.conv_mid(h, init=init))
        else:
            # tanh and sigmoid in float32: more accurate, and faster than bfloat16
            # elementwise kernels on CPU.
            gate_a = tf.cast(self.conv_tanh(h, init=init), tf.float32)
            gate_b = tf.cast(self.conv_sigm(h, init=init), tf.float32)
            h = tf.cast(tf.tanh(gate_a) * tf.sigmoid(gate_b), dtype)
        h = self._dropout(h, training, init)
        return tf.cast(self.conv_out(h), out_dtype)

    def t2t_variables(self):
        """T2T names relative to the conv_stack's scope (e.g. `nn/`) -> variables."""
        layers = {"conv_block/1_1/": self.conv_in, "zeros/": self.conv_out}
        if self.activation == "relu":
            layers["conv_block/1_2/"] = self.conv_mid
        else:
            layers["conv_block/1_tanh/"] = self.conv_tanh
            layers["conv_block/1_sigm/"] = self.conv_sigm
        return {prefix + name: var for prefix, layer in layers.items()
                for name, var in layer.t2t_variables().items()}

    def get_config(self):
        return {**super().get_config(), "mid_channels": self.mid_channels,
                "out_channels": self.out_channels, "activation": self.activation,
                "dropout_rate": self.dropout_rate,
                "compute_dtype": self.compute_dtype_name}


class CouplingNetwork(ConvStack):
    """The 2-D conv_stack inside every coupling layer.

    Args:
      mid_channels: hidden width (`coupling_width`).
      out_channels: output channels (C for affine, C/2 for additive coupling).
      activation: "relu" or "gatu" for the second (1x1) layer.
      dropout_rate: `coupling_dropout`.
      deinterleave_output: output the even channels first, then the odd ones (see
        `ZeroConv2D`); T2T's weights and names are unchanged.
      compute_dtype: "float32" or "bfloat16" (see the module docstring).
    """

    def __init__(self, mid_channels, out_channels, activation="relu", dropout_rate=0.0,
                 deinterleave_output=False, compute_dtype="float32", **kwargs):
        super().__init__(mid_channels, out_channels, activation, dropout_rate,
                         compute_dtype, **kwargs)
        self.deinterleave_output = bool(deinterleave_output)
        self._make_layers()

    def _conv_in(self, name):
        return ConvActNorm2D(self.mid_channels, 3, name=name)

    def _conv_1x1(self, name):
        return ConvActNorm2D(self.mid_channels, 1, name=name)

    def _conv_out(self, name):
        return ZeroConv2D(self.out_channels, 3, deinterleave=self.deinterleave_output,
                          name=name)

    def get_config(self):
        return {**super().get_config(), "deinterleave_output": self.deinterleave_output}
