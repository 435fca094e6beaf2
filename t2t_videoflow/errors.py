"""Every error type of the package, and how a CLI reports them.

This module imports nothing of the package (and TensorFlow only when a CLI body
runs), so any module can raise these and any tool can catch them cheaply. Each
module re-exports the errors it raises under its own name (`run_dir.RunDirError`).

The errors in `user_errors()` mean bad input or a bad request: a CLI prints them as
one `NAME: error: ...` line and exits with status 1. Anything else is a bug and keeps
its traceback.
"""

import sys


class UsageError(ValueError):
    """A missing or out-of-range flag; the message names the flag."""


class RunDirError(ValueError):
    """An output directory that is missing, incomplete or does not fit the request."""


class UsrDirError(ValueError):
    """The user directory is missing or not importable."""


class UnknownNameError(KeyError):
    """An unknown problem or hparams-set name."""

    def __str__(self):
        return str(self.args[0])


class RegistrationError(ValueError):
    """A name registered twice, or a bad registration."""


class DataError(ValueError):
    """Bad or missing data; the message names the file or the mismatch."""


class MediaError(ValueError):
    """Frames that cannot be read or written; the message names the file and the problem."""


class HParamsError(ValueError):
    """A bad field name, type or override string, or hparams that do not fit the
    problem or the devices."""


class FrameError(ValueError):
    """Frames of the wrong shape, dtype, count or values; the message names the input."""


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model (missing, mis-shaped or non-finite
    variables); the message names the variable."""


class ExportError(ValueError):
    """A model the SavedModel signatures cannot serve."""


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss or gradients); the message names the step."""


PACKAGE_ERRORS = (UsageError, RunDirError, UsrDirError, UnknownNameError,
                  RegistrationError, DataError, MediaError, HParamsError, FrameError,
                  CheckpointError, ExportError, TrainingError)

# Operating-system errors that mean a bad path given by the user (not a bug).
PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
               FileExistsError)


def user_errors():
    """The exception types a CLI reports as one line: this package's, the OS errors of
    a bad path, and TensorFlow's that mean bad input (a missing or unwritable file, an
    invalid argument). A plain `ValueError` or `OSError` is a bug and keeps its
    traceback."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (loaded by then)
    return PACKAGE_ERRORS + PATH_ERRORS + (
        tf.errors.NotFoundError, tf.errors.InvalidArgumentError,
        tf.errors.PermissionDeniedError, tf.errors.AlreadyExistsError)


def one_line(error):
    """The error's message on one line (KeyError-style quotes stripped)."""
    text = str(error)
    if isinstance(error, KeyError) and len(text) > 1 and text[0] == text[-1] == "'":
        text = text[1:-1]
    return " ".join(text.split())


def run_cli(name, argv, body):
    """Runs a tool's `body()` the way every `t2t-videoflow-*` CLI reports problems.

    Extra positional arguments and the errors in `user_errors()` become one
    `NAME: error: ...` line on stderr and exit code 1; anything else is a bug and keeps
    its traceback.

    Returns:
      `body()`'s exit code (0 if it returns None), or 1.
    """
    if len(argv) > 1:
        print(f"{name}: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    from absl import logging  # pylint: disable=import-outside-toplevel
    logging.set_verbosity(logging.WARNING)   # TF's INFO lines (saver timings) are noise
    try:
        code = body()
    except user_errors() as e:
        print(f"{name}: error: {one_line(e)}", file=sys.stderr)
        return 1
    return 0 if code is None else code
