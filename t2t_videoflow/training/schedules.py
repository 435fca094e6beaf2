"""Learning-rate schedules of T2T's `learning_rate_schedule` strings
(`learning_rate.learning_rate_schedule` in T2T's `utils/learning_rate.py`).

`step` is the global step BEFORE the update it is used for (T2T's `global_step`), so
the first update uses step 0.

  legacy:                  learning_rate * 0.002 * warmup(step),
                           warmup = 0.01 ** ((w - step) / w) for step < w, else 1
                           (0.002 is T2T's Adam correction; `learning_rate_constant` unused)
  constant*linear_warmup:  learning_rate_constant * min(1, step / w)
  constant*linear_warmup*linear_decay:
                           ... * clip((train_steps - step) / decay_steps, 0, 1)
                           (the paper's linear decay to 0 over the last `decay_steps`;
                           not in any T2T set)

with w = `learning_rate_warmup_steps`, decay_steps = `learning_rate_decay_steps`.
"""

import tensorflow as tf
import tf_keras
from t2t_videoflow.errors import HParamsError

SCHEDULES = ("legacy", "constant*linear_warmup", "constant*linear_warmup*linear_decay")
# T2T's `optimizer_correction` for Adam in the legacy schedule.
_LEGACY_ADAM_CORRECTION = 0.002


def learning_rate_at(step, schedule, learning_rate=0.1, learning_rate_constant=3e-4,
                  warmup_steps=100, decay_steps=150000, train_steps=250000):
    """The learning rate at `step` (a scalar tensor or number) as a float32 tensor."""
    if schedule not in SCHEDULES:
        raise HParamsError(f"Unknown learning_rate_schedule {schedule!r}; known: "
                         f"{', '.join(SCHEDULES)}.")
    step = tf.cast(step, tf.float32)
    w = float(max(warmup_steps, 1))
    if schedule == "legacy":
        warmup = tf.where(step < w, tf.pow(0.01, (w - step) / w), 1.0)
        return learning_rate * _LEGACY_ADAM_CORRECTION * warmup
    lr = learning_rate_constant * tf.minimum(1.0, step / w)
    if schedule.endswith("linear_decay"):
        lr *= tf.clip_by_value((train_steps - step) / float(max(decay_steps, 1)), 0.0, 1.0)
    return lr


class T2TSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate_at(step, ...)` as an optimizer schedule, evaluated at its iterations."""

    def __init__(self, schedule, learning_rate=0.1, learning_rate_constant=3e-4,
                 warmup_steps=100, decay_steps=150000, train_steps=250000):
        self._args = dict(
            schedule=schedule, learning_rate=learning_rate,
            learning_rate_constant=learning_rate_constant, warmup_steps=warmup_steps,
            decay_steps=decay_steps, train_steps=train_steps)
        learning_rate_at(0, **self._args)  # validates the name now, not at step 0

    @classmethod
    def from_hparams(cls, hparams):
        return cls(hparams.learning_rate_schedule, learning_rate=hparams.learning_rate,
                   learning_rate_constant=hparams.learning_rate_constant,
                   warmup_steps=hparams.learning_rate_warmup_steps,
                   decay_steps=hparams.learning_rate_decay_steps,
                   train_steps=hparams.train_steps)

    def __call__(self, step):
        return learning_rate_at(step, **self._args)

    def get_config(self):
        return dict(self._args)
