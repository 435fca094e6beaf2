"""The SavedModel: a `VideoFlow`'s scoring and sampling as serving signatures.

The signatures call the model's own engine (`VideoFlow.bits_per_pixel`,
`VideoFlow.sampling_start` / `generate`, `encode`, `decode`), which works on a
tensor number of frames (`tf.while_loop`s over time with a fixed-shape carry), so one
trace serves clips and samples of any length.

`ServingModule` is the `tf.Module` that `exporter.py` saves, with these serving
signatures (shapes declared with the model's sizes, so `saved_model_cli show` documents
them; all inputs validated again in-graph, bad input raises InvalidArgumentError):

    bits_per_pixel(frames uint8 [B, T, H, W, 3])  -> {"bits_per_pixel": [B, T - ctx]}
    bits_per_pixel_monte_carlo(frames uint8 [B, T, H, W, 3], seed int32 [],
                               num_draws int32 [], 1 <= num_draws <= 1000)
                                   -> {"bits_per_pixel", "standard_error": [B, T - ctx]}
    sample(context uint8 [B, C, H, W, 3], num_frames int32 [], temperature float32 [],
           seed int32 [])                        -> {"frames": uint8 [B, num_frames, H, W, 3]}
           (1 <= num_frames <= MAX_SAMPLE_FRAMES = 1000)
    encode(frames uint8 [B, T, H, W, 3])          -> {"level_0", .., "level_{L-2}", "top"}
    decode(level_0, .., top float32 [B, T, h, w, c]) -> {"frames": uint8 [B, T, H, W, 3]}

The model's loops are explicit `tf.while_loop`s, so every `tf.function` here is traced
with `autograph=False` (AutoGraph cannot convert them and would only warn).

`serving_default` is `sample`. ctx is `video_num_input_frames` (0 in unconditional
mode, where every frame is scored). A wrong frame size is refused when the inputs are
bound from Python and saved_model_cli (naming the declared shape) and in the graph
(naming the input and the expected shape) where TF Serving does not check.

Two bits-per-pixel estimates: `bits_per_pixel` dequantises with the constant
`u = 1/512`, the middle of `U[0, 1/256)` (a point estimate at the bin centres: the
score of a frame depends only on the frame and its past, not on the batch or a seed);
`bits_per_pixel_monte_carlo` is the paper's estimate (docs/t2t.md, Bits per pixel on
BAIR): the mean over `num_draws` draws of uniform noise `u`, draw d of the request's
row i being clip i's noise under the pair `(seed, d)` (`model/noise.py`), with its
standard error; with the same seed its draws are
`VideoFlow.bits_per_pixel(frames, ctx, seed=[seed, d])`.

Not supported: the pointwise prior encoder (its parameters carry a static batch
dimension, so a served batch size would be fixed); `ExportError` says so.
"""

import json
import os
import time

import tensorflow as tf

from t2t_videoflow.model.sampling import check_exportable
from t2t_videoflow.model.videoflow import postprocess
from t2t_videoflow.errors import ExportError

# Dequantisation noise of the exported bits_per_pixel: the middle of U[0, 1/256)
# (of the n-bit bin with n_bits_x < 8: the model stretches it).
BPP_NOISE = 1.0 / 512.0

# The most frames one call of the `sample` signature (and `serving_default`) draws;
# more is an InvalidArgumentError before anything is allocated (a served request must
# not hold the server for minutes or exhaust its memory). Recorded in the export's
# assets.extra/videoflow.json as "max_sample_frames". Longer rollouts: call again
# with the last frames as context, or use t2t-videoflow-decoder.
MAX_SAMPLE_FRAMES = 1000
# The same for the draws of `bits_per_pixel_monte_carlo` (the paper's estimate needs a
# few; each costs a full scoring pass). Recorded as "max_num_draws".
MAX_NUM_DRAWS = 1000


# ----------------------------------------------------------------------- the SavedModel


def _video_spec(name, event_shape, dtype=tf.uint8):
    """`[batch, time, *event_shape]` inputs: the signature shows the known sizes
    (`saved_model_cli show`: `(-1, -1, 64, 64, 3)`); the graph checks them again with
    a message naming the input (TF Serving does not check declared shapes)."""
    return tf.TensorSpec([None, None, *event_shape], dtype, name=name)


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
        check_exportable(model)
        self._num_context = int(num_context)
        # Scoring needs a frame to score and the first conditioned frame's history.
        self.min_context_frames = model.min_context_frames
        self.min_score_frames = max(self._num_context + 1, self.min_context_frames)
        frame_shape = model.frame_shape
        scalar = lambda name, dtype: tf.TensorSpec([], dtype, name=name)
        # Traced from the model's shapes, so built here rather than as decorators.
        self.bits_per_pixel = tf.function(
            self._bits_per_pixel, autograph=False,
            input_signature=[_video_spec("frames", frame_shape)])
        self.bits_per_pixel_monte_carlo = tf.function(
            self._bits_per_pixel_monte_carlo, autograph=False,
            input_signature=[_video_spec("frames", frame_shape), scalar("seed", tf.int32),
                             scalar("num_draws", tf.int32)])
        self.sample = tf.function(
            self._sample, autograph=False,
            input_signature=[_video_spec("context", frame_shape),
                             scalar("num_frames", tf.int32),
                             scalar("temperature", tf.float32), scalar("seed", tf.int32)])
        self.encode = tf.function(self._encode, autograph=False,
                                  input_signature=[_video_spec("frames", frame_shape)])
        latent_specs = [_video_spec(f"level_{l}", shape, tf.float32)
                        for l, shape in enumerate(model.level_shapes)]
        latent_specs.append(_video_spec("top", model.top_shape, tf.float32))
        self.decode = tf.function(self._decode, autograph=False,
                                  input_signature=latent_specs)

    # -- input checks (in the graph) ---------------------------------------------------

    def _checked_video(self, frames, name, min_frames):
        h, w, c = self.model.frame_shape
        frames = _check_shape(frames, name, ["batch", "time", h, w, c])
        checks = [
            tf.debugging.Assert(
                tf.shape(frames)[0] >= 1,
                [f"{name} needs a batch of at least 1 clip (dimension 0); got shape",
                 tf.shape(frames)], summarize=8),
            tf.debugging.Assert(
                tf.shape(frames)[1] >= min_frames,
                [f"{name} needs at least {min_frames} frame(s) along time (dimension 1); "
                 "got shape", tf.shape(frames)], summarize=8)]
        with tf.control_dependencies(checks):
            frames = tf.identity(frames)
        return frames

    # -- signatures --------------------------------------------------------------------

    def _bits_per_pixel(self, frames):
        """uint8 `[B, T, H, W, 3]` -> `{"bits_per_pixel": [B, T - num_context]}`: the
        point estimate at the dequantisation bins' centres (noise 1/512). Not the
        paper's figure: a model with sharp bins has its highest density at their
        centres, so this can be far lower, even negative (README, "Sampling and
        serving a trained model")."""
        frames = self._checked_video(frames, "frames", self.min_score_frames)
        noise = tf.fill(tf.shape(frames), BPP_NOISE)
        return {"bits_per_pixel": self.model.bits_per_pixel(frames, self._num_context,
                                                            noise=noise)}

    def _bits_per_pixel_monte_carlo(self, frames, seed, num_draws):
        """The paper's estimate (docs/t2t.md, Bits per pixel on BAIR): the mean over
        `num_draws` draws of uniform dequantisation noise (stateless, seeds
        `[seed, d]`), with the standard error of that mean. Returns
        `{"bits_per_pixel", "standard_error"}`, each `[B, T - num_context]` (standard
        error 0 for one draw)."""
        frames = self._checked_video(frames, "frames", self.min_score_frames)
        checks = [tf.debugging.assert_greater_equal(num_draws, 1,
                                                    message="num_draws must be >= 1"),
                  tf.debugging.assert_less_equal(
                      num_draws, MAX_NUM_DRAWS,
                      message=f"num_draws must be <= {MAX_NUM_DRAWS} (MAX_NUM_DRAWS)")]
        with tf.control_dependencies(checks):
            num_draws = tf.identity(num_draws)
        def body(d, draws):
            bpp = self.model.bits_per_pixel(frames, self._num_context,
                                            seed=tf.stack([seed, d]))
            return d + 1, draws.write(d, bpp)

        draws = tf.TensorArray(tf.float32, size=num_draws, element_shape=[None, None])
        _, draws = tf.while_loop(lambda d, _: d < num_draws, body, (tf.constant(0), draws))
        draws = draws.stack()                                   # [num_draws, B, T - ctx]
        n = tf.cast(num_draws, tf.float32)
        mean = tf.reduce_mean(draws, axis=0)
        # Two passes (deviations from the mean): sums of squares of ~8-bit values would
        # cancel in float32.
        variance = tf.reduce_sum(tf.square(draws - mean), axis=0) / tf.maximum(n - 1.0, 1.0)
        return {"bits_per_pixel": mean, "standard_error": tf.sqrt(variance / n)}

    def _sample(self, context, num_frames, temperature, seed):
        """`{"frames": uint8 [B, num_frames, H, W, 3]}` after the context frames."""
        context = self._checked_video(context, "context", self.min_context_frames)
        num_frames = _check_shape(num_frames, "num_frames", [])
        temperature = _check_shape(temperature, "temperature", [])
        seed = _check_shape(seed, "seed", [])
        checks = [
            tf.debugging.assert_greater_equal(
                num_frames, 1, message="num_frames must be >= 1"),
            tf.debugging.assert_less_equal(
                num_frames, MAX_SAMPLE_FRAMES,
                message=f"num_frames must be <= {MAX_SAMPLE_FRAMES} (MAX_SAMPLE_FRAMES, "
                        "the most frames one sample call draws; sample longer videos "
                        "in several calls)"),
            tf.debugging.assert_all_finite(temperature, "temperature must be finite"),
            tf.debugging.assert_greater_equal(
                temperature, 0.0, message="temperature must be >= 0"),
        ]
        with tf.control_dependencies(checks):     # nothing runs before the checks
            num_frames = tf.identity(num_frames)
            context = tf.identity(context)
        carry = self.model.sampling_start(context)
        frames, _, _ = self.model.generate(carry, 0, num_frames, temperature, seed)
        return {"frames": postprocess(frames, self.model.n_bits)}

    def _encode(self, frames):
        """uint8 frames -> `{"level_0", .., "top"}`, each `[B, T, h, w, c]` (no noise)."""
        frames = self._checked_video(frames, "frames", 1)
        latents = self.model.encode(frames)
        out = {f"level_{l}": z for l, z in enumerate(latents["levels"])}
        out["top"] = latents["top"]
        return out

    def _decode(self, *latents):
        """Latents `level_0, .., top` (`[B, T, h, w, c]`) -> `{"frames": uint8}`."""
        names = [f"level_{l}" for l in range(len(self.model.level_shapes))] + ["top"]
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
        return {"frames": self.model.decode({"levels": latents[:-1], "top": latents[-1]})}

    def signatures(self):
        """The functions to save as signatures, by signature name.

        The `tf.function`s themselves (not concrete functions traced beforehand): the
        saver traces them once, in its save context, for both the signatures and the
        module's function attributes. Concrete functions traced outside would be
        traced a second time there and stored twice.
        """
        return {"serving_default": self.sample, "sample": self.sample,
                "bits_per_pixel": self.bits_per_pixel,
                "bits_per_pixel_monte_carlo": self.bits_per_pixel_monte_carlo,
                "encode": self.encode,
                "decode": self.decode}


# ------------------------------------------------------- trained runs and SavedModels


def num_context_frames(hparams):
    """Frames `bits_per_pixel` does not score: the inputs, none when unconditional."""
    return hparams.video_num_input_frames if hparams.gen_mode == "conditional" else 0


def _dir_size(path):
    return sum(tf.io.gfile.stat(os.path.join(root, name)).length
               for root, _, names in tf.io.gfile.walk(path) for name in names)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


def remove_abandoned_exports(export_base):
    """Removes `.tmp-<version>-<pid>` dirs of exports whose process is gone (killed
    mid-export); an export still running in another process is left alone.

    Returns:
      The removed paths.
    """
    removed = []
    for name in tf.io.gfile.listdir(export_base):
        name = name.rstrip("/")
        parts = name.split("-")
        if not (name.startswith(".tmp-") and len(parts) == 3 and parts[2].isdigit()):
            continue
        if _process_alive(int(parts[2])):
            continue
        path = os.path.join(export_base, name)
        tf.io.gfile.rmtree(path)
        removed.append(path)
    return removed


def _rename_to_free_version(tmp, export_base, version, attempts=1000):
    """Renames the finished `tmp` dir to `export_base/<version>`, or to the next free
    version if another export (another process) took that one meanwhile; returns the
    final path. Never replaces an existing version dir."""
    for _ in range(attempts):
        final = os.path.join(export_base, str(version))
        if not tf.io.gfile.exists(final):
            try:
                tf.io.gfile.rename(tmp, final)
                return final
            except (tf.errors.OpError, OSError) as e:
                if not tf.io.gfile.exists(final):      # not a race: a real failure
                    raise ExportError(f"Cannot rename the finished export {tmp} to "
                                      f"{final}: {e}") from e
        version += 1
    raise ExportError(f"Cannot rename the finished export {tmp} to a free version in "
                      f"{export_base}: versions up to {version - 1} are all taken.")


def export_saved_model(model, hparams, export_base, metadata=None, timestamp=None):
    """Writes the serving SavedModel to `export_base/<timestamp>/`, atomically.

    The SavedModel is written under a hidden temporary name in `export_base`
    (`.tmp-<timestamp>-<pid>`, ignored by TF Serving, which loads numeric version
    dirs) and renamed when complete (to the next free version if another export, in
    another process, took that one meanwhile: an existing version is never replaced);
    on any error the temporary dir is removed, so
    no partial export ever appears under a final name. Temporary dirs left by a
    killed export (its process gone) are removed first. `assets.extra/videoflow.json`
    records the frame shape, context frames, default temperature, `max_sample_frames`
    and `metadata`.

    Args:
      model: a `VideoFlow` with its weights.
      hparams: its hparams (frame counts, temperature).
      export_base: e.g. `OUTPUT_DIR/export`; created if missing.
      metadata: optional dict added to the JSON (problem, checkpoint, ...).
      timestamp: version number (default: the current Unix time; bumped while taken).

    Every file goes through `tf.io.gfile`, so `export_base` may be on any filesystem
    TensorFlow writes (`gs://...`).

    Returns:
      The final export path.
    """
    tf.io.gfile.makedirs(export_base)
    remove_abandoned_exports(export_base)
    version = int(time.time() if timestamp is None else timestamp)
    while tf.io.gfile.exists(os.path.join(export_base, str(version))):
        version += 1
    final = os.path.join(export_base, str(version))
    tmp = os.path.join(export_base, f".tmp-{version}-{os.getpid()}")
    num_context = num_context_frames(hparams)
    module = ServingModule(model, num_context)
    info = dict(metadata or {})
    info.update({
        "frame_shape": list(model.frame_shape), "num_context": num_context,
        "min_context_frames": module.min_context_frames,
        "min_bits_per_pixel_frames": module.min_score_frames,
        "temperature": float(hparams.temperature),
        "video_num_input_frames": hparams.video_num_input_frames,
        "video_num_target_frames": hparams.video_num_target_frames,
        "level_shapes": [list(s) for s in model.level_shapes],
        "top_shape": list(model.top_shape),
        "bits_per_pixel_noise": BPP_NOISE,
        "max_sample_frames": MAX_SAMPLE_FRAMES,
        "max_num_draws": MAX_NUM_DRAWS,
        "signatures": sorted(module.signatures()),
    })
    try:
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        tf.io.gfile.makedirs(os.path.join(tmp, "assets.extra"))
        with tf.io.gfile.GFile(os.path.join(tmp, "assets.extra", "videoflow.json"), "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        final = _rename_to_free_version(tmp, export_base, version)
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.rmtree(tmp)
    return final


def export_size_bytes(path):
    """Total bytes of the files under an export dir."""
    return _dir_size(path)
