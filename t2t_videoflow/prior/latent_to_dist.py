"""2-D prior heads: T2T `glow_ops.single_conv_dist` and `glow_ops.latent_to_dist`.

Every head ends in a zero conv whose `2 * c_out` output channels interleave the
mean and the log-scale: even channels are `mu`, odd channels are `ln sigma`
(T2T's layout, kept in the weights). The zero convs are built with
`deinterleave=True`, so they emit `[mu, ln sigma]` as two contiguous halves and
`split_mean_logscale` is one split. At init the head gives `mu = 0`, `sigma = 1`.

`LatentToDist` (the `conv_net` encoder's network), by `architecture`:

  single_conv:  h = ZeroConv3x3(x)                              "single_conv/conv2d"
  glow_nn:      h = x; for k = 1..depth:                        "glow_nn_{k}/1_1", "/1_2"
                  h = relu(AN(conv1x1(relu(AN(conv3x3(h))))))   width pre_out / 2^(depth-k)
                h = ZeroConv3x3(h)                              "glow_nn_zeros"
  glow_resnet:  h = x; for i < depth: h = h + conv_stack_i(h)   "latent_resnet_{i}"
                h = ZeroConv3x3(h)                              "glow_res_final"

This path always uses ReLU; only `glow_resnet` has dropout (T2T's `coupling_dropout`).
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv import ConvActNorm2D, ZeroConv2D
from t2t_videoflow.layers.coupling_network import CouplingNetwork

ARCHITECTURES = ("single_conv", "glow_nn", "glow_resnet")


def split_mean_logscale(h):
    """`[..., 2c]` -> `(mean, log_scale)` from a `ZeroConv2D(deinterleave=True)` output.

    That output is T2T's `[h[..., 0::2], h[..., 1::2]]` (even channels the mean, odd
    the log-scale), so the two are its halves.
    """
    return tf.split(h, 2, axis=-1)


class SingleConvDist(keras.layers.Layer):
    """T2T `single_conv_dist`: a 3x3 zero conv (edge bias) -> `(loc, scale)`.

    `loc, ln scale = even, odd channels of ZeroConv2D_3x3(x)`, so `N(0, 1)` at init.

    Input `[B, H, W, C]` -> `loc`, `scale`: `[B, H, W, output_channels]`
    (`output_channels` defaults to `C`). T2T variables: `conv2d/{W, b, logs}`.
    """

    def __init__(self, output_channels=None, **kwargs):
        super().__init__(**kwargs)
        self.output_channels = None if output_channels is None else int(output_channels)

    def build(self, input_shape):
        c_out = self.output_channels or int(input_shape[-1])
        self.conv = ZeroConv2D(2 * c_out, 3, deinterleave=True, name="conv2d")
        self.conv.build(input_shape)

    def call(self, x, init=False):
        del init
        loc, log_scale = split_mean_logscale(self.conv(x))
        return loc, tf.exp(log_scale)

    def t2t_variables(self):
        return {"conv2d/" + k: v for k, v in self.conv.t2t_variables().items()}

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels}


class _ConvBlock2D(keras.layers.Layer):
    """T2T 2-D `conv_block` with ReLU and no dropout (the `glow_nn` blocks).

    `h = relu(AN(conv1x1(relu(AN(conv3x3_edge(x))))))`; output `mid_channels` wide.
    """

    def __init__(self, mid_channels, **kwargs):
        super().__init__(**kwargs)
        self.mid_channels = int(mid_channels)
        self.conv_in = ConvActNorm2D(self.mid_channels, 3, name="1_1")
        self.conv_mid = ConvActNorm2D(self.mid_channels, 1, name="1_2")

    def build(self, input_shape):
        self.conv_in.build(input_shape)
        self.conv_mid.build((*input_shape[:-1], self.mid_channels))

    def call(self, x, init=False):
        h = tf.nn.relu(self.conv_in(x, init=init))
        return tf.nn.relu(self.conv_mid(h, init=init))

    def t2t_variables(self):
        out = {"1_1/" + k: v for k, v in self.conv_in.t2t_variables().items()}
        out.update({"1_2/" + k: v for k, v in self.conv_mid.t2t_variables().items()})
        return out

    def get_config(self):
        return {**super().get_config(), "mid_channels": self.mid_channels}


class LatentToDist(keras.layers.Layer):
    """T2T `latent_to_dist`: `[B, H, W, C]` -> `(loc, scale)`, each `[B, H, W, c_out]`.

    Args:
      output_channels: `c_out`; None means `C`.
      architecture: "single_conv", "glow_nn" or "glow_resnet".
      encoder_depth: `latent_encoder_depth` (glow_nn blocks / glow_resnet blocks).
      encoder_width: `latent_encoder_width`, glow_resnet hidden width.
      pre_output_channels: `latent_pre_output_channels`, glow_nn's widest block.
      dropout_rate: `coupling_dropout`, used by glow_resnet only.

    Raises:
      ValueError: unknown architecture (the message lists the allowed names).
    """

    def __init__(self, output_channels=None, architecture="glow_resnet", encoder_depth=2,
                 encoder_width=512, pre_output_channels=512, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"Unknown latent architecture {architecture!r}; expected one of "
                f"{ARCHITECTURES}.")
        if int(encoder_depth) < 1:
            raise ValueError(f"encoder_depth must be >= 1, got {encoder_depth}")
        self.output_channels = None if output_channels is None else int(output_channels)
        self.architecture = architecture
        self.encoder_depth = int(encoder_depth)
        self.encoder_width = int(encoder_width)
        self.pre_output_channels = int(pre_output_channels)
        self.dropout_rate = float(dropout_rate)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        c_out = self.output_channels or channels
        depth = self.encoder_depth
        self.blocks = []
        if self.architecture == "single_conv":
            self.head = SingleConvDist(c_out, name="single_conv")
            self.head.build(input_shape)
            return
        if self.architecture == "glow_nn":
            shape = input_shape
            for k in range(1, depth + 1):
                block = _ConvBlock2D(self.pre_output_channels // 2 ** (depth - k),
                                     name=f"glow_nn_{k}")
                block.build(shape)
                shape = (*shape[:-1], block.mid_channels)
                self.blocks.append(block)
            self.final = ZeroConv2D(2 * c_out, 3, deinterleave=True, name="glow_nn_zeros")
            self.final.build(shape)
        else:  # glow_resnet
            for i in range(depth):
                block = CouplingNetwork(self.encoder_width, channels, activation="relu",
                                        dropout_rate=self.dropout_rate,
                                        name=f"latent_resnet_{i}")
                block.build(input_shape)
                self.blocks.append(block)
            self.final = ZeroConv2D(2 * c_out, 3, deinterleave=True,
                                    name="glow_res_final")
            self.final.build(input_shape)

    def call(self, x, training=False, init=False):
        if self.architecture == "single_conv":
            return self.head(x)
        h = x
        for block in self.blocks:
            if self.architecture == "glow_nn":
                h = block(h, init=init)
            else:
                h = h + block(h, training=training, init=init)
        loc, log_scale = split_mean_logscale(self.final(h))
        return loc, tf.exp(log_scale)

    def t2t_variables(self):
        """T2T names relative to the `latent_to_dist` scope -> variables."""
        if self.architecture == "single_conv":
            return {"single_conv/" + k: v for k, v in self.head.t2t_variables().items()}
        out = {}
        for block in self.blocks:
            out.update({f"{block.name}/{k}": v for k, v in block.t2t_variables().items()})
        out.update({f"{self.final.name}/{k}": v
                    for k, v in self.final.t2t_variables().items()})
        return out

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels,
                "architecture": self.architecture, "encoder_depth": self.encoder_depth,
                "encoder_width": self.encoder_width,
                "pre_output_channels": self.pre_output_channels,
                "dropout_rate": self.dropout_rate}
