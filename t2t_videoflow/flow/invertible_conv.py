"""Invertible 1x1 convolution in LU form (Kingma & Dhariwal 2018;
T2T `glow_ops.invertible_1x1_conv`).

    W = P @ L @ (U + diag(sign_s * exp(log_s)))        [C, C]
    forward:  y[b, h, w, :] = x[b, h, w, :] @ W         (1x1 conv, TF's HWIO layout)
    inverse:  x = y @ W^-1
    log-det:  H * W * sum(log_s)                         (the same for every example)

`L` is the stored matrix masked to its strictly-lower part plus the identity; `U` the
stored matrix masked to its strictly-upper part. `P` and `sign_s` are fixed
(non-trainable); `L`, `U`, `log_s` are trained.

Init (T2T): draw a C x C matrix uniform on [0, 1), take Q of its QR decomposition,
factor Q = P L U with partial pivoting, then `sign_s = sign(diag U)`,
`log_s = ln|diag U|`, `U <- triu(U, 1)`. W starts as a random orthogonal matrix
(det +1 or -1).
"""

import numpy as np
import tensorflow as tf

from t2t_videoflow.flow.base import FlowBijector, batch_log_det, check_frame_tensor
from t2t_videoflow.layers.variable_binding import read


def lu_initial_values(channels, seed=None):
    """Returns numpy float32 `(P, L, U, sign_s, log_s)` for a random rotation/reflection.

    `seed` seeds a private numpy generator (T2T used numpy's global RNG), so the
    initial weight is reproducible and identical on every replica.
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.uniform(size=(channels, channels)))
    q = q.astype(np.float32).astype(np.float64)
    # tf.linalg.lu gives perm p with q[p] = L U, i.e. q = P^T L U.
    lu, perm = tf.linalg.lu(tf.constant(q))
    lu, perm = lu.numpy(), perm.numpy()
    permutation = np.eye(channels)[perm].T
    lower = np.tril(lu, -1) + np.eye(channels)
    upper = np.triu(lu, 1)
    diag = np.diag(lu)
    return tuple(a.astype(np.float32) for a in
                 (permutation, lower, upper, np.sign(diag), np.log(np.abs(diag))))


class InvertibleConv1x1(FlowBijector):
    """Channel-mixing 1x1 convolution with an LU-parameterised weight.

    Events `[H, W, C]`, any leading batch dimensions; linear, so
    `is_constant_jacobian`. The log-det `H W sum(log_s)` is the same for every example.

    Args:
      channels: C.
      seed: int seed for the random initial rotation (None: nondeterministic).
      validate_args: TFP's flag.
      name: bijector name.
    """

    def __init__(self, channels, seed=None, validate_args=False, name="invertible_1x1"):
        parameters = dict(locals())
        super().__init__(name=name, parameters=parameters, validate_args=validate_args,
                         is_constant_jacobian=True)
        self.channels = int(channels)
        p, l, u, sign_s, log_s = lu_initial_values(self.channels, seed)
        with tf.name_scope(self.name):
            self.permutation = tf.Variable(p, trainable=False, name="P")
            self.lower = tf.Variable(l, name="L")
            self.upper = tf.Variable(u, name="U")
            self.sign_s = tf.Variable(sign_s, trainable=False, name="sign_S")
            self.log_s = tf.Variable(log_s, name="log_S")
        self._lower_mask = tf.constant(np.tril(np.ones([channels, channels]), -1),
                                       tf.float32)

    def weight(self):
        """The `[C, C]` matrix W = P L (U + diag(sign_s exp(log_s)))."""
        mask = self._lower_mask
        lower = read(self.lower) * mask + tf.eye(self.channels)
        upper = (read(self.upper) * tf.transpose(mask)
                 + tf.linalg.diag(read(self.sign_s) * tf.exp(read(self.log_s))))
        return tf.matmul(read(self.permutation), tf.matmul(lower, upper))

    def _log_det(self, x):
        hw = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], x.dtype)
        return batch_log_det(hw * tf.reduce_sum(tf.cast(read(self.log_s), x.dtype)), x)

    @staticmethod
    def _apply(x, matrix):
        kernel = tf.cast(matrix, x.dtype)[tf.newaxis, tf.newaxis]
        return tf.nn.conv2d(x, kernel, strides=1, padding="VALID")

    def _forward_frames(self, x, training):
        check_frame_tensor(x, self.channels)
        return self._apply(x, self.weight()), self._log_det(x)

    def _inverse_frames(self, y):
        check_frame_tensor(y, self.channels)
        return self._apply(y, tf.linalg.inv(self.weight())), -self._log_det(y)

    def t2t_variables(self):
        return {"invertible/P": self.permutation, "invertible/L": self.lower,
                "invertible/U": self.upper, "invertible/sign_S": self.sign_s,
                "invertible/log_S": self.log_s}
