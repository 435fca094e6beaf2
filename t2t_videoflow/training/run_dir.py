"""The layout of a training output directory, shared by trainer, decoder and exporter.

    OUTPUT_DIR/
      hparams.json             the resolved hparams of the run (set + overrides + flags)
      run.json                 {"problem", "hparams_set", "t2t_usr_dir"}: what was trained
                               (the user dir is a record only: no tool imports it
                               unless the command line names it)
      checkpoint               CheckpointManager's index of the kept checkpoints; never
                               trusted: the checkpoints are listed from the directory
                               itself (`checkpoints_on_disk`), and the trainer rewrites
                               the index from that list before it saves or deletes any
      model.ckpt-N.index/.data-*   tf.train.Checkpoint(model=..., optimizer=..., data=...,
                                   ema=...) at global step N (T2T's file names); `ema`,
                                   the weights' moving average, only with
                                   weight_ema_decay > 0
      train_log.jsonl          the logged training points, checkpoint saves and
                               evaluations, one JSON object a line (`trainer.train_log`)
      .lock                    the host and pid of the trainer running on the dir; the
                               trainer holds an exclusive `flock` on it for its whole
                               run (`OutputDirLock`), which the OS drops when it dies
      train/, eval/            TensorBoard event files
      export/<timestamp>/      SavedModels written by t2t-videoflow-exporter

Before a checkpoint is read it is verified (`checkpoint_problem`): its `.index` must
parse and each `.data-*` shard must hold every byte the index places in it. Without
an explicit path the newest checkpoint that passes is used, and each newer one that
does not is named in one log line (`newest_valid_checkpoint`); nothing is deleted.

The checkpoint's `model` node is the `VideoFlow` module, so inference code restores
only that node (`restore.restore_model`), then reads the `ema` averages over its
weights when the checkpoint has them.

`resolve_run` is the one place that decides a command's problem, hparams set, hparams
and user dir from its flags and the directory; trainer, decoder, exporter, eval and
motion tools all call it. This module describes the directory and does not import the
model.
"""

import datetime
import json
import os
import re
import socket
import time
from typing import Any, NamedTuple, Optional

import tensorflow as tf

from t2t_videoflow.training.run_info import RUN_INFO_FILE, parse_run_info
from t2t_videoflow.config import registry
from t2t_videoflow.config.hparams_lib import HParams, validate
from t2t_videoflow.errors import HParamsError, RunDirError, UnknownNameError, UsageError
from t2t_videoflow.config.usr_dir import import_usr_dir

HPARAMS_FILE = "hparams.json"
CHECKPOINT_NAME = "model.ckpt"
LOCK_FILE = ".lock"


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
    try:
        validate(hparams)
    except HParamsError as e:
        raise RunDirError(f"{path!r} holds a value no tool accepts: {e} Fix the file or "
                          "train a new run.") from None
    info = {"problem": None, "hparams_set": None, "t2t_usr_dir": None}
    if tf.io.gfile.exists(run_info_path(output_dir)):
        info.update(_read_run_info(run_info_path(output_dir)))
    return hparams, info


def _read_run_info(path):
    """`run.json` as a dict of its three known string (or null) fields (`run_info`)."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise RunDirError(f"Could not read {path!r} ({e}); restore it or pass "
                          "--problem and --hparams_set.") from None
    return parse_run_info(text, path)

_CHECKPOINT_STEP = re.compile(re.escape(CHECKPOINT_NAME) + r"-(\d+)\.index$")


def checkpoints_on_disk(directory):
    """`[(step, prefix)]` of the checkpoints in `directory`, oldest first.

    Read from the file names (`model.ckpt-N.index`), not from TF's `checkpoint`
    state file: that file can list paths anywhere (a copied run dir holds the
    original's absolute paths; a crafted one can name any file), and it may be
    missing or damaged while the checkpoints themselves are fine.
    """
    if not tf.io.gfile.isdir(directory):
        return []
    found = []
    for name in tf.io.gfile.listdir(directory):
        match = _CHECKPOINT_STEP.fullmatch(name)
        if match:
            found.append((int(match.group(1)), os.path.join(directory, name[:-len(".index")])))
    return sorted(found)


def latest_checkpoint(output_dir):
    """Path prefix of the newest checkpoint in `output_dir` (by step), or None."""
    found = checkpoints_on_disk(output_dir)
    return found[-1][1] if found else None


def new_checkpoints(output_dir, timeout_secs=None, poll_secs=1.0):
    """Yields each newest checkpoint of `output_dir` as it appears (as
    `tf.train.checkpoints_iterator` does, but listed from the directory); stops after
    `timeout_secs` without a new one (None: waits forever)."""
    last, waited = None, 0.0
    while True:
        path = latest_checkpoint(output_dir)
        if path is not None and path != last:
            last, waited = path, 0.0
            yield path
            continue
        if timeout_secs is not None and waited >= timeout_secs:
            return
        time.sleep(poll_secs)
        waited += poll_secs


def repair_checkpoint_state(directory, log=print):
    """Rewrites TF's `checkpoint` state file of `directory` from the checkpoints in it.

    `tf.train.CheckpointManager` reads that file when it is built and deletes what it
    lists once more than `max_to_keep` checkpoints exist, so a state file naming
    checkpoints of other directories would make a resumed run delete them. Called
    before the trainer builds its manager: afterwards the file lists exactly the
    checkpoints in `directory`, by relative name. Logs one line when the file named
    anything else, was unreadable, or was missing while checkpoints exist.
    """
    state_path = os.path.join(directory, "checkpoint")
    found = checkpoints_on_disk(directory)
    listed, problem = None, None
    if tf.io.gfile.exists(state_path):
        try:
            state = tf.train.get_checkpoint_state(directory)
            listed = list(state.all_model_checkpoint_paths) if state else []
            if state and state.model_checkpoint_path and (
                    state.model_checkpoint_path not in listed):
                listed.append(state.model_checkpoint_path)
        except Exception as e:  # a damaged text proto raises several kinds
            problem = f"is unreadable ({type(e).__name__})"
    elif found:
        problem = "is missing"
    if listed is not None:
        here = os.path.realpath(directory)
        on_disk = {os.path.realpath(prefix) for _, prefix in found}
        resolved = [os.path.realpath(p if os.path.isabs(p) else os.path.join(directory, p))
                    for p in listed]
        outside = [p for p, r in zip(listed, resolved) if os.path.dirname(r) != here]
        missing = [p for p, r in zip(listed, resolved)
                   if os.path.dirname(r) == here and r not in on_disk]
        if outside:
            problem = (f"listed {len(outside)} checkpoint(s) outside this directory "
                       f"(e.g. {outside[0]!r})")
        elif missing:
            problem = f"listed {len(missing)} checkpoint(s) that are not on disk"
        elif found and not listed:
            problem = "listed none of the checkpoints on disk"
    if problem is None:
        return
    if not found:
        if tf.io.gfile.exists(state_path):
            tf.io.gfile.remove(state_path)
    else:
        lines = [f'model_checkpoint_path: "{os.path.basename(found[-1][1])}"']
        lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for _, p in found]
        # With their times the manager rotates them as its own (without, it keeps
        # them forever).
        lines += ["all_model_checkpoint_timestamps: "
                  f"{tf.io.gfile.stat(p + '.index').mtime_nsec / 1e9}" for _, p in found]
        write_json_atomic(state_path, "\n".join(lines) + "\n")
    if problem is not None:
        log(f"Checkpoint state file {state_path} {problem}; rebuilt it from the "
            f"{len(found)} checkpoint(s) in {directory} (nothing outside it is read or "
            "deleted).")


# -- checkpoint verification ----------------------------------------------------------

def checkpoint_problem(prefix):
    """Why the checkpoint at `prefix` cannot be read (one phrase naming the file), or
    None if it reads.

    Without restoring anything: the `.index` exists, is not empty and parses, its
    `.data-*` files exist, and every tensor it names reads back, which TensorFlow
    checks against the checksums it saved (a file cut short by a crash or a full
    disk, or a corrupted one, fails here).
    """
    index = prefix + ".index"
    if not tf.io.gfile.exists(index):
        return f"{index} is missing"
    if tf.io.gfile.stat(index).length == 0:
        return f"{index} is empty"
    shards = tf.io.gfile.glob(prefix + ".data-*-of-*")
    if not shards:
        return f"{prefix}.data-* is missing"
    count = int(shards[0].rsplit("-of-", 1)[1])
    for shard in range(count):
        path = f"{prefix}.data-{shard:05d}-of-{count:05d}"
        if not tf.io.gfile.exists(path):
            return f"{path} is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as e:
        return f"{index} is damaged ({_first_line(e)})"
    for name, dtype in reader.get_variable_to_dtype_map().items():
        try:    # read as a restore reads it (any dtype, checksums checked)
            tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[name],
                                 shape_and_slices=[""], dtypes=[dtype])
        except (tf.errors.OpError, ValueError, IndexError) as e:
            return f"{prefix}.data-* cannot be read ({_first_line(e)})"
    return None


def _first_line(error):
    text = (error.message if isinstance(error, tf.errors.OpError) else str(error)).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:120]


def _candidate_steps(directory):
    """`{step: prefix}` of every checkpoint with an `.index` or a `.data-*` file."""
    found = dict(checkpoints_on_disk(directory))
    pattern = re.compile(re.escape(CHECKPOINT_NAME) + r"-(\d+)\.data-\d+-of-\d+$")
    if tf.io.gfile.isdir(directory):
        for name in tf.io.gfile.listdir(directory):
            match = pattern.fullmatch(name)
            if match and int(match.group(1)) not in found:
                found[int(match.group(1))] = os.path.join(
                    directory, f"{CHECKPOINT_NAME}-{match.group(1)}")
    return found


def newest_valid_checkpoint(directory, log=print, exclude=()):
    """The newest checkpoint of `directory` that passes `checkpoint_problem`, or None if
    there is none at all.

    Each newer one that fails (or whose prefix is in `exclude`, a `{prefix: reason}`)
    is skipped with one `log` line naming the file and why. Nothing is deleted.

    Raises:
      RunDirError: checkpoints exist but every one is damaged (the error names each).
    """
    found = _candidate_steps(directory)
    skipped = []
    for step in sorted(found, reverse=True):
        prefix = found[step]
        problem = dict(exclude).get(prefix) or checkpoint_problem(prefix)
        if problem is None:
            return prefix
        skipped.append(f"{os.path.basename(prefix)}: {problem}")
        log(f"Skipping checkpoint {prefix}: {problem}. Using an older one; the files "
            "are left as they are (delete them once you no longer need them).")
    if skipped:
        raise RunDirError(
            f"No usable checkpoint in {directory!r} ({'; '.join(skipped)}). Nothing "
            "was deleted; restore the files from a backup, or train again in a new "
            "--output_dir.")
    return None


# -- the output dir lock --------------------------------------------------------------

class OutputDirLock:
    """An exclusive `fcntl.flock` on `OUTPUT_DIR/.lock`, held while the file is open.

    The trainer's chief takes it for its whole run, so two trainers never write one
    output dir. The OS drops the lock when its process ends, however it ends (even
    SIGKILL), so a dead trainer never blocks the next run; the file stays, holding the
    last holder's host, pid and start time for the message. Only for local paths: a
    `scheme://` path is not locked (`acquire` returns None).
    """

    def __init__(self, output_dir):
        self.output_dir = output_dir
        self.path = os.path.join(output_dir, LOCK_FILE)
        self._file = None

    def acquire(self):
        """Takes the lock (creating the dir), or raises RunDirError naming the holder.

        Returns:
          self, or None for a non-local path (no lock is taken).
        """
        if "://" in self.output_dir:
            return None
        import fcntl  # pylint: disable=import-outside-toplevel  (POSIX only)
        os.makedirs(self.output_dir, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = _lock_holder(f.read())
            f.close()
            raise RunDirError(
                f"--output_dir {self.output_dir!r} is in use by {holder}; wait for it "
                "or use another --output_dir.") from None
        f.seek(0)
        f.truncate()
        f.write(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(),
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        }) + "\n")
        f.flush()
        self._file = f
        return self

    def release(self):
        if self._file is not None:
            self._file.close()       # closing the descriptor drops the flock
            self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _lock_holder(text):
    """`pid N on HOST (since T)` from a lock file's contents."""
    try:
        info = json.loads(text)
        return f"pid {int(info['pid'])} on {info['host']} (since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "another trainer (it has not written its pid yet)"


def resolve_checkpoint(output_dir, checkpoint_path=None, log=print):
    """The checkpoint to load: `checkpoint_path` if given (checked), else the newest
    valid one (`newest_valid_checkpoint`: newer damaged ones are skipped, one `log` line
    each).

    Raises:
      RunDirError naming what is missing or damaged.
    """
    if checkpoint_path:
        if not tf.io.gfile.exists(checkpoint_path + ".index"):
            raise RunDirError(f"Checkpoint {checkpoint_path!r} not found (no "
                              f"{checkpoint_path + '.index'!r}).")
        problem = checkpoint_problem(checkpoint_path)
        if problem:
            raise RunDirError(f"Checkpoint {checkpoint_path!r} is damaged: {problem}. "
                              "Pass another --checkpoint_path, or leave it out to use "
                              "the newest valid checkpoint.")
        return checkpoint_path
    path = newest_valid_checkpoint(output_dir, log=log)
    if path is None:
        raise RunDirError(f"No checkpoint in {output_dir!r}: train first, or pass a "
                          "checkpoint path.")
    return path


def checkpoint_has_node(checkpoint_path, node):
    """Whether a checkpoint holds the top-level node `node` (`model`, `optimizer`,
    `data`, `ema`)."""
    return any(name.startswith(f"{node}/")
               for name, _ in tf.train.list_variables(checkpoint_path))


def checkpoint_step(path):
    """The global step N of a `.../model.ckpt-N` path (None if the name has none)."""
    tail = os.path.basename(path).rsplit("-", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else None


class ResolvedRun(NamedTuple):
    """What a command works with, from its flags and the output dir."""
    hparams: Any                 # HParams: the set (+ overrides), or the run's own
    hparams_set: Optional[str]
    problem: Any                 # the registered problem, or None
    usr_dir: Optional[str]
    previous: Any                # the hparams of an earlier run in the dir, or None


def resolve_run(output_dir, problem_name=None, hparams_set=None, overrides="",
                usr_dir=None, need_run=True, from_set=False, need_problem=True,
                built=None):
    """The problem, hparams set, hparams and user dir of a command on `output_dir`.

    Each defaults to the run's (`run.json`, `hparams.json`), except the user dir:
    only a `usr_dir` the command names is imported (as in T2T), never the one a run
    dir records, since a run dir someone shares must not run code on the reader's
    machine. When the run records one and its problem or set is then unknown, the
    error says which `--t2t_usr_dir` to pass.

    Args:
      output_dir: the run's output dir.
      problem_name, hparams_set, overrides, usr_dir: the command's flags.
      need_run: the dir must hold a run (decoder, exporter, eval); False for the
        trainer, which may start one.
      from_set: build the hparams from the registry's set (+ overrides) even when the
        run has its own (the trainer; it compares them with `previous` itself).
        Otherwise the run's `hparams.json` (+ overrides) is used unless `hparams_set`
        is given.
      need_problem: raise if no problem is known.
      built: `(set name, hparams)` already built from that set and `overrides` (the
        trainer builds them before TensorFlow loads): used instead of building them
        again when the set is the one resolved here.

    Returns:
      A `ResolvedRun`; the hparams are checked against the problem.

    Raises:
      RunDirError, UsageError, UnknownNameError, HParamsError, UsrDirError.
    """
    if not output_dir:
        raise UsageError("--output_dir is required.")
    previous, info = None, {}
    if need_run or tf.io.gfile.exists(hparams_path(output_dir)):
        previous, info = load_run(output_dir)
    recorded = info.get("t2t_usr_dir")
    if usr_dir:
        import_usr_dir(usr_dir)
        usr_dir = os.path.realpath(os.path.expanduser(usr_dir))
    try:
        problem_name = problem_name or info.get("problem")
        if hparams_set or from_set:
            hparams_set = hparams_set or info.get("hparams_set")
            if not hparams_set:
                raise UsageError("--hparams_set is required (no earlier run in "
                                 "--output_dir).")
            if built is not None and built[0] == hparams_set:
                hparams = built[1].copy()
            else:
                hparams = registry.create_hparams(hparams_set, overrides or "")
        else:
            hparams = previous.copy().parse(overrides or "")
            hparams_set = info.get("hparams_set")
        problem = None
        if problem_name:
            problem = registry.problem(problem_name)
            problem.check_hparams(hparams, set_name=hparams_set)
        elif need_problem:
            where = ("--output_dir records none" if previous
                     else "no earlier run in --output_dir")
            raise UsageError(f"--problem is required ({where}).")
    except UnknownNameError as e:
        if recorded and not usr_dir:
            raise UsageError(
                f"{e} The run in {output_dir!r} was made with --t2t_usr_dir={recorded}; "
                "tools never import a user dir a run dir names, so pass "
                "--t2t_usr_dir yourself if you trust that code.") from None
        raise
    usr_dir = usr_dir or recorded
    return ResolvedRun(hparams, hparams_set, problem, usr_dir, previous)
