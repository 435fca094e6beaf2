r"""t2t-videoflow-import: a T2T-trained VideoFlow checkpoint as a run directory.

    t2t-videoflow-import --t2t_checkpoint=$T2T_RUN/model.ckpt-300000 \
        --problem=bair_action_free --hparams_set=videoflow_bpp --output_dir=$RUN

reads the weights of T2T's `next_frame_glow` (TF1 checkpoint, variables under
`next_frame_glow/body/`) into a model built from the given problem and hparams set
(they must be the ones T2T trained with: every T2T variable is matched by name and
shape) and writes `$RUN` in the trainer's layout (`hparams.json`, `run.json`,
`model.ckpt-N`, `t2t_import.json`), so the decoder, the exporter and the trainer
(fine-tuning) use it as if this port had trained it.

* Every actnorm is marked initialised: fine-tuning never re-runs data-dependent init
  over the imported weights.
* The checkpoint holds the model only. T2T's Adam slots are not imported (fine-tuning
  starts with fresh Adam moments); `global_step` is imported with
  `--import_global_step` (N in `model.ckpt-N`, and the step the trainer continues
  from), else N = 0.
* Nothing is written unless every weight was found and checked; an existing run in
  `--output_dir` is never overwritten.
"""

import json
import os

from absl import app
import tensorflow as tf

from t2t_videoflow import cli, errors, registry, run_dir
from t2t_videoflow.model import T2T_BODY_SCOPE, build_model, load_t2t_weights
from t2t_videoflow.usr_dir import import_usr_dir

FLAGS = cli.FLAGS
cli.define("string", "t2t_checkpoint", None, "T2T checkpoint prefix (model.ckpt-N) or a "
           "T2T output dir (its newest checkpoint).")
cli.define("string", "problem", None, "The problem T2T trained on, e.g. bair_action_free.")
cli.define("string", "hparams_set", None, "The hparams set T2T trained with, e.g. "
           "videoflow_bpp.")
cli.define("string", "hparams", "", "Overrides, 'name=value,name=value'.")
cli.define("string", "output_dir", None, "The run dir to write (must hold no run yet).")
cli.define("boolean", "import_global_step", False, "Take the step number from T2T's "
           "global_step (default: 0).")
cli.define("string", "t2t_usr_dir", None, "Python package or file registering more "
           "problems and hparams sets.")

NAME = "t2t-videoflow-import"
IMPORT_INFO = "t2t_import.json"


def resolve_t2t_checkpoint(path):
    """A T2T checkpoint prefix from a prefix or a directory (its newest checkpoint)."""
    if not path:
        raise ValueError("--t2t_checkpoint is required.")
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise run_dir.RunDirError(f"No checkpoint in the T2T dir {path!r}.")
        return latest
    if not tf.io.gfile.exists(path + ".index"):
        raise run_dir.RunDirError(f"T2T checkpoint {path!r} not found (no "
                                  f"{path + '.index'!r}).")
    return path


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
        raise ValueError("--output_dir is required.")
    if not problem_name or not hparams_set:
        raise ValueError("--problem and --hparams_set are required (the ones T2T "
                         "trained with).")
    source = resolve_t2t_checkpoint(t2t_checkpoint)
    if (tf.io.gfile.exists(run_dir.hparams_path(output_dir))
            or run_dir.latest_checkpoint(output_dir)):
        raise run_dir.RunDirError(f"--output_dir {output_dir!r} already holds a run; "
                                  "import into a new directory.")
    if t2t_usr_dir:
        import_usr_dir(t2t_usr_dir)
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
            raise ValueError(f"{source!r} has no global_step to import.")
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


def main(argv):
    def body():
        import_t2t_checkpoint(FLAGS.t2t_checkpoint, FLAGS.problem, FLAGS.hparams_set,
                              FLAGS.output_dir, FLAGS.hparams, FLAGS.import_global_step,
                              FLAGS.t2t_usr_dir, log=lambda m: print(m, flush=True))
    return errors.run_cli(NAME, argv, body)


def run_main():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run_main()
