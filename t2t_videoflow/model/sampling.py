"""Sampling a trained model in graph mode, chunk by chunk, with progress.

`Sampler` is what every tool samples clips with (the decoder, the motion diagnostic,
the temperature sweep, the long-rollout and FVD experiments); it draws exactly the
frames `VideoFlow.sample` draws for a seed, as graph `tf.while_loop`s
(`VideoFlow.generate`), optionally XLA-compiled. One seed rule for clips:
the samples of clip i (its index among the clips a tool conditions on) are drawn in
one batch under `clip_seed(seed, i)`, so they do not depend on which other clips are
sampled or how many. (The SavedModel's `sample` signature and `VideoFlow.sample` take
the seed of a whole request or batch, and the trainer's TensorBoard strip calls
`VideoFlow.sample` with the run's seed.)
"""

import time
import weakref

import numpy as np
import tensorflow as tf

from t2t_videoflow.model.videoflow import postprocess
from t2t_videoflow.errors import ExportError


def check_exportable(model):
    """ExportError for models whose graph functions need a static batch size."""
    if model.gen_mode == "conditional" and model.top_cond_prior.needs_static_batch:
        raise ExportError(
            f"The {model.latent_dist_encoder} prior encoder is not supported in graph "
            "mode / export: its parameters carry a static batch dimension. Use "
            "VideoFlow.sample.")


def clip_seed(seed, clip_index):
    """The int32 sampling seed of clip `clip_index` under `seed` (any temperature): the
    first word of `np.random.SeedSequence([seed, clip_index])`, masked to 31 bits."""
    state = np.random.SeedSequence([int(seed), int(clip_index)]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


class Sampler:
    """Samples in chunks of frames with graph-mode loops (optionally XLA-compiled)."""

    _cache = weakref.WeakKeyDictionary()   # model -> {jit_compile: Sampler}

    @classmethod
    def of(cls, model, jit_compile=False):
        """The `Sampler` of `model`, made once per model and setting (so repeated runs
        in one process trace once)."""
        samplers = cls._cache.setdefault(model, {})
        if bool(jit_compile) not in samplers:
            samplers[bool(jit_compile)] = cls(model, jit_compile)
        return samplers[bool(jit_compile)]

    def __init__(self, model, jit_compile=False):
        check_exportable(model)
        self.model = model
        # Explicit tf.while_loops inside: no AutoGraph needed.
        self._start = tf.function(model.sampling_start, autograph=False)
        self._generate = tf.function(self._chunk, jit_compile=jit_compile, autograph=False)

    def _chunk(self, carry, start, count, temperature, seed):
        frames, _, carry = self.model.generate(carry, start, count, temperature, seed)
        return postprocess(frames, self.model.n_bits), carry

    def sample(self, context, num_frames, temperature, seed, chunk=10, log=None):
        """uint8 `[B, num_frames, H, W, 3]` after uint8 `context [B, C, H, W, 3]`.

        `log(done, total, seconds)` is called after each chunk of `chunk` frames.
        """
        began = time.time()
        carry = self._start(tf.constant(context))
        temperature = tf.constant(temperature, tf.float32)
        seed = tf.constant(seed, tf.int32)
        out, done = [], 0
        while done < num_frames:
            count = min(chunk, num_frames - done)
            frames, carry = self._generate(carry, tf.constant(done, tf.int32), count,
                                           temperature, seed)
            out.append(frames.numpy())
            done += count
            if log is not None:
                log(done, num_frames, time.time() - began)
        return np.concatenate(out, axis=1)

    def sample_clip(self, context, clip_index, num_samples, num_frames, temperature,
                    seed, chunk=10, log=None):
        """uint8 `[num_samples, num_frames, H, W, 3]`: the samples of clip `clip_index`
        after its uint8 `context [C, H, W, 3]`, in one batch under
        `clip_seed(seed, clip_index)`."""
        batch = np.repeat(np.asarray(context)[np.newaxis], num_samples, axis=0)
        return self.sample(batch, num_frames, temperature, clip_seed(seed, clip_index),
                           chunk=chunk, log=log)
