r"""t2t-videoflow-trainer: trains and evaluates VideoFlow, with T2T's flag names.

    t2t-videoflow-trainer --problem=stochastic_shapes_32 \
        --hparams_set=videoflow_shapes_cpu --train_steps=300 \
        --data_dir=/tmp/vf/data --output_dir=/tmp/vf/run --generate_data

    t2t-videoflow-trainer --problem=bair_action_free --hparams_set=videoflow_bpp \
        --data_dir=$DATA --output_dir=$RUN          # all visible GPUs, mirrored

Schedules: `train`, `train_and_evaluate` (default: dev bpp every
--local_eval_frequency steps and at the end), `evaluate` (the newest checkpoint, once),
`continuous_eval` (each new checkpoint until the last step). Re-running the same
command resumes from the newest checkpoint in --output_dir.

User errors (unknown names, malformed --hparams, missing data, an output dir trained
with other hparams, a diverged loss) print one `t2t-videoflow-trainer: error: ...` line
and exit with status 1.
"""

import sys

from absl import app
import tensorflow as tf

from t2t_videoflow import cli, datagen, distribute, errors, registry, run_dir, trainer_lib
from t2t_videoflow.data.records import DataError
from t2t_videoflow.usr_dir import import_usr_dir

FLAGS = cli.FLAGS
cli.define("string", "problem", None, "Registered problem name, e.g. bair_action_free.")
cli.define("string", "hparams_set", None, "Registered hparams set, e.g. videoflow_bpp "
           "(default: the set recorded in --output_dir).")
cli.define("string", "hparams", "", "Overrides, 'name=value,name=value'.")
cli.define("string", "data_dir", None, "Directory of the problem's shards.")
cli.define("string", "output_dir", None, "Checkpoints, summaries and hparams.json.")
cli.define("integer", "train_steps", None, "Global steps to train to (default: the set's "
           "train_steps).")
cli.define("integer", "eval_steps", 100, "Dev batches per evaluation; -1 = whole split.")
cli.define("integer", "local_eval_frequency", 1000, "Evaluate every this many steps "
           "(train_and_evaluate).")
cli.define("enum", "schedule", "train_and_evaluate", "What to run.",
           enum_values=["train", "train_and_evaluate", "evaluate", "continuous_eval"])
cli.define("string", "t2t_usr_dir", None, "Python package or file registering more "
           "problems and hparams sets.")
cli.define("integer", "random_seed", 0, "Seed of model init, data order and noise.")
cli.define("boolean", "generate_data", False, "Generate the problem's data into "
           "--data_dir first (skips shards that already exist).")
cli.define("integer", "keep_checkpoint_max", 20, "Checkpoints kept.")
cli.define("integer", "save_checkpoints_steps", 1000, "Checkpoint every this many steps.")
cli.define("integer", "log_every_steps", 10, "Progress line every this many steps.")
cli.define("enum", "strategy", "auto",
           "tf.distribute strategy; auto = multi-worker if TF_CONFIG names several "
           "workers, mirrored over all GPUs if several, else one device.",
           enum_values=["auto", "one_device", "mirrored", "multi_worker"])
cli.define("integer", "num_cpu_devices", None, "Split the CPU into this many logical "
           "devices (with --strategy=mirrored, for testing without GPUs).")
cli.define("boolean", "jit_compile", False, "Compile the loss and gradients with XLA.")
cli.define("boolean", "force_hparams", False, "Overwrite a different hparams.json in "
           "--output_dir instead of failing.")
cli.define("boolean", "eval_use_test_set", False, "Evaluate on the test split, not dev.")
cli.define("integer", "eval_timeout_secs", 3600, "continuous_eval: stop after this long "
           "without a new checkpoint.")
cli.define("integer", "eval_sample_clips", 2, "Dev clips sampled for the TensorBoard image "
           "summary at each evaluation (0: none).")
cli.define("boolean", "deterministic_ops", False, "tf.config.experimental."
           "enable_op_determinism() (bitwise reproducible runs; slower).")

NAME = "t2t-videoflow-trainer"


def _say(message):
    print(message, flush=True)


def resolve_hparams(output_dir, hparams_set, overrides, problem, train_steps=None,
                    force=False):
    """The run's hparams: set + overrides + flags, checked against the problem and
    against `output_dir/hparams.json` of an earlier run.

    `train_steps` may differ from an earlier run (to extend it); any other difference
    is an error unless `force`.

    Returns:
      (hparams, hparams_set).
    """
    previous, info = None, {}
    if tf.io.gfile.exists(run_dir.hparams_path(output_dir)):
        previous, info = run_dir.load_run(output_dir)
    hparams_set = hparams_set or info.get("hparams_set")
    if not hparams_set:
        raise ValueError("--hparams_set is required (no earlier run in --output_dir).")
    hparams = registry.create_hparams(hparams_set, overrides)
    if train_steps is not None:
        hparams.train_steps = train_steps
    elif previous is not None:
        hparams.train_steps = previous.train_steps
    problem.check_hparams(hparams, set_name=hparams_set)
    if previous is not None and not force:
        old, new = previous.values(), hparams.values()
        diff = sorted(k for k in set(old) | set(new)
                      if k != "train_steps" and old.get(k) != new.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:5])
            more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
            raise run_dir.RunDirError(
                f"--output_dir {output_dir!r} was trained with different hparams ({shown}"
                f"{more}); use a new --output_dir or pass --force_hparams.")
    return hparams, hparams_set


def main(argv):
    # The strategy comes first: logical CPU devices must exist before TF starts its
    # devices. RuntimeError there (TF already initialised) is a user-facing error too.
    def body():
        try:
            strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices)
        except RuntimeError as e:
            raise ValueError(str(e)) from e
        return _run(strategy)
    return errors.run_cli(NAME, argv, body)


def _run(strategy):
    if FLAGS.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    if FLAGS.t2t_usr_dir:
        import_usr_dir(FLAGS.t2t_usr_dir)
    if not FLAGS.output_dir:
        raise ValueError("--output_dir is required.")
    if not FLAGS.data_dir:
        raise DataError("--data_dir is required.")
    problem_name = FLAGS.problem
    if not problem_name and tf.io.gfile.exists(run_dir.run_info_path(FLAGS.output_dir)):
        problem_name = run_dir.load_run(FLAGS.output_dir)[1].get("problem")
    if not problem_name:
        raise ValueError("--problem is required.")
    problem = registry.problem(problem_name)
    hparams, hparams_set = resolve_hparams(
        FLAGS.output_dir, FLAGS.hparams_set, FLAGS.hparams, problem,
        train_steps=FLAGS.train_steps, force=FLAGS.force_hparams)
    for name in ("save_checkpoints_steps", "log_every_steps", "local_eval_frequency",
                 "keep_checkpoint_max"):
        if getattr(FLAGS, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(FLAGS, name)}.")

    if FLAGS.generate_data:
        datagen.generate_data(problem_name, FLAGS.data_dir, seed=None, log=_say)
    if distribute.is_chief(strategy):
        run_dir.save_run(FLAGS.output_dir, hparams, problem.name, hparams_set,
                         FLAGS.t2t_usr_dir)
    _say(f"{NAME}: problem {problem.name}, hparams set {hparams_set}, "
         f"{distribute.strategy_name(strategy)} with "
         f"{strategy.num_replicas_in_sync} replica(s); output in {FLAGS.output_dir}")

    config = trainer_lib.TrainConfig(
        output_dir=FLAGS.output_dir, data_dir=FLAGS.data_dir,
        train_steps=hparams.train_steps, eval_steps=FLAGS.eval_steps,
        local_eval_frequency=FLAGS.local_eval_frequency,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        log_every_steps=FLAGS.log_every_steps, random_seed=FLAGS.random_seed,
        jit_compile=FLAGS.jit_compile, eval_sample_clips=FLAGS.eval_sample_clips,
        eval_split=problem.split_for_mode("eval", FLAGS.eval_use_test_set))
    trainer = trainer_lib.Trainer(problem, hparams, config, strategy, log=_say)

    schedule = FLAGS.schedule
    if schedule == "evaluate":
        step = trainer.restore_for_eval()
        trainer.evaluate(step=step)
        return 0
    if schedule == "continuous_eval":
        trainer.continuous_eval(timeout_secs=FLAGS.eval_timeout_secs)
        return 0
    trainer.restore_or_initialize()
    evaluating = schedule == "train_and_evaluate"
    try:
        trainer.train(eval_every=FLAGS.local_eval_frequency if evaluating else None)
    except KeyboardInterrupt:
        print(f"{NAME}: interrupted; checkpoint {trainer.manager.latest_checkpoint} saved. "
              "Run the same command to resume.", file=sys.stderr)
        return 130
    if evaluating:
        trainer.evaluate()
    _say(f"TensorBoard: tensorboard --logdir={FLAGS.output_dir}")
    return 0


def run_main():
    """Console-script entry point."""
    app.run(main)


if __name__ == "__main__":
    run_main()
