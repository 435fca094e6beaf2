"""Graph-mode inference on a `VideoFlow` for any number of frames, and the SavedModel.

`VideoFlow.sample` and `VideoFlow.bits_per_pixel` loop over frames in Python, so
a traced graph is unrolled for one fixed number of frames. Serving (and long
decodes) need the number of frames to be a tensor. `FrameLoop` re-expresses both
with `tf.while_loop`s over time and a fixed-shape history window:

    carry = {"levels": [[z^l_{t-N}, .., z^l_{t-1}] per level],   the last N latents
             "top":    [z^top_{t-N}, .., z^top_{t-1}],
             "first_levels", "first_top":  frame 0's latents (cond_first_frame only),
             "level_states", "top_state":  ConvLSTM (c, h) (conv_lstm only)}

Each step reads the conditioning set `[first] + window` (REFERENCE 3.1), and shifts
the window by one frame. The random numbers are the model's (`[seed, 1000 k]` for
`z^top` of generated frame k, `[seed, 1000 k + 1 + l]` for level l, philox), so
`FrameLoop.sample` gives `VideoFlow.sample`'s frames for the same seed, at any
length, without a retrace per length.

Scoring (`FrameLoop.bits_per_pixel`) runs the flow once on all `B * T` frames (it is
per-frame) and, for the conv_net / conv3d_net priors, every frame's conditional
prior in one batch over `[B * (T - N'), ...]` windows (teacher forcing: all past
latents are known), so it has no loop at all; only conv_lstm (a recurrent state)
loops over time.

`ServingModule` is the `tf.Module` that `exporter.py` saves, with these serving
signatures (all inputs validated in-graph; bad input raises InvalidArgumentError):

    bits_per_pixel(frames uint8 [B, T, H, W, 3])  -> {"bits_per_pixel": [B, T - ctx]}
    sample(context uint8 [B, C, H, W, 3], num_frames int32, temperature float32,
           seed int32)                           -> {"frames": uint8 [B, num_frames, H, W, 3]}
    encode(frames uint8 [B, T, H, W, 3])          -> {"level_0", .., "level_{L-2}", "top"}
    decode(level_0, .., top float32 [B, T, ...])  -> {"frames": uint8 [B, T, H, W, 3]}

The loops are explicit `tf.while_loop`s, so every `tf.function` here is traced with
`autograph=False` (AutoGraph cannot convert `generate` and would only warn).

`serving_default` is `sample`. ctx is `video_num_input_frames` (0 in unconditional
mode, where every frame is scored). The spatial dimensions of every input are
dynamic in the signatures and checked in the graph, so a wrong frame size gives an
InvalidArgumentError naming the expected shape (from Python, saved_model_cli and TF
Serving alike) rather than a signature-binding error.

Deterministic bits per pixel: the export dequantises with the constant
`u = 1/512`, the middle of `U[0, 1/256)`, instead of random noise (no seed input).
The score of a frame then depends only on the frame and its past, not on the batch
or a seed. It is `VideoFlow.bits_per_pixel(frames, ctx, noise=1/512)`: a point
evaluation at the bin centres, not the Monte-Carlo eval bpp of REFERENCE 6.2 (random
`u`), from which it differs by that noise's effect (not measured on a trained model
here).

Not supported: the pointwise prior encoder (its parameters carry a static batch
dimension, so a served batch size would be fixed); `ExportError` says so.
"""

import json
import math
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from t2t_videoflow import registry, run_dir
from t2t_videoflow.model import RNG_ALG, gaussian_log_prob, postprocess, preprocess
from t2t_videoflow.usr_dir import import_usr_dir

# Dequantisation noise of the exported bits_per_pixel: the middle of U[0, 1/256).
BPP_NOISE = 1.0 / 512.0


class ExportError(ValueError):
    """A model the graph-mode loop (and so the exporter) cannot handle."""


def _sum_log_prob(z, loc, scale):
    """`ln N(z; loc, scale)` summed over the trailing 3 axes of `[B, T, h, w, c]`."""
    flat = lambda v: tf.reshape(v, [-1, *v.shape[2:]])
    lp = gaussian_log_prob(flat(z), flat(loc), flat(scale))
    return tf.reshape(lp, tf.shape(z)[:2])


class FrameLoop:
    """`VideoFlow` scoring and sampling over a tensor number of frames (see module doc).

    Args:
      model: a built `VideoFlow` (weights restored or initialised).

    Raises:
      ExportError for the pointwise prior encoder.
    """

    def __init__(self, model):
        if model.gen_mode == "conditional" and model.latent_dist_encoder == "pointwise":
            raise ExportError(
                "The pointwise prior encoder is not supported in graph mode / export: its "
                "parameters carry a static batch dimension. Use VideoFlow.sample.")
        self.model = model
        self.frame_shape = model.frame_shape
        self.conditional = model.gen_mode == "conditional"
        self.num_cond = model.num_cond_latents
        self.cond_first = model.cond_first_frame
        # Frames before the first conditioned frame (it has a full conditioning set).
        self.needed = self.num_cond + int(self.cond_first) if self.conditional else 1
        self.recurrent = self.conditional and model.latent_dist_encoder == "conv_lstm"
        self.num_levels = len(model.level_shapes)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _unflatten(z, batch, time):
        return tf.reshape(z, [batch, time, *z.shape[1:]])

    def encode_all(self, x, with_marginals=False):
        """Flow-encodes float frames `[B, T, H, W, C]` in one pass over `B * T` frames.

        Frames are folded into the batch time-major, as `VideoFlow._encode_frames`
        does, so the results match the model's bit for bit, not just up to rounding.

        Returns a dict of `[B, T, ...]` tensors: "levels" and "conditions" (lists per
        level), "top", "log_det" (`[B, T]`) and, if `with_marginals`, "marginals": per
        level the marginal head's `(mu0, sigma0)` on the kept halves.
        """
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        folded = tf.reshape(tf.transpose(x, [1, 0, 2, 3, 4]), [-1, *self.frame_shape])
        enc = self.model.flow.encode(folded)

        def unfold(z):
            z = tf.reshape(z, [time, batch, *z.shape[1:]])
            return tf.transpose(z, [1, 0, *range(2, len(z.shape))])

        out = {"levels": [unfold(z) for z in enc.latents],
               "conditions": [unfold(c) for c in enc.conditions],
               "top": unfold(enc.top), "log_det": unfold(enc.log_det)}
        if with_marginals:
            out["marginals"] = [tuple(unfold(v) for v in self.model.level_priors[l](x1))
                                for l, x1 in enumerate(enc.conditions)]
        return out

    def _zero_states(self, like_levels, like_top):
        """ConvLSTM zero states `(c, h)` per level and for the top prior."""
        def zeros(prior, like):
            filters = prior.net.cell.filters
            z = tf.zeros(tf.concat([tf.shape(like)[:-1], [filters]], 0))
            z = tf.ensure_shape(z, [None, *like.shape[1:-1], filters])
            return (z, z)
        levels = [zeros(p, z) for p, z in zip(self.model.level_cond_priors, like_levels)]
        return levels, zeros(self.model.top_cond_prior, like_top)

    def _cond_set(self, carry, level=None):
        """`[first] + window` for a level (index) or the top (None)."""
        if level is None:
            window, first = carry["top"], carry.get("first_top")
        else:
            window = carry["levels"][level]
            first = carry["first_levels"][level] if self.cond_first else None
        return ([first] if self.cond_first else []) + list(window)

    def _shift(self, carry, levels, top):
        """The carry with `levels`/`top` (one frame's latents) appended to the window."""
        carry = dict(carry)
        carry["levels"] = [list(w[1:]) + [z] for w, z in zip(carry["levels"], levels)]
        carry["top"] = list(carry["top"][1:]) + [top]
        return carry

    # -- scoring -----------------------------------------------------------------------

    def frame_objectives(self, x):
        """`J_t` (nats) `[B, T]` of dequantised frames `x [B, T >= needed, H, W, C]`.

        The same per-frame objective as `VideoFlow.frame_objectives` (eval: no dropout,
        conditioning on).
        """
        model = self.model
        enc = self.encode_all(x, with_marginals=True)
        time = tf.shape(x)[1]
        d = float(np.prod(self.frame_shape))
        total = -d * math.log(256.0) + enc["log_det"]
        n0 = self.needed if self.conditional else None
        flat = lambda z: tf.reshape(z, [-1, *z.shape[2:]])

        # Frames that use the marginal priors: all (unconditional) or t < needed.
        head = (lambda z: z) if n0 is None else (lambda z: z[:, :n0])
        for l in range(self.num_levels):
            mu0, sigma0 = enc["marginals"][l]
            z = head(enc["levels"][l])
            total += self._pad_time(_sum_log_prob(z, head(mu0), head(sigma0)), time)
        z = head(enc["top"])
        loc, scale, _ = model._top_prior(flat(z), None, None, True, False, False)
        loc, scale = (tf.reshape(v, tf.shape(z)) for v in (loc, scale))
        total += self._pad_time(_sum_log_prob(z, loc, scale), time)
        if n0 is None:
            return total
        if self.recurrent:
            return total + self._conditioned_log_probs_loop(enc, n0)
        return total + self._conditioned_log_probs_batched(enc, n0)

    def _pad_time(self, values, time):
        """`[B, t0]` -> `[B, time]` with zeros after t0."""
        return tf.pad(values, [[0, 0], [0, time - tf.shape(values)[1]]])

    def _conditioned_log_probs_batched(self, enc, n0):
        """Log-probs `[B, T]` (zero before n0) under the conv_net / conv3d_net priors,
        all frames t >= n0 in one batch of windows `z_{t-N} .. z_{t-1}`."""
        model, n = self.model, self.num_cond
        batch, time = tf.shape(enc["top"])[0], tf.shape(enc["top"])[1]
        count = time - n0
        flat = lambda z: tf.reshape(z, [-1, *z.shape[2:]])

        def windows(z):
            past = [z[:, n0 - n + j:time - n + j] for j in range(n)]
            if self.cond_first:
                first = tf.broadcast_to(z[:, :1], tf.shape(past[0]))
                past = [first] + past
            return [flat(p) for p in past]

        def unflat(v):
            return self._unflatten(v, batch, count)

        out = tf.zeros([batch, count])
        for l in range(self.num_levels):
            x1, z = enc["conditions"][l][:, n0:], enc["levels"][l][:, n0:]
            marginal = tuple(flat(v[:, n0:]) for v in enc["marginals"][l])
            loc, scale, _ = model._level_prior(l, flat(x1), windows(enc["levels"][l]),
                                               None, True, False, False, marginal=marginal)
            out += _sum_log_prob(z, unflat(loc), unflat(scale))
        z = enc["top"][:, n0:]
        loc, scale, _ = model._top_prior(flat(z), windows(enc["top"]), None, True,
                                         False, False)
        out += _sum_log_prob(z, unflat(loc), unflat(scale))
        return tf.pad(out, [[0, 0], [n0, 0]])

    def _conditioned_log_probs_loop(self, enc, n0):
        """As `_conditioned_log_probs_batched` for the recurrent conv_lstm priors."""
        model = self.model
        batch, time = tf.shape(enc["top"])[0], tf.shape(enc["top"])[1]
        level_states, top_state = self._zero_states(
            [z[:, 0] for z in enc["levels"]], enc["top"][:, 0])

        def past(z, t):
            window = [z[:, t - self.num_cond + j] for j in range(self.num_cond)]
            return ([z[:, 0]] if self.cond_first else []) + window

        def body(t, out, level_states, top_state):
            log_prob = tf.zeros([batch])
            new_level_states = []
            for l in range(self.num_levels):
                z = enc["levels"][l][:, t]
                marginal = tuple(v[:, t] for v in enc["marginals"][l])
                loc, scale, state = model._level_prior(
                    l, enc["conditions"][l][:, t], past(enc["levels"][l], t),
                    level_states[l], True, False, False, marginal=marginal)
                new_level_states.append(state)
                log_prob += gaussian_log_prob(z, loc, scale)
            z = enc["top"][:, t]
            loc, scale, top_state = model._top_prior(z, past(enc["top"], t), top_state,
                                                     True, False, False)
            log_prob += gaussian_log_prob(z, loc, scale)
            return t + 1, out.write(t - n0, log_prob), new_level_states, top_state

        out = tf.TensorArray(tf.float32, size=time - n0, element_shape=[None])
        _, out, _, _ = tf.while_loop(lambda t, *_: t < time, body,
                                     (tf.constant(n0), out, level_states, top_state))
        values = tf.transpose(tf.reshape(out.stack(), [time - n0, batch]))
        return tf.pad(values, [[0, 0], [n0, 0]])

    def bits_per_pixel(self, frames, num_context, noise=BPP_NOISE):
        """Bits per dimension `[B, T - num_context]` of uint8 frames (T >= needed),
        dequantised with the constant `noise`."""
        x = preprocess(frames) + noise
        d = float(np.prod(self.frame_shape))
        return -self.frame_objectives(x)[:, num_context:] / (d * math.log(2.0))

    # -- sampling ----------------------------------------------------------------------

    def start(self, context):
        """The carry after the context frames (uint8 `[B, C >= needed, H, W, C]`).

        The context is encoded in one flow pass (as the model does). Without a
        recurrent prior the carry is just the last N latents (and frame 0's); the
        ConvLSTM states need a loop over the context frames.

        Returns `(carry, batch)`; the carry is an empty dict in unconditional mode.
        """
        x = preprocess(context)
        batch, time = tf.shape(x)[0], tf.shape(x)[1]
        if not self.conditional:
            return {}, batch
        model, n = self.model, self.num_cond
        enc = self.encode_all(x, with_marginals=self.recurrent)
        carry = {}
        if self.cond_first:
            carry["first_levels"] = [z[:, 0] for z in enc["levels"]]
            carry["first_top"] = enc["top"][:, 0]
        if not self.recurrent:
            last = lambda z: [z[:, time - n + j] for j in range(n)]
            carry["levels"] = [last(z) for z in enc["levels"]]
            carry["top"] = last(enc["top"])
            return carry, batch

        # Frames before `needed` have no conditioning set: they only fill the window.
        carry["levels"] = [[z[:, self.needed - n + j] for j in range(n)]
                           for z in enc["levels"]]
        carry["top"] = [enc["top"][:, self.needed - n + j] for j in range(n)]
        carry["level_states"], carry["top_state"] = self._zero_states(
            [z[:, 0] for z in enc["levels"]], enc["top"][:, 0])

        def body(t, carry):
            carry = dict(carry)
            states = []
            for l in range(self.num_levels):
                marginal = tuple(v[:, t] for v in enc["marginals"][l])
                _, _, state = model._level_prior(
                    l, enc["conditions"][l][:, t], self._cond_set(carry, l),
                    carry["level_states"][l], True, False, False, marginal=marginal)
                states.append(state)
            _, _, top_state = model._top_prior(
                enc["top"][:, t], self._cond_set(carry), carry["top_state"], True, False,
                False)
            carry["level_states"], carry["top_state"] = states, top_state
            return t + 1, self._shift(carry, [z[:, t] for z in enc["levels"]],
                                      enc["top"][:, t])

        _, carry = tf.while_loop(lambda t, _: t < time, body,
                                 (tf.constant(self.needed), carry))
        return carry, batch

    def generate(self, carry, batch, start, count, temperature, seed):
        """Generated frames `start .. start + count - 1` after `carry`.

        Args:
          carry, batch: from `start` (or a previous `generate`).
          start: int32 index of the first generated frame (seeds depend on it).
          count: int32 number of frames.
          temperature: float32 tau >= 0.
          seed: int32.

        Returns:
          `(uint8 frames [B, count, H, W, C], carry)`.
        """
        model = self.model
        temperature = tf.cast(temperature, tf.float32)
        seed = tf.cast(seed, tf.int32)
        start = tf.cast(start, tf.int32)

        def body(k, frames, carry):
            carry = dict(carry)
            like = tf.zeros([batch, *model.top_shape])
            if self.conditional:
                loc, scale, top_state = model._top_prior(
                    like, self._cond_set(carry), carry.get("top_state"), True, False,
                    False)
            else:
                loc, scale, top_state = model._top_prior(like, None, None, True, False,
                                                         False)
            top = loc + temperature * scale * tf.random.stateless_normal(
                tf.shape(loc), tf.stack([seed, 1000 * k]), alg=RNG_ALG)
            states = list(carry.get("level_states", [None] * self.num_levels))
            new_states = list(states)

            def sample_latent(level, x1):
                past = self._cond_set(carry, level) if self.conditional else None
                loc, scale, new_states[level] = model._level_prior(
                    level, x1, past, states[level], True, False, False)
                eps = tf.random.stateless_normal(
                    tf.shape(loc), tf.stack([seed, 1000 * k + 1 + level]), alg=RNG_ALG)
                return loc + temperature * scale * eps

            frame, latents, _ = model.flow.decode(top, sample_latent=sample_latent)
            if self.recurrent:
                carry["level_states"], carry["top_state"] = new_states, top_state
            if self.conditional:
                carry = self._shift(carry, latents, top)
            return k + 1, frames.write(k - start, postprocess(frame)), carry

        frames = tf.TensorArray(tf.uint8, size=count, element_shape=[None, *self.frame_shape])
        _, frames, carry = tf.while_loop(lambda k, *_: k < start + count, body,
                                         (start, frames, carry))
        frames = frames.stack()
        return tf.transpose(frames, [1, 0, 2, 3, 4]), carry

    def sample(self, context, num_frames, temperature, seed):
        """uint8 `[B, num_frames, H, W, C]`: `VideoFlow.sample` with a tensor length."""
        carry, batch = self.start(context)
        frames, _ = self.generate(carry, batch, 0, num_frames, temperature, seed)
        return frames


# ----------------------------------------------------------------------- the SavedModel


def _video_spec(name, dtype=tf.uint8):
    # Unknown rank: a served signature does not check the rank of its inputs, so
    # `_check_shape` does, in the graph, with a clear message.
    return tf.TensorSpec(None, dtype, name=name)


def _check_shape(x, name, dims):
    """`x` after an in-graph check of its rank and of the int entries of `dims`
    (strings name free dimensions); the result has the static shape."""
    shape = tf.shape(x)
    expected = f"[{', '.join(str(d) for d in dims)}]"
    fixed = [(i, d) for i, d in enumerate(dims) if isinstance(d, int)]
    padded = tf.concat([shape, tf.zeros([len(dims)], tf.int32)], 0)
    ok = tf.equal(tf.size(shape), len(dims))
    for i, d in fixed:
        ok = tf.logical_and(ok, tf.equal(padded[i], d))
    check = tf.debugging.Assert(ok, [f"{name} must have shape {expected}; got shape", shape],
                                summarize=8)
    with tf.control_dependencies([check]):
        x = tf.identity(x)
    return tf.ensure_shape(x, [d if isinstance(d, int) else None for d in dims])


class ServingModule(tf.Module):
    """What the exporter saves: the model's variables and the serving functions.

    Args:
      model: a `VideoFlow`.
      num_context: frames that condition but are not scored by `bits_per_pixel`
        (`video_num_input_frames`; 0 for unconditional models).
    """

    def __init__(self, model, num_context, name="videoflow_serving"):
        super().__init__(name=name)
        # The model is not tracked as an attribute: its Keras 3 layers would add a
        # second copy of every prior weight (the KerasVariable next to the tf.Variable
        # the graph reads), doubling the export. Its tf.Variables are tracked instead.
        object.__setattr__(self, "model", model)
        self.model_variables = list(model.variables)
        self._loop = FrameLoop(model)
        self._num_context = int(num_context)
        # Scoring needs a frame to score and the first conditioned frame's history.
        self._min_score_frames = max(self._num_context + 1, self._loop.needed)
        level_specs = [_video_spec(f"level_{l}", tf.float32)
                       for l in range(self._loop.num_levels)]
        self.decode = tf.function(self._decode, autograph=False,
                                  input_signature=level_specs + [_video_spec("top", tf.float32)])

    # -- input checks (in the graph) ---------------------------------------------------

    def _checked_video(self, frames, name, min_frames):
        h, w, c = self.model.frame_shape
        frames = _check_shape(frames, name, ["batch", "time", h, w, c])
        check = tf.debugging.Assert(
            tf.shape(frames)[1] >= min_frames,
            [f"{name} needs at least {min_frames} frame(s) along time (dimension 1); "
             "got shape", tf.shape(frames)], summarize=8)
        with tf.control_dependencies([check]):
            frames = tf.identity(frames)
        return frames

    # -- signatures --------------------------------------------------------------------

    @tf.function(input_signature=[_video_spec("frames")], autograph=False)
    def bits_per_pixel(self, frames):
        """uint8 `[B, T, H, W, 3]` -> `{"bits_per_pixel": [B, T - num_context]}`."""
        frames = self._checked_video(frames, "frames", self._min_score_frames)
        return {"bits_per_pixel": self._loop.bits_per_pixel(frames, self._num_context)}

    @tf.function(input_signature=[
        _video_spec("context"), tf.TensorSpec(None, tf.int32, name="num_frames"),
        tf.TensorSpec(None, tf.float32, name="temperature"),
        tf.TensorSpec(None, tf.int32, name="seed")], autograph=False)
    def sample(self, context, num_frames, temperature, seed):
        """`{"frames": uint8 [B, num_frames, H, W, 3]}` after the context frames."""
        context = self._checked_video(context, "context", self._loop.needed)
        num_frames = _check_shape(num_frames, "num_frames", [])
        temperature = _check_shape(temperature, "temperature", [])
        seed = _check_shape(seed, "seed", [])
        checks = [
            tf.debugging.assert_greater_equal(
                num_frames, 1, message="num_frames must be >= 1"),
            tf.debugging.assert_all_finite(temperature, "temperature must be finite"),
            tf.debugging.assert_greater_equal(
                temperature, 0.0, message="temperature must be >= 0"),
        ]
        with tf.control_dependencies(checks):
            num_frames = tf.identity(num_frames)
        return {"frames": self._loop.sample(context, num_frames, temperature, seed)}

    @tf.function(input_signature=[_video_spec("frames")], autograph=False)
    def encode(self, frames):
        """uint8 frames -> `{"level_0", .., "top"}`, each `[B, T, h, w, c]` (no noise)."""
        frames = self._checked_video(frames, "frames", 1)
        enc = self._loop.encode_all(preprocess(frames))
        out = {f"level_{l}": z for l, z in enumerate(enc["levels"])}
        out["top"] = enc["top"]
        return out

    def _decode(self, *latents):
        """Latents `level_0, .., top` (`[B, T, h, w, c]`) -> `{"frames": uint8}`."""
        names = [f"level_{l}" for l in range(self._loop.num_levels)] + ["top"]
        shapes = list(self.model.level_shapes) + [self.model.top_shape]
        latents = [_check_shape(z, name, ["batch", "time", *shape])
                   for name, z, shape in zip(names, latents, shapes)]
        top = latents[-1]
        checks = [tf.debugging.Assert(
            tf.reduce_all(tf.equal(tf.shape(z)[:2], tf.shape(top)[:2])),
            [f"{name} and top must have the same batch and time dimensions; got",
             tf.shape(z)[:2], "and", tf.shape(top)[:2]], summarize=8)
            for name, z in zip(names[:-1], latents[:-1])]
        checks += [tf.debugging.assert_all_finite(z, f"{name} must be finite")
                   for name, z in zip(names, latents)]
        with tf.control_dependencies(checks):
            latents = [tf.identity(z) for z in latents]
            top = latents[-1]
        batch, time = tf.shape(top)[0], tf.shape(top)[1]
        flat = [tf.reshape(z, [-1, *z.shape[2:]]) for z in latents]
        x, _, _ = self.model.flow.decode(flat[-1], flat[:-1])
        frames = postprocess(tf.reshape(x, [batch, time, *self.model.frame_shape]))
        return {"frames": frames}

    def signatures(self):
        """The functions to save as signatures, by signature name.

        The `tf.function`s themselves (not concrete functions traced beforehand): the
        saver traces them once, in its save context, for both the signatures and the
        module's function attributes. Concrete functions traced outside would be
        traced a second time there and stored twice.
        """
        return {"serving_default": self.sample, "sample": self.sample,
                "bits_per_pixel": self.bits_per_pixel, "encode": self.encode,
                "decode": self.decode}


# ------------------------------------------------------- trained runs and SavedModels


def restore_for_inference(output_dir, problem_name=None, hparams_set=None, overrides="",
                          checkpoint_path=None, t2t_usr_dir=None, need_problem=True):
    """The trained model of a run dir, for the decoder and the exporter.

    Args:
      output_dir: a training output dir (`run_dir` layout).
      problem_name: default the run's (`run.json`); checked against the hparams.
      hparams_set: default the run's `hparams.json` (with `overrides` applied);
        given, the set is rebuilt from the registry (and must fit the checkpoint).
      overrides: `name=value,...` applied to the hparams.
      checkpoint_path: a checkpoint prefix; default the newest in `output_dir`.
      t2t_usr_dir: imported first; default the run's.
      need_problem: raise if no problem is known (the exporter can do without).

    Returns:
      dict with model, hparams, hparams_set, problem (or None), checkpoint, step.

    Raises:
      RunDirError, UnknownNameError, HParamsError, UsrDirError, ValueError.
    """
    if not output_dir:
        raise run_dir.RunDirError("--output_dir is required.")
    run_hparams, info = run_dir.load_run(output_dir)
    usr_dir = t2t_usr_dir or info.get("t2t_usr_dir")
    if usr_dir:
        import_usr_dir(usr_dir)
    if hparams_set:
        hparams = registry.create_hparams(hparams_set, overrides or "")
    else:
        hparams = run_hparams.copy().parse(overrides or "")
        hparams_set = info.get("hparams_set")
    problem_name = problem_name or info.get("problem")
    problem = None
    if problem_name:
        problem = registry.problem(problem_name)
        problem.check_hparams(hparams, set_name=hparams_set)
    elif need_problem:
        raise run_dir.RunDirError(f"{output_dir!r} records no problem; pass --problem.")
    model, hparams, _, path = run_dir.restore_model(
        output_dir, checkpoint_path, hparams=hparams)
    return {"model": model, "hparams": hparams, "hparams_set": hparams_set,
            "problem": problem, "checkpoint": path, "step": run_dir.checkpoint_step(path)}


def num_context_frames(hparams):
    """Frames `bits_per_pixel` does not score: the inputs, none when unconditional."""
    return hparams.video_num_input_frames if hparams.gen_mode == "conditional" else 0


def _dir_size(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def export_saved_model(model, hparams, export_base, metadata=None, timestamp=None):
    """Writes the serving SavedModel to `export_base/<timestamp>/`, atomically.

    The SavedModel is written under a hidden temporary name in `export_base`
    (`.tmp-<timestamp>-<pid>`, ignored by TF Serving, which loads numeric version
    dirs) and renamed when complete; on any error the temporary dir is removed, so
    no partial export ever appears under a final name. `assets.extra/videoflow.json`
    records the frame shape, context frames, default temperature and `metadata`.

    Args:
      model: a `VideoFlow` with its weights.
      hparams: its hparams (frame counts, temperature).
      export_base: e.g. `OUTPUT_DIR/export`; created if missing.
      metadata: optional dict added to the JSON (problem, checkpoint, ...).
      timestamp: version number (default: the current Unix time; bumped while taken).

    Returns:
      The final export path.
    """
    os.makedirs(export_base, exist_ok=True)
    version = int(time.time() if timestamp is None else timestamp)
    while os.path.exists(os.path.join(export_base, str(version))):
        version += 1
    final = os.path.join(export_base, str(version))
    tmp = os.path.join(export_base, f".tmp-{version}-{os.getpid()}")
    num_context = num_context_frames(hparams)
    module = ServingModule(model, num_context)
    info = dict(metadata or {})
    loop = module._loop
    info.update({
        "frame_shape": list(model.frame_shape), "num_context": num_context,
        "min_context_frames": loop.needed,
        "min_bits_per_pixel_frames": module._min_score_frames,
        "temperature": float(hparams.temperature),
        "video_num_input_frames": hparams.video_num_input_frames,
        "video_num_target_frames": hparams.video_num_target_frames,
        "level_shapes": [list(s) for s in model.level_shapes],
        "top_shape": list(model.top_shape),
        "bits_per_pixel_noise": BPP_NOISE,
        "signatures": sorted(["serving_default", "sample", "bits_per_pixel", "encode",
                              "decode"]),
    })
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
        with open(os.path.join(tmp, "assets.extra", "videoflow.json"), "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        os.rename(tmp, final)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def export_size_bytes(path):
    """Total bytes of the files under an export dir."""
    return _dir_size(path)
