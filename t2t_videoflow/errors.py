"""The error types a CLI reports as one line (and exit code 1) instead of a traceback."""

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
