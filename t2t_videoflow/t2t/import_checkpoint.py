"""The T2T checkpoint import behind `t2t-videoflow-import` (see `t2t_import.py`)."""

import json
import os

import tensorflow as tf

from t2t_videoflow.config import registry
from t2t_videoflow.training import run_dir
from t2t_videoflow.model.videoflow import T2T_BODY_SCOPE, build_model, load_t2t_weights
from t2t_videoflow.config.usr_dir import import_usr_dir
from t2t_videoflow.errors import CheckpointError, UsageError

IMPORT_INFO = "t2t_import.json"


def resolve_t2t_checkpoint(path):
    """A T2T checkpoint prefix from a prefix or a directory (its newest checkpoint)."""
    if not path:
        raise UsageError("--t2t_checkpoint is required.")
    if tf.io.gfile.isdir(path):
        found = run_dir.checkpoints_on_disk(path)      # never the state file's paths
        latest = found[-1][1] if found else None
        if latest is None:
            raise run_dir.RunDirError(f"No checkpoint in the T2T dir {path!r}.")
        return _check_readable(latest)
    if not tf.io.gfile.exists(path + ".index"):
        raise run_dir.RunDirError(f"T2T checkpoint {path!r} not found (no "
                                  f"{path + '.index'!r}).")
    return _check_readable(path)


def _check_readable(prefix):
    """`prefix` if TensorFlow reads its index, else a CheckpointError naming the file
    (a truncated or non-checkpoint `.index` gives TF's "too short to be an sstable")."""
    try:
        tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(
            f"{prefix + '.index'!r} is not a readable TensorFlow checkpoint index "
            f"({' '.join(str(getattr(e, 'message', e)).split())[:200]}); give the "
            "prefix of a complete T2T checkpoint (model.ckpt-N with its .index and "
            ".data-* files).") from e
    return prefix


def import_t2t_checkpoint(t2t_checkpoint, problem_name, hparams_set, output_dir,
                          overrides="", import_global_step=False, t2t_usr_dir=None,
                          log=print):
    """Writes a run dir holding a T2T checkpoint's VideoFlow weights.

    Args:
      t2t_checkpoint: T2T checkpoint prefix, or a dir (newest checkpoint).
      problem_name, hparams_set, overrides: what T2T trained with.
      output_dir: the run dir to create (no `hparams.json` or checkpoint yet).
      import_global_step: number the checkpoint with T2T's `global_step`.
      t2t_usr_dir: imported first (and recorded in `run.json`).

    Returns:
      The written checkpoint path.

    Raises:
      RunDirError (missing checkpoint, existing run), UnknownNameError,
      HParamsError, ValueError (weights missing, of another shape, non-finite).
    """
    if not output_dir:
        raise UsageError("--output_dir is required.")
    if not problem_name or not hparams_set:
        raise UsageError("--problem and --hparams_set are required (the ones T2T "
                         "trained with).")
    source = resolve_t2t_checkpoint(t2t_checkpoint)
    if (tf.io.gfile.exists(run_dir.hparams_path(output_dir))
            or run_dir.latest_checkpoint(output_dir)):
        raise run_dir.RunDirError(f"--output_dir {output_dir!r} already holds a run; "
                                  "import into a new directory.")
    if t2t_usr_dir:
        import_usr_dir(t2t_usr_dir)
        t2t_usr_dir = os.path.realpath(os.path.expanduser(t2t_usr_dir))
    problem = registry.problem(problem_name)
    hparams = registry.create_hparams(hparams_set, overrides or "")
    problem.check_hparams(hparams, set_name=hparams_set)
    frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    model = build_model(hparams, frame_shape)
    names = load_t2t_weights(model, source)
    reader = tf.train.load_checkpoint(source)
    available = reader.get_variable_to_shape_map()
    step = 0
    if import_global_step:
        if "global_step" not in available:
            raise CheckpointError(f"{source!r} has no global_step to import.")
        step = int(reader.get_tensor("global_step"))
    skipped = sorted(k for k in available
                     if k.startswith(T2T_BODY_SCOPE) and k not in set(names))
    run_dir.save_run(output_dir, hparams, problem.name, hparams_set, t2t_usr_dir)
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, output_dir, max_to_keep=None,
                                         checkpoint_name=run_dir.CHECKPOINT_NAME)
    path = manager.save(checkpoint_number=step)
    info = {"t2t_checkpoint": source, "variables": len(names), "global_step": step,
            "skipped_t2t_variables": len(skipped), "skipped_examples": skipped[:20],
            "adam_slots": "not imported (fine-tuning starts with fresh moments)"}
    run_dir.write_json_atomic(os.path.join(output_dir, IMPORT_INFO),
                              json.dumps(info, indent=2, sort_keys=True))
    log(f"Imported {len(names)} T2T variables from {source} into {path} (step {step}); "
        f"{len(skipped)} other variables under {T2T_BODY_SCOPE} skipped (optimizer "
        "slots and the like).")
    return path
