"""A moving average of the trained weights (Polyak averaging), hparam `weight_ema_decay`.

T2T's VideoFlow evaluates and samples with the raw weights, which is the default here
(`weight_ema_decay = 0`). Glow's own code evaluates a Polyak average of its weights, and
sampling from an average is common practice for generative models: it removes much of
the step-to-step noise of Adam at a small batch. With `weight_ema_decay = d > 0` the
trainer keeps, after every update n (n = the global step after it),

    w̄_n = d_n w̄_{n-1} + (1 - d_n) w_n,        d_n = min(d, (1 + n) / (10 + n)),

`tf.train.ExponentialMovingAverage` with `num_updates = n` (its warm-up makes the early
average follow the weights instead of remembering the random initialisation). The
average starts equal to the weights after data-dependent init. Evaluation during
training, `t2t-videoflow-eval`, the decoder, the motion tool and the exporter use the
average when the checkpoint holds one (`--noema_weights`: the raw weights).

Checkpoint layout: node `ema`, the averages as a list in `model.trainable_variables`
order, next to `model` and `optimizer`. Inference reads that list straight into a
freshly built model's own trainable variables (`read_averages`), so no tool needs to
know which variable an average belongs to.
"""

import contextlib

import tensorflow as tf

from t2t_videoflow.training import run_dir

CHECKPOINT_NODE = "ema"


def check_decay(decay):
    """Returns `decay` as a float in [0, 1), or raises ValueError."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise ValueError(f"weight_ema_decay must be a number in [0, 1) (0 = off); got "
                         f"{decay!r}.")
    return float(decay)


class WeightEMA:
    """The moving averages of `variables`, updated after each optimizer step.

    Args:
      variables: the trainable variables (their order is the checkpoint's).
      decay: d in (0, 1).
      num_updates: the global step variable (read when the update runs).
    """

    def __init__(self, variables, decay, num_updates):
        self.variables = list(variables)
        self._ema = tf.train.ExponentialMovingAverage(
            check_decay(decay), num_updates=num_updates, name="weight_ema")
        # Creates the averages, equal to the variables (an update of x with x).
        self._ema.apply(self.variables)
        self.averages = [self._ema.average(v) for v in self.variables]

    def update(self):
        """One update of every average from the current weights (inside a step)."""
        return self._ema.apply(self.variables)

    def reset(self):
        """Averages := weights (after data-dependent init)."""
        for average, variable in zip(self.averages, self.variables):
            average.assign(variable)

    @contextlib.contextmanager
    def averaged_weights(self):
        """Inside: the variables hold the averages; after: their own values again."""
        saved = [tf.identity(v) for v in self.variables]
        for variable, average in zip(self.variables, self.averages):
            variable.assign(average)
        try:
            yield
        finally:
            for variable, value in zip(self.variables, saved):
                variable.assign(value)


def has_averages(checkpoint_path):
    """Whether a checkpoint holds a trainer's weight averages (node `ema`)."""
    return run_dir.checkpoint_has_node(checkpoint_path, CHECKPOINT_NODE)


def read_averages(variables, checkpoint_path):
    """Loads the checkpoint's weight averages into `variables` (the trainable
    variables' order: a model's own, or a trainer's averages).

    Raises:
      ValueError: the checkpoint's averages do not fit the variables.
    """
    try:
        tf.train.Checkpoint(**{CHECKPOINT_NODE: list(variables)}).read(
            checkpoint_path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:
        raise ValueError(f"The weight averages in {checkpoint_path!r} do not fit the "
                         f"model: {str(e).splitlines()[0]}") from e
