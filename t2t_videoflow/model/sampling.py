"""Sampling a trained model in graph mode, chunk by chunk, with progress.

`Sampler` is what the tools sample with (the decoder, the FVD and long-rollout
experiments); it draws exactly the frames `VideoFlow.sample` draws for a seed, as
graph `tf.while_loop`s (`VideoFlow.generate`), optionally XLA-compiled.
"""

import time

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


class Sampler:
    """Samples in chunks of frames with graph-mode loops (optionally XLA-compiled)."""

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
