"""VideoFlow: the per-frame Glow flow shared across time plus the latent prior.

For a clip `x_0 .. x_{T-1}` every frame is encoded independently by the flow,
`x_t -> (z_t^0, .., z_t^{L-2}, z_t^top)`, and the latents are scored autoregressively
(T2T `glow_ops.encoder_decoder`, `NextFrameGlow.top_cond_prior`,
`NextFrameGlow.video_objective_tower`; docs/t2t.md, Flow step and multi-scale flow,
Conditioning, Loss):

    J_t = -D n ln 2 + ln|det dz_t/dx_t|                          n = n_bits_x (8)
          + sum_{l < L-1} ln N(z_t^l; mu_t^l, sigma_t^l)      level priors
          + ln N(z_t^top; mu_t^top, sigma_t^top)               top prior
    bpp_t = -J_t / (D ln 2)               bits per sub-pixel dimension, D = H W C

The level prior of `z_t^l` sees the kept half `x1_t^l` (a function of the coarser
latents of the same frame) through the marginal head `(mu0, sigma0) = level_prior(x1)`;
once `num_cond_latents` past frames exist (and conditioning is on) the conditional
prior network replaces it, fed with the past level latents and `mu0`. The top prior
is the learned marginal until then, the conditional network afterwards. With
`latent_skip`, conditional means are `z_{t-1} + net(...)`.

Frames arrive as uint8 `[B, T, H, W, C]`; `v -> v / 255 - 0.5`, plus uniform
dequantisation noise `U[0, 1/256)` (T2T `glow_ops.uniform_binning_correction`;
docs/t2t.md, Dequantisation). Samples are mapped back with T2T's `postprocess` (clip,
`x 256`, truncate).

With `n_bits_x = n < 8` (not in T2T's video model, which ignores the hparam; Glow's
image model has it) the frames are first reduced to n bits as Glow's image `preprocess`
does, `x = floor(v / 2^(8-n)) / 2^n - 0.5`, the noise is `U[0, 2^-n)` (the same draws
stretched by `2^(8-n)`), and bits per pixel count n-bit values: they are not
comparable with 8-bit figures. Samples map bin k back to `round(255 k / (2^n - 1))`,
which reduces to k again.
"""

import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from t2t_videoflow.flow.multiscale import MultiScaleFlow
from t2t_videoflow.model.noise import NOISE_WIDTH, RNG_ALG, batch_noise  # noqa: F401
from t2t_videoflow.layers.keras_tracking import (
    keras_layers_in, keras_variables, random_kernels_deferred, reseed_random_kernels,
    untracked)
from t2t_videoflow.prior.latent_prior import (
    MarginalTopPrior, conditional_prior, encoder_class)
from t2t_videoflow.prior.latent_to_dist import SingleConvDist
from t2t_videoflow.errors import CheckpointError, FrameError

tfd = tfp.distributions

GEN_MODES = ("conditional", "unconditional")
TOP_PRIORS = ("single_conv", "normal")
# Encoders that condition on the previous frame only; the others on the last N.


def check_n_bits(n_bits):
    """The number of bits per pixel value the model sees: an int in 1..8."""
    if isinstance(n_bits, bool) or int(n_bits) != n_bits or not 1 <= n_bits <= 8:
        raise ValueError(f"n_bits_x must be an integer from 1 to 8; got {n_bits!r}.")
    return int(n_bits)


def preprocess(frames, n_bits=8):
    """uint8 (or float in [0, 255]) frames -> float32 in [-0.5, 0.5].

    n_bits = 8 (T2T's video model): `v / 255 - 0.5`. n_bits = n < 8 (Glow's image
    `preprocess`): `floor(v / 2^(8-n)) / 2^n - 0.5`, the lower edge of v's n-bit bin.
    """
    v = tf.cast(frames, tf.float32)
    if n_bits == 8:
        return v / 255.0 - 0.5
    return tf.floor(v / 2.0 ** (8 - n_bits)) / 2.0 ** n_bits - 0.5


def postprocess(x, n_bits=8):
    """T2T's output transform: float frames -> uint8 (T2T `glow_ops.postprocess`).

    Non-finite -> 1.0, clip to [-0.5, 0.5], `(x + 0.5) * 256`, clip to [0, 255],
    truncate. Noise-free `v / 255 - 0.5` maps back to exactly `v`.

    With n_bits = n < 8 the bin `k = floor((x + 0.5) 2^n)` (clipped to [0, 2^n - 1])
    becomes `round(255 k / (2^n - 1))`: full-range colours whose n-bit bin is k again.
    """
    x = tf.where(tf.math.is_finite(x), x, tf.ones_like(x))
    x = tf.clip_by_value(x, -0.5, 0.5) + 0.5
    if n_bits == 8:
        return tf.cast(tf.clip_by_value(x * 256.0, 0.0, 255.0), tf.uint8)
    top = 2.0 ** n_bits - 1.0
    k = tf.clip_by_value(tf.floor(x * 2.0 ** n_bits), 0.0, top)
    return tf.cast(tf.round(k * (255.0 / top)), tf.uint8)


def level_temperatures(temperature, n_levels):
    """Sampling temperatures per flow level: float32 `[n_levels]`, finest level first,
    the top last.

    `temperature` is a scalar tau (every level) or a sequence / rank-1 tensor of
    `n_levels` values `(tau_0, ..., tau_{L-2}, tau_top)`. Python and NumPy values (and
    eager tensors) must be >= 0; a symbolic tensor is not checked here.

    Raises:
      ValueError: a wrong number of values, or a negative or non-finite one.
    """
    taus = tf.cast(temperature, tf.float32)
    if taus.shape.rank == 0:
        taus = tf.fill([n_levels], taus)
    elif taus.shape.rank != 1 or taus.shape[0] not in (n_levels, None):
        raise ValueError(
            f"temperature must be a number or one per flow level ({n_levels} values, "
            f"finest level first, the top last); got shape {taus.shape.as_list()}.")
    if not tf.is_tensor(temperature) or tf.executing_eagerly():
        values = np.atleast_1d(np.asarray(temperature, np.float32))
        if not (np.isfinite(values).all() and (values >= 0).all()):
            raise ValueError(f"temperature must be >= 0 and finite; got "
                             f"{values.tolist() if values.size > 1 else float(values[0])}.")
    return taus


def tempered_draw(loc, scale, tau, eps):
    """`loc + tau scale eps`, a draw from `N(loc, (tau scale)^2)`; exactly `loc` at
    tau = 0, also where `scale` has overflowed to inf (where the product would be NaN),
    as T2T's `temperature=0` sampling returns the prior mean."""
    return tf.where(tau > 0.0, loc + tau * scale * eps, loc)


def gaussian_log_prob(z, loc, scale):
    """`sum_{h, w, c} ln N(z; loc, scale)` per example: `[B]`."""
    return tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=[1, 2, 3])


def _clip_log_prob(z, loc, scale):
    """`sum_{h, w, c} ln N(z; loc, scale)` per example and frame: `[B, T]`."""
    return tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=[2, 3, 4])


def _dim(x, axis):
    """`x.shape[axis]` where static, else the dynamic size (a scalar tensor)."""
    static = x.shape[axis]
    return int(static) if static is not None else tf.shape(x)[axis]


class ClipEncoding(NamedTuple):
    """The flow's encoding of every frame of a clip; time is axis 1 throughout.

    top: `[B, T, h, w, c]`; latents, conditions: per level l < L-1 the latent `z^l`
    and the kept half `x1^l` it is conditioned on, `[B, T, h_l, w_l, c_l]`;
    log_det: `[B, T]` (`ln |det dz/dx|` per frame); marginals: per level the
    marginal head's `(mu0, sigma0)` on `x1^l`, or None.
    """
    top: tf.Tensor
    latents: list
    conditions: list
    log_det: tf.Tensor
    marginals: list = None


class VideoFlow(tf.Module):
    """The VideoFlow model (T2T `NextFrameGlow`) from plain arguments.

    Use `build_model(hparams, frame_shape)` to build it from an hparams object.

    Args:
      frame_shape: `(H, W, C)`.
      n_levels, depth, coupling, coupling_width, activation, coupling_dropout: the flow.
      gen_mode: "conditional" (VideoFlow) or "unconditional" (per-frame Glow).
      top_prior: "single_conv" | "normal", the marginal top prior in unconditional mode
        (conditional mode always uses single_conv, as T2T).
      num_cond_latents: N, past frames the conv3d_net / conv_net priors see.
      cond_first_frame: also condition on the clip's first frame (conv_net).
      latent_dist_encoder, latent_*: the conditional prior (see `prior/latent_prior.py`).
      level_scale, learn_top_scale: pointwise options.
      batch_size: static batch, needed only by the pointwise encoder (its parameters
        carry the batch dimension, as in T2T).
      seed: fixes every initial weight (the flow's 1x1 conv rotations and, through
        derived seeds, every random kernel of the coupling and prior networks); None
        draws them from Python's and TF's global random state.
      memory_efficient_backprop: train the flow by recomputing its activations from
        the level outputs instead of storing them (see `flow/recompute.py`), and
        recompute the conv3d_net prior's residual blocks in the backward pass
        (`prior/temporal_network.py`).
      network_dtype: "float32" (T2T) or "bfloat16": the compute dtype of the coupling
        networks and of the conv3d_net prior's residual blocks (weights, flow
        arithmetic, log-dets and losses stay float32; `layers/coupling_network.py`).
      n_bits_x: 8 (T2T) or n < 8: model n-bit pixel values (module docstring).
      loop_flow_steps: inside a graph, run each flow level's steps as one
        `tf.while_loop` (same arithmetic; a much smaller graph, so faster tracing and
        start-up, and slightly slower steps; `flow/flow_step.py`).
    """

    def __init__(self, frame_shape, n_levels=3, depth=32, coupling="affine",
                 coupling_width=512, activation="relu", coupling_dropout=0.0,
                 gen_mode="conditional", top_prior="single_conv", num_cond_latents=1,
                 cond_first_frame=False, latent_dist_encoder="conv_net",
                 latent_skip=True, latent_noise=0.0, latent_encoder_depth=2,
                 latent_encoder_width=512, latent_activation="relu", latent_dropout=0.0,
                 latent_apply_dilations=False, latent_dilation_rates=(1, 3),
                 latent_architecture="glow_resnet", latent_pre_output_channels=512,
                 level_scale="prev_level", learn_top_scale=False, batch_size=None,
                 seed=None, memory_efficient_backprop=False, network_dtype="float32",
                 n_bits_x=8, loop_flow_steps=False,
                 name="videoflow"):
        super().__init__(name=name)
        if gen_mode not in GEN_MODES:
            raise ValueError(f"Unknown gen_mode {gen_mode!r}; expected one of {GEN_MODES}.")
        if top_prior not in TOP_PRIORS:
            raise ValueError(
                f"Unknown top_prior {top_prior!r}; expected one of {TOP_PRIORS}.")
        if num_cond_latents < 1:
            raise ValueError(f"num_cond_latents must be >= 1; got {num_cond_latents}.")
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.n_bits = check_n_bits(n_bits_x)
        self.gen_mode = gen_mode
        self.top_prior = top_prior
        self.latent_dist_encoder = latent_dist_encoder
        self.cond_first_frame = bool(cond_first_frame)
        prior_class = encoder_class(latent_dist_encoder)
        self.num_cond_latents = prior_class.past_latents(num_cond_latents)
        # Kernels that `reseed_random_kernels` redraws are created zero-filled,
        # not drawn twice (keras_tracking.random_kernels_deferred).
        with random_kernels_deferred(enabled=seed is not None):
            self.flow = MultiScaleFlow(self.frame_shape, n_levels, depth, coupling,
                                       coupling_width, activation, coupling_dropout, seed=seed,
                                       memory_efficient_backprop=memory_efficient_backprop,
                                       network_dtype=network_dtype,
                                       loop_steps=loop_flow_steps)
            level_shapes, top_shape = self.flow.latent_shapes()
            self.level_shapes, self.top_shape = level_shapes, top_shape
            level_priors = []
            for l, shape in enumerate(level_shapes):
                head = SingleConvDist(name="level_prior")
                head.build((None, *shape))
                level_priors.append(head)
            marginal_top_prior = MarginalTopPrior(name="unconditional")
            marginal_top_prior.build((None, *top_shape))
            level_cond_priors, top_cond_prior = [], None
            if gen_mode == "conditional":
                # Every encoder's options; each prior class takes only its own.
                options = dict(
                    latent_skip=latent_skip, latent_noise=latent_noise,
                    encoder_depth=latent_encoder_depth, encoder_width=latent_encoder_width,
                    activation=latent_activation, latent_dropout=latent_dropout,
                    apply_dilations=latent_apply_dilations,
                    dilation_rates=latent_dilation_rates, architecture=latent_architecture,
                    pre_output_channels=latent_pre_output_channels,
                    coupling_dropout=coupling_dropout, level_scale=level_scale,
                    learn_top_scale=learn_top_scale, network_dtype=network_dtype,
                    recompute_blocks=memory_efficient_backprop)
                n_cond = self.num_cond_latents + int(self.cond_first_frame)
                batch = batch_size if prior_class.needs_static_batch else None
                for l, shape in enumerate(level_shapes):
                    prior = conditional_prior(latent_dist_encoder, "level",
                                              name="level_cond_prior", **options)
                    prior.build([(batch, *shape)] * n_cond)
                    level_cond_priors.append(prior)
                top_cond_prior = conditional_prior(latent_dist_encoder, "top", name="top",
                                                   **options)
                top_cond_prior.build([(batch, *top_shape)] * n_cond)
            # The Keras 3 prior layers are held untracked; their variables are tracked once,
            # in `prior_variables` (see layers/keras_tracking.py).
            self.level_priors = untracked(level_priors)
            self.marginal_top_prior = untracked(marginal_top_prior)
            self.level_cond_priors = untracked(level_cond_priors)
            self.top_cond_prior = untracked(top_cond_prior)
            layers = {f"level_prior_{l}": p for l, p in enumerate(level_priors)}
            layers["marginal_top_prior"] = marginal_top_prior
            layers.update({f"level_cond_prior_{l}": p
                           for l, p in enumerate(level_cond_priors)})
            if top_cond_prior is not None:
                layers["top_cond_prior"] = top_cond_prior
            if seed is not None:
                reseed_random_kernels(keras_layers_in(self.flow) + list(layers.values()),
                                      seed)
        self.prior_variables = keras_variables(layers)

    # -- input checks ------------------------------------------------------------------

    def check_frames(self, frames, min_frames=1, name="frames"):
        """ValueError unless `frames` is `[B >= 1, T >= min_frames, H, W, C]` uint8 (or
        float with values in [0, 255]).

        The contract for float frames is pixel values in [0, 255], as uint8 frames hold
        them. Float frames that look scaled to [0, 1] (every value <= 1 and some value
        strictly between 0 and 1) are refused: scored as given they would be a
        near-black video (checked eagerly; traced callers pass uint8).
        """
        h, w, c = self.frame_shape
        expected = f"[batch, time, {h}, {w}, {c}]"
        frames = tf.convert_to_tensor(frames)
        if frames.shape.rank != 5:
            raise FrameError(f"{name} must have shape {expected}; got {frames.shape}.")
        if tuple(frames.shape[2:]) != (h, w, c):
            raise FrameError(f"{name} must have shape {expected}; got {frames.shape}.")
        if frames.shape[0] == 0:
            raise FrameError(f"{name} is an empty batch (0 clips, shape {frames.shape}); "
                             "give at least one clip along dimension 0.")
        if frames.shape[1] is not None and frames.shape[1] < min_frames:
            raise FrameError(f"{name} needs at least {min_frames} frames along time; "
                             f"got {frames.shape[1]} (shape {frames.shape}).")
        if frames.dtype != tf.uint8:
            if not frames.dtype.is_floating:
                raise FrameError(f"{name} must be uint8 (or float in [0, 255]); "
                                 f"got dtype {frames.dtype.name}.")
            # NaN fails both comparisons, so non-finite frames are rejected too.
            if tf.executing_eagerly() and not bool(tf.reduce_all(
                    (frames >= 0.0) & (frames <= 255.0))):
                lo, hi = float(tf.reduce_min(frames)), float(tf.reduce_max(frames))
                raise FrameError(f"{name} must hold finite pixel values in [0, 255]; "
                                 f"got values in [{lo}, {hi}].")
            if tf.executing_eagerly() and float(tf.reduce_max(frames)) <= 1.0 and bool(
                    tf.reduce_any((frames > 0.0) & (frames < 1.0))):
                raise FrameError(
                    f"{name} looks like float pixels scaled to [0, 1] (max "
                    f"{float(tf.reduce_max(frames)):.4g}); the model takes pixel values "
                    f"in [0, 255]: pass uint8 frames or multiply the floats by 255.")
        return frames

    # -- the latent-prior engine: conditioning rules ---------------------------------

    @property
    def frames_before_conditioning(self):
        """Frames of a clip scored by the marginal priors before the first frame with a
        full conditioning set (T2T `next_frame_glow.get_cond_latents`):
        `num_cond_latents (+1 with cond_first_frame)` when conditional, counted in the
        sequence the priors see (with `cond_first_frame`, the clip with frame 0
        duplicated at the front); every frame is marginal when unconditional
        (1 returned)."""
        if self.gen_mode != "conditional":
            return 1
        return self.num_cond_latents + int(self.cond_first_frame)

    @property
    def _duplicates_first_frame(self):
        return self.gen_mode == "conditional" and self.cond_first_frame

    def _duplicate_first_frame(self, x):
        """T2T's `cond_first_frame` (`NextFrameGlow.get_all_frames`): `[x0, x1, ..]` ->
        `[x0, x0, x1, ..]`, so frame 0's latent is both the extra conditioning entry and
        a window entry. The identity otherwise."""
        if not self._duplicates_first_frame:
            return x
        return tf.concat([x[:, :1], x], axis=1)

    @property
    def min_context_frames(self):
        """Context frames `sample` needs: enough for the first generated frame to have a
        full conditioning set (`frames_before_conditioning`, less the duplicated
        first frame with `cond_first_frame`); 1 when unconditional."""
        return max(1, self.frames_before_conditioning - int(self._duplicates_first_frame))

    @property
    def _recurrent(self):
        """Priors that step through time one frame at a time (conv_lstm carries a
        state, pointwise has parameters with a static batch dimension)."""
        return self.gen_mode == "conditional" and self.top_cond_prior.steps_through_time

    def _conditioning_set(self, window, first=None):
        """`[first] + window` (T2T `next_frame_glow.get_cond_latents`): the past latents a
        conditional prior sees."""
        return ([first] if self.cond_first_frame else []) + list(window)

    def _top_marginal(self, like):
        """`(loc0, scale0)` of the marginal top prior, `like`'s shape `[B, h, w, c]`."""
        if self.gen_mode == "unconditional" and self.top_prior == "normal":
            return tf.zeros_like(like), tf.ones_like(like)
        return self.marginal_top_prior(like)

    def _zero_prior_states(self, like_levels, like_top):
        """The conditional priors' states before the first conditioned frame, per
        level and for the top (`()` for priors without state)."""
        return ([p.zero_state(z) for p, z in zip(self.level_cond_priors, like_levels)],
                self.top_cond_prior.zero_state(like_top))

    @staticmethod
    def _call_prior(prior, past, mu0=None, sigma0=None, state=(), training=False,
                    init=False):
        """`(loc, scale, new_state)` of a conditional prior; `init` (data-dependent
        init of its actnorms) goes only to priors that have one."""
        extra = {"init": init} if prior.has_data_init else {}
        return prior(past, mu0, sigma0=sigma0, state=state, training=training, **extra)

    def _conditional_level(self, level, past, mu0, sigma0, state, training, init):
        """`(loc, scale, new_state)` of the conditional level prior."""
        return self._call_prior(self.level_cond_priors[level], past, mu0, sigma0, state,
                                training, init)

    def _conditional_top(self, past, state, training, init):
        """`(loc, scale, new_state)` of the conditional top prior."""
        return self._call_prior(self.top_cond_prior, past, state=state, training=training,
                                init=init)

    # -- the engine: scoring a whole clip (teacher forcing) -------------------------------

    def encode_clip(self, x, training=False, with_marginals=True):
        """Flow encodings of every frame of `x [B, T, H, W, C]` from ONE flow pass.

        The T frames (T may be a tensor) are folded into the batch time-major, encoded
        together and unfolded; the result equals a per-frame `flow.encode(x[:, t])` up
        to float rounding. With `with_marginals`, the level prior heads'
        `(mu0, sigma0)` on the kept halves are computed in the same batched way.

        Returns:
          A `ClipEncoding` of `[B, T, ...]` tensors.
        """
        h, w, c = self.frame_shape
        batch, time = _dim(x, 0), _dim(x, 1)
        folded = tf.reshape(tf.transpose(x, [1, 0, 2, 3, 4]), [-1, h, w, c])
        enc = self.flow.encode(folded, training=training)

        def unfold(z):
            z = tf.reshape(z, [time, batch, *z.shape[1:]])
            return tf.transpose(z, [1, 0, *range(2, len(z.shape))])

        marginals = None
        if with_marginals:
            marginals = [tuple(unfold(v) for v in head(x1))
                         for head, x1 in zip(self.level_priors, enc.conditions)]
        return ClipEncoding(top=unfold(enc.top), latents=[unfold(z) for z in enc.latents],
                            conditions=[unfold(x1) for x1 in enc.conditions],
                            log_det=unfold(enc.log_det), marginals=marginals)

    def prior_params(self, enc, condition=True, training=False, init=False):
        """The prior of every latent of a clip, teacher-forced (all past latents known).

        Frame t uses the marginal priors while `t < frames_before_conditioning` (every
        frame in unconditional mode, or where `condition` is False) and the
        conditional priors on its conditioning set afterwards. The conv3d_net / conv_net
        priors of all conditioned frames run as ONE batch of `B (T - n0)` windows
        `z_{t-N} .. z_{t-1}`; conv_lstm and pointwise step through time in a
        `tf.while_loop`.

        Args:
          enc: a `ClipEncoding` with marginals.
          condition: bool or boolean tensor (T2T's `pretrain_steps` switch).
          training: dropout and latent noise on.
          init: data-dependent init of the prior networks' actnorms on this pass.

        Returns:
          `(level_params, top_params)`: per level `(loc, scale)` and the top's
          `(loc, scale)`, each `[B, T, h, w, c]` like the latents.
        """
        loc0, scale0 = self._top_marginal(enc.top[:, 0])
        time = _dim(enc.top, 1)
        broadcast = lambda v: tf.broadcast_to(v[:, tf.newaxis], tf.shape(enc.top))
        top_marginal = (broadcast(loc0), broadcast(scale0))
        level_marginals = list(enc.marginals)
        if self.gen_mode != "conditional":
            return level_marginals, top_marginal
        n0 = self.frames_before_conditioning
        if isinstance(time, int) and time <= n0:
            return level_marginals, top_marginal
        scorer = (self._conditioned_params_loop if self._recurrent
                  else self._conditioned_params_batched)
        if isinstance(time, int):
            levels, top = scorer(enc, n0, training, init)
        else:  # a clip of unknown length may have no conditioned frame at all
            empty = lambda z: (z[:, :0], z[:, :0])
            levels, top = tf.cond(
                time > n0, lambda: scorer(enc, n0, training, init),
                lambda: ([empty(z) for z in enc.latents], empty(enc.top)))

        def join(conditioned, marginal):
            # Frames before n0 keep the marginal; after it the conditional prior, or
            # the marginal again where `condition` is False.
            if condition is not True:
                conditioned = tf.where(condition, conditioned, marginal[:, n0:])
            return tf.concat([marginal[:, :n0], conditioned], axis=1)

        level_params = [(join(loc, m[0]), join(scale, m[1]))
                        for (loc, scale), m in zip(levels, level_marginals)]
        top_params = (join(top[0], top_marginal[0]), join(top[1], top_marginal[1]))
        return level_params, top_params

    def _conditioned_params_batched(self, enc, n0, training, init):
        """conv3d_net / conv_net priors of frames `n0 .. T-1` in one batch of windows."""
        n = self.num_cond_latents
        batch, time = _dim(enc.top, 0), _dim(enc.top, 1)
        count = time - n0
        flat = lambda z: tf.reshape(z, [-1, *z.shape[2:]])
        unflat = lambda v: tf.reshape(v, [batch, count, *v.shape[1:]])

        def windows(z):
            past = [z[:, n0 - n + j:time - n + j] for j in range(n)]
            first = None
            if self.cond_first_frame:
                first = tf.ensure_shape(tf.broadcast_to(z[:, :1], tf.shape(past[0])),
                                        past[0].shape)
            return [flat(p) for p in self._conditioning_set(past, first)]

        levels = []
        for l, z in enumerate(enc.latents):
            mu0, sigma0 = (flat(v[:, n0:]) for v in enc.marginals[l])
            loc, scale, _ = self._conditional_level(l, windows(z), mu0, sigma0, (),
                                                    training, init)
            levels.append((unflat(loc), unflat(scale)))
        loc, scale, _ = self._conditional_top(windows(enc.top), (), training, init)
        return levels, (unflat(loc), unflat(scale))

    def _conditioned_params_loop(self, enc, n0, training, init):
        """conv_lstm / pointwise priors of frames `n0 .. T-1`, stepping through time."""
        time = _dim(enc.top, 1)
        num_levels = len(self.level_shapes)
        level_states, top_state = self._zero_prior_states(
            [z[:, 0] for z in enc.latents], enc.top[:, 0])
        window = lambda z, t: [z[:, t - self.num_cond_latents + j]
                               for j in range(self.num_cond_latents)]

        def body(t, arrays, level_states, top_state):
            new_arrays, new_level_states = [], []
            for l, z in enumerate(enc.latents):
                past = self._conditioning_set(window(z, t), z[:, 0])
                mu0, sigma0 = (v[:, t] for v in enc.marginals[l])
                loc, scale, state = self._conditional_level(
                    l, past, mu0, sigma0, level_states[l], training, init)
                new_level_states.append(state)
                new_arrays += [loc, scale]
            past = self._conditioning_set(window(enc.top, t), enc.top[:, 0])
            loc, scale, top_state = self._conditional_top(past, top_state, training, init)
            new_arrays += [loc, scale]
            arrays = [a.write(t - n0, v) for a, v in zip(arrays, new_arrays)]
            return t + 1, arrays, new_level_states, top_state

        specs = [z[:, 0] for z in enc.latents for _ in range(2)] + [enc.top[:, 0]] * 2
        arrays = [tf.TensorArray(tf.float32, size=time - n0, element_shape=s.shape)
                  for s in specs]
        _, arrays, _, _ = tf.while_loop(
            lambda t, *_: t < time, body, (tf.constant(n0), arrays, level_states, top_state))
        values = [tf.transpose(a.stack(), [1, 0, *range(2, len(s.shape) + 1)])
                  for a, s in zip(arrays, specs)]
        levels = [(values[2 * l], values[2 * l + 1]) for l in range(num_levels)]
        return levels, (values[-2], values[-1])

    def frame_objectives(self, x, condition=True, training=False, init=False,
                         return_details=False):
        """Per-frame objectives `J_t` (nats) for dequantised frames `x [B, T, H, W, C]`.

        Args:
          x: float frames in [-0.5, 0.5] (+ dequantisation noise); T may be a tensor.
          condition: bool or boolean tensor; False uses the marginal priors for every
            frame (T2T's `pretrain_steps` switch, decided by the training loop).
          training: enables dropout and latent noise.
          init: data-dependent init of the prior networks' actnorms on this pass.
          return_details: also return a dict of the parts, each with time as axis 1:
            "encoding" (`ClipEncoding`), "level_params" / "top_params" (`(loc,
            scale)`), "level_log_probs" (per level `[B, T]`), "top_log_prob" `[B, T]`.

        Returns:
          `[B, T]` tensor of `J_t` (and the details dict).
        """
        d = float(np.prod(self.frame_shape))
        enc = self.encode_clip(x, training=training)
        level_params, top_params = self.prior_params(enc, condition, training, init)
        level_log_probs = [_clip_log_prob(z, loc, scale)
                           for z, (loc, scale) in zip(enc.latents, level_params)]
        top_log_prob = _clip_log_prob(enc.top, *top_params)
        objectives = -d * self.n_bits * math.log(2.0) + enc.log_det + top_log_prob
        if level_log_probs:
            objectives += tf.add_n(level_log_probs)
        if not return_details:
            return objectives
        return objectives, dict(encoding=enc, level_params=level_params,
                                top_params=top_params, level_log_probs=level_log_probs,
                                top_log_prob=top_log_prob)

    # -- pixels: dequantisation, bits per pixel, data-dependent init ----------------

    def dequantize(self, frames, noise=None, seed=None):
        """uint8 frames -> `v/255 - 0.5 + u`, `u ~ U[0, 1/256)` (or the given `noise`).

        With n_bits_x = n < 8: `floor(v / 2^(8-n)) / 2^n - 0.5 + 2^(8-n) u`. `noise` is
        always given in [0, 1/256), so one noise stream serves every n.
        """
        x = preprocess(frames, self.n_bits)
        if noise is None:
            if seed is None:
                noise = tf.random.uniform(tf.shape(x), 0.0, NOISE_WIDTH)
            else:               # row i is clip i under the pair `seed` (model/noise.py)
                noise = batch_noise(tf.shape(x), seed)
        if self.n_bits < 8:
            noise = noise * 2.0 ** (8 - self.n_bits)
        return x + noise

    def bits_per_pixel(self, frames, num_context, noise=None, seed=None, condition=True,
                       training=False):
        """Bits per dimension of every frame after the first `num_context` frames.

        Args:
          frames: uint8 `[B, T, H, W, C]`, T > num_context.
          num_context: leading frames that condition but are not scored. In
            unconditional mode pass 0 to score every frame (T2T's eval protocol there).
          noise: optional dequantisation noise `[B, T, H, W, C]` in [0, 1/256)
            (stretched to the n-bit bin when n_bits_x < 8, see `dequantize`).
          seed: stateless seed pair `[2]` of the noise; row i gets clip i's noise
            under it (`model/noise.py`). Default: stateful random.

        With `cond_first_frame` (conditional mode) the dequantised clip's first frame is
        duplicated at the front, as T2T does (so the duplicate carries the same noise),
        and it is not scored.

        Returns:
          `[B, T - num_context]` bits per dimension, `-J_t / (D ln 2)`.
        """
        if num_context < 0:
            raise ValueError(f"num_context must be >= 0; got {num_context}.")
        frames = self.check_frames(frames, min_frames=num_context + 1)
        x = self._duplicate_first_frame(self.dequantize(frames, noise, seed))
        skip = num_context + int(self._duplicates_first_frame)
        objectives = self.frame_objectives(x, condition=condition, training=training)
        d = float(np.prod(self.frame_shape))
        return -objectives[:, skip:] / (d * math.log(2.0))

    def loss(self, frames, num_context, noise=None, seed=None, condition=True,
             training=True):
        """Training loss: bits per dimension averaged over scored frames and batch."""
        return tf.reduce_mean(self.bits_per_pixel(
            frames, num_context, noise, seed, condition, training))

    def data_init(self, frames, seed=(0, 0)):
        """Data-dependent init of every actnorm in one pass over an init batch of clips.

        Our rule (T2T's init pass in `Glow.body` re-assigns the shared actnorms once per
        frame in no fixed order, so its result is race-dependent; docs/t2t.md,
        Data-dependent init): the flow's actnorms are initialised from ALL frames of the
        batch at once (the flow is shared across time), then the prior networks'
        actnorms from their inputs on the first frame that has a conditioning set.
        Dropout and noise are off. Already-initialised layers (e.g. after a restore) are
        left alone.
        """
        frames = self.check_frames(frames)
        x = self._duplicate_first_frame(self.dequantize(frames, seed=seed))
        batch, time = x.shape[0], x.shape[1]
        # The flow's init pass also gives the latents of every frame (batch-major), so
        # the priors are initialised from them without encoding the clip again.
        enc = self.flow.data_init_encoding(tf.reshape(x, [-1, *self.frame_shape]))
        # The clip up to its first conditioned frame: the conditional priors then see
        # exactly that frame's windows.
        first_conditioned = self.frames_before_conditioning + 1
        if self.gen_mode == "conditional" and time >= first_conditioned:
            time = first_conditioned

        def clip(z):
            return tf.reshape(z, [batch, -1, *z.shape[1:]])[:, :time]

        marginals = [tuple(clip(v) for v in head(x1))
                     for head, x1 in zip(self.level_priors, enc.conditions)]
        self.prior_params(
            ClipEncoding(top=clip(enc.top), latents=[clip(z) for z in enc.latents],
                         conditions=[clip(x1) for x1 in enc.conditions], log_det=None,
                         marginals=marginals),
            condition=True, training=False, init=True)

    # -- encode / decode / sample ------------------------------------------------------

    def encode(self, frames):
        """uint8 frames `[B, T, H, W, C]` -> latents, without dequantisation noise.

        Returns `{"levels": [z^l as [B, T, h_l, w_l, c_l] for l < L-1],
                  "top": [B, T, h, w, c]}`.
        """
        enc = self.encode_clip(preprocess(self.check_frames(frames), self.n_bits),
                               with_marginals=False)
        return {"levels": list(enc.latents), "top": enc.top}

    def decode(self, latents):
        """Inverse of `encode`: the latents dict -> uint8 frames `[B, T, H, W, C]`
        (all B T frames in one flow pass; T may be a tensor)."""
        top = latents["top"]
        batch, time = _dim(top, 0), _dim(top, 1)
        flat = lambda z: tf.reshape(z, [-1, *z.shape[2:]])
        x, _, _ = self.flow.decode(flat(top), [flat(z) for z in latents["levels"]])
        return postprocess(tf.reshape(x, [batch, time, *self.frame_shape]), self.n_bits)

    # -- the engine: sampling, one frame per step -----------------------------------------

    def sampling_start(self, context_frames):
        """The sampler's carry after the context (uint8 `[B, C, H, W, C]`, C at least
        `frames_before_conditioning`).

        A dict of tensors with a fixed structure (a `tf.while_loop` carry):
        "batch" (scalar), and when conditional "levels" / "top" (the last N latents,
        oldest first), "first_levels" / "first_top" (frame 0's, cond_first_frame
        only), "level_states" / "top_state" (conv_lstm `(c, h)`). The context is
        encoded in one flow pass, without dequantisation noise.
        """
        context = self.check_frames(context_frames, self.min_context_frames,
                                    name="context_frames")
        x = self._duplicate_first_frame(preprocess(context, self.n_bits))
        carry = {"batch": tf.shape(x)[0]}
        if self.gen_mode != "conditional":
            return carry
        n, n0 = self.num_cond_latents, self.frames_before_conditioning
        enc = self.encode_clip(x, with_marginals=self._recurrent)
        time = _dim(x, 1)
        if self.cond_first_frame:
            carry["first_levels"] = [z[:, 0] for z in enc.latents]
            carry["first_top"] = enc.top[:, 0]
        if not self._recurrent:
            carry["levels"] = [[z[:, time - n + j] for j in range(n)] for z in enc.latents]
            carry["top"] = [enc.top[:, time - n + j] for j in range(n)]
            return carry
        # Recurrent priors: step the states through the conditioned context frames.
        carry["levels"] = [[z[:, n0 - n + j] for j in range(n)] for z in enc.latents]
        carry["top"] = [enc.top[:, n0 - n + j] for j in range(n)]
        carry["level_states"], carry["top_state"] = self._zero_prior_states(
            [z[:, 0] for z in enc.latents], enc.top[:, 0])

        def body(t, carry):
            carry = dict(carry)
            states = []
            for l in range(len(self.level_shapes)):
                mu0, sigma0 = (v[:, t] for v in enc.marginals[l])
                _, _, state = self._conditional_level(
                    l, self._carried_set(carry, l), mu0, sigma0, carry["level_states"][l],
                    False, False)
                states.append(state)
            _, _, top_state = self._conditional_top(
                self._carried_set(carry), carry["top_state"], False, False)
            carry["level_states"], carry["top_state"] = states, top_state
            return t + 1, self._shift(carry, [z[:, t] for z in enc.latents], enc.top[:, t])

        _, carry = tf.while_loop(lambda t, _: t < time, body, (tf.constant(n0), carry))
        return carry

    def _carried_set(self, carry, level=None):
        """The conditioning set in the carry, for a level (index) or the top (None)."""
        if level is None:
            return self._conditioning_set(carry["top"], carry.get("first_top"))
        first = carry["first_levels"][level] if self.cond_first_frame else None
        return self._conditioning_set(carry["levels"][level], first)

    @staticmethod
    def _shift(carry, levels, top):
        """The carry with one frame's `levels` / `top` appended to the window."""
        carry = dict(carry)
        carry["levels"] = [list(w[1:]) + [z] for w, z in zip(carry["levels"], levels)]
        carry["top"] = list(carry["top"][1:]) + [top]
        return carry

    def sampling_step(self, carry, k, temperature, seed):
        """Draws generated frame `k` after `carry` (from `sampling_start` or the
        previous step).

        `z^top ~ N(mu, (tau sigma)^2)` from the top prior, then the flow decodes level
        by level drawing `z^l ~ N(mu, (tau sigma)^2)` from the level priors; the
        SAMPLED latents join the window (the frame is not re-encoded, as in T2T's
        `NextFrameGlow.infer`).
        Noise: stateless philox normals with seeds `[seed, 1000 k]` (top) and
        `[seed, 1000 k + 1 + l]` (level l), so a frame depends only on `seed`, `k` and
        its past.

        Args:
          carry: the sampler carry.
          k: int32 index of the generated frame (0 = the first after the context).
          temperature: float32 tau >= 0, or one per flow level (`level_temperatures`).
          seed: int32.

        Returns:
          `(x, log_density, carry)`: the float frame `[B, H, W, C]` (before
          `postprocess`), `[B]` nats of `ln q(x | past)` under the tempered priors
          (see `sample_with_log_density`), and the new carry.
        """
        conditional = self.gen_mode == "conditional"
        old_carry, carry = carry, dict(carry)
        taus = level_temperatures(temperature, self.flow.n_levels)
        seed, k = tf.cast(seed, tf.int32), tf.cast(k, tf.int32)
        # zeros_like of a carried latent keeps the shape static (XLA needs that).
        like = (tf.zeros_like(carry["top"][-1]) if conditional
                else tf.zeros([carry["batch"], *self.top_shape]))
        if conditional:
            loc, scale, top_state = self._conditional_top(
                self._carried_set(carry), carry.get("top_state", ()), False, False)
        else:
            loc, scale = self._top_marginal(like)
        top = tempered_draw(loc, scale, taus[-1], tf.random.stateless_normal(
            tf.shape(like), tf.stack([seed, 1000 * k]), alg=RNG_ALG))
        log_probs = [gaussian_log_prob(top, loc, taus[-1] * scale)]
        states = list(carry.get("level_states", [()] * len(self.level_shapes)))

        def sample_latent(level, x1):
            mu0, sigma0 = self.level_priors[level](x1)
            if conditional:
                loc, scale, states[level] = self._conditional_level(
                    level, self._carried_set(carry, level), mu0, sigma0, states[level],
                    False, False)
            else:
                loc, scale = mu0, sigma0
            eps = tf.random.stateless_normal(
                tf.shape(loc), tf.stack([seed, 1000 * k + 1 + level]), alg=RNG_ALG)
            z = tempered_draw(loc, scale, taus[level], eps)
            log_probs.append(gaussian_log_prob(z, loc, taus[level] * scale))
            return z

        x, latents, inverse_log_det = self.flow.decode(top, sample_latent=sample_latent)
        if conditional:
            if "level_states" in carry:
                carry["level_states"], carry["top_state"] = states, top_state
            carry = self._shift(carry, latents, top)
            # Keep the carry's static shapes (e.g. a known batch) across loop iterations.
            carry = tf.nest.map_structure(lambda new, old: tf.ensure_shape(new, old.shape),
                                          carry, old_carry)
        return x, tf.add_n(log_probs) - inverse_log_det, carry

    def generate(self, carry, start, count, temperature, seed):
        """Generated frames `start .. start + count - 1` after `carry`, in a
        `tf.while_loop` (`count` may be a tensor; no retrace per length).

        Returns:
          `(frames, log_density, carry)`: float `[B, count, H, W, C]` (before
          `postprocess`), `[B, count]` nats, and the carry after the last frame.
        """
        start = tf.cast(start, tf.int32)
        frames = tf.TensorArray(tf.float32, size=count,
                                element_shape=[None, *self.frame_shape])
        densities = tf.TensorArray(tf.float32, size=count, element_shape=[None])

        def body(k, frames, densities, carry):
            x, log_density, carry = self.sampling_step(carry, k, temperature, seed)
            return (k + 1, frames.write(k - start, x), densities.write(k - start, log_density),
                    carry)

        _, frames, densities, carry = tf.while_loop(
            lambda k, *_: k < start + count, body, (start, frames, densities, carry))
        return (tf.transpose(frames.stack(), [1, 0, 2, 3, 4]),
                tf.transpose(densities.stack()), carry)

    def sample(self, context_frames, num_frames, temperature=1.0, seed=0):
        """Samples `num_frames` future frames autoregressively after the context.

        The context is encoded (no noise) to fill the latent windows, then
        `sampling_step` draws one frame at a time (see there). Temperature 0 gives the
        prior means. Deterministic for a given integer `seed`; works eagerly and inside
        `tf.function` with a tensor `num_frames`.

        Args:
          context_frames: uint8 `[B, C_ctx, H, W, C]`.
          num_frames: number of frames to generate (>= 1), int or int32 tensor.
          temperature: tau >= 0, scales the std of every prior; or one tau per flow
            level, finest first and the top last (e.g. `[0.0, 1.0]` with 2 levels
            draws only the top latent and takes the level prior's mean below it).
          seed: int; stateless seeds are derived per frame and level.

        Returns:
          uint8 `[B, num_frames, H, W, C]`.
        """
        frames, _ = self.sample_with_log_density(context_frames, num_frames, temperature,
                                                 seed)
        return postprocess(frames, self.n_bits)

    def sample_with_log_density(self, context_frames, num_frames, temperature=1.0,
                                seed=0):
        """`sample` before quantisation, with the density each frame was drawn from.

        Returns:
          `(frames, log_density)`: float frames `[B, num_frames, H, W, C]` (the flow's
          output, before `postprocess`), and `[B, num_frames]` nats

              ln q(x_k | past) = sum_latents ln N(z; mu, (tau sigma)^2)
                                 - ln |det dx_k / dz_k|

          of the (tempered) distribution each frame was drawn from, given the context
          and the frames sampled before it. At tau = 1 this is the model's own density
          of the frame: `frame_objectives` of `[preprocess(context), frames]` gives the
          same numbers plus `-D n ln 2`, n = n_bits_x (tested), which shows the sampler draws from
          exactly the density the likelihood scores. At tau = 0 the density is
          degenerate (NaN/inf).
        """
        # Python / NumPy numbers and eager tensors are checked; a symbolic tensor is not.
        level_temperatures(temperature, self.flow.n_levels)
        if not tf.is_tensor(num_frames) or tf.executing_eagerly():
            if int(num_frames) < 1:
                raise ValueError(f"num_frames must be >= 1; got {int(num_frames)}.")
        carry = self.sampling_start(context_frames)
        frames, log_density, _ = self.generate(carry, 0, num_frames, temperature, seed)
        return frames, log_density


    # -- T2T checkpoints ---------------------------------------------------------------

    def t2t_variables(self):
        """T2T variable names (under `next_frame_glow/body/`) -> our variables."""
        out = {f"codec/{k}": v for k, v in self.flow.t2t_variables().items()}
        for l, head in enumerate(self.level_priors):
            scope = f"codec/split_{l}/prior_on_z2/"
            out.update({f"{scope}level_prior/{k}": v
                        for k, v in head.t2t_variables().items()})
            if self.level_cond_priors:
                out.update({scope + k: v for k, v in
                            self.level_cond_priors[l].t2t_variables().items()})
        # T2T's conditional model scores its marginal top prior in scope "unconditional";
        # in unconditional mode the top prior is Glow's `top_prior` (scope "top_prior").
        marginal_scope = ("unconditional" if self.gen_mode == "conditional"
                          else "top_prior")
        out.update({f"{marginal_scope}/{k}": v
                    for k, v in self.marginal_top_prior.t2t_variables().items()})
        if self.top_cond_prior is not None:
            out.update({f"top/{k}": v for k, v in self.top_cond_prior.t2t_variables().items()})
        return out


T2T_BODY_SCOPE = "next_frame_glow/body/"


def load_t2t_weights(model, source, prefix=T2T_BODY_SCOPE, strict=True):
    """Loads T2T-named weights into `model`: a dict `{name: array}` or a TF1 checkpoint.

    Every value is checked (present, same shape, finite) before any is assigned, so a
    bad source leaves the model untouched. Afterwards every actnorm of the model is
    marked initialised: the imported weights are trained values, and a later
    data-dependent init (the trainer's, before fine-tuning) must not overwrite them.

    Args:
      model: a `VideoFlow`.
      source: dict of numpy arrays keyed by T2T variable name, or a path to a T2T
        (TF1) checkpoint readable by `tf.train.load_checkpoint`.
      prefix: scope in front of the names of `model.t2t_variables()`.
      strict: raise if a model variable is missing from `source`.

    Returns:
      The list of names that were loaded.
    Raises:
      ValueError: missing names (strict), shape mismatches or non-finite values, each
        named.
    """
    if isinstance(source, str):
        reader = tf.train.load_checkpoint(source)
        available = set(reader.get_variable_to_shape_map())
        get = reader.get_tensor
    else:
        available = set(source)
        get = source.__getitem__
    targets = model.t2t_variables()
    missing = sorted(prefix + k for k in targets if prefix + k not in available)
    if missing and strict:
        raise CheckpointError(f"{len(missing)} T2T variables missing from the source, e.g. "
                         f"{missing[:5]}")
    values = {}
    for name, var in targets.items():
        if prefix + name not in available:
            continue
        value = np.asarray(get(prefix + name))
        if tuple(value.shape) != tuple(var.shape):
            raise CheckpointError(f"Shape mismatch for {prefix + name}: checkpoint "
                             f"{value.shape}, model {tuple(var.shape)}.")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"Non-finite values in {prefix + name}.")
        values[name] = value
    for name, value in values.items():
        targets[name].assign(value)
    for var in model.variables:
        if var.dtype == tf.bool and var.name.split("/")[-1].startswith("initialized"):
            var.assign(True)
    return [prefix + name for name in values]


def build_model(hparams, frame_shape, seed=None):
    """The one place that reads hparams: builds a `VideoFlow` from a T2T-style set."""
    return VideoFlow(
        frame_shape, n_levels=hparams.n_levels, depth=hparams.depth,
        coupling=hparams.coupling, coupling_width=hparams.coupling_width,
        activation=hparams.activation, coupling_dropout=hparams.coupling_dropout,
        gen_mode=hparams.gen_mode, top_prior=hparams.top_prior,
        num_cond_latents=hparams.num_cond_latents,
        cond_first_frame=hparams.cond_first_frame,
        latent_dist_encoder=hparams.latent_dist_encoder,
        latent_skip=hparams.latent_skip, latent_noise=hparams.latent_noise,
        latent_encoder_depth=hparams.latent_encoder_depth,
        latent_encoder_width=hparams.latent_encoder_width,
        latent_activation=hparams.latent_activation,
        latent_dropout=hparams.latent_dropout,
        latent_apply_dilations=hparams.latent_apply_dilations,
        latent_dilation_rates=tuple(hparams.latent_dilation_rates),
        latent_architecture=hparams.latent_architecture,
        latent_pre_output_channels=hparams.latent_pre_output_channels,
        level_scale=hparams.level_scale, learn_top_scale=hparams.learn_top_scale,
        batch_size=hparams.batch_size, seed=seed,
        memory_efficient_backprop=hparams.memory_efficient_backprop,
        network_dtype=hparams.network_dtype,
        n_bits_x=hparams.n_bits_x,
        loop_flow_steps=hparams.loop_flow_steps)
