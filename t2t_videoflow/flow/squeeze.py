"""Squeeze by 2 with T2T's channel order (REFERENCE 2.2).

    forward:  [B, H, W, C] -> [B, H/2, W/2, 4C],
              y[b, h, w, 4c + 2i + j] = x[b, 2h + i, 2w + j, c],   i, j in {0, 1}
    inverse:  the exact inverse (unsqueeze)
    log-det:  0 (a permutation)

The output is ordered channel-major, then 2x2 block position. This is NOT
`tf.nn.space_to_depth`, which orders `(2i + j) C + c`; the difference decides which
values land in each half at the following split, so it must match T2T.
"""

import tensorflow as tf

from t2t_videoflow.flow.base import FlowBijector, check_frame_tensor


def squeeze2(x, factor=2):
    """`[B, H, W, C]` -> `[B, H/f, W/f, f*f*C]`, channel `f*f*c + f*i + j`.

    `factor=2` is the flow's squeeze (channel `4c + 2i + j`); other factors match
    T2T's `squeeze(x, factor)` (a single squeeze, not repeated squeezes by 2).
    """
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    c, f = x.shape[-1], factor
    x = tf.reshape(x, [b, h // f, f, w // f, f, c])       # [b, h', i, w', j, c]
    x = tf.transpose(x, [0, 1, 3, 5, 2, 4])                # [b, h', w', c, i, j]
    return tf.reshape(x, [b, h // f, w // f, f * f * c])


def unsqueeze2(y, factor=2):
    """Inverse of `squeeze2`: `[B, H, W, f*f*C]` -> `[B, f*H, f*W, C]`."""
    shape = tf.shape(y)
    b, h, w = shape[0], shape[1], shape[2]
    f = factor
    c = y.shape[-1] // (f * f)
    y = tf.reshape(y, [b, h, w, c, f, f])                  # [b, h, w, c, i, j]
    y = tf.transpose(y, [0, 1, 4, 2, 5, 3])                # [b, h, i, w, j, c]
    return tf.reshape(y, [b, f * h, f * w, c])


class Squeeze(FlowBijector):
    """Space-to-channel squeeze by 2 in T2T's order; log-det 0.

    Args:
      validate_args: TFP's flag (shape checks are static and always on).
      name: bijector name.
    Raises (on call):
      ValueError: input is not rank 4, or height/width is odd.
    """

    def __init__(self, validate_args=False, name="squeeze"):
        parameters = dict(locals())
        super().__init__(name=name, parameters=parameters, validate_args=validate_args)

    @staticmethod
    def _check_even(x):
        check_frame_tensor(x)
        for axis, label in ((1, "height"), (2, "width")):
            size = x.shape[axis]
            if size is not None and size % 2:
                raise ValueError(f"Squeeze needs an even {label}; got shape {x.shape}.")

    def forward_and_log_det(self, x, training=False):
        self._check_even(x)
        return squeeze2(x), tf.zeros(tf.shape(x)[:1], x.dtype)

    def inverse_and_log_det(self, y):
        check_frame_tensor(y)
        if y.shape[-1] is not None and y.shape[-1] % 4:
            raise ValueError(f"Unsqueeze needs channels divisible by 4; got {y.shape}.")
        return unsqueeze2(y), tf.zeros(tf.shape(y)[:1], y.dtype)

    def _forward_event_shape(self, input_shape):
        h, w, c = input_shape
        return tf.TensorShape([None if h is None else h // 2,
                               None if w is None else w // 2,
                               None if c is None else 4 * c])

    def _forward_event_shape_tensor(self, input_shape):
        return tf.stack([input_shape[0] // 2, input_shape[1] // 2, 4 * input_shape[2]])

    def _inverse_event_shape(self, output_shape):
        h, w, c = output_shape
        return tf.TensorShape([None if h is None else 2 * h,
                               None if w is None else 2 * w,
                               None if c is None else c // 4])

    def _inverse_event_shape_tensor(self, output_shape):
        return tf.stack([2 * output_shape[0], 2 * output_shape[1], output_shape[2] // 4])
