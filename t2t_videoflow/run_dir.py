"""The layout of a training output directory, shared by trainer, decoder and exporter.

    OUTPUT_DIR/
      hparams.json             the resolved hparams of the run (set + overrides + flags)
      run.json                 {"problem", "hparams_set", "t2t_usr_dir"}: what was trained
      checkpoint               CheckpointManager's index of the kept checkpoints
      model.ckpt-N.index/.data-*   tf.train.Checkpoint(model=..., optimizer=..., step=...,
                                   data=..., rng=...) at global step N (T2T's file names)
      train/, eval/            TensorBoard event files
      export/<timestamp>/      SavedModels written by t2t-videoflow-exporter

The checkpoint's `model` node is the `VideoFlow` module, so inference code restores
only that node: `tf.train.Checkpoint(model=model).read(path).expect_partial()`.
"""

import json
import os

import tensorflow as tf

from t2t_videoflow import registry
from t2t_videoflow.hparams_lib import HParams
from t2t_videoflow.model import build_model
from t2t_videoflow.errors import RunDirError

HPARAMS_FILE = "hparams.json"
RUN_INFO_FILE = "run.json"
CHECKPOINT_NAME = "model.ckpt"


def hparams_path(output_dir):
    return os.path.join(output_dir, HPARAMS_FILE)


def run_info_path(output_dir):
    return os.path.join(output_dir, RUN_INFO_FILE)


def write_json_atomic(path, text):
    """Writes `text` to `path` through a temporary name and a rename (never half-written)."""
    tmp = path + ".tmp"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def save_run(output_dir, hparams, problem_name, hparams_set, usr_dir=None):
    """Writes `hparams.json` and `run.json` for a run in `output_dir`."""
    tf.io.gfile.makedirs(output_dir)
    write_json_atomic(hparams_path(output_dir), hparams.to_json())
    info = {"problem": problem_name, "hparams_set": hparams_set, "t2t_usr_dir": usr_dir}
    write_json_atomic(run_info_path(output_dir), json.dumps(info, indent=2, sort_keys=True))


def load_run(output_dir):
    """Returns `(hparams, info)` of the run in `output_dir`.

    Raises:
      RunDirError if the directory or its `hparams.json` is missing or unreadable.
    """
    if not tf.io.gfile.isdir(output_dir):
        raise RunDirError(f"Output dir {output_dir!r} does not exist.")
    path = hparams_path(output_dir)
    if not tf.io.gfile.exists(path):
        raise RunDirError(f"{path!r} not found: {output_dir!r} is not a t2t-videoflow "
                          "training output dir (run t2t-videoflow-trainer first).")
    try:
        with tf.io.gfile.GFile(path) as f:
            hparams = HParams.from_json(f.read())
    except (ValueError, TypeError) as e:
        raise RunDirError(f"Could not read {path!r}: {e}") from e
    info = {"problem": None, "hparams_set": None, "t2t_usr_dir": None}
    if tf.io.gfile.exists(run_info_path(output_dir)):
        with tf.io.gfile.GFile(run_info_path(output_dir)) as f:
            info.update(json.loads(f.read()))
    return hparams, info


def latest_checkpoint(output_dir):
    """Path prefix of the newest checkpoint in `output_dir`, or None."""
    return tf.train.latest_checkpoint(output_dir)


def resolve_checkpoint(output_dir, checkpoint_path=None):
    """The checkpoint to load: `checkpoint_path` if given (checked), else the newest one.

    Raises:
      RunDirError naming what is missing.
    """
    if checkpoint_path:
        if not tf.io.gfile.exists(checkpoint_path + ".index"):
            raise RunDirError(f"Checkpoint {checkpoint_path!r} not found (no "
                              f"{checkpoint_path + '.index'!r}).")
        return checkpoint_path
    path = latest_checkpoint(output_dir)
    if path is None:
        raise RunDirError(f"No checkpoint in {output_dir!r}: train first, or pass a "
                          "checkpoint path.")
    return path


def checkpoint_step(path):
    """The global step N of a `.../model.ckpt-N` path (None if the name has none)."""
    tail = os.path.basename(path).rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


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
    run_hparams, info = load_run(output_dir)
    hparams = (hparams or run_hparams).copy()
    if batch_size is not None:
        hparams.batch_size = batch_size
    path = resolve_checkpoint(output_dir, checkpoint_path)
    frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    model = build_model(hparams, frame_shape)
    status = tf.train.Checkpoint(model=model).read(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise RunDirError(f"Checkpoint {path!r} does not fit the model built from the "
                          f"run's hparams: {str(e).splitlines()[0]}") from e
    return model, hparams, info, path


def problem_of_run(info, problem_name=None):
    """The registered problem of a run (or `problem_name` if given)."""
    name = problem_name or info.get("problem")
    if not name:
        raise RunDirError("The output dir records no problem; pass --problem.")
    return registry.problem(name)
