"""Dequantisation noise: the one rule by which every tool draws it.

Clip i drawn under the stateless seed pair `s = (k, stream)` gets

    u_i ~ U[0, 1/256)^(T H W C)      (Philox, seed fold_in(s, i)),

where i is the clip's index in what is being scored: its position in the global
training batch of that step, in the evaluated split, among the clips of a tool, or in
a request's rows. A clip's noise thus depends on `(s, i)` alone, not on how the clips
are batched, the batch size or the number of replicas. Who uses which pair:

    trainer                       (random_seed, step), i = position in the global batch
    data-dependent init           (random_seed, 1), i = row of the init batch
    t2t-videoflow-eval bpp        (seed, draw), i = clip index in the split
    t2t-videoflow-motion          (random_seed, 0), i = clip index
    SavedModel Monte-Carlo bpp    (seed, draw), i = row of the request
    VideoFlow.bits_per_pixel(seed=s)   s, i = row

T2T draws `U[0, 1/256)` with stateful randomness in `uniform_binning_correction`;
this port draws the same distribution statelessly, so a run restarted at any step
and any evaluation repeated give the same numbers.
"""

import tensorflow as tf

# A fixed stateless RNG algorithm: TF's default ("auto_select") picks a different
# generator under XLA, so the same seed gave different samples with jit_compile.
RNG_ALG = "philox"
NOISE_WIDTH = 1.0 / 256.0


def clip_seeds(seed, clip_indices):
    """Stateless seeds `[b, 2]` (int64) of the clips `clip_indices` `[b]` under the
    pair `seed` `[2]`: `fold_in(seed, i)`."""
    seed = tf.cast(seed, tf.int64)
    return tf.map_fn(lambda i: tf.random.experimental.stateless_fold_in(seed, i),
                     tf.cast(clip_indices, tf.int64), fn_output_signature=tf.int64)


def clip_noise(shape, seed, clip_indices):
    """Dequantisation noise `shape = [b, T, H, W, C]` in [0, 1/256) of the clips
    `clip_indices` `[b]` under the seed pair `seed` `[2]` (module docstring)."""
    seeds = clip_seeds(seed, clip_indices)
    return tf.map_fn(
        lambda s: tf.random.stateless_uniform(shape[1:], s, 0.0, NOISE_WIDTH, alg=RNG_ALG),
        seeds, fn_output_signature=tf.float32)


def batch_noise(shape, seed, first_clip=0):
    """`clip_noise` of clips `first_clip, first_clip + 1, ...` (a batch's rows)."""
    first = tf.cast(first_clip, tf.int64)
    return clip_noise(shape, seed, first + tf.range(tf.cast(shape[0], tf.int64)))
