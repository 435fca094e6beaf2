"""VideoFlow's conditional latent priors (REFERENCE 3.2, 3.3) and the marginal top prior.

Given the noise-free past latents `z_{<t}` (and, for level priors, the marginal
level-prior mean `mu0` computed by the flow from the kept half `x1` of the same
frame), each layer returns the Gaussian parameters `(loc, scale)` of
`p(z_t | past)`:

  encoder      conditioning input (noise_op applied)          network
  conv3d_net   top:   stack_t(z_{t-N..t-1})        [B,N,h,w,c]    TemporalLatentToDist
               level: concat_c(stack_t(z), tile_t(mu0))  [..,2c]
  conv_net     top:   concat_c(z_{t-N}, .., z_{t-1})    [B,h,w,Nc]  LatentToDist
               level: concat_c(mu0, z_{t-N}, .., z_{t-1})
  conv_lstm    top:   z_{t-1};  level: concat_c(mu0, z_{t-1})      ConvLSTM + single conv
  pointwise    top:   N(m * z_{t-1}, exp(3 rho))  (no noise)
               level: N(mu0 + m * z_{t-1}, std by level_scale)

then, with `latent_skip`, `loc <- z_{t-1} + loc` (the clean `z_{t-1}`; the scale
is unchanged). `noise_op` adds `N(0, latent_noise^2)` to the conditioning input
when `training` is true (T2T: TRAIN mode), data-dependent init included.

At init every network outputs `loc = 0`, `scale = 1`, so the prior starts as
`N(z_{t-1}, I)` with the skip and `N(0, I)` without (pointwise: `N(2 z_{t-1}, I)`
with the skip at the top; `mu0 + (1 + 1) z_{t-1}` at a level).

The conditional prior REPLACES the marginal one when conditioning is active; the
choice between them (history length, `pretrain_steps`) and the temperature belong
to the model, not to these layers.

Every call returns `(loc, scale, new_state)`; `new_state` is the ConvLSTM state
`(c, h)` for `conv_lstm` and None otherwise. Pass `state=None` at the first
conditioned frame (zero state) and the returned state afterwards.
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv3d import ACTIVATIONS
from t2t_videoflow.prior.conv_lstm import ConvLSTMToDist
from t2t_videoflow.prior.latent_to_dist import ARCHITECTURES, LatentToDist, SingleConvDist
from t2t_videoflow.prior.pointwise import LEVEL_SCALES, MergeLevelAndLatent, ScaleGaussianPrior
from t2t_videoflow.prior.temporal_network import TemporalLatentToDist

ENCODERS = ("conv3d_net", "conv_net", "conv_lstm", "pointwise")
# Encoders that condition on the previous frame only (T2T `get_cond_latents`).
_SINGLE_LATENT_ENCODERS = ("conv_lstm", "pointwise")


def _is_shape_list(shape):
    return isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(
        shape[0], (list, tuple, tf.TensorShape))


class _ConditionalPrior(keras.layers.Layer):
    """Shared arguments, checks and plumbing of the top and level conditional priors.

    Args:
      encoder: `latent_dist_encoder`, one of `ENCODERS`.
      latent_skip: `latent_skip`, add the previous latent to the mean.
      latent_noise: `latent_noise`, std of the training noise on the conditioning input.
      encoder_depth: `latent_encoder_depth` (conv3d_net, conv_net).
      encoder_width: `latent_encoder_width` (conv3d_net, conv_net glow_resnet, conv_lstm).
      activation: `latent_activation`, "relu" or "gatu" (conv3d_net only).
      latent_dropout: `latent_dropout` (conv3d_net only).
      apply_dilations: `latent_apply_dilations` (conv3d_net only).
      dilation_rates: `latent_dilation_rates` (conv3d_net only).
      architecture: `latent_architecture` (conv_net only).
      pre_output_channels: `latent_pre_output_channels` (conv_net glow_nn only).
      coupling_dropout: `coupling_dropout` (conv_net glow_resnet only).
    """

    def __init__(self, encoder="conv3d_net", latent_skip=True, latent_noise=0.0,
                 encoder_depth=2, encoder_width=512, activation="relu",
                 latent_dropout=0.0, apply_dilations=False, dilation_rates=(1, 3),
                 architecture="glow_resnet", pre_output_channels=512,
                 coupling_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(
                f"Unknown latent encoder {encoder!r}; expected one of {ENCODERS}.")
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"Unknown latent architecture {architecture!r}; expected one of "
                f"{ARCHITECTURES}.")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}.")
        if latent_noise < 0.0:
            raise ValueError(f"latent_noise must be >= 0, got {latent_noise}")
        self.encoder = encoder
        self.latent_skip = bool(latent_skip)
        self.latent_noise = float(latent_noise)
        self.encoder_depth = int(encoder_depth)
        self.encoder_width = int(encoder_width)
        self.activation = activation
        self.latent_dropout = float(latent_dropout)
        self.apply_dilations = bool(apply_dilations)
        self.dilation_rates = tuple(int(r) for r in dilation_rates)
        self.architecture = architecture
        self.pre_output_channels = int(pre_output_channels)
        self.coupling_dropout = float(coupling_dropout)

    # -- helpers -------------------------------------------------------------------

    def _latent_shapes(self, latents_shape):
        """Normalises the build-time shape of `latents` to (N, shape of one latent)."""
        shapes = list(latents_shape) if _is_shape_list(latents_shape) else [latents_shape]
        shapes = [tuple(s) for s in shapes]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"all conditioning latents must have one shape, got {shapes}")
        if len(shapes[0]) != 4:
            raise ValueError(f"latents must be 4-D [B, h, w, c], got {shapes[0]}")
        self._check_num_latents(len(shapes))
        return len(shapes), shapes[0]

    def _check_num_latents(self, num):
        if self.encoder in _SINGLE_LATENT_ENCODERS and num != 1:
            raise ValueError(
                f"encoder {self.encoder!r} conditions on the previous latent only; got "
                f"{num} latents")
        if getattr(self, "num_latents", None) not in (None, num):
            raise ValueError(
                f"this prior was built for {self.num_latents} conditioning latents, got {num}")

    def _as_list(self, latents):
        latents = list(latents) if isinstance(latents, (list, tuple)) else [latents]
        self._check_num_latents(len(latents))
        return latents

    def _noise(self, x, training):
        if training and self.latent_noise > 0.0:
            return x + tf.random.normal(tf.shape(x), stddev=self.latent_noise, dtype=x.dtype)
        return x

    def _skip(self, loc, last_latent):
        return last_latent + loc if self.latent_skip else loc

    def get_config(self):
        return {**super().get_config(), "encoder": self.encoder,
                "latent_skip": self.latent_skip, "latent_noise": self.latent_noise,
                "encoder_depth": self.encoder_depth, "encoder_width": self.encoder_width,
                "activation": self.activation, "latent_dropout": self.latent_dropout,
                "apply_dilations": self.apply_dilations,
                "dilation_rates": list(self.dilation_rates),
                "architecture": self.architecture,
                "pre_output_channels": self.pre_output_channels,
                "coupling_dropout": self.coupling_dropout}

    def _temporal_network(self, channels, name):
        return TemporalLatentToDist(
            channels, self.encoder_depth, self.encoder_width, self.activation,
            self.latent_dropout, self.apply_dilations, self.dilation_rates, name=name)

    def _latent_to_dist(self, channels, name):
        return LatentToDist(
            channels, self.architecture, self.encoder_depth, self.encoder_width,
            self.pre_output_channels, self.coupling_dropout, name=name)


class TopConditionalPrior(_ConditionalPrior):
    """`p(z_t^top | z_{<t}^top)` (T2T `top_cond_prior`, scope "top"; REFERENCE 3.2).

    call(latents, state=None, training=False, init=False) -> (loc, scale, new_state)
      latents: list of the N past top latents, oldest first, each `[B, h, w, c]`
        (conv3d_net, conv_net), or the previous top latent alone (a tensor or a
        one-element list; conv_lstm, pointwise). N is fixed at build.
      state: conv_lstm state `(c, h)`, None for zeros; ignored by other encoders.
      loc, scale: `[B, h, w, c]`.

    Args (besides those of the base class):
      learn_top_scale: pointwise only, whether the log-scale `rho` is trainable.

    T2T variables (relative to "top"): conv3d_net `conv3d/...`; conv_net
    `conditional/...`; conv_lstm `conv_lstm/{kernel,biases}` and
    `conditional/conv2d/...`; pointwise `conditional/{latent_multiplier,
    log_scale_latent}`.
    """

    def __init__(self, encoder="conv3d_net", learn_top_scale=False, **kwargs):
        super().__init__(encoder=encoder, **kwargs)
        self.learn_top_scale = bool(learn_top_scale)

    def build(self, latents_shape):
        self.num_latents, shape = self._latent_shapes(latents_shape)
        batch, height, width, channels = shape
        if self.encoder == "conv3d_net":
            self.net = self._temporal_network(channels, "conv3d")
            self.net.build((batch, self.num_latents, height, width, channels))
        elif self.encoder == "conv_net":
            self.net = self._latent_to_dist(channels, "conditional")
            self.net.build((batch, height, width, self.num_latents * channels))
        elif self.encoder == "conv_lstm":
            self.net = ConvLSTMToDist(channels, self.encoder_width,
                                      head_name="conditional", name="conv_lstm_to_dist")
            self.net.build(shape)
        else:
            self.net = ScaleGaussianPrior(learn_scale=self.learn_top_scale,
                                          name="conditional")
            self.net.build(shape)

    def call(self, latents, state=None, training=False, init=False):
        latents = self._as_list(latents)
        last = latents[-1]
        new_state = None
        if self.encoder == "conv3d_net":
            x = self._noise(tf.stack(latents, axis=1), training)
            loc, scale = self.net(x, training=training, init=init)
        elif self.encoder == "conv_net":
            x = self._noise(tf.concat(latents, axis=-1), training)
            loc, scale = self.net(x, training=training, init=init)
        elif self.encoder == "conv_lstm":
            loc, scale, new_state = self.net(self._noise(last, training), state)
        else:
            loc, scale = self.net(last)
        return self._skip(loc, last), scale, new_state

    def t2t_variables(self):
        """T2T names relative to the "top" scope -> variables."""
        inner = self.net.t2t_variables()
        if self.encoder == "conv_lstm":
            return dict(inner)
        return {f"{self.net.name}/{k}": v for k, v in inner.items()}

    def get_config(self):
        return {**super().get_config(), "learn_top_scale": self.learn_top_scale}


class LevelConditionalPrior(_ConditionalPrior):
    """`p(z_t^l | z_t^{>l}, z_{<t}^l)` (T2T `level_cond_prior`; REFERENCE 3.3).

    call(latents, mu0, sigma0=None, state=None, training=False, init=False)
        -> (loc, scale, new_state)
      latents: as for `TopConditionalPrior`, level-l latents `[B, h, w, c]`.
      mu0: the marginal level-prior mean `[B, h, w, c]` (even channels of the flow's
        `level_prior` zero conv on `x1`); an input feature for every encoder.
      sigma0: the marginal level-prior scale; needed only by pointwise with
        `level_scale="prev_level"`.
      state: conv_lstm state `(c, h)`, None for zeros.

    Args (besides those of the base class):
      level_scale: pointwise only, "prev_level", "prev_step" or "normal".

    T2T variables (relative to "prior_on_z2"): conv3d_net and conv_net
    `latent_stack/...`; conv_lstm `conv_lstm/{kernel,biases}` and
    `state_to_dist/conv2d/...`; pointwise `latent_prior/{latent_multiplier,
    log_scale_latent}` (+ `merge_std` for level_scale "normal").
    """

    def __init__(self, encoder="conv3d_net", level_scale="prev_level", **kwargs):
        super().__init__(encoder=encoder, **kwargs)
        if level_scale not in LEVEL_SCALES:
            raise ValueError(
                f"Unknown level_scale {level_scale!r}; expected one of {LEVEL_SCALES}.")
        self.level_scale = level_scale

    def build(self, latents_shape):
        self.num_latents, shape = self._latent_shapes(latents_shape)
        batch, height, width, channels = shape
        if self.encoder == "conv3d_net":
            self.net = self._temporal_network(channels, "latent_stack")
            self.net.build((batch, self.num_latents, height, width, 2 * channels))
        elif self.encoder == "conv_net":
            self.net = self._latent_to_dist(channels, "latent_stack")
            self.net.build((batch, height, width, (self.num_latents + 1) * channels))
        elif self.encoder == "conv_lstm":
            self.net = ConvLSTMToDist(channels, self.encoder_width,
                                      head_name="state_to_dist", name="conv_lstm_to_dist")
            self.net.build((batch, height, width, 2 * channels))
        else:
            self.net = ScaleGaussianPrior(learn_scale=True, name="latent_prior")
            self.net.build(shape)
            self.merge = MergeLevelAndLatent(self.level_scale, name="merge")
            self.merge.build(shape)

    def call(self, latents, mu0, sigma0=None, state=None, training=False, init=False):
        latents = self._as_list(latents)
        last = latents[-1]
        if mu0.shape[1:] != last.shape[1:]:
            raise ValueError(
                f"mu0 shape {mu0.shape} does not match the latent shape {last.shape}")
        new_state = None
        if self.encoder == "conv3d_net":
            mu0_tiled = tf.tile(mu0[:, tf.newaxis], [1, len(latents), 1, 1, 1])
            x = tf.concat([tf.stack(latents, axis=1), mu0_tiled], axis=-1)
            loc, scale = self.net(self._noise(x, training), training=training, init=init)
        elif self.encoder == "conv_net":
            x = tf.concat([mu0] + latents, axis=-1)
            loc, scale = self.net(self._noise(x, training), training=training, init=init)
        elif self.encoder == "conv_lstm":
            x = self._noise(tf.concat([mu0, last], axis=-1), training)
            loc, scale, new_state = self.net(x, state)
        else:
            if sigma0 is None and self.level_scale == "prev_level":
                raise ValueError("pointwise with level_scale='prev_level' needs sigma0")
            latent_loc, latent_scale = self.net(last)
            if sigma0 is None:
                sigma0 = tf.ones_like(mu0)  # Unused by prev_step / normal.
            loc, scale = self.merge(mu0, sigma0, latent_loc, latent_scale)
        return self._skip(loc, last), scale, new_state

    def t2t_variables(self):
        """T2T names relative to the "prior_on_z2" scope -> variables."""
        inner = self.net.t2t_variables()
        if self.encoder == "conv_lstm":
            return dict(inner)
        out = {f"{self.net.name}/{k}": v for k, v in inner.items()}
        if self.encoder == "pointwise":
            out.update(self.merge.t2t_variables())
        return out

    def get_config(self):
        return {**super().get_config(), "level_scale": self.level_scale}


class MarginalTopPrior(keras.layers.Layer):
    """The marginal top prior (T2T `top_prior(..., "single_conv")`, scope "unconditional").

    `loc, ln scale = even, odd channels of ZeroConv3x3(edge_bias(zeros[B, h, w, c]))`:
    a learned constant, except at the border where the edge channel lets it differ.
    `N(0, 1)` at init; the weights do not depend on the batch size.

    call(z) -> (loc, scale): `z` is any tensor of the top-latent shape
    `[B, h, w, c]` (only its shape is used), e.g. the top latent being scored or
    `tf.zeros` of the shape to sample.

    T2T variables (relative to "unconditional"): `top_learn_prior/conv2d/{W, b, logs}`.
    """

    def build(self, input_shape):
        self.head = SingleConvDist(int(input_shape[-1]), name="top_learn_prior")
        self.head.build(input_shape)

    def call(self, z, init=False):
        del init
        return self.head(tf.zeros_like(z))

    def t2t_variables(self):
        return {"top_learn_prior/" + k: v for k, v in self.head.t2t_variables().items()}
