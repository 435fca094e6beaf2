"""VideoFlow's conditional latent priors (T2T `NextFrameGlow.top_cond_prior`,
`glow_ops.level_cond_prior`), one class per encoder,
and the marginal top prior.

Given the noise-free past latents `z_{<t}` (and, for level priors, the marginal
level-prior mean `mu0` computed by the flow from the kept half `x1` of the same
frame), a conditional prior returns the Gaussian parameters `(loc, scale)` of
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

`ENCODERS` maps each `latent_dist_encoder` name to its class; `conditional_prior(name,
role, **options)` builds one, passing each class only the options it takes. Each
class says what the model needs to know about it:

  past_latents(num_cond_latents)  past latents it conditions on (1: previous frame)
  steps_through_time              scored one frame at a time (a state, or
                                  parameters with a static batch), not batched
  has_data_init                   its `call` takes `init=` (actnorm data init)
  needs_static_batch              parameters carry the batch dimension (pointwise)
  zero_state(like)                the state before the first conditioned frame

`call(latents, mu0=None, sigma0=None, state=(), training=False[, init=False])`
returns `(loc, scale, new_state)`; `new_state` is `()` for encoders without state.
The conditional prior REPLACES the marginal one when conditioning is active; the
choice between them (history length, `pretrain_steps`) and the temperature belong
to the model, not to these layers.
"""

import inspect

import keras
import tensorflow as tf

from t2t_videoflow.layers.conv3d import ACTIVATIONS
from t2t_videoflow.prior.conv_lstm import ConvLSTMToDist
from t2t_videoflow.prior.latent_to_dist import ARCHITECTURES, LatentToDist, SingleConvDist
from t2t_videoflow.prior.pointwise import LEVEL_SCALES, MergeLevelAndLatent, ScaleGaussianPrior
from t2t_videoflow.prior.temporal_network import TemporalLatentToDist

ROLES = ("top", "level")


def _is_shape_list(shape):
    return isinstance(shape, (list, tuple)) and len(shape) > 0 and isinstance(
        shape[0], (list, tuple, tf.TensorShape))


class ConditionalPrior(keras.layers.Layer):
    """What every conditional prior shares: the role, the skip, the input checks.

    Args:
      role: "top" (`p(z_t^top | z_{<t}^top)`, T2T `top_cond_prior`, scope "top") or
        "level" (`p(z_t^l | z_t^{>l}, z_{<t}^l)`, T2T `level_cond_prior`, scope
        "prior_on_z2"); a level prior also takes `mu0` (and `sigma0`).
      latent_skip: `latent_skip`, add the previous latent to the mean.

    Build with the shapes of the N past latents (a list of `[B, h, w, c]`).
    """

    previous_frame_only = False    # conditions on z_{t-1} alone
    steps_through_time = False
    has_data_init = False
    needs_static_batch = False

    def __init__(self, role, latent_skip=True, **kwargs):
        super().__init__(**kwargs)
        if role not in ROLES:
            raise ValueError(f"Unknown prior role {role!r}; expected one of {ROLES}.")
        self.role = role
        self.latent_skip = bool(latent_skip)

    @classmethod
    def past_latents(cls, num_cond_latents):
        """Past latents (N) this encoder conditions on, given `num_cond_latents`."""
        return 1 if cls.previous_frame_only else int(num_cond_latents)

    def zero_state(self, like):
        """The state before the first conditioned frame (`like`: a latent)."""
        del like
        return ()

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
        if self.previous_frame_only and num != 1:
            raise ValueError(f"{type(self).__name__} conditions on the previous latent "
                             f"only; got {num} latents")
        if getattr(self, "num_latents", None) not in (None, num):
            raise ValueError(
                f"this prior was built for {self.num_latents} conditioning latents, got {num}")

    def _inputs(self, latents, mu0):
        """`(list of past latents, mu0)` checked against the role."""
        latents = list(latents) if isinstance(latents, (list, tuple)) else [latents]
        self._check_num_latents(len(latents))
        if self.role == "level":
            if mu0 is None:
                raise ValueError("a level prior needs mu0")
            if mu0.shape[1:] != latents[-1].shape[1:]:
                raise ValueError(f"mu0 shape {mu0.shape} does not match the latent shape "
                                 f"{latents[-1].shape}")
        return latents, mu0

    def _skip(self, loc, last_latent):
        return last_latent + loc if self.latent_skip else loc

    def get_config(self):
        return {**super().get_config(), "role": self.role, "latent_skip": self.latent_skip}


class _NoisyInputPrior(ConditionalPrior):
    """A prior whose network input gets `N(0, latent_noise^2)` noise in training."""

    def __init__(self, role, latent_skip=True, latent_noise=0.0, **kwargs):
        super().__init__(role, latent_skip, **kwargs)
        if latent_noise < 0.0:
            raise ValueError(f"latent_noise must be >= 0, got {latent_noise}")
        self.latent_noise = float(latent_noise)

    def _noise(self, x, training):
        if training and self.latent_noise > 0.0:
            return x + tf.random.normal(tf.shape(x), stddev=self.latent_noise, dtype=x.dtype)
        return x

    def get_config(self):
        return {**super().get_config(), "latent_noise": self.latent_noise}


class Conv3dNetPrior(_NoisyInputPrior):
    """`conv3d_net`: the residual 3-D conv network over the window of N past latents
    (T2T `glow_ops.temporal_latent_to_dist`); a level prior stacks `mu0` (tiled over
    time) onto the channels.

    Args (besides role, latent_skip, latent_noise): `encoder_depth`,
    `encoder_width`, `activation` ("relu" | "gatu"), `latent_dropout`,
    `apply_dilations`, `dilation_rates` (T2T's `latent_*` hparams), and this port's
    `network_dtype` (the residual blocks' compute dtype) and `recompute_blocks`
    (recompute the blocks' activations in the backward pass; the model sets it under
    `memory_efficient_backprop`; `prior/temporal_network.py`).

    T2T variables: top `conv3d/...`, level `latent_stack/...`.
    """

    has_data_init = True

    def __init__(self, role, latent_skip=True, latent_noise=0.0, encoder_depth=2,
                 encoder_width=512, activation="relu", latent_dropout=0.0,
                 apply_dilations=False, dilation_rates=(1, 3), network_dtype="float32",
                 recompute_blocks=False, **kwargs):
        super().__init__(role, latent_skip, latent_noise, **kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {activation!r}; expected one of {ACTIVATIONS}.")
        self.encoder_depth = int(encoder_depth)
        self.encoder_width = int(encoder_width)
        self.activation = activation
        self.latent_dropout = float(latent_dropout)
        self.apply_dilations = bool(apply_dilations)
        self.dilation_rates = tuple(int(r) for r in dilation_rates)
        self.network_dtype = network_dtype
        self.recompute_blocks = bool(recompute_blocks)

    def build(self, latents_shape):
        self.num_latents, (batch, height, width, channels) = self._latent_shapes(
            latents_shape)
        self.net = TemporalLatentToDist(
            channels, self.encoder_depth, self.encoder_width, self.activation,
            self.latent_dropout, self.apply_dilations, self.dilation_rates,
            compute_dtype=self.network_dtype, recompute_blocks=self.recompute_blocks,
            name="conv3d" if self.role == "top" else "latent_stack")
        in_channels = channels if self.role == "top" else 2 * channels
        self.net.build((batch, self.num_latents, height, width, in_channels))

    def call(self, latents, mu0=None, sigma0=None, state=(), training=False, init=False):
        del sigma0, state
        latents, mu0 = self._inputs(latents, mu0)
        x = tf.stack(latents, axis=1)
        if self.role == "level":
            x = tf.concat([x, tf.tile(mu0[:, tf.newaxis], [1, len(latents), 1, 1, 1])], -1)
        loc, scale = self.net(self._noise(x, training), training=training, init=init)
        return self._skip(loc, latents[-1]), scale, ()

    def t2t_variables(self):
        return {f"{self.net.name}/{k}": v for k, v in self.net.t2t_variables().items()}

    def get_config(self):
        return {**super().get_config(), "encoder_depth": self.encoder_depth,
                "encoder_width": self.encoder_width, "activation": self.activation,
                "latent_dropout": self.latent_dropout,
                "apply_dilations": self.apply_dilations,
                "dilation_rates": list(self.dilation_rates),
                "network_dtype": self.network_dtype,
                "recompute_blocks": self.recompute_blocks}


class ConvNetPrior(_NoisyInputPrior):
    """`conv_net`: a 2-D conv network on the N past latents concatenated over channels
    (a level prior puts `mu0` first); T2T's `glow_ops.latent_to_dist`.

    Args (besides role, latent_skip, latent_noise): `architecture` ("glow_resnet" |
    "glow_nn"), `encoder_depth`, `encoder_width`, `pre_output_channels` (glow_nn),
    `coupling_dropout` (glow_resnet).

    T2T variables: top `conditional/...`, level `latent_stack/...`.
    """

    has_data_init = True

    def __init__(self, role, latent_skip=True, latent_noise=0.0, architecture="glow_resnet",
                 encoder_depth=2, encoder_width=512, pre_output_channels=512,
                 coupling_dropout=0.0, **kwargs):
        super().__init__(role, latent_skip, latent_noise, **kwargs)
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"Unknown latent architecture {architecture!r}; expected one of "
                f"{ARCHITECTURES}.")
        self.architecture = architecture
        self.encoder_depth = int(encoder_depth)
        self.encoder_width = int(encoder_width)
        self.pre_output_channels = int(pre_output_channels)
        self.coupling_dropout = float(coupling_dropout)

    def build(self, latents_shape):
        self.num_latents, (batch, height, width, channels) = self._latent_shapes(
            latents_shape)
        self.net = LatentToDist(
            channels, self.architecture, self.encoder_depth, self.encoder_width,
            self.pre_output_channels, self.coupling_dropout,
            name="conditional" if self.role == "top" else "latent_stack")
        inputs = self.num_latents + (self.role == "level")
        self.net.build((batch, height, width, inputs * channels))

    def call(self, latents, mu0=None, sigma0=None, state=(), training=False, init=False):
        del sigma0, state
        latents, mu0 = self._inputs(latents, mu0)
        x = tf.concat(([mu0] if self.role == "level" else []) + latents, axis=-1)
        loc, scale = self.net(self._noise(x, training), training=training, init=init)
        return self._skip(loc, latents[-1]), scale, ()

    def t2t_variables(self):
        return {f"{self.net.name}/{k}": v for k, v in self.net.t2t_variables().items()}

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture,
                "encoder_depth": self.encoder_depth, "encoder_width": self.encoder_width,
                "pre_output_channels": self.pre_output_channels,
                "coupling_dropout": self.coupling_dropout}


class ConvLSTMPrior(_NoisyInputPrior):
    """`conv_lstm`: one ConvLSTM step per frame on `z_{t-1}` (a level prior: `[mu0,
    z_{t-1}]`) and a single zero-conv head on the new `h` (T2T `common_video.conv_lstm_2d`).

    The state `(c, h)` is carried from frame to frame: pass `zero_state(z)` at the
    first conditioned frame and the returned state afterwards.

    Args (besides role, latent_skip, latent_noise): `encoder_width`, the LSTM width.

    T2T variables: `conv_lstm/{kernel,biases}` and the head `conditional/conv2d/...`
    (top) or `state_to_dist/conv2d/...` (level).
    """

    previous_frame_only = True
    steps_through_time = True

    def __init__(self, role, latent_skip=True, latent_noise=0.0, encoder_width=512,
                 **kwargs):
        super().__init__(role, latent_skip, latent_noise, **kwargs)
        self.encoder_width = int(encoder_width)

    def build(self, latents_shape):
        self.num_latents, shape = self._latent_shapes(latents_shape)
        channels = shape[-1]
        self.net = ConvLSTMToDist(
            channels, self.encoder_width,
            head_name="conditional" if self.role == "top" else "state_to_dist",
            name="conv_lstm_to_dist")
        in_channels = channels if self.role == "top" else 2 * channels
        self.net.build((*shape[:-1], in_channels))

    def zero_state(self, like):
        filters = self.net.cell.filters
        zeros = tf.zeros(tf.concat([tf.shape(like)[:-1], [filters]], 0))
        zeros = tf.ensure_shape(zeros, [None, *like.shape[1:-1], filters])
        return (zeros, zeros)

    def call(self, latents, mu0=None, sigma0=None, state=(), training=False):
        del sigma0
        latents, mu0 = self._inputs(latents, mu0)
        last = latents[-1]
        x = last if self.role == "top" else tf.concat([mu0, last], axis=-1)
        loc, scale, new_state = self.net(self._noise(x, training), state or None)
        return self._skip(loc, last), scale, new_state

    def t2t_variables(self):
        return dict(self.net.t2t_variables())

    def get_config(self):
        return {**super().get_config(), "encoder_width": self.encoder_width}


class PointwisePrior(ConditionalPrior):
    """`pointwise`: per-position Gaussians `N(m * z_{t-1}, exp(3 rho))` whose
    parameters have the latent's full shape, batch included (as in T2T; the model
    therefore needs a static batch). A level prior merges them with the marginal
    `(mu0, sigma0)`: `loc = mu0 + m z_{t-1}`, the scale chosen by `level_scale`.

    Args (besides role, latent_skip): `learn_top_scale` (top: whether `rho` is
    trainable), `level_scale` (level: "prev_level", "prev_step" or "normal").

    T2T variables: top `conditional/{latent_multiplier, log_scale_latent}`; level
    `latent_prior/{latent_multiplier, log_scale_latent}` (+ `merge_std` for
    level_scale "normal").
    """

    previous_frame_only = True
    steps_through_time = True
    needs_static_batch = True

    def __init__(self, role, latent_skip=True, learn_top_scale=False,
                 level_scale="prev_level", **kwargs):
        super().__init__(role, latent_skip, **kwargs)
        if level_scale not in LEVEL_SCALES:
            raise ValueError(
                f"Unknown level_scale {level_scale!r}; expected one of {LEVEL_SCALES}.")
        self.learn_top_scale = bool(learn_top_scale)
        self.level_scale = level_scale

    def build(self, latents_shape):
        self.num_latents, shape = self._latent_shapes(latents_shape)
        if self.role == "top":
            self.net = ScaleGaussianPrior(learn_scale=self.learn_top_scale,
                                          name="conditional")
        else:
            self.net = ScaleGaussianPrior(learn_scale=True, name="latent_prior")
            self.merge = MergeLevelAndLatent(self.level_scale, name="merge")
            self.merge.build(shape)
        self.net.build(shape)

    def call(self, latents, mu0=None, sigma0=None, state=(), training=False):
        del state, training
        latents, mu0 = self._inputs(latents, mu0)
        last = latents[-1]
        loc, scale = self.net(last)
        if self.role == "level":
            if sigma0 is None:
                if self.level_scale == "prev_level":
                    raise ValueError("pointwise with level_scale='prev_level' needs sigma0")
                sigma0 = tf.ones_like(mu0)  # unused by prev_step / normal
            loc, scale = self.merge(mu0, sigma0, loc, scale)
        return self._skip(loc, last), scale, ()

    def t2t_variables(self):
        out = {f"{self.net.name}/{k}": v for k, v in self.net.t2t_variables().items()}
        if self.role == "level":
            out.update(self.merge.t2t_variables())
        return out

    def get_config(self):
        return {**super().get_config(), "learn_top_scale": self.learn_top_scale,
                "level_scale": self.level_scale}


# `latent_dist_encoder` name -> class.
ENCODERS = {
    "conv3d_net": Conv3dNetPrior,
    "conv_net": ConvNetPrior,
    "conv_lstm": ConvLSTMPrior,
    "pointwise": PointwisePrior,
}


def encoder_class(name):
    """The prior class of `latent_dist_encoder` `name`."""
    if name not in ENCODERS:
        raise ValueError(f"Unknown latent encoder {name!r}; expected one of "
                         f"{tuple(ENCODERS)}.")
    return ENCODERS[name]


def conditional_prior(encoder, role, **options):
    """A conditional prior of `encoder` for `role` ("top" | "level").

    `options` may hold every `latent_*` option of any encoder (the model passes them
    all); the class receives only those its constructor takes, plus Keras layer
    arguments (`name`).
    """
    cls = encoder_class(encoder)
    accepted = set()
    for klass in cls.__mro__:
        if klass is keras.layers.Layer:
            break
        accepted |= set(inspect.signature(klass.__init__).parameters)
    accepted |= {"name", "dtype"}
    return cls(role, **{k: v for k, v in options.items() if k in accepted})


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

    def call(self, z):
        return self.head(tf.zeros_like(z))

    def t2t_variables(self):
        return {"top_learn_prior/" + k: v for k, v in self.head.t2t_variables().items()}
