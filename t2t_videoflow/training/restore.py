"""A trained run's model, for inference: the decoder, exporter, eval and motion tools.

`restore_for_inference` resolves the run (`run_dir.resolve_run`), builds the model from
its hparams and restores the newest (or a given) checkpoint; `restore_model` is the
building-and-reading step alone. When the checkpoint holds a moving average of the
weights (hparam `weight_ema_decay > 0`), the model gets the averages unless
`use_ema=False` (`weight_ema.py`).
"""

import os
import tempfile
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from t2t_videoflow.training import run_dir
from t2t_videoflow.training import weight_ema
from t2t_videoflow.errors import CheckpointError, RunDirError
from t2t_videoflow.model.videoflow import build_model


class DamagedCheckpointError(CheckpointError):
    """A checkpoint whose files cannot be read (a checksum mismatch or a short read that
    `run_dir.checkpoint_problem`'s cheap check did not see); `reason` says what."""

    def __init__(self, path, reason):
        super().__init__(f"Checkpoint {path!r} is damaged ({reason}); nothing was "
                         "deleted. Pass another checkpoint, or move this one aside.")
        self.path, self.reason = path, reason


def restore_checkpoint(path, model, nodes=None, read=False, partial=False):
    """Restores `tf.train.Checkpoint(model=model, **nodes)` from `path` and checks that
    every object of the model (and of `nodes`) was matched: the one way every tool
    reads weights (the trainer's resume and evaluation, inference, export).

    Args:
      path: checkpoint prefix.
      model: the `VideoFlow` (checkpoint node `model`).
      nodes: other nodes (`optimizer`, `data`: the input position, `ema`: the weight
        averages list).
      read: `Checkpoint.read` (no save counter) instead of `restore`.
      partial: the checkpoint may hold more than is restored (`expect_partial`).

    Raises:
      CheckpointError: the checkpoint does not fit the model (built from other
        hparams), named in one line; `DamagedCheckpointError` if its files cannot
        be read.
    """
    checkpoint = tf.train.Checkpoint(model=model, **dict(nodes or {}))
    try:
        status = checkpoint.read(path) if read else checkpoint.restore(path)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as e:
        raise DamagedCheckpointError(path, f"{type(e).__name__}: "
                                           f"{e.message.strip().splitlines()[0][:160]}") from None
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        detail = str(e).splitlines()[0].split(". Showing")[0][:300]
        raise CheckpointError(
            f"Checkpoint {path!r} does not fit the model built from these hparams "
            f"(was it written with other hparams?): {detail}.") from None


def check_checkpoint_run(path, output_dir, hparams, hparams_set):
    """A checkpoint named by the user that sits in another run dir must come from a run
    with the same model: its `hparams.json` is compared with `hparams` (all but
    `train_steps` and the batch sizes, which do not change the weights).

    Raises:
      RunDirError naming both runs, both hparams sets and the first differences.
    """
    other_dir = os.path.dirname(path)
    if (os.path.realpath(other_dir) == os.path.realpath(output_dir)
            or not tf.io.gfile.exists(run_dir.hparams_path(other_dir))):
        return
    other, other_info = run_dir.load_run(other_dir)
    ignore = {"train_steps", "batch_size", "init_batch_size"}
    old, new = other.values(), hparams.values()
    diff = sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} here" for k in diff[:4])
        raise RunDirError(
            f"Checkpoint {path!r} was written by the run in {other_dir!r} (hparams set "
            f"{other_info.get('hparams_set')!r}), whose model differs from the one built "
            f"here ({output_dir!r}, hparams set {hparams_set!r}): {shown}"
            f"{' and more' if len(diff) > 4 else ''}. Pass --output_dir={other_dir}, or "
            "a checkpoint of this run.")


def check_model_entries(path, model, hparams_set):
    """After a partial restore: the checkpoint holds no model weights beyond the ones
    the model has (a deeper model's checkpoint restores into a shallower one without
    any error otherwise)."""
    def model_values(prefix):
        return {name for name, _ in tf.train.list_variables(prefix)
                if name.startswith("model/") and ".OPTIMIZER_SLOT" not in name}
    with tempfile.TemporaryDirectory(prefix="t2t_videoflow_model_") as tmp:
        expected = model_values(tf.train.Checkpoint(model=model).write(
            os.path.join(tmp, "model")))
    extra = sorted(model_values(path) - expected)
    if extra:
        raise CheckpointError(
            f"Checkpoint {path!r} holds {len(extra)} model weights that the model built "
            f"from hparams set {hparams_set!r} does not have (e.g. {extra[0]!r}): it was "
            "written with other hparams. Pass the run dir it belongs to as --output_dir.")


def restore_model(output_dir, checkpoint_path=None, batch_size=None, hparams=None,
                  use_ema=True, log=print):
    """Builds the run's model and restores its weights, for inference.

    Args:
      output_dir: a training output dir.
      checkpoint_path: a specific checkpoint prefix; default the newest.
      batch_size: static batch for encoders that need one (pointwise); default the
        run's `batch_size`.
      hparams: use these instead of the run's `hparams.json`.
      use_ema: load the checkpoint's moving average of the weights where it has one.
      log: where a line naming each damaged newer checkpoint skipped goes (without
        `checkpoint_path` the newest valid one is used, `run_dir.resolve_checkpoint`).

    Returns:
      `(model, hparams, info, checkpoint_path)`; `info["weights"]` says which weights
      the model holds: "ema" (the moving average) or "trained".
    """
    run_hparams, info = run_dir.load_run(output_dir)
    hparams = (hparams or run_hparams).copy()
    if batch_size is not None:
        hparams.batch_size = batch_size
    path = run_dir.resolve_checkpoint(output_dir, checkpoint_path, log=log)
    if checkpoint_path:
        check_checkpoint_run(path, output_dir, hparams, info.get("hparams_set"))
    frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    model = build_model(hparams, frame_shape)
    restore_checkpoint(path, model, read=True, partial=True)
    if checkpoint_path:
        check_model_entries(path, model, info.get("hparams_set"))
    info = dict(info, weights="trained")
    if use_ema and weight_ema.has_averages(path):
        try:
            weight_ema.read_averages(model.trainable_variables, path)
        except ValueError as e:
            raise RunDirError(str(e)) from e
        info["weights"] = "ema"
    return model, hparams, info, path


class TrainedRun(NamedTuple):
    """A trained run, ready for inference (`load_trained_run`)."""
    model: Any                   # VideoFlow, holding the checkpoint's weights
    hparams: Any                 # HParams the model was built from
    hparams_set: Optional[str]   # the run's registered set name
    problem: Any                 # the registered problem, or None
    checkpoint: str              # the checkpoint prefix read
    step: Optional[int]          # its global step
    weights: str                 # "ema" (the moving average) or "trained"


def restore_for_inference(output_dir, problem_name=None, hparams_set=None, overrides="",
                          checkpoint_path=None, t2t_usr_dir=None, need_problem=True,
                          use_ema=True):
    """The trained model of a run dir.

    Args:
      output_dir: a training output dir (`run_dir` layout).
      problem_name: default the run's (`run.json`); checked against the hparams.
      hparams_set: default the run's `hparams.json` (with `overrides` applied);
        given, the set is rebuilt from the registry (and must fit the checkpoint).
      overrides: `name=value,...` applied to the hparams.
      checkpoint_path: a checkpoint prefix; default the newest in `output_dir`.
      t2t_usr_dir: imported first (the one `run.json` records is never imported).
      need_problem: raise if no problem is known (the exporter can do without).
      use_ema: load the checkpoint's moving average of the weights where it has one.

    Returns:
      A `TrainedRun`.

    Raises:
      RunDirError, UsageError, UnknownNameError, HParamsError, UsrDirError.
    """
    run = run_dir.resolve_run(output_dir, problem_name, hparams_set, overrides,
                              t2t_usr_dir, need_problem=need_problem)
    model, hparams, info, path = restore_model(output_dir, checkpoint_path,
                                               hparams=run.hparams, use_ema=use_ema)
    return TrainedRun(model=model, hparams=hparams, hparams_set=run.hparams_set,
                      problem=run.problem, checkpoint=path,
                      step=run_dir.checkpoint_step(path), weights=info["weights"])


def load_trained_run(output_dir, checkpoint_path=None, use_ema=True, t2t_usr_dir=None):
    """The model of a trained run dir, with its weights, for scoring and sampling.

        run = load_trained_run("runs/shapes_demo")
        bpp = run.model.bits_per_pixel(clips, num_context=1)     # [B, T - 1]
        frames = run.model.sample(clips[:, :1], num_frames=2)     # uint8

    Args:
      output_dir: a directory written by `t2t-videoflow-trainer` or `-import`.
      checkpoint_path: a checkpoint prefix; default the newest in `output_dir`.
      use_ema: the moving average of the weights where the checkpoint has one.
      t2t_usr_dir: a user dir to import first, if the run's problem or set is
        registered there.

    Returns:
      A `TrainedRun`.
    """
    return restore_for_inference(output_dir, checkpoint_path=checkpoint_path,
                                 t2t_usr_dir=t2t_usr_dir, need_problem=False,
                                 use_ema=use_ema)
