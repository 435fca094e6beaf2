"""The error types a CLI reports as one line (and exit code 1) instead of a traceback."""

import sys

from absl import logging
import tensorflow as tf

from t2t_videoflow import registry
from t2t_videoflow.data.records import DataError
from t2t_videoflow.hparams_lib import HParamsError
from t2t_videoflow.run_dir import RunDirError
from t2t_videoflow.trainer_lib import TrainingError
from t2t_videoflow.usr_dir import UsrDirError

USER_ERRORS = (DataError, HParamsError, UsrDirError, RunDirError, TrainingError,
               registry.UnknownNameError, registry.RegistrationError, ValueError, OSError,
               tf.errors.NotFoundError, tf.errors.InvalidArgumentError)


def one_line(error):
    """The error's message on one line (KeyError-style quotes stripped)."""
    text = str(error)
    if isinstance(error, KeyError) and len(text) > 1 and text[0] == text[-1] == "'":
        text = text[1:-1]
    return " ".join(text.split())


def run_cli(name, argv, body):
    """Runs a tool's `body()` the way every `t2t-videoflow-*` CLI reports problems.

    Extra positional arguments and the errors in `USER_ERRORS` (ValueError subclasses
    included: ExportError, MediaError, ...) become one `NAME: error: ...` line on stderr
    and exit code 1; anything else is a bug and keeps its traceback.

    Returns:
      `body()`'s exit code (0 if it returns None), or 1.
    """
    if len(argv) > 1:
        print(f"{name}: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    logging.set_verbosity(logging.WARNING)   # TF's INFO lines (saver timings) are noise
    try:
        code = body()
    except USER_ERRORS as e:
        print(f"{name}: error: {one_line(e)}", file=sys.stderr)
        return 1
    return 0 if code is None else code
