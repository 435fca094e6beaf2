"""The clips a tool conditions on: the first clips of a problem's dev or test split."""

import numpy as np

from t2t_videoflow.errors import UsageError


def dev_clips(problem, hparams, data_dir, num_clips, use_test_set=False):
    """`(context [N, n_in, H, W, 3], ground_truth [N, n_tgt, H, W, 3])` uint8 of the
    first `num_clips` clips of the dev (or test) split, in file order."""
    hp = hparams.copy()
    hp.batch_size = 1
    split = problem.split_for_mode("predict", use_test_set)
    ds = problem.dataset("predict", data_dir, hp, split=split, deterministic=True)
    contexts, truths = [], []
    for example in ds.take(num_clips):
        contexts.append(example["inputs"][0].numpy())
        truths.append(example["targets"][0].numpy())
    if len(contexts) < num_clips:
        raise UsageError(f"--num_clips={num_clips} but the {split} split of "
                         f"{problem.name!r} has only {len(contexts)} clip(s).")
    return np.stack(contexts), np.stack(truths)
