"""The `conv3d_net` temporal prior network (T2T `glow_ops.temporal_latent_to_dist`).

    H = X                                              X: [B, N, h, w, R]
    for i < depth:                                     residual blocks
        H = H + sum_{d in allowed} ConvStack3D_{i,d}(H)      (separate weights per d)
    mean, ln sigma = even, odd channels of ZeroConv1x1(H[:, -1])   "res_final"

Each `ConvStack3D` (causal `[2,3,3]` convs, per-time-step actnorm, zero-init final
conv) has hidden width `encoder_width` and `R` outputs, so the stack keeps `R`
channels. The readout takes the LAST time slice, which sees every input frame
because time padding is causal. At init every block and the readout are 0, so the
output is `N(0, 1)`.

With `recompute_blocks=True` (the model sets it under `memory_efficient_backprop`)
each residual block is recomputed in the backward pass (`layers/recompute_block.py`,
what `tf.recompute_grad` does, with fewer ops): training keeps only the blocks'
inputs and recomputes a block's hidden maps (`encoder_width` channels at every time
step) during the backward pass. Same values and gradients, less memory, one more
forward pass of the blocks. Blocks that draw dropout masks (`dropout_rate > 0` with
`training=True`) are stored as usual, since a recomputation would draw other masks.

Allowed dilations (T2T `get_dilation_rates`, `dilation_factors` here): the
undilated branch always; with `apply_dilations`, for each hparam value `r` in
`dilation_rates` with `3 + 2r <= h` also spatial dilation factor `r + 1`.
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv import ZeroConv2D
from t2t_videoflow.layers.conv3d import ACTIVATIONS, ConvStack3D
from t2t_videoflow.layers.recompute_block import recompute_with_weights
from t2t_videoflow.prior.latent_to_dist import split_mean_logscale


def dilation_factors(spatial_size, apply_dilations=False, dilation_rates=(1, 3)):
    """Spatial dilation factors used by the temporal network at this spatial size.

    Args:
      spatial_size: the latent's height `h` (T2T reads axis 2 of `[B, N, h, w, R]`).
      apply_dilations: `latent_apply_dilations`.
      dilation_rates: `latent_dilation_rates`; value `r` means factor `r + 1`.

    Returns:
      List of ints, starting with 1 (no dilation), e.g. `[1, 2, 4]`.
    """
    factors = [1]
    if apply_dilations:
        for rate in dilation_rates:
            if 3 + 2 * int(rate) <= int(spatial_size):
                factors.append(int(rate) + 1)
    return factors


class TemporalLatentToDist(keras.layers.Layer):
    """`[B, N, h, w, R]` -> `(loc, scale)`, each `[B, h, w, c_out]`.

    `N` (time) and `h` must be static: the per-time-step actnorms need `N` and the
    dilation branches depend on `h`.

    Args:
      output_channels: `c_out`; None means `R`.
      encoder_depth: `latent_encoder_depth`, number of residual blocks.
      encoder_width: `latent_encoder_width`, hidden width of each conv stack.
      activation: `latent_activation`, "relu" or "gatu" (second layer only).
      dropout_rate: `latent_dropout`.
      apply_dilations: `latent_apply_dilations`.
      dilation_rates: `latent_dilation_rates` (hparam values, factor = value + 1).
      compute_dtype: "float32" | "bfloat16", the residual blocks' compute dtype
        (`layers/coupling_network.py`); the residual sum and the readout stay float32.
      recompute_blocks: recompute each residual block's activations in the backward
        pass instead of storing them (module docstring).
    """

    def __init__(self, output_channels=None, encoder_depth=2, encoder_width=512,
                 activation="relu", dropout_rate=0.0, apply_dilations=False,
                 dilation_rates=(1, 3), compute_dtype="float32", recompute_blocks=False,
                 **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}.")
        if int(encoder_depth) < 1:
            raise ValueError(f"encoder_depth must be >= 1, got {encoder_depth}")
        self.output_channels = None if output_channels is None else int(output_channels)
        self.encoder_depth = int(encoder_depth)
        self.encoder_width = int(encoder_width)
        self.activation = activation
        self.dropout_rate = float(dropout_rate)
        self.apply_dilations = bool(apply_dilations)
        self.dilation_rates = tuple(int(r) for r in dilation_rates)
        self.compute_dtype_name = compute_dtype
        self.recompute_blocks = bool(recompute_blocks)

    def build(self, input_shape):
        if len(input_shape) != 5 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "TemporalLatentToDist needs a 5-D input [B, N, h, w, R] with static N and "
                f"h; got {input_shape}")
        channels = int(input_shape[-1])
        c_out = self.output_channels or channels
        self.dilations = dilation_factors(
            input_shape[2], self.apply_dilations, self.dilation_rates)
        # blocks[i][j]: residual block i, dilation branch j (factor dilations[j]).
        self.blocks = []
        for i in range(self.encoder_depth):
            branches = []
            for j, factor in enumerate(self.dilations):
                stack = ConvStack3D(self.encoder_width, channels, self.activation,
                                    self.dropout_rate, dilation=factor,
                                    compute_dtype=self.compute_dtype_name,
                                    name=f"res_{i}_dil_{j}")
                stack.build(input_shape)
                branches.append(stack)
            self.blocks.append(branches)
        self.readout = ZeroConv2D(2 * c_out, 1, deinterleave=True, name="res_final")
        self.readout.build((input_shape[0], *input_shape[2:]))

    def call(self, x, training=False, init=False):
        recompute = (self.recompute_blocks and not init
                     and not (training and self.dropout_rate > 0.0))
        h = x
        for branches in self.blocks:
            def block(h, branches=branches):
                delta = branches[0](h, training=training, init=init)
                for stack in branches[1:]:
                    delta = delta + stack(h, training=training, init=init)
                return h + delta
            if recompute:
                block = recompute_with_weights(
                    block, [w for stack in branches for w in stack.weights])
            h = block(h)
        loc, log_scale = split_mean_logscale(self.readout(h[:, -1]))
        return loc, tf.exp(log_scale)

    def t2t_variables(self):
        """T2T names relative to the network's scope (`latent_stack` or `conv3d`).

        Without dilations: `latent_3d_res_{i}/conv_block/...`, `.../zeros/...`;
        with dilations: `dil_latent_3d_res_{i}/dil_{j}/...` where `j` indexes the
        allowed dilations (0 = undilated). Readout: `res_final/{W, b, logs}`.
        """
        out = {}
        for i, branches in enumerate(self.blocks):
            for j, stack in enumerate(branches):
                if self.apply_dilations:
                    prefix = f"dil_latent_3d_res_{i}/dil_{j}/"
                else:
                    prefix = f"latent_3d_res_{i}/"
                out.update({prefix + k: v for k, v in stack.t2t_variables().items()})
        out.update({"res_final/" + k: v for k, v in self.readout.t2t_variables().items()})
        return out

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels,
                "encoder_depth": self.encoder_depth, "encoder_width": self.encoder_width,
                "activation": self.activation, "dropout_rate": self.dropout_rate,
                "apply_dilations": self.apply_dilations,
                "dilation_rates": list(self.dilation_rates),
                "compute_dtype": self.compute_dtype_name,
                "recompute_blocks": self.recompute_blocks}
