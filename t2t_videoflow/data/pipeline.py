"""tf.data input pipelines: per-frame records -> clips -> (windowed) batches.

    shard files (shuffled, repeated) --interleave--> per-file clips of frames 0..N-1
      (N = inputs + targets) --shuffle--> --enumerate--> cut a window, decode PNGs
      (parallel) --> batch --> prefetch

Clips follow T2T (`video_utils.VideoProblem.preprocess`): every video contributes
exactly one clip, its frames 0..N-1, found with a sliding window over the records that
requires frame numbers 0, 1, ..., N-1. Only the frames a step needs are PNG-decoded.

Modes:
  train:   random `num_train_frames` window per clip (T2T `NextFrameGlow.get_all_frames`;
           the whole clip if -1), shuffled, repeated.
  eval:    the whole clip (all input and target frames), in file order, once.
  predict: as eval.

Batching: `hparams.batch_size` is the GLOBAL batch. Without an `input_context` the
dataset yields global batches (for `strategy.experimental_distribute_dataset` or one
device). With a `tf.distribute.InputContext` (from
`strategy.distribute_datasets_from_function`), it yields per-replica batches of
`batch_size / num_replicas_in_sync`. With several pipelines (workers) every pipeline
reads every file and keeps its share by example: per-replica batch i of the common
stream goes to pipeline (i // local replicas) % pipelines, so n workers train on exactly
the clips, windows and order of one worker with the same global batch.
Batches are full (`drop_remainder=True`) by default, as the model reshapes to a fixed
batch (as T2T's `NextFrameGlow` does in every mode).

Determinism and exact resume: with `deterministic=True` the order of examples and the
random windows depend only on `seed`. Windows are drawn with a stateless RNG keyed on
(seed, running example index), so they are the same after a restore. The iterator
can be saved in a `tf.train.Checkpoint(iterator=it)` and restored to continue exactly.

Elements are dicts of uint8 tensors:
  video:   [B, T, H, W, C]  the frames the model sees (T = window or clip length)
  inputs:  [B, min(n_in, T), H, W, C]   the first video_num_input_frames of `video`
  targets: [B, T - min(n_in, T), H, W, C]
"""

import numpy as np
import tensorflow as tf

from t2t_videoflow.data.records import (REGENERATE, DataError, iterate_records,
                                        parse_frame_record, png_shape, scan_tfrecord)

MODES = ("train", "eval", "predict")


def check_files(files, frame_shape, verify="framing", what=""):
    """Checks shard files before reading them.

    Args:
      files: list of paths.
      frame_shape: expected (H, W, C) of every frame.
      verify: "none"; "framing" (default: every file non-empty and not truncated, and
        its first record a frame of the right size; ~60k records/s, so ~20 s for all of
        BAIR's 1.3M train records, 1 s for shapes); or "full" (also reads every record,
        checking checksums and every frame's size); or "decode" (also decodes every
        PNG: what `find_bad_record` runs after a read error). Corrupt payload bytes are
        otherwise only found while reading, as TF's DataLossError.
      what: text naming the expectation in error messages (problem / hparams set).

    Raises:
      DataError naming the file.
    """
    if verify not in ("none", "framing", "full", "decode"):
        raise ValueError(f"verify must be none, framing, full or decode, got {verify!r}.")
    if verify == "none":
        return
    expected = tuple(int(d) for d in frame_shape)
    for path in files:
        scan_tfrecord(path)
        records = iterate_records(path)
        for i, record in enumerate(records):
            _, data = parse_frame_record(record, path)
            shape = png_shape(data)
            if shape is None:
                shape = tuple(tf.io.decode_image(data, expand_animations=False).shape)
            if shape != expected:
                raise DataError(
                    f"{path}: frame {i} is {shape[0]}x{shape[1]}x{shape[2]} but "
                    f"{what or 'the problem'} expects {expected[0]}x{expected[1]}x"
                    f"{expected[2]} frames.")
            if verify == "decode":
                try:
                    tf.io.decode_png(data, channels=expected[2])
                except tf.errors.InvalidArgumentError as e:
                    raise DataError(
                        f"{path}: record {i} holds a corrupt PNG "
                        f"({e.message.strip().splitlines()[0]}); {REGENERATE}") from None
            elif verify != "full":
                break


def find_bad_record(files, frame_shape):
    """Reads every record of `files` and decodes every PNG, to name the cause of a
    read error that TF reported without a file name.

    Returns:
      A DataError naming the first bad file and record (checksum mismatch, truncated
      file, not a frame record, an undecodable PNG, a wrong frame size) and what to
      do, or None when every record reads and decodes.
    """
    try:
        check_files(files, frame_shape, verify="decode")
    except DataError as e:
        return e
    return None


def _parse_frame(serialized):
    feats = tf.io.parse_single_example(serialized, {
        "frame_number": tf.io.FixedLenFeature([1], tf.int64),
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
    })
    return feats["frame_number"][0], feats["image/encoded"]


def _clips_from_file(filename, clip_len):
    """Dataset of (encoded[clip_len], filename): each video's frames 0..clip_len-1."""
    ds = tf.data.TFRecordDataset(filename)
    ds = ds.map(_parse_frame)
    ds = ds.filter(lambda number, _: number < clip_len)
    ds = ds.window(clip_len, shift=1, drop_remainder=True)
    ds = ds.flat_map(lambda numbers, encoded: tf.data.Dataset.zip(
        (numbers.batch(clip_len), encoded.batch(clip_len))))
    want = tf.range(clip_len, dtype=tf.int64)
    ds = ds.filter(lambda numbers, _: tf.reduce_all(tf.equal(numbers, want)))
    return ds.map(lambda _, encoded: (encoded, filename))


def _decode_frames(encoded, filename, frame_shape):
    """PNG strings [T] -> uint8 [T, H, W, C], asserting the frame size."""
    h, w, c = frame_shape
    frames = tf.map_fn(lambda s: tf.io.decode_png(s, channels=c), encoded,
                       fn_output_signature=tf.TensorSpec([None, None, c], tf.uint8))
    shape = tf.shape(frames)[1:3]
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(shape, [h, w])),
        [f"Frame size mismatch: expected {h}x{w}x{c}; file", filename, "has HxW", shape])
    with tf.control_dependencies([check]):
        frames = tf.identity(frames)
    return tf.ensure_shape(frames, [encoded.shape[0], h, w, c])


def make_dataset(problem, hparams, data_dir, mode, split=None, input_context=None,
                 deterministic=False, seed=None, repeat=None, shuffle_buffer=1024,
                 drop_remainder=True, verify="framing"):
    """Builds the input pipeline of `problem` for `hparams` (see module docstring).

    Args:
      problem: a `VideoProblem`.
      hparams: HParams (frame size, frame counts, `num_train_frames`, `batch_size`).
      data_dir: where `t2t-videoflow-datagen` wrote the problem's shards.
      mode: "train", "eval" or "predict".
      split: data split; default "train" for train and "dev" otherwise.
      input_context: optional `tf.distribute.InputContext` (per-replica batches).
      deterministic: fixed order and windows for a fixed `seed` (tests, exact resume).
      seed: int seed; default 0 when deterministic, else random.
      repeat: repeat forever; default True for train, False otherwise.
      shuffle_buffer: clips held for shuffling (train only).
      drop_remainder: only full batches.
      verify: file checks before reading (see `check_files`).

    Returns:
      tf.data.Dataset of dicts `video`, `inputs`, `targets` (uint8).

    Raises:
      DataError / ValueError on a missing or mismatched data dir, files or hparams.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    problem.check_hparams(hparams)
    split = split or ("train" if mode == "train" else "dev")
    files = problem.data_files(data_dir, split)
    frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    check_files(files, frame_shape, verify=verify,
                what=f"problem {problem.name!r} and the hparams")

    training = mode == "train"
    n_in = hparams.video_num_input_frames
    clip_len = n_in + hparams.video_num_target_frames
    window = clip_len
    if training and hparams.num_train_frames != -1:
        window = hparams.num_train_frames
    if repeat is None:
        repeat = training
    if seed is None:
        seed = 0 if deterministic else int(np.random.randint(0, 2**31 - 1))

    global_batch = hparams.batch_size
    batch = global_batch
    owner = None
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(global_batch)
        n_pipes, pipe_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        if n_pipes > 1:
            # Shard by example, exactly as one pipeline would have batched them: every
            # pipeline reads the same (seeded) stream; per-replica batch i of it goes to
            # pipeline (i // local replicas) % n_pipes, so the replicas of n pipelines see
            # the clips of one pipeline's global batch, in the same order.
            if not deterministic:
                raise ValueError("Several input pipelines need deterministic=True (each "
                                 "pipeline must see the same example order).")
            local = max(input_context.num_replicas_in_sync // n_pipes, 1)
            owner = lambda index: (index // batch // local) % n_pipes == pipe_id  # noqa: E731

    ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.interleave(lambda f: _clips_from_file(f, clip_len),
                       cycle_length=min(len(files), 8), block_length=1,
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if training and shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    ds = ds.enumerate()
    if owner is not None:
        ds = ds.filter(lambda index, clip: owner(index))

    def to_example(index, clip):
        encoded, filename = clip
        if window < clip_len:
            start = tf.random.stateless_uniform(
                [], seed=tf.stack([tf.cast(seed, tf.int64), index]),
                minval=0, maxval=clip_len - window + 1, dtype=tf.int64)
            encoded = encoded[start:start + window]
        encoded = tf.ensure_shape(encoded, [window])
        video = _decode_frames(encoded, filename, frame_shape)
        k = min(n_in, window)
        return {"video": video, "inputs": video[:k], "targets": video[k:]}

    ds = ds.map(to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=deterministic)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    if input_context is not None:
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
    return ds.with_options(options)


def count_videos(files, clip_len):
    """Number of clips (videos with frames 0..clip_len-1) in `files` (reads them all)."""
    ds = tf.data.Dataset.from_tensor_slices(list(files)).flat_map(
        lambda f: _clips_from_file(f, clip_len))
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))
