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

The run record (`hparams.json`, `run.json` in --output_dir) is written only once a
training schedule can start: after the flags and hparams are checked, the data is
found (the problem's train shards, and the eval split's unless --schedule=train;
generated first with --generate_data) and the trainer is built. A start that fails
before that leaves --output_dir as it was (at most a `.lock` file, once the data was
found), so the corrected command may use other hparams there. `evaluate` and
`continuous_eval` read a run's record and write none.

One trainer at a time per --output_dir: a training schedule's chief holds an exclusive
lock on `OUTPUT_DIR/.lock` (`run_dir.OutputDirLock`) from just before it builds the
model until it exits; a second trainer on the same dir fails with one line naming the
holder's pid and host. The OS releases the lock when the process dies, so a killed
run never blocks the next. A `scheme://` --output_dir is not locked, and neither
evaluation schedule takes the lock (they only read checkpoints).
"""

import os
import signal
import sys
import time

from t2t_videoflow.cli import tool as cli
from t2t_videoflow.config import registry
from t2t_videoflow.errors import UsageError
from t2t_videoflow.training import run_info

# Heavy modules (TensorFlow, the model) load on first use, after the flags are checked.
tf = cli.lazy_import("tensorflow")
data_generate = cli.lazy_import("t2t_videoflow.data.generate")
distribute = cli.lazy_import("t2t_videoflow.training.distribute")
pipeline = cli.lazy_import("t2t_videoflow.data.pipeline")
records = cli.lazy_import("t2t_videoflow.data.records")
run_dir = cli.lazy_import("t2t_videoflow.training.run_dir")
trainer_lib = cli.lazy_import("t2t_videoflow.training.trainer")

NAME = "t2t-videoflow-trainer"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "problem", None, "Registered problem name, e.g. bair_action_free "
            "(default: the problem recorded in --output_dir).")
TOOL.define("string", "hparams_set", None, "Registered hparams set, e.g. videoflow_bpp "
            "(default: the set recorded in --output_dir).")
TOOL.define("string", "hparams", "", "Overrides, 'name=value,name=value'.")
TOOL.define("string", "data_dir", None, "Directory of the problem's shards.",
            required=True)
TOOL.define("string", "output_dir", None, "Checkpoints, summaries and hparams.json.",
            required=True)
TOOL.define("integer", "train_steps", None, "Global steps to train to (default: the set's "
            "train_steps).", minimum=1)
TOOL.define("integer", "eval_steps", 100, "Dev batches per evaluation; -1 = whole split.",
            minimum=1, allow=(-1,))
TOOL.define("integer", "local_eval_frequency", None, "Evaluate every this many steps "
            "(train_and_evaluate; default: 1000, or train_steps / 5 when that is "
            "smaller, so a short run still draws an eval curve).", minimum=1)
TOOL.define("enum", "schedule", "train_and_evaluate", "What to run.",
            enum_values=["train", "train_and_evaluate", "evaluate", "continuous_eval"])
TOOL.define("string", "t2t_usr_dir", None, "Python package or file registering more "
            "problems and hparams sets.")
TOOL.define("integer", "random_seed", 0, "Seed of model init, data order and noise.",
            minimum=0, maximum=cli.MAX_SEED)
TOOL.define("boolean", "generate_data", False, "Generate the problem's data into "
            "--data_dir first (skips shards that already exist; with several workers "
            "only the chief generates, the others wait for it).")
TOOL.define("string", "raw_data_dir", None,
            "With --generate_data: source data, where the problem needs it (BAIR: the "
            "unpacked original TFRecords; without it BAIR is read from TFDS).")
TOOL.define("string", "tfds_data_dir", None, "With --generate_data: TFDS data dir "
            "(default: TFDS's default).")
TOOL.define("integer", "keep_checkpoint_max", 20, "Checkpoints kept.", minimum=1)
TOOL.define("integer", "save_checkpoints_steps", 1000, "Checkpoint every this many steps.",
            minimum=1)
TOOL.define("integer", "log_every_steps", 10, "Progress line every this many steps.",
            minimum=1)
TOOL.define("enum", "strategy", "auto",
            "tf.distribute strategy; auto = multi-worker if TF_CONFIG names several "
            "workers, mirrored over all GPUs if several, else one device.",
            enum_values=["auto", "one_device", "mirrored", "multi_worker"])
TOOL.define("integer", "num_cpu_devices", None, "Split the CPU into this many logical "
            "devices (with --strategy=mirrored, for testing without GPUs).", minimum=1)
TOOL.define("boolean", "jit_compile", False, "Compile the loss and gradients with XLA.")
TOOL.define("boolean", "force_hparams", False, "Overwrite a different hparams.json in "
            "--output_dir instead of failing.")
TOOL.define("boolean", "eval_use_test_set", False, "Evaluate on the test split, not dev.")
TOOL.define("integer", "eval_timeout_secs", 3600, "continuous_eval: stop after this long "
            "without a new checkpoint.", minimum=1)
TOOL.define("integer", "eval_sample_clips", 2, "Dev clips sampled for the TensorBoard "
            "image summary at each evaluation (0: none).", minimum=0)
TOOL.define("boolean", "deterministic_ops", False, "tf.config.experimental."
            "enable_op_determinism() (bitwise reproducible runs; slower).")
TOOL.define("boolean", "graph_optimizer", True, "Let TF's grappler optimise the "
            "compiled step (TF's default). --nograph_optimizer skips it: the same "
            "arithmetic up to float rounding; on a 2-core CPU the paper model started "
            "about 20 s sooner with float32 steps as fast or faster, but bfloat16 steps "
            "were slower (README, Performance).")



def _say(message):
    print(message, flush=True)


def resolve_run(output_dir, problem_name, hparams_set, overrides, t2t_usr_dir=None,
                train_steps=None, force=False, built=None):
    """The run to train: `run_dir.resolve_run` (problem, set and user dir default to an
    earlier run's), hparams = set + overrides + flags, checked against the problem and
    against `output_dir/hparams.json` of an earlier run.

    `train_steps` may differ from an earlier run (to extend it); any other difference
    is an error unless `force`.

    Returns:
      A `run_dir.ResolvedRun`.
    """
    run = run_dir.resolve_run(output_dir, problem_name, hparams_set, overrides,
                              t2t_usr_dir, need_run=False, from_set=True, built=built)
    hparams, previous = run.hparams, run.previous
    if train_steps is not None:
        hparams.train_steps = train_steps
    elif previous is not None:
        hparams.train_steps = previous.train_steps
    run.problem.check_hparams(hparams, set_name=run.hparams_set)
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
    return run


def default_eval_frequency(train_steps):
    """Steps between evaluations when --local_eval_frequency is not given: T2T's 1000,
    or a fifth of the run when that is shorter (the 3,000-step demo evaluates at 600,
    1,200, 1,800, 2,400 and 3,000: a curve, not one point)."""
    return max(1, min(1000, train_steps // 5))


def main(argv):
    """Checks the flags (no TensorFlow yet), then trains / evaluates."""
    # The strategy comes first: logical CPU devices must exist before TF starts its
    # devices. RuntimeError there (TF already initialised) is a user-facing error too.
    built = []

    def body():
        try:
            strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices)
        except RuntimeError as e:
            raise UsageError(str(e)) from e
        return _run(strategy, built[0])

    def precheck():          # the hparams, once, before TensorFlow loads
        built.append(early_hparams(FLAGS.hparams_set, FLAGS.hparams, FLAGS.t2t_usr_dir,
                                   FLAGS.output_dir))
    return TOOL.main(argv, body, precheck=precheck,
                     auto_allocator=lambda: auto_allocator(built[0]))


def early_hparams(hparams_set, overrides, usr_dir, output_dir):
    """`(set name, hparams)` this command will train with, built before TensorFlow
    loads: `hparams_set`, else the set a local `run.json` in `output_dir` records,
    plus `overrides`. None when the set is a user dir's (not registered yet) or none is
    known; `resolve_run` then builds them after the user dir is imported.

    Raises:
      UsageError: an unknown set or a bad override.
    """
    recorded = {} if hparams_set else run_info.read_local_run_info(output_dir)
    name = hparams_set or recorded.get("hparams_set")
    if not name or usr_dir or recorded.get("t2t_usr_dir"):
        return None
    try:
        return name, registry.create_hparams(name, overrides)
    except (ValueError, registry.UnknownNameError) as e:
        raise cli.UsageError(str(e)) from None


def auto_allocator(built):
    """`--cpu_allocator=auto` for the hparams `early_hparams` built (None: "bfc")."""
    if built is None:
        return "bfc"
    return cli.auto_cpu_allocator(bool(built[1].get("memory_efficient_backprop", False)))


def generate_data_on_chief(strategy, problem, data_dir, generate, poll_secs=2.0,
                           timeout_secs=24 * 3600):
    """Runs `generate()` on the chief only; other workers wait until every shard the
    problem writes exists in `data_dir` (shards appear under their final name only
    when complete), so workers never write the same files concurrently.

    Raises:
      DataError: a non-chief waited `timeout_secs` without seeing all shards.
    """
    if distribute.is_chief(strategy):
        return generate()
    expected = [p for split in problem.splits for p in problem.shard_paths(data_dir, split)]
    waited, logged = 0.0, False
    while not all(tf.io.gfile.exists(p) for p in expected):
        if not logged:
            _say(f"{NAME}: waiting for the chief to generate {len(expected)} shards of "
                 f"{problem.name} in {data_dir}")
            logged = True
        if waited >= timeout_secs:
            raise records.DataError(
                f"Waited {waited:.0f} s for the chief to generate {problem.name} into "
                f"{data_dir}; check the chief's log, or generate the data first with "
                "t2t-videoflow-datagen.")
        time.sleep(poll_secs)
        waited += poll_secs
    return None


def _check_output_dir(output_dir):
    if tf.io.gfile.exists(output_dir) and not tf.io.gfile.isdir(output_dir):
        raise UsageError(f"--output_dir {output_dir!r} is a file, not a directory; "
                         "pass a new or existing directory.")


def _data_splits(schedule, eval_split):
    """The splits `schedule` reads: train (the trainer's input pipeline is built for
    every schedule), and the eval split unless it only trains."""
    return ["train"] if schedule == "train" else ["train", eval_split]


def _run(strategy, built=None):
    if FLAGS.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    if not FLAGS.graph_optimizer:
        # Process-wide: every graph this run compiles (train step, eval, sampling).
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
        _say(f"{NAME}: graph optimizer (grappler) off")
    _check_output_dir(FLAGS.output_dir)
    run = resolve_run(FLAGS.output_dir, FLAGS.problem, FLAGS.hparams_set, FLAGS.hparams,
                      FLAGS.t2t_usr_dir, train_steps=FLAGS.train_steps,
                      force=FLAGS.force_hparams, built=built)
    problem, hparams, hparams_set = run.problem, run.hparams, run.hparams_set
    problem_name = problem.name
    eval_frequency = FLAGS.local_eval_frequency or default_eval_frequency(
        hparams.train_steps)

    if FLAGS.generate_data:
        generate = lambda: data_generate.generate_data(  # noqa: E731
            problem_name, FLAGS.data_dir, raw_data_dir=FLAGS.raw_data_dir,
            tfds_data_dir=FLAGS.tfds_data_dir, seed=None, log=_say)
        generate_data_on_chief(strategy, problem, FLAGS.data_dir, generate)
    _say(f"{NAME}: problem {problem.name}, hparams set {hparams_set}, "
         f"{distribute.strategy_name(strategy)} with "
         f"{strategy.num_replicas_in_sync} replica(s); output in {FLAGS.output_dir}")
    if TOOL.cpu_allocator is not None:
        _say(f"{NAME}: CPU allocator {TOOL.cpu_allocator} (--cpu_allocator="
             f"{FLAGS.cpu_allocator})")
    # Missing shards fail here, before the model is built or anything is written.
    eval_split = problem.split_for_mode("eval", FLAGS.eval_use_test_set)
    for split in _data_splits(FLAGS.schedule, eval_split):
        problem.data_files(FLAGS.data_dir, split)

    lock = None
    if FLAGS.schedule in ("train", "train_and_evaluate") and distribute.is_chief(strategy):
        # Before the trainer reads or repairs anything in the dir (see the docstring).
        lock = run_dir.OutputDirLock(FLAGS.output_dir).acquire()
    try:
        return _train_locked(strategy, run, eval_split, eval_frequency)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(strategy, run, eval_split, eval_frequency):
    problem, hparams, hparams_set = run.problem, run.hparams, run.hparams_set
    config = trainer_lib.TrainConfig(
        output_dir=FLAGS.output_dir, data_dir=FLAGS.data_dir,
        train_steps=hparams.train_steps, eval_steps=FLAGS.eval_steps,
        local_eval_frequency=eval_frequency,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        log_every_steps=FLAGS.log_every_steps, random_seed=FLAGS.random_seed,
        jit_compile=FLAGS.jit_compile, eval_sample_clips=FLAGS.eval_sample_clips,
        eval_split=eval_split)
    try:
        trainer = trainer_lib.Trainer(problem, hparams, config, strategy, log=_say)
        if FLAGS.schedule in ("train", "train_and_evaluate") and distribute.is_chief(strategy):
            # The run can start: record it (see the module docstring).
            try:
                run_dir.save_run(FLAGS.output_dir, hparams, problem.name, hparams_set,
                                 run.usr_dir)
            except trainer_lib.WRITE_ERRORS as e:       # read-only dir, disk full
                raise trainer_lib.write_error(run_dir.hparams_path(FLAGS.output_dir),
                                              e) from None
        return _run_schedule(trainer, FLAGS.schedule, eval_frequency)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        # TF's read errors name no file: find the bad record and name it.
        splits = {"train", config.eval_split}
        _say(f"{NAME}: reading the data failed; checking every record of "
             f"{problem.name}'s {' and '.join(sorted(splits))} shards ...")
        frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
        files = [f for split in sorted(splits)
                 for f in problem.data_files(FLAGS.data_dir, split)]
        bad = pipeline.find_bad_record(files, frame_shape)
        if bad is None:
            raise
        raise bad from e


def _run_schedule(trainer, schedule, eval_frequency):
    """Runs --schedule with `trainer`; returns the exit code."""
    if schedule == "evaluate":
        step = trainer.restore_for_eval()
        trainer.evaluate(step=step)
        return 0
    if schedule == "continuous_eval":
        trainer.continuous_eval(timeout_secs=FLAGS.eval_timeout_secs)
        return 0
    evaluating = schedule == "train_and_evaluate"
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        trainer.restore_or_initialize()
        trainer.train(eval_every=eval_frequency if evaluating else None)
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        saved = trainer.manager.latest_checkpoint
        print(f"{NAME}: {what}; " + (f"checkpoint {saved} saved. Run the same command "
                                     "to resume." if saved else "no checkpoint yet."),
              file=sys.stderr)
        return 128 + signum
    finally:
        signal.signal(signal.SIGTERM, previous)
    if evaluating:
        trainer.evaluate()
    _say(f"TensorBoard: tensorboard --logdir={FLAGS.output_dir}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Kubernetes, Slurm and preemptible VMs send), handled as Ctrl-C:
    the training loop saves a checkpoint and the command exits with 128 + 15."""
    signum = signal.SIGTERM


def _terminate(signum, frame):
    raise Terminated()


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
