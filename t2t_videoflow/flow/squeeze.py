"""Squeeze by 2 with T2T's channel order (`glow_ops.squeeze`).

    forward:  [*batch, H, W, C] -> [*batch, H/2, W/2, 4C],
              y[..., h, w, 4c + 2i + j] = x[..., 2h + i, 2w + j, c],   i, j in {0, 1}
    inverse:  the exact inverse (unsqueeze)
    log-det:  0 (a permutation)

The output is ordered channel-major, then 2x2 block position. This is NOT
`tf.nn.space_to_depth`, which orders `(2i + j) C + c`; the difference decides which
values land in each half at the following split, so it must match T2T.
"""

import tensorflow as tf
import tensorflow_probability as tfp

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

    Events `[H, W, C] -> [H/2, W/2, 4C]`, any leading batch dimensions. A permutation:
    the Jacobian is constant (`is_constant_jacobian`) with log-det 0. Squeeze owns no
    variables, so unlike the other pieces it keeps TFP's cache and TFP's
    argument-based equality (two Squeezes are the same function).

    Args:
      validate_args: TFP's flag (shape checks are static and always on).
      name: bijector name.
    Raises (on call):
      ValueError: input of rank < 3, odd height/width, or (inverse) channels not
        divisible by 4.
    """

    # Stateless: TFP's default cache and parameter-based equality are correct here.
    _cache = tfp.bijectors.Bijector.__dict__["_cache"]

    def __init__(self, validate_args=False, name="squeeze"):
        parameters = dict(locals())
        super().__init__(name=name, parameters=parameters, validate_args=validate_args,
                         is_constant_jacobian=True)

    def _get_parameterization(self):
        return self.parameters

    @property
    def _is_permutation(self):
        return True

    @staticmethod
    def _check_even(x):
        check_frame_tensor(x)
        for axis, label in ((1, "height"), (2, "width")):
            size = x.shape[axis]
            if size is not None and size % 2:
                raise ValueError(f"Squeeze needs an even {label}; got shape {x.shape}.")

    def _forward_frames(self, x, training):
        self._check_even(x)
        return squeeze2(x), tf.zeros(tf.shape(x)[:1], x.dtype)

    def _inverse_frames(self, y):
        check_frame_tensor(y)
        if y.shape[-1] is not None and y.shape[-1] % 4:
            raise ValueError(f"Unsqueeze needs channels divisible by 4; got {y.shape}.")
        return unsqueeze2(y), tf.zeros(tf.shape(y)[:1], y.dtype)

    # Event-shape methods receive `[..., H, W, C]` (TFP passes leading batch dims along).

    @staticmethod
    def _split_shape(shape, label):
        shape = tf.TensorShape(shape)
        if shape.rank is None:
            return None
        if shape.rank < 3:
            raise ValueError(f"Squeeze: {label} shape must end in [height, width, "
                             f"channels]; got {shape}.")
        return shape[:-3], list(shape[-3:])

    def _forward_event_shape(self, input_shape):
        parts = self._split_shape(input_shape, "input")
        if parts is None:
            return tf.TensorShape(None)
        batch, (h, w, c) = parts
        for size, label in ((h, "height"), (w, "width")):
            if size is not None and size % 2:
                raise ValueError(f"Squeeze needs an even {label}; got shape {input_shape}.")
        return batch.concatenate([None if h is None else h // 2,
                                  None if w is None else w // 2,
                                  None if c is None else 4 * c])

    def _forward_event_shape_tensor(self, input_shape):
        return tf.concat([input_shape[:-3], [input_shape[-3] // 2, input_shape[-2] // 2,
                                             4 * input_shape[-1]]], axis=0)

    def _inverse_event_shape(self, output_shape):
        parts = self._split_shape(output_shape, "output")
        if parts is None:
            return tf.TensorShape(None)
        batch, (h, w, c) = parts
        if c is not None and c % 4:
            raise ValueError(f"Unsqueeze needs channels divisible by 4; got {output_shape}.")
        return batch.concatenate([None if h is None else 2 * h,
                                  None if w is None else 2 * w,
                                  None if c is None else c // 4])

    def _inverse_event_shape_tensor(self, output_shape):
        return tf.concat([output_shape[:-3], [2 * output_shape[-3], 2 * output_shape[-2],
                                              output_shape[-1] // 4]], axis=0)
