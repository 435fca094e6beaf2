"""One entry of a stacked variable, seen as the separate variable T2T stores.

T2T's per-time-step 3-D actnorm keeps one `[1, 1, 1, C]` bias and log-scale per time
step t (`actnorm_{t}/actnorm_{t}_center/b`, ...). `layers/conv3d.ActNorm3D` stores
them stacked, as one `[1, T, 1, 1, C]` variable each: the same values, but one
variable instead of T, which is what the optimizer, the checkpoint, tracing and the
executor pay for per variable (README, start-up). `StackedSlice` is entry t of
such a stack with T2T's shape, so that `t2t_variables()` can keep naming every T2T
variable: the T2T import reads and assigns through it like through a variable.

    stacked[:, t]  (shape [1, 1, 1, C])  <->  StackedSlice(stacked, t, axis=1)
"""

import numpy as np
import tensorflow as tf


class StackedSlice:
    """Entry `index` along `axis` of `variable`, with that axis removed.

    Reads (`numpy`, `value`) and writes (`assign`) go to the stacked variable; the
    other entries are left as they are.

    Args:
      variable: a `tf.Variable` or Keras variable of rank >= 1.
      index: the entry, `0 <= index < variable.shape[axis]`.
      axis: the stacking axis.
    """

    def __init__(self, variable, index, axis):
        size = int(variable.shape[axis])
        if not 0 <= index < size:
            raise ValueError(f"index {index} out of range for axis {axis} of size {size}")
        self.variable = variable
        self.index = int(index)
        self.axis = int(axis)

    @property
    def shape(self):
        dims = list(self.variable.shape)
        return tf.TensorShape(dims[:self.axis] + dims[self.axis + 1:])

    @property
    def dtype(self):
        return tf.as_dtype(self.variable.dtype)

    @property
    def name(self):
        return f"{self.variable.name}[{self.index}]"

    def value(self):
        """The entry as a tensor of `shape`."""
        return tf.gather(tf.convert_to_tensor(self.variable), self.index, axis=self.axis)

    def numpy(self):
        return self.value().numpy()

    def assign(self, value):
        """Writes `value` (of `shape`) into the entry; returns the stacked variable."""
        value = np.asarray(value, dtype=self.dtype.as_numpy_dtype)
        if value.shape != tuple(self.shape):
            raise ValueError(f"Cannot assign a value of shape {value.shape} to "
                             f"{self.name} (shape {tuple(self.shape)}).")
        stacked = np.array(self.variable.numpy())
        index = [slice(None)] * stacked.ndim
        index[self.axis] = self.index
        stacked[tuple(index)] = value
        self.variable.assign(stacked)
        return self.variable

    def __repr__(self):
        return f"<StackedSlice {self.name} shape={tuple(self.shape)}>"
