"""Recomputing a block's activations in the backward pass, its weights given as inputs.

`recompute_with_weights(f, variables)(x)` computes `y = f(x)` and stores nothing of
`f` but its input `x`; the backward pass, once the upstream gradient `dy` exists,
runs `f` again under a tape and returns the vector-Jacobian products

    dJ/dx = dy^T dy/dx,        dJ/dW = dy^T dy/dW      for every weight W of f,

the gradients of plain backprop (the prior's residual blocks use it under
`memory_efficient_backprop`, `prior/temporal_network.py`).

Why not `tf.recompute_grad(f)`, which computes the same: in a graph,
`tf.custom_gradient` passes every variable `f` reads through an identity op, reads
each again and fills a zero gradient for each, and `tf.recompute_grad` nests two
custom gradients; in the paper model's prior that is about 3,000 ops of plumbing
(graph size costs start-up time and memory). Here `f` reads its weights
through `read()` (`layers/variable_binding.py`): their values enter the custom
gradient as explicit inputs, bound to the variables while `f` runs, and their
gradients flow back to the variables through the reads. The backward pass reads the
variables again rather than keeping the forward pass's values alive until then.
"""

import tensorflow as tf
# `stop_recording` has no public equivalent that covers every active tape; TF's own
# `tf.recompute_grad` uses it the same way.
from tensorflow.python.eager import record

from t2t_videoflow.layers.variable_binding import bind


def after(x, tensors):
    """`x`, made data-dependent on every tensor in `tensors` (computed only after them).

    Adds exactly zero (NaN if a tensor's first element is NaN, which would poison the
    gradient anyway). A data edge, unlike a control dependency, is also respected by
    XLA.
    """
    ready = []
    for t in tensors:
        first = tf.reshape(t, [-1])[:1]
        ready.append(tf.reduce_sum(tf.where(first == first, 0.0, float("nan"))))
    return x + tf.cast(tf.add_n(ready), x.dtype)


def recompute_with_weights(fn, variables):
    """`fn` (one tensor in, one tensor out) recomputed in the backward pass.

    Args:
      fn: the block; reads every one of `variables` through `read()` and no other
        variable.
      variables: the block's variables (tf or Keras); non-float ones (flags) are
        ignored.

    Returns:
      `call(x) -> fn(x)` with the gradients of plain backprop w.r.t. `x` and the
      variables.
    Raises (when differentiated):
      ValueError: `fn` read a variable directly, not through `read()`.
    """
    weights = [v for v in variables if tf.as_dtype(v.dtype).is_floating]

    def call(x):
        @tf.custom_gradient
        def block(inputs, *values):
            with record.stop_recording(), bind(weights, values):
                y = fn(inputs)

            def grad(dy, variables=None):
                if variables:
                    raise ValueError(
                        "recompute_with_weights: the block read variables not bound "
                        f"through read(): {[v.name for v in variables]}.")
                if dy is None:
                    dy = tf.zeros_like(y)
                # Recompute only once the upstream gradient exists.
                x_again = after(tf.stop_gradient(inputs), [dy])
                fresh = [tf.convert_to_tensor(w) for w in weights]
                with tf.GradientTape() as tape:
                    tape.watch([x_again] + fresh)
                    with bind(weights, fresh):
                        y_again = fn(x_again)
                return tape.gradient(y_again, [x_again] + fresh, output_gradients=dy,
                                     unconnected_gradients=tf.UnconnectedGradients.ZERO)

            return y, grad

        return block(x, *[tf.convert_to_tensor(w) for w in weights])

    return call
