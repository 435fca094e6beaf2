"""Reading clips for evaluation and prediction: the one reader of a split in file order.

`read_clips` yields every clip of a split of a problem once, in file order, as uint8
batches `[b, num_frames, H, W, C]` (frames 0..num_frames-1 of each video; the last
batch possibly smaller, never dropped). The trainer's evaluation, every
`t2t-videoflow-eval` experiment (`evaluation/context.py`), the decoder and the motion
tool read their clips through it; `dev_clips` splits the first clips into context and
ground truth for the tools that condition on them.
"""

import numpy as np

from t2t_videoflow.errors import DataError, UsageError


def read_clips(problem, data_dir, hparams, split, num_frames, batch_size, max_clips=None):
    """Yields uint8 batches `[b, num_frames, H, W, C]` of the split's clips (see module
    docstring); `max_clips` stops early.

    Args:
      problem: the registered problem.
      data_dir: its shards.
      hparams: the run's hparams (frame size; checked against the problem).
      split: "train", "dev" or "test".
      num_frames: frames per clip (videos with fewer are not clips of this length).
      batch_size: clips per batch.
      max_clips: None, or stop after this many clips.

    Raises:
      UsageError: bad sizes. DataError: the split holds no clip of `num_frames` frames.
    """
    if num_frames < 1 or batch_size < 1:
        raise UsageError(f"num_frames and batch_size must be >= 1; got {num_frames}, "
                         f"{batch_size}.")
    # The pipeline reads frames 0..n_in+n_tgt-1 of each video; it needs a target.
    read = max(num_frames, 2)
    hp = hparams.copy()
    hp.batch_size = batch_size
    hp.video_num_input_frames, hp.video_num_target_frames = 1, read - 1
    hp.num_train_frames = -1
    ds = problem.dataset("eval", data_dir, hp, split=split, deterministic=True,
                         drop_remainder=False)
    seen = 0
    for batch in ds:
        video = batch["video"].numpy()[:, :num_frames]
        if max_clips is not None:
            video = video[:max_clips - seen]
        if len(video):
            yield video
        seen += len(video)
        if max_clips is not None and seen >= max_clips:
            return
    if seen == 0:
        raise DataError(f"The {split} split of {problem.name!r} in {data_dir!r} holds "
                        f"no clip of {num_frames} frames.")


def dev_clips(problem, hparams, data_dir, num_clips, use_test_set=False):
    """`(context [N, n_in, H, W, 3], ground_truth [N, n_tgt, H, W, 3])` uint8 of the
    first `num_clips` clips of the dev (or test) split, in file order."""
    split = problem.split_for_mode("predict", use_test_set)
    n_in = hparams.video_num_input_frames
    frames = n_in + hparams.video_num_target_frames
    clips = list(read_clips(problem, data_dir, hparams, split, frames, num_clips,
                            max_clips=num_clips))
    count = sum(len(c) for c in clips)
    if count < num_clips:
        raise UsageError(f"--num_clips={num_clips} but the {split} split of "
                         f"{problem.name!r} has only {count} clip(s).")
    video = np.concatenate(clips)
    return video[:, :n_in], video[:, n_in:]
