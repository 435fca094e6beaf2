"""VideoFlow: the per-frame Glow flow shared across time plus the latent prior.

For a clip `x_0 .. x_{T-1}` every frame is encoded independently by the flow,
`x_t -> (z_t^0, .., z_t^{L-2}, z_t^top)`, and the latents are scored autoregressively
(REFERENCE 2.11, 3, 4.1):

    J_t = -D ln 256 + ln|det dz_t/dx_t|
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
dequantisation noise `U[0, 1/256)` (REFERENCE 1.1). Samples are mapped back with T2T's
`postprocess` (clip, `x 256`, truncate).
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from t2t_videoflow.flow.multiscale import FlowEncoding, MultiScaleFlow
from t2t_videoflow.prior.latent_prior import (
    LevelConditionalPrior, MarginalTopPrior, TopConditionalPrior)
from t2t_videoflow.prior.latent_to_dist import SingleConvDist

tfd = tfp.distributions

GEN_MODES = ("conditional", "unconditional")
TOP_PRIORS = ("single_conv", "normal")
# Encoders that condition on the previous frame only; the others on the last N.
_PREVIOUS_FRAME_ENCODERS = ("conv_lstm", "pointwise")
# A fixed stateless RNG algorithm: TF's default ("auto_select") picks a different
# generator under XLA, so the same seed gave different samples with jit_compile.
RNG_ALG = "philox"


def preprocess(frames):
    """uint8 (or float in [0, 255]) frames -> float32 `v / 255 - 0.5` in [-0.5, 0.5]."""
    return tf.cast(frames, tf.float32) / 255.0 - 0.5


def postprocess(x):
    """T2T's output transform: float frames -> uint8 (REFERENCE 1.1).

    Non-finite -> 1.0, clip to [-0.5, 0.5], `(x + 0.5) * 256`, clip to [0, 255],
    truncate. Noise-free `v / 255 - 0.5` maps back to exactly `v`.
    """
    x = tf.where(tf.math.is_finite(x), x, tf.ones_like(x))
    x = (tf.clip_by_value(x, -0.5, 0.5) + 0.5) * 256.0
    return tf.cast(tf.clip_by_value(x, 0.0, 255.0), tf.uint8)


def gaussian_log_prob(z, loc, scale):
    """`sum_{h, w, c} ln N(z; loc, scale)` per example: `[B]`."""
    return tf.reduce_sum(tfd.Normal(loc, scale).log_prob(z), axis=[1, 2, 3])


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
      seed: seeds the flow's 1x1 conv initial rotations.
      memory_efficient_backprop: train the flow by recomputing its activations from
        the level outputs instead of storing them (see `flow/recompute.py`).
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
                 seed=None, memory_efficient_backprop=False, name="videoflow"):
        super().__init__(name=name)
        if gen_mode not in GEN_MODES:
            raise ValueError(f"Unknown gen_mode {gen_mode!r}; expected one of {GEN_MODES}.")
        if top_prior not in TOP_PRIORS:
            raise ValueError(
                f"Unknown top_prior {top_prior!r}; expected one of {TOP_PRIORS}.")
        if num_cond_latents < 1:
            raise ValueError(f"num_cond_latents must be >= 1; got {num_cond_latents}.")
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.gen_mode = gen_mode
        self.top_prior = top_prior
        self.latent_dist_encoder = latent_dist_encoder
        self.cond_first_frame = bool(cond_first_frame)
        self.num_cond_latents = (1 if latent_dist_encoder in _PREVIOUS_FRAME_ENCODERS
                                 else int(num_cond_latents))
        self.flow = MultiScaleFlow(self.frame_shape, n_levels, depth, coupling,
                                   coupling_width, activation, coupling_dropout, seed=seed,
                                   memory_efficient_backprop=memory_efficient_backprop)
        level_shapes, top_shape = self.flow.latent_shapes()
        self.level_shapes, self.top_shape = level_shapes, top_shape
        self.level_priors = []
        for l, shape in enumerate(level_shapes):
            head = SingleConvDist(name="level_prior")
            head.build((None, *shape))
            self.level_priors.append(head)
        self.marginal_top_prior = MarginalTopPrior(name="unconditional")
        self.marginal_top_prior.build((None, *top_shape))
        self.level_cond_priors, self.top_cond_prior = [], None
        if gen_mode == "conditional":
            prior_kwargs = dict(
                encoder=latent_dist_encoder, latent_skip=latent_skip,
                latent_noise=latent_noise, encoder_depth=latent_encoder_depth,
                encoder_width=latent_encoder_width, activation=latent_activation,
                latent_dropout=latent_dropout, apply_dilations=latent_apply_dilations,
                dilation_rates=latent_dilation_rates, architecture=latent_architecture,
                pre_output_channels=latent_pre_output_channels,
                coupling_dropout=coupling_dropout)
            n_cond = self.num_cond_latents + int(self.cond_first_frame)
            batch = batch_size if latent_dist_encoder == "pointwise" else None
            for l, shape in enumerate(level_shapes):
                prior = LevelConditionalPrior(level_scale=level_scale,
                                              name="level_cond_prior", **prior_kwargs)
                prior.build([(batch, *shape)] * n_cond)
                self.level_cond_priors.append(prior)
            self.top_cond_prior = TopConditionalPrior(
                learn_top_scale=learn_top_scale, name="top", **prior_kwargs)
            self.top_cond_prior.build([(batch, *top_shape)] * n_cond)
        # Keras 3 weights are invisible to tf.Module tracking: keep their variables here.
        self._prior_variables = [w.value for layer in self._prior_layers()
                                 for w in layer.weights]

    def _prior_layers(self):
        layers = [*self.level_priors, self.marginal_top_prior, *self.level_cond_priors]
        return layers + ([self.top_cond_prior] if self.top_cond_prior is not None else [])

    # -- input checks ------------------------------------------------------------------

    def check_frames(self, frames, min_frames=1, name="frames"):
        """ValueError unless `frames` is `[B, T >= min_frames, H, W, C]` uint8 (or float
        with values in [0, 255])."""
        h, w, c = self.frame_shape
        expected = f"[batch, time, {h}, {w}, {c}]"
        frames = tf.convert_to_tensor(frames)
        if frames.shape.rank != 5:
            raise ValueError(f"{name} must have shape {expected}; got {frames.shape}.")
        if tuple(frames.shape[2:]) != (h, w, c):
            raise ValueError(f"{name} must have shape {expected}; got {frames.shape}.")
        if frames.shape[1] is not None and frames.shape[1] < min_frames:
            raise ValueError(f"{name} needs at least {min_frames} frames along time; "
                             f"got {frames.shape[1]} (shape {frames.shape}).")
        if frames.dtype != tf.uint8:
            if not frames.dtype.is_floating:
                raise ValueError(f"{name} must be uint8 (or float in [0, 255]); "
                                 f"got dtype {frames.dtype.name}.")
            # NaN fails both comparisons, so non-finite frames are rejected too.
            if tf.executing_eagerly() and not bool(tf.reduce_all(
                    (frames >= 0.0) & (frames <= 255.0))):
                lo, hi = float(tf.reduce_min(frames)), float(tf.reduce_max(frames))
                raise ValueError(f"{name} must hold finite pixel values in [0, 255]; "
                                 f"got values in [{lo}, {hi}].")
        return frames

    # -- priors ------------------------------------------------------------------------

    def _cond_set(self, history):
        """The conditioning latents from a per-frame history list, or None (marginal)."""
        if self.gen_mode != "conditional":
            return None
        n = self.num_cond_latents
        needed = n + int(self.cond_first_frame)
        if len(history) < needed:
            return None
        latents = list(history[-n:])
        return [history[0]] + latents if self.cond_first_frame else latents

    def _level_prior(self, level, x1, past, state, condition, training, init,
                     marginal=None):
        """`(loc, scale, new_state)` of `p(z^level | x1, past)`.

        `marginal`: the level prior head's `(mu0, sigma0)` on `x1` if already computed
        (e.g. for all frames in one batched call); computed from `x1` otherwise.
        """
        mu0, sigma0 = marginal if marginal is not None else self.level_priors[level](x1)
        if past is None:
            return mu0, sigma0, state
        loc, scale, new_state = self.level_cond_priors[level](
            past, mu0, sigma0=sigma0, state=state, training=training, init=init)
        if condition is not True:
            loc, scale = tf.where(condition, loc, mu0), tf.where(condition, scale, sigma0)
        return loc, scale, new_state

    def _top_prior(self, like, past, state, condition, training, init, marginal=None):
        """`(loc, scale, new_state)` of `p(z^top | past)` (untempered).

        `marginal`: the marginal top prior's `(loc0, scale0)` for `like`'s shape if
        already computed (it depends on the shape only); computed otherwise.
        """
        if self.gen_mode == "unconditional" and self.top_prior == "normal":
            return tf.zeros_like(like), tf.ones_like(like), state
        loc0, scale0 = marginal if marginal is not None else self.marginal_top_prior(like)
        if past is None:
            return loc0, scale0, state
        loc, scale, new_state = self.top_cond_prior(
            past, state=state, training=training, init=init)
        if condition is not True:
            loc, scale = tf.where(condition, loc, loc0), tf.where(condition, scale, scale0)
        return loc, scale, new_state

    # -- likelihood --------------------------------------------------------------------

    def frame_objectives(self, x, condition=True, training=False, init=False,
                         return_details=False):
        """Per-frame objectives `J_t` (nats) for dequantised frames `x [B, T, H, W, C]`.

        Args:
          x: float frames in [-0.5, 0.5] (+ dequantisation noise).
          condition: bool or boolean tensor; False uses the marginal priors for every
            frame (T2T's `pretrain_steps` switch, decided by the training loop).
          training: enables dropout and latent noise.
          init: data-dependent init of the prior networks' actnorms on this pass.
          return_details: also return per-frame dicts of the parts.

        Returns:
          `[B, T]` tensor of `J_t` (and a list of per-frame detail dicts).
        """
        n_frames = x.shape[1]
        d = float(np.prod(self.frame_shape))
        level_history, top_history = [], []
        level_states = [None] * len(self.level_shapes)
        top_state = None
        objectives, details = [], []
        # The flow and the marginal level heads act on each frame independently: run
        # them once over all B*T frames (far fewer, larger ops than a pass per frame).
        encodings, level_marginals = self._encode_frames(x, training=training)
        top_marginal = None
        for t in range(n_frames):
            enc = encodings[t]
            past_levels = self._cond_set(level_history)
            level_log_probs, level_params = [], []
            for l, (z, x1) in enumerate(zip(enc.latents, enc.conditions)):
                past = None if past_levels is None else [p[l] for p in past_levels]
                loc, scale, level_states[l] = self._level_prior(
                    l, x1, past, level_states[l], condition, training, init,
                    marginal=level_marginals[t][l])
                level_log_probs.append(gaussian_log_prob(z, loc, scale))
                level_params.append((loc, scale))
            if top_marginal is None and not (self.gen_mode == "unconditional"
                                             and self.top_prior == "normal"):
                top_marginal = self.marginal_top_prior(enc.top)  # same for every frame
            loc, scale, top_state = self._top_prior(
                enc.top, self._cond_set(top_history), top_state, condition, training, init,
                marginal=top_marginal)
            top_log_prob = gaussian_log_prob(enc.top, loc, scale)
            objective = -d * math.log(256.0) + enc.log_det + top_log_prob
            if level_log_probs:
                objective += tf.add_n(level_log_probs)
            objectives.append(objective)
            level_history.append(enc.latents)
            top_history.append(enc.top)
            if return_details:
                details.append(dict(encoding=enc, level_log_probs=level_log_probs,
                                    level_params=level_params, top_params=(loc, scale),
                                    top_log_prob=top_log_prob))
        objectives = tf.stack(objectives, axis=1)
        return (objectives, details) if return_details else objectives

    def _encode_frames(self, x, training=False, with_marginals=True):
        """Flow encodings of every frame of `x [B, T, H, W, C]` from ONE flow pass.

        The T frames are folded into the batch (time-major, so each frame's outputs
        are contiguous), encoded together and split back. The result equals a
        per-frame `flow.encode(x[:, t])` up to float rounding.

        Returns:
          `(encodings, marginals)`: a list of T `FlowEncoding`s (each `[B, ...]`) and,
          per frame, the list of the level prior heads' `(mu0, sigma0)` on the kept
          halves (computed batched too; None when `with_marginals` is False).
        """
        n_frames = x.shape[1]
        h, w, c = self.frame_shape
        folded = tf.reshape(tf.transpose(x, [1, 0, 2, 3, 4]), [-1, h, w, c])
        enc = self.flow.encode(folded, training=training)

        def unfold(tensor):
            return tf.unstack(tf.reshape(tensor, [n_frames, -1, *tensor.shape[1:]]))

        tops, log_dets = unfold(enc.top), unfold(enc.log_det)
        latents = [unfold(z) for z in enc.latents]
        conditions = [unfold(x1) for x1 in enc.conditions]
        level_log_dets = [unfold(v) for v in enc.level_log_dets]
        marginals = [[] for _ in range(n_frames)]
        if with_marginals:
            for l, x1 in enumerate(enc.conditions):
                mu0, sigma0 = self.level_priors[l](x1)
                for t, pair in enumerate(zip(unfold(mu0), unfold(sigma0))):
                    marginals[t].append(pair)
        encodings = [FlowEncoding(tops[t], [z[t] for z in latents],
                                  [x1[t] for x1 in conditions], log_dets[t],
                                  [v[t] for v in level_log_dets])
                     for t in range(n_frames)]
        return encodings, (marginals if with_marginals else None)

    def dequantize(self, frames, noise=None, seed=None):
        """uint8 frames -> `v/255 - 0.5 + u`, `u ~ U[0, 1/256)` (or the given `noise`)."""
        x = preprocess(frames)
        if noise is None:
            if seed is None:
                noise = tf.random.uniform(tf.shape(x), 0.0, 1.0 / 256.0)
            else:
                noise = tf.random.stateless_uniform(tf.shape(x), seed, 0.0, 1.0 / 256.0,
                                                     alg=RNG_ALG)
        return x + noise

    def bits_per_pixel(self, frames, num_context, noise=None, seed=None, condition=True,
                       training=False):
        """Bits per dimension of every frame after the first `num_context` frames.

        Args:
          frames: uint8 `[B, T, H, W, C]`, T > num_context.
          num_context: leading frames that condition but are not scored. In
            unconditional mode pass 0 to score every frame (T2T's eval protocol there).
          noise: optional dequantisation noise `[B, T, H, W, C]` in [0, 1/256).
          seed: stateless seed `[2]` for the noise (default: stateful random).

        Returns:
          `[B, T - num_context]` bits per dimension, `-J_t / (D ln 2)`.
        """
        if num_context < 0:
            raise ValueError(f"num_context must be >= 0; got {num_context}.")
        frames = self.check_frames(frames, min_frames=num_context + 1)
        x = self.dequantize(frames, noise, seed)
        objectives = self.frame_objectives(x, condition=condition, training=training)
        d = float(np.prod(self.frame_shape))
        return -objectives[:, num_context:] / (d * math.log(2.0))

    def loss(self, frames, num_context, noise=None, seed=None, condition=True,
             training=True):
        """Training loss: bits per dimension averaged over scored frames and batch."""
        return tf.reduce_mean(self.bits_per_pixel(
            frames, num_context, noise, seed, condition, training))

    def data_init(self, frames, seed=(0, 0)):
        """Data-dependent init of every actnorm in one pass over an init batch of clips.

        Our rule (REFERENCE 4.2 leaves it to the port; T2T's is race-dependent): the
        flow's actnorms are initialised from ALL frames of the batch at once (the flow
        is shared across time), then the prior networks' actnorms from their inputs on
        the first frame that has a conditioning set. Dropout and noise are off.
        Already-initialised layers (e.g. after a restore) are left alone.
        """
        frames = self.check_frames(frames)
        x = self.dequantize(frames, seed=seed)
        self.flow.data_init(tf.reshape(x, [-1, *self.frame_shape]))
        self.frame_objectives(x, training=False, init=True)

    # -- encode / decode / sample ------------------------------------------------------

    def encode(self, frames):
        """uint8 frames `[B, T, H, W, C]` -> latents, without dequantisation noise.

        Returns `{"levels": [z^l as [B, T, h_l, w_l, c_l] for l < L-1],
                  "top": [B, T, h, w, c]}`.
        """
        frames = self.check_frames(frames)
        x = preprocess(frames)
        encodings, _ = self._encode_frames(x, with_marginals=False)
        return {"levels": [tf.stack([e.latents[l] for e in encodings], axis=1)
                           for l in range(len(self.level_shapes))],
                "top": tf.stack([e.top for e in encodings], axis=1)}

    def decode(self, latents):
        """Inverse of `encode`: the latents dict -> uint8 frames `[B, T, H, W, C]`."""
        top = latents["top"]
        frames = []
        for t in range(top.shape[1]):
            x, _, _ = self.flow.decode(top[:, t], [z[:, t] for z in latents["levels"]])
            frames.append(x)
        return postprocess(tf.stack(frames, axis=1))

    def sample(self, context_frames, num_frames, temperature=1.0, seed=0):
        """Samples `num_frames` future frames autoregressively after the context.

        The context is encoded (no noise) to fill the latent histories; each new frame
        draws `z^top ~ N(mu, (tau sigma)^2)`, then decodes level by level drawing
        `z^l ~ N(mu, (tau sigma)^2)` from the level priors, and the SAMPLED latents
        join the history (the frame is not re-encoded; REFERENCE 6.1). Temperature 0
        gives the prior means. Deterministic for a given integer `seed`.

        Args:
          context_frames: uint8 `[B, C_ctx, H, W, C]`.
          num_frames: number of frames to generate (>= 1).
          temperature: tau >= 0, scales the std of every prior.
          seed: int; stateless seeds are derived per frame and level.

        Returns:
          uint8 `[B, num_frames, H, W, C]`.
        """
        # No log-density ops here: in this eager loop extra ops changed the last bits of
        # the tiny random models' exploding samples (tests compare with graph loops).
        frames, _ = self._sample(context_frames, num_frames, temperature, seed,
                                 with_log_density=False)
        return postprocess(frames)

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
          same numbers plus `-D ln 256` (tested), which shows the sampler draws from
          exactly the density the likelihood scores. At tau = 0 the density is
          degenerate (NaN/inf).
        """
        return self._sample(context_frames, num_frames, temperature, seed,
                            with_log_density=True)

    def _sample(self, context_frames, num_frames, temperature, seed, with_log_density):
        """The sampling loop of `sample` / `sample_with_log_density` (None density
        when `with_log_density` is False)."""
        # Python / NumPy numbers and eager tensors are checked; a symbolic tensor is not.
        if not tf.is_tensor(temperature) or tf.executing_eagerly():
            if not float(temperature) >= 0.0:
                raise ValueError(f"temperature must be >= 0; got {float(temperature)}.")
        if int(num_frames) < 1:
            raise ValueError(f"num_frames must be >= 1; got {num_frames}.")
        needed = 1 if self.gen_mode == "unconditional" else self.num_cond_latents + int(
            self.cond_first_frame)
        context = self.check_frames(context_frames, min_frames=needed,
                                    name="context_frames")
        x = preprocess(context)
        level_history, top_history = [], []
        level_states = [None] * len(self.level_shapes)
        top_state = None
        encodings, marginals = self._encode_frames(x)
        for t, enc in enumerate(encodings):
            past_levels = self._cond_set(level_history)
            for l, x1 in enumerate(enc.conditions):
                past = None if past_levels is None else [p[l] for p in past_levels]
                _, _, level_states[l] = self._level_prior(
                    l, x1, past, level_states[l], True, False, False,
                    marginal=marginals[t][l])
            _, _, top_state = self._top_prior(
                enc.top, self._cond_set(top_history), top_state, True, False, False)
            level_history.append(enc.latents)
            top_history.append(enc.top)
        batch = tf.shape(x)[0]
        outputs, log_densities = [], []
        for k in range(int(num_frames)):
            if self.gen_mode == "unconditional":
                level_history, top_history = [], []
            like = tf.zeros([batch, *self.top_shape])
            loc, scale, top_state = self._top_prior(
                like, self._cond_set(top_history), top_state, True, False, False)
            top = loc + temperature * scale * tf.random.stateless_normal(
                tf.shape(loc), [seed, 1000 * k], alg=RNG_ALG)
            log_probs = ([gaussian_log_prob(top, loc, temperature * scale)]
                         if with_log_density else None)
            past_levels = self._cond_set(level_history)
            new_states = list(level_states)

            def sample_latent(level, x1, k=k, past_levels=past_levels,
                              new_states=new_states, log_probs=log_probs):
                past = None if past_levels is None else [p[level] for p in past_levels]
                loc, scale, new_states[level] = self._level_prior(
                    level, x1, past, level_states[level], True, False, False)
                eps = tf.random.stateless_normal(
                    tf.shape(loc), [seed, 1000 * k + 1 + level], alg=RNG_ALG)
                z = loc + temperature * scale * eps
                if log_probs is not None:
                    log_probs.append(gaussian_log_prob(z, loc, temperature * scale))
                return z

            frame, latents, inverse_log_det = self.flow.decode(
                top, sample_latent=sample_latent)
            level_states = new_states
            level_history.append(latents)
            top_history.append(top)
            outputs.append(frame)
            if with_log_density:
                log_densities.append(tf.add_n(log_probs) - inverse_log_det)
        frames = tf.stack(outputs, axis=1)
        return frames, (tf.stack(log_densities, axis=1) if with_log_density else None)

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
        out.update({f"unconditional/{k}": v
                    for k, v in self.marginal_top_prior.t2t_variables().items()})
        if self.top_cond_prior is not None:
            out.update({f"top/{k}": v for k, v in self.top_cond_prior.t2t_variables().items()})
        return out


T2T_BODY_SCOPE = "next_frame_glow/body/"


def load_t2t_weights(model, source, prefix=T2T_BODY_SCOPE, strict=True):
    """Loads T2T-named weights into `model`: a dict `{name: array}` or a TF1 checkpoint.

    Args:
      model: a `VideoFlow`.
      source: dict of numpy arrays keyed by T2T variable name, or a path to a T2T
        (TF1) checkpoint readable by `tf.train.load_checkpoint`.
      prefix: scope in front of the names of `model.t2t_variables()`.
      strict: raise if a model variable is missing from `source`.

    Returns:
      The list of names that were loaded.
    Raises:
      ValueError: missing names (strict) or shape mismatches, each named.
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
        raise ValueError(f"{len(missing)} T2T variables missing from the source, e.g. "
                         f"{missing[:5]}")
    loaded = []
    for name, var in targets.items():
        if prefix + name not in available:
            continue
        value = np.asarray(get(prefix + name))
        if tuple(value.shape) != tuple(var.shape):
            raise ValueError(f"Shape mismatch for {prefix + name}: checkpoint "
                             f"{value.shape}, model {tuple(var.shape)}.")
        var.assign(value)
        loaded.append(prefix + name)
    return loaded


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
        memory_efficient_backprop=hparams.memory_efficient_backprop)
