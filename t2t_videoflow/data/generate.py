"""Writing a problem's shards (`t2t-videoflow-datagen`, the trainer's --generate_data)
and checking every record of them (`t2t-videoflow-datagen --check`)."""

import os

import tensorflow as tf

from t2t_videoflow.config import registry
from t2t_videoflow.config.usr_dir import import_usr_dir
from t2t_videoflow.data import pipeline, records
from t2t_videoflow.errors import UsageError


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
