"""What every experiment of `t2t-videoflow-eval` works on: a restored run and its clips.

`load_run(output_dir, ...)` restores the model of a training run (the newest or a
given checkpoint) and returns a `RunContext`; `RunContext.clips(num_frames)` reads a
whole split of the run's problem as uint8 batches `[b, num_frames, H, W, 3]`, in file
order, without dropping the last partial batch (`data/clips.read_clips`).
Experiments take a `RunContext` and plain arguments, so tests can build one from a
model and in-memory clips (`RunContext.from_arrays`).
"""

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from t2t_videoflow.data.clips import read_clips
from t2t_videoflow.errors import DataError, UsageError


@dataclasses.dataclass
class RunContext:
    """A model with the data it is evaluated on.

    Attributes:
      model: a restored `VideoFlow`.
      hparams: the run's hparams (frame counts, temperature).
      problem: the registered problem (None with in-memory clips).
      data_dir: the problem's shards (None with in-memory clips).
      split: "dev" or "test".
      checkpoint: the checkpoint prefix the weights came from (or a description).
      step: its global step (None if unknown).
      weights: "ema" (the run's moving average of the weights) or "trained".
      arrays: in-memory clips uint8 `[N, T, H, W, 3]` instead of a problem's split.
      log: progress messages go here.
    """
    model: Any
    hparams: Any
    problem: Any = None
    data_dir: Optional[str] = None
    split: str = "dev"
    checkpoint: str = ""
    step: Optional[int] = None
    weights: str = "trained"
    arrays: Optional[np.ndarray] = None
    log: Callable[[str], None] = print

    def provenance(self):
        """What every experiment's result records about the weights it scored: the
        checkpoint, its step, which weights ("ema" or "trained") and the split."""
        return {"checkpoint": self.checkpoint, "step": self.step, "weights": self.weights,
                "split": self.split}

    @classmethod
    def from_arrays(cls, model, hparams, clips, log=print, checkpoint="in-memory"):
        """A context over in-memory uint8 clips `[N, T, H, W, 3]` (tests, notebooks)."""
        clips = np.asarray(clips)
        if clips.ndim != 5 or clips.dtype != np.uint8:
            raise DataError(f"clips must be uint8 [N, T, H, W, 3]; got {clips.dtype} "
                            f"{list(clips.shape)}.")
        return cls(model=model, hparams=hparams, arrays=clips, log=log,
                   checkpoint=checkpoint)

    @property
    def num_context(self):
        """Frames that condition but are not scored: the set's inputs (0 when
        unconditional, where every frame is scored)."""
        if self.hparams.gen_mode != "conditional":
            return 0
        return self.hparams.video_num_input_frames

    def frames_per_video(self):
        """Frames stored per video (None if the problem does not say)."""
        if self.arrays is not None:
            return self.arrays.shape[1]
        return getattr(self.problem, "frames_per_video", None)

    def clips(self, num_frames, batch_size, max_clips=None):
        """Yields uint8 batches `[b, num_frames, H, W, 3]` of the split's clips (frames
        0..num_frames-1 of each video), in file order; every clip once, the last batch
        possibly smaller. `max_clips` stops early."""
        if num_frames < 1 or batch_size < 1:
            raise UsageError(f"num_frames and batch_size must be >= 1; got {num_frames}, "
                             f"{batch_size}.")
        available = self.frames_per_video()
        if available is not None and num_frames > available:
            raise UsageError(f"The experiment needs {num_frames} frames per clip, but "
                             f"the data has {available} per video.")
        if self.arrays is not None:
            clips = self.arrays[:max_clips, :num_frames]
            for i in range(0, len(clips), batch_size):
                yield clips[i:i + batch_size]
            return
        yield from read_clips(self.problem, self.data_dir, self.hparams, self.split,
                              num_frames, batch_size, max_clips)


def load_run(output_dir, data_dir=None, split="dev", checkpoint_path=None,
             problem_name=None, t2t_usr_dir=None, log=print, use_ema=True):
    """Restores the run in `output_dir` and returns its `RunContext` (the problem and
    hparams are the run's; the checkpoint the newest unless given; the weights' moving
    average where the checkpoint has one, unless `use_ema=False`)."""
    # pylint: disable=import-outside-toplevel  (TensorFlow loads after the flags)
    from t2t_videoflow.training import restore
    if split not in ("dev", "test"):
        raise UsageError(f"--split must be dev or test; got {split!r}.")
    if data_dir is None:
        raise UsageError("--data_dir is required: the directory of the problem's shards.")
    run = restore.restore_for_inference(output_dir, problem_name, None, "",
                                        checkpoint_path, t2t_usr_dir, use_ema=use_ema)
    problem = run.problem
    if split == "test" and "test" not in problem.splits:
        raise UsageError(f"Problem {problem.name!r} has no test split (splits: "
                         f"{', '.join(problem.splits)}); use --split=dev.")
    return RunContext(model=run.model, hparams=run.hparams, problem=problem,
                      data_dir=data_dir, split=split, checkpoint=run.checkpoint,
                      step=run.step, weights=run.weights, log=log)
