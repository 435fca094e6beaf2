"""A trained run's model, for inference: the decoder, exporter, eval and motion tools.

`restore_for_inference` resolves the run (`run_dir.resolve_run`), builds the model from
its hparams and restores the newest (or a given) checkpoint; `restore_model` is the
building-and-reading step alone.
"""

import tensorflow as tf

from t2t_videoflow import run_dir
from t2t_videoflow.errors import RunDirError
from t2t_videoflow.model import build_model


def restore_model(output_dir, checkpoint_path=None, batch_size=None, hparams=None):
    """Builds the run's model and restores its weights, for inference.

    Args:
      output_dir: a training output dir.
      checkpoint_path: a specific checkpoint prefix; default the newest.
      batch_size: static batch for encoders that need one (pointwise); default the
        run's `batch_size`.
      hparams: use these instead of the run's `hparams.json`.

    Returns:
      `(model, hparams, info, checkpoint_path)`.
    """
    run_hparams, info = run_dir.load_run(output_dir)
    hparams = (hparams or run_hparams).copy()
    if batch_size is not None:
        hparams.batch_size = batch_size
    path = run_dir.resolve_checkpoint(output_dir, checkpoint_path)
    frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    model = build_model(hparams, frame_shape)
    status = tf.train.Checkpoint(model=model).read(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise RunDirError(f"Checkpoint {path!r} does not fit the model built from the "
                          f"run's hparams: {str(e).splitlines()[0]}") from e
    return model, hparams, info, path


def restore_for_inference(output_dir, problem_name=None, hparams_set=None, overrides="",
                          checkpoint_path=None, t2t_usr_dir=None, need_problem=True):
    """The trained model of a run dir.

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
      RunDirError, UsageError, UnknownNameError, HParamsError, UsrDirError.
    """
    run = run_dir.resolve_run(output_dir, problem_name, hparams_set, overrides,
                              t2t_usr_dir, need_problem=need_problem)
    model, hparams, _, path = restore_model(output_dir, checkpoint_path,
                                            hparams=run.hparams)
    return {"model": model, "hparams": hparams, "hparams_set": run.hparams_set,
            "problem": run.problem, "checkpoint": path,
            "step": run_dir.checkpoint_step(path)}
