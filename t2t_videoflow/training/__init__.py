"""Training: the loop and its step, run dirs and checkpoints, learning-rate
schedules, tf.distribute strategies, weight averaging, restoring a trained run."""
