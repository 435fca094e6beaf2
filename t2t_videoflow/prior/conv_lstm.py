"""2-D convolutional LSTM cell (T2T `common_video.conv_lstm_2d`, TF-contrib `ConvLSTMCell`).

    [i, g, f, o] = split_4(conv_same([x, h], kernel) + biases)       (this order)
    c' = sigmoid(f + forget_bias) * c + sigmoid(i) * tanh(g)
    h' = tanh(c') * sigmoid(o)

The state is explicit: `call(x, state)` takes `(c, h)` (or None for zeros) and
returns `(h', (c', h'))`; nothing is kept on the layer between calls.
"""

import keras
import tensorflow as tf

from t2t_videoflow.layers.keras_tracking import deferrable_initializer
from t2t_videoflow.prior.latent_to_dist import SingleConvDist


class ConvLSTMCell(keras.layers.Layer):
    """One ConvLSTM step on `[B, H, W, C_in]`; state `(c, h)`, each `[B, H, W, filters]`.

    Args:
      filters: state channels (`latent_encoder_width`).
      kernel_size: odd spatial kernel size (T2T uses 3 in VideoFlow).
      forget_bias: added to the forget-gate pre-activation (1.0 in T2T).
      kernel_initializer: T2T takes the scope default, `orthogonal(gain=1.5)` in
        training (HP `initializer`, `initializer_gain`).

    T2T variables (relative to the `conv_lstm` scope): `kernel`
    `[k, k, C_in + filters, 4 * filters]` and `biases` `[4 * filters]` (zeros).
    """

    def __init__(self, filters, kernel_size=3, forget_bias=1.0,
                 kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.forget_bias = float(forget_bias)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.Orthogonal(gain=1.5))

    def build(self, input_shape):
        c_in = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, c_in + self.filters,
                   4 * self.filters),
            initializer=deferrable_initializer(self.kernel_initializer))
        self.biases = self.add_weight(
            name="biases", shape=(4 * self.filters,), initializer="zeros")

    def reseed(self, seed):
        """Redraws the initial kernel from the integer `seed` (same initializer)."""
        config = self.kernel_initializer.get_config()
        if "seed" in config:
            init = type(self.kernel_initializer).from_config({**config, "seed": int(seed)})
            self.kernel.assign(init(self.kernel.shape))

    def zero_state(self, x):
        """Zero `(c, h)` matching `x`'s batch and spatial size."""
        zeros = tf.zeros_like(x[..., :1]) * tf.zeros([self.filters], x.dtype)
        return zeros, zeros

    def call(self, x, state=None):
        """Returns `(h', (c', h'))`."""
        c, h = self.zero_state(x) if state is None else state
        gates = tf.nn.conv2d(tf.concat([x, h], axis=-1), self.kernel, strides=1,
                             padding="SAME") + self.biases
        i, g, f, o = tf.split(gates, 4, axis=-1)
        new_c = tf.sigmoid(f + self.forget_bias) * c + tf.sigmoid(i) * tf.tanh(g)
        new_h = tf.tanh(new_c) * tf.sigmoid(o)
        return new_h, (new_c, new_h)

    def t2t_variables(self):
        return {"kernel": self.kernel, "biases": self.biases}

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "forget_bias": self.forget_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


class ConvLSTMToDist(keras.layers.Layer):
    """One ConvLSTM step followed by a `single_conv_dist` head on the new `h`.

        h', (c', h') = ConvLSTMCell(x, (c, h))                       "conv_lstm"
        loc, ln scale = even, odd channels of ZeroConv3x3(h')        "<head_name>/conv2d"

    Input `[B, H, W, C_in]` and state `(c, h)` (None = zeros) -> `(loc, scale,
    (c', h'))`, `loc`/`scale` `[B, H, W, output_channels]`. At init `loc = 0`,
    `scale = 1` whatever the state.

    Args:
      output_channels: channels of the latent being modelled.
      filters: LSTM width (`latent_encoder_width`).
      head_name: T2T scope of the head: "state_to_dist" (level priors) or
        "conditional" (top prior).
      kernel_size: LSTM kernel size (3 in VideoFlow).
    """

    def __init__(self, output_channels, filters, head_name="state_to_dist",
                 kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.output_channels = int(output_channels)
        self.filters = int(filters)
        self.head_name = str(head_name)
        self.kernel_size = int(kernel_size)
        self.cell = ConvLSTMCell(self.filters, self.kernel_size, name="conv_lstm")
        self.head = SingleConvDist(self.output_channels, name=self.head_name)

    def build(self, input_shape):
        self.cell.build(input_shape)
        self.head.build((*input_shape[:-1], self.filters))

    def call(self, x, state=None):
        new_h, new_state = self.cell(x, state)
        loc, scale = self.head(new_h)
        return loc, scale, new_state

    def t2t_variables(self):
        out = {"conv_lstm/" + k: v for k, v in self.cell.t2t_variables().items()}
        out.update({self.head_name + "/" + k: v
                    for k, v in self.head.t2t_variables().items()})
        return out

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels,
                "filters": self.filters, "head_name": self.head_name,
                "kernel_size": self.kernel_size}
