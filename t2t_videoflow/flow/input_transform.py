"""A fixed elementwise bijection in front of the flow: `y = asinh(g (x + 1/2))`.

Not in T2T (whose flow sees the dequantised pixel `x = v/255 - 1/2 + u` directly); an
option of this port (hparam `input_asinh_gain`, 0 = off = T2T). Per sub-pixel,

    y = asinh(g (x - x0)),                     x0 = -1/2, the value of a black pixel
    ln |dy/dx| = ln g - ln cosh(y)             (cosh(asinh t) = sqrt(1 + t^2))
    x = sinh(y) / g + x0                       the exact inverse

so the log-det is exact and the bits per pixel of a model with the transform are the
same quantity as without it (a likelihood of the same dequantised data).

Why: on mostly-black data (stochastic shapes: 97% of sub-pixels are 0) the black
values, after dequantisation uniform in `[x0, x0 + 1/256)`, carry most of the bits,
and modelling each such bin well needs the flow to resolve variations of 1/256 while
the shape's pixels sit up to 1 away. Plain Glow input gives the first actnorm (set from
the whole batch's spread) a noise scale of ~1% of its unit; with `g = 256` the black
bin maps almost linearly onto `[0, asinh(1)) = [0, 0.88)` while the bright values are
compressed logarithmically (x - x0 = 1 -> asinh(256) = 6.2), so noise and contrast
reach the flow at comparable scales.

Measured on stochastic shapes 32x32 (`videoflow_shapes_cpu_demo`, 1,000 steps, two
runs side by side on one core each; `experiments/results/demo_search.json`, runs
`demo` and `demo_asinh256`): dev bpp 0.538 with `g = 256` against 0.774 without, and
the largest logged gradient norm 2.1 against 459 (the loss spikes of the plain input come
from the background's dequantisation noise sitting far below the first actnorm's
unit). The trade-off, measured on `videoflow_shapes_cpu` for 8,000 steps
(`benchmarks/results/shapes_cpu_asinh.json`): dev bpp 0.339 and an empty clip below the
0.2546-bit floor of a bin-affine flow, but samples far more spread than the plain input's
(2.3% keep the shape against 26%), so only the 1,000-step demo set turns it on.
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from t2t_videoflow.flow.base import FlowBijector, check_frame_tensor

BLACK = -0.5   # `preprocess` of pixel value 0


def log_cosh(y):
    """`ln cosh(y)`, stable for large |y|: `|y| + softplus(-2|y|) - ln 2`."""
    a = tf.abs(y)
    return a + tf.math.softplus(-2.0 * a) - math.log(2.0)


class AsinhInput(FlowBijector):
    """`y = asinh(gain (x - offset))` on every sub-pixel of `[N, H, W, C]` frames.

    Stateless (keeps TFP's cache and argument-based equality, like `Squeeze`).

    Args:
      gain: g > 0.
      offset: x0, where the map is steepest (default: the black pixel value).
    """

    _cache = tfp.bijectors.Bijector.__dict__["_cache"]

    def __init__(self, gain, offset=BLACK, validate_args=False, name="asinh_input"):
        parameters = dict(locals())
        if not gain > 0:
            raise ValueError(f"AsinhInput gain must be > 0; got {gain}.")
        super().__init__(name=name, parameters=parameters, validate_args=validate_args)
        self.gain = float(gain)
        self.offset = float(offset)

    def _get_parameterization(self):
        return self.parameters

    def _log_det(self, y):
        per_element = math.log(self.gain) - log_cosh(y)
        return tf.reduce_sum(per_element, axis=[1, 2, 3])

    def _forward_frames(self, x, training):
        check_frame_tensor(x)
        y = tf.asinh(self.gain * (x - self.offset))
        return y, self._log_det(y)

    def _inverse_frames(self, y):
        check_frame_tensor(y, name="y")
        # sinh overflows float32 beyond |y| ~ 89; such values (only ever produced by
        # sampling far outside the data) decode to +-inf, which postprocess clips.
        x = tf.sinh(y) / self.gain + self.offset
        return x, -self._log_det(y)

    def _forward_event_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def _forward_event_shape_tensor(self, input_shape):
        return input_shape

    def _inverse_event_shape(self, output_shape):
        return tf.TensorShape(output_shape)

    def _inverse_event_shape_tensor(self, output_shape):
        return output_shape
