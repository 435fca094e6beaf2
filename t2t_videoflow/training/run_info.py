"""`run.json`: what a run dir records about its run (problem, hparams set, user dir).

Pure Python (no TensorFlow), so a command can read a local run's record before it
loads TensorFlow. The user dir is a record only: no tool imports code because a run
dir names it (`run_dir.resolve_run`).
"""

import json
import os

from t2t_videoflow.errors import RunDirError

RUN_INFO_FILE = "run.json"
RUN_INFO_KEYS = ("problem", "hparams_set", "t2t_usr_dir")


def parse_run_info(text, path):
    """The text of `path` (a `run.json`) as a dict of its three string (or null) fields.

    Raises:
      RunDirError: it does not parse or is not a run record.
    """
    try:
        info = json.loads(text)
    except ValueError as e:
        raise RunDirError(f"Could not read {path!r} ({e}); restore it or pass "
                          "--problem and --hparams_set.") from None
    if not isinstance(info, dict) or not all(
            isinstance(info.get(k), (str, type(None))) for k in RUN_INFO_KEYS):
        raise RunDirError(f"{path!r} is not a run record (expected an object with "
                          f"string fields {', '.join(RUN_INFO_KEYS)}).")
    return {k: info.get(k) for k in RUN_INFO_KEYS}


def read_local_run_info(output_dir):
    """`run.json` of a local `output_dir`, read without TensorFlow; {} if there is
    none, the path is remote (`gs://...`) or the file is damaged (the tools that
    need it report that when they read it)."""
    path = os.path.join(output_dir or "", RUN_INFO_FILE)
    if "://" in path or not os.path.isfile(path):
        return {}
    try:
        with open(path, "rb") as f:
            return parse_run_info(f.read().decode("utf-8"), path)
    except (OSError, UnicodeDecodeError, RunDirError):
        return {}
