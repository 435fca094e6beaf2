"""`t2t-videoflow-datagen`: write a problem's T2T-format TFRecord shards.

    t2t-videoflow-datagen --problem=stochastic_shapes --data_dir=DIR
    t2t-videoflow-datagen --problem=bair_action_free --data_dir=DIR \
        --raw_data_dir=/path/to/bair_robot_pushing_dataset_v0   # or TFDS if omitted

    t2t-videoflow-datagen --problem=stochastic_shapes --data_dir=DIR --check

Idempotent: finished shards are kept; each shard is written under a temporary name
and renamed when complete, so an interrupted run leaves no truncated shard and a
rerun finishes the rest. On bad input the CLI prints one line and exits 1.

`--check` writes nothing: it reads every record of every shard of the problem in
`--data_dir` (checksums, framing) and decodes every frame, prints one line per shard,
and exits 1 naming each bad shard and its first bad record (delete those shards and
rerun without `--check` to regenerate them).
"""

import os

from t2t_videoflow import cli, registry
from t2t_videoflow.usr_dir import import_usr_dir
from t2t_videoflow.errors import UsageError

# TensorFlow loads with the data code, after the flags are checked.
records = cli.lazy_import("t2t_videoflow.data.records")
pipeline = cli.lazy_import("t2t_videoflow.data.pipeline")
tf = cli.lazy_import("tensorflow")

NAME = "t2t-videoflow-datagen"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "problem", None, "Registered problem name (or alias).", required=True)
TOOL.define("string", "data_dir", None, "Output directory for the shards (created if "
            "missing).", required=True)
TOOL.define("string", "raw_data_dir", None,
            "Source data, where the problem needs it (BAIR: the unpacked original "
            "TFRecords; without it BAIR is read from a prepared TFDS dataset).")
TOOL.define("string", "tfds_data_dir", None, "TFDS data dir (default: TFDS's default).")
TOOL.define("string", "t2t_usr_dir", None,
            "Python package (or .py file) to import; its decorators register "
            "more problems and hparams sets.")
TOOL.define("integer", "seed", None, "Random seed of generated problems (default: the "
            "problem's, 429459 as t2t-datagen).", minimum=0, maximum=2**32 - 1)
TOOL.define("boolean", "check", False, "Write nothing: read every record of every "
            "shard in --data_dir, decode every frame and name each bad shard.")


def generate_data(problem_name, data_dir, raw_data_dir=None, tfds_data_dir=None,
                  t2t_usr_dir=None, seed=None, log=print):
    """Writes the shards of `problem_name` into `data_dir`; returns the problem's summary.

    Args:
      problem_name: registered name or alias.
      data_dir: output directory; created if missing.
      raw_data_dir: source data for problems that need it.
      tfds_data_dir: TFDS data dir for TFDS-backed sources.
      t2t_usr_dir: optional user package to import first.
      seed: optional seed for generated problems.
      log: callable taking one progress line.

    Returns:
      dict split -> {"written": [...], "kept": [...], "videos": n, ...}.
    """
    if t2t_usr_dir:
        import_usr_dir(t2t_usr_dir)
    if not data_dir:
        raise records.DataError("--data_dir is required.")
    problem_cls = registry.problem_class(problem_name)
    if seed is None:
        problem = problem_cls()
    else:
        try:
            problem = problem_cls(seed=seed)
        except TypeError:
            raise UsageError(f"Problem {problem_name!r} takes no --seed.") from None
    if "://" not in data_dir:
        os.makedirs(data_dir, exist_ok=True)
    log(f"Generating {problem.name} into {data_dir}")
    summary = problem.generate_data(data_dir, raw_data_dir=raw_data_dir,
                                    tfds_data_dir=tfds_data_dir, log=log)
    for split, info in summary.items():
        log(f"{problem.name} {split}: {len(info.get('written', []))} shards written, "
            f"{len(info.get('kept', []))} kept")
    return summary


def check_data(problem_name, data_dir, t2t_usr_dir=None, log=print):
    """Reads and decodes every record of every shard of `problem_name` in `data_dir`.

    Every shard the problem defines is checked: missing ones, truncated files,
    checksum mismatches, records that are not frames, wrong frame sizes and PNGs that
    do not decode are reported (the first bad record of each shard).

    Returns:
      dict split -> list of (path, error message or None) per shard, in shard order.

    Raises:
      DataError: one line naming every bad shard (joined by ' | '), if any is bad.
    """
    if t2t_usr_dir:
        import_usr_dir(t2t_usr_dir)
    if not data_dir:
        raise records.DataError("--data_dir is required.")
    problem = registry.problem_class(problem_name)()
    report, bad = {}, []
    for split in problem.splits:
        rows = []
        for path in problem.shard_paths(data_dir, split):
            if not tf.io.gfile.exists(path):
                error = f"{path}: missing; {records.REGENERATE}"
            else:
                found = pipeline.find_bad_record([path], problem.frame_shape)
                error = None if found is None else str(found)
            rows.append((path, error))
            log(f"{problem.name} {split}: {path}: {'ok' if error is None else 'BAD'}")
            if error is not None:
                bad.append(error)
        report[split] = rows
    if bad:
        raise records.DataError(f"{len(bad)} bad shard(s) in {data_dir}: "
                                + " | ".join(bad))
    log(f"{problem.name}: every shard in {data_dir} reads and decodes")
    return report


def main(argv):
    """Checks the flags (no TensorFlow yet), then writes (or checks) the shards."""
    def body():
        if FLAGS.check:
            check_data(FLAGS.problem, FLAGS.data_dir, t2t_usr_dir=FLAGS.t2t_usr_dir,
                       log=lambda msg: print(msg, flush=True))
            return
        generate_data(FLAGS.problem, FLAGS.data_dir, raw_data_dir=FLAGS.raw_data_dir,
                      tfds_data_dir=FLAGS.tfds_data_dir, t2t_usr_dir=FLAGS.t2t_usr_dir,
                      seed=FLAGS.seed, log=lambda msg: print(msg, flush=True))
    return TOOL.main(argv, body)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
