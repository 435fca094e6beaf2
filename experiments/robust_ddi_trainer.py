"""Experiment: the trainer with the flow's actnorms initialised by a robust scale.

Each flow actnorm's data-dependent init uses the per-channel median and 1.4826 x the
median absolute deviation instead of the mean and std, so on shapes (97% black) the
background noise, not the shape, sets the scale. Everything else is the trainer. An experiment for `background_floor.py`, not a
package feature (the package keeps T2T's init):

    python experiments/robust_ddi_trainer.py --problem=stochastic_shapes_32 \
        --hparams_set=videoflow_shapes_cpu \
        --hparams=train_steps=2000,learning_rate_decay_steps=500 \
        --data_dir=DATA_SHAPES --output_dir=RUN_C --save_checkpoints_steps=400 \
        --keep_checkpoint_max=10
"""
import sys
import tensorflow as tf
import tensorflow_probability as tfp
from t2t_videoflow.flow import actnorm
from t2t_videoflow.flow.base import check_frame_tensor
from t2t_videoflow.cli import trainer


def _robust_init(self, x):
    check_frame_tensor(x, self.channels)

    def initialize():
        xf = tf.cast(x, tf.float32)
        median = tfp.stats.percentile(xf, 50.0, axis=[0, 1, 2], keepdims=True,
                                      interpolation="midpoint")
        mad = tfp.stats.percentile(tf.abs(xf - median), 50.0, axis=[0, 1, 2],
                                   keepdims=True, interpolation="midpoint")
        self.bias.assign(-median)
        self.logs.assign(tf.math.log(1.0 / (1.4826 * mad + 1e-6)) / self.logscale_factor)
        self.initialized.assign(True)
        return tf.constant(True)

    tf.cond(self.initialized, lambda: tf.constant(False), initialize)
    return self._forward_frames(x, False)[0]


actnorm.Actnorm._data_init_frames = _robust_init
sys.argv[0] = "t2t-videoflow-trainer"
trainer.run_main()
