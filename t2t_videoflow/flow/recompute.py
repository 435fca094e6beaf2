"""Memory-efficient invertible backprop: recompute activations from the outputs.

Plain backprop through a chain of flow steps `y_k = f_k(x_k)`, `x_{k+1} = y_k`, keeps
every intermediate tensor of every step (the coupling network's hidden maps of
`coupling_width` channels dominate) until the backward pass reaches it, so training
memory grows linearly with the depth K. Because each step is a bijection, the inputs
can instead be rebuilt from the outputs on the way back (Gomez et al. 2017, RevNets).

Each flow level runs its forward pass under `tf.custom_gradient` and keeps only
its output `y_K` (and the `[B]` log-det `L`). The
backward pass receives the upstream gradients `g_y = dJ/dy_K` and `g_L = dJ/dL` and,
for k = K-1, ..., 0:

    x_k          = f_k^{-1}(y_k)                       # reconstruct, no tape
    (y_k', L_k)  = f_k(x_k)                             # recompute under a local tape
    dJ/dx_k      = g_y^T dy_k'/dx_k + g_L^T dL_k/dx_k   # = the next g_y
    dJ/dtheta_k  = g_y^T dy_k'/dtheta_k + g_L^T dL_k/dtheta_k
    y_{k-1}      = x_k

`L = sum_k L_k`, so every step receives the same upstream `g_L`: the log-det is an
output of the level and its gradient flows back into the inputs and the variables
(the affine couplings' scales depend on both). The result is the gradient of plain
backprop up to float rounding in the reconstruction.

Memory: only one step's activations live at a time (the step being differentiated)
plus one `[B, h, w, c]` tensor per level: O(1) in the depth. Cost: one extra inverse
and one extra forward per step, i.e. roughly forward + backward + 2 forwards instead of
forward + backward.

Ordering. In a dataflow graph an op runs as soon as its inputs exist. The
reconstruction needs only `y_k`, which exists after the forward pass, so without
care the executor (or XLA's scheduler) may run every recomputation right after the
forward pass and keep all the activations after all. Each step's reconstruction is
therefore made data-dependent on its upstream gradient and on the variable gradients
of the step after it (`after`, `layers/recompute_block.py`), which serialises the
steps of the backward pass (TF's `recompute_grad` uses the same device for its
upstream gradient).

Looped levels. When the level runs its steps as one `tf.while_loop` (`loop_steps`,
inside a graph; `flow/flow_step.py`), unit="level" keeps that shape: the forward pass
is the level's loop, and the backward pass is a second `tf.while_loop` over
k = K-1, ..., 0 whose body is the recipe above for step 0 with step k's weights bound
(`layers/variable_binding.py`). The body differentiates with respect to the bound
weight tensors and writes step k's weight gradients at index k of one `TensorArray`
per weight. The weights enter the level's custom gradient as `[K, ...]` stacks, so
each array, stacked, is the gradient of its stack, and autodiff of the stacking
hands entry k to step k's variable. Iterations run one at a time
(`parallel_iterations=1`), so, as unrolled, one step's activations live at a time.
The graph holds one step instead of K for both passes.

Caching. The inverse is computed from the actual output tensor with the pieces'
one-pass `inverse_and_log_det`, never TFP's `inverse` (whose cache is keyed by tensor
identity, ignoring variable values, so after a variable update it would return a stale
input).

Limits:
  * Data-dependent init never runs here: `forward_and_log_det` applies actnorms, it
    does not initialise them (`data_init` is a separate, plain pass), so the
    recomputed forward equals the original one.
  * Dropout inside the coupling networks (`coupling_dropout > 0` with
    `training=True`) is not supported: the inverse and the recomputation would need
    the forward pass's mask, and the coupling network draws it statefully. The
    combination raises a ValueError instead of giving wrong gradients.
  * In eager mode the forward pass runs with recording stopped on outer tapes (the
    tapes would otherwise keep every intermediate); under `tf.function` the graph
    simply has no backward edges into them.

References:
  A. N. Gomez, M. Ren, R. Urtasun, R. B. Grosse. "The Reversible Residual Network:
  Backpropagation Without Storing Activations". NeurIPS 2017.
"""

import tensorflow as tf

from t2t_videoflow.flow.base import flatten_batch
from t2t_videoflow.layers.recompute_block import after
from t2t_videoflow.layers.variable_binding import bind
# `stop_recording` has no public equivalent that covers every active tape; TF's own
# `tf.recompute_grad` uses it the same way.
from tensorflow.python.eager import record

def _filled_upstream(y, grad_y, grad_log_det):
    """The upstream gradients of `(y, log_det)`, zeros where one is None (unused)."""
    if grad_y is None:
        grad_y = tf.zeros_like(y)
    if grad_log_det is None:
        grad_log_det = tf.zeros(tf.shape(y)[:1], y.dtype)
    return grad_y, grad_log_det


def _dropout_rates(piece):
    """Coupling-network dropout rates inside a flow piece (walks `sequence`)."""
    rates = []
    for sub in getattr(piece, "sequence", ()) or ():
        rates.extend(_dropout_rates(sub))
    net = getattr(piece, "net", None)
    if net is not None and getattr(net, "dropout_rate", 0.0) > 0.0:
        rates.append(net.dropout_rate)
    return rates


def check_recompute_supported(pieces, training):
    """ValueError if recomputing `pieces` could differ from their forward pass."""
    if not training:
        return
    rates = [r for piece in pieces for r in _dropout_rates(piece)]
    if rates:
        raise ValueError(
            "memory_efficient_backprop does not support dropout in the coupling "
            f"networks (coupling_dropout={rates[0]}): the inverse and the recomputed "
            "forward would need the forward pass's random mask. Set coupling_dropout=0 "
            "or memory_efficient_backprop=False.")


def reversible_forward_and_log_det(pieces, x, training=False):
    """`(y, log_det)` of `pieces` applied in order, without storing activations.

    Same values as applying each piece's `forward_and_log_det` in turn; gradients
    (w.r.t. `x`, every variable the pieces read, and through the log-det) are those of
    plain backprop, computed by reconstructing each piece's input from its output.

    Args:
      pieces: non-empty sequence of `FlowBijector`s with `forward_and_log_det(x,
        training)` and `inverse_and_log_det(y)`.
      x: input `[B, h, w, c]`.
      training: passed to the pieces' forward passes.

    Returns:
      `(y, log_det)`, log_det `[B]`.
    Raises:
      ValueError: empty `pieces`, or dropout inside a piece with `training=True`.
    """
    pieces = list(pieces)
    if not pieces:
        raise ValueError("reversible_forward_and_log_det needs at least one piece.")
    check_recompute_supported(pieces, training)

    def forward(inputs):
        h, log_det = inputs, tf.zeros(tf.shape(inputs)[:1], inputs.dtype)
        for piece in pieces:
            h, piece_log_det = piece.forward_and_log_det(h, training=training)
            log_det += piece_log_det
        return h, log_det

    @tf.custom_gradient
    def unit(inputs):
        with record.stop_recording():
            y, log_det = forward(inputs)

        def grad(grad_y, grad_log_det, variables=None):
            variables = list(variables or [])
            grad_y, grad_log_det = _filled_upstream(y, grad_y, grad_log_det)
            totals = [None] * len(variables)
            h, done = y, [grad_y]
            for piece in reversed(pieces):
                # Start this piece only once the previous one is fully differentiated
                # (its input gradient AND its variable gradients): otherwise the
                # executor may run ahead along the input-gradient chain and keep
                # several pieces' activations alive while variable gradients wait.
                h = after(tf.stop_gradient(h), done)
                h_in, _ = piece.inverse_and_log_det(h)
                h_in = tf.stop_gradient(h_in)
                with tf.GradientTape() as tape:
                    tape.watch(h_in)
                    h_out, piece_log_det = piece.forward_and_log_det(h_in, training=training)
                grads = tape.gradient([h_out, piece_log_det], [h_in] + variables,
                                      output_gradients=[grad_y, grad_log_det])
                grad_y = grads[0]
                done = [grad_y]
                for i, g in enumerate(grads[1:]):
                    if g is not None:
                        totals[i] = g if totals[i] is None else totals[i] + g
                        done.append(g)
                h = h_in
            totals = [tf.zeros_like(v) if g is None else g
                      for g, v in zip(totals, variables)]
            return grad_y, totals

        return (y, log_det), grad

    y, log_det = unit(x)
    return y, log_det


def level_forward_and_log_det(level, x, training=False):
    """A `FlowLevel`'s `(y, log_det)` under one custom gradient over all K steps, which
    stores only the level's output and rebuilds the rest on the backward pass."""
    if level._use_loop():
        return _looped_level_forward_and_log_det(level, x, training)
    return reversible_forward_and_log_det(level.steps, x, training)


def _looped_level_forward_and_log_det(level, x, training):
    """`level_forward_and_log_det` of a looped `FlowLevel`: both passes as
    `tf.while_loop`s (module docstring).

    The steps' weights enter the custom gradient as explicit `[K, ...]` stacks, read
    outside it, rather than as variables read inside: `tf.custom_gradient` would
    otherwise pass every variable of the level through one identity op, read each
    again and fill a zero gradient for each (about six ops per variable, 1,224
    variables in the paper model's flow), and the stacks' own gradient (unstacking)
    hands each step's part to its variable. The backward pass reads the variables
    again instead of holding the forward pass's stacks until then.
    """
    check_recompute_supported(level.steps, training)
    flat, unflatten = flatten_batch(x, 3)
    template_step = level.steps[0]
    depth = len(level.steps)
    _, stacks = level._step_weights()

    @tf.custom_gradient
    def unit(inputs, *stacks):
        with record.stop_recording():
            y, log_det = level.looped_forward(inputs, training, stacks)

        def grad(grad_y, grad_log_det, variables=None):
            if variables:
                raise ValueError(
                    f"{level.name}: the looped recomputation read variables other than "
                    f"its steps' weights: {[v.name for v in variables]}.")
            grad_y, grad_log_det = _filled_upstream(y, grad_y, grad_log_det)
            template, weights = level._step_weight_arrays()
            arrays = [tf.TensorArray(w.dtype, size=depth, element_shape=w.element_shape)
                      for w in weights]

            def body(i, h, g_y, arrays):
                k = depth - 1 - i
                values = [w.read(k) for w in weights]
                with bind(template, values):
                    h_in, _ = template_step._inverse_frames(tf.stop_gradient(h))
                    h_in = tf.stop_gradient(h_in)
                    with tf.GradientTape() as tape:
                        tape.watch([h_in] + values)
                        h_out, step_log_det = template_step._forward_frames(h_in, training)
                grads = tape.gradient([h_out, step_log_det], [h_in] + values,
                                      output_gradients=[g_y, grad_log_det],
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
                arrays = [a.write(k, g) for a, g in zip(arrays, grads[1:])]
                # The next step starts once this one is fully differentiated (`after`).
                return i + 1, after(h_in, grads[1:]), grads[0], arrays

            _, _, grad_x, arrays = tf.while_loop(
                lambda i, *_: i < depth, body, (tf.constant(0), y, grad_y, arrays),
                maximum_iterations=depth, parallel_iterations=1)
            return [grad_x] + [a.stack() for a in arrays]

        return (y, log_det), grad

    y, log_det = unit(flat, *stacks)
    return unflatten(y), unflatten(log_det)
