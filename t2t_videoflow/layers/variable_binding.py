"""Reading a variable through `read(v)`, so that a loop can bind other values to it.

The flow's steps, their coupling networks and the conv3d prior's layers read every
weight as `read(self.kernel)` instead of `self.kernel`. Outside `bind` that is the variable itself. Inside

    with bind(template_variables, values):
        y = template_step.forward(x)

each of `template_variables` reads as the matching tensor of `values`. This lets one
traced copy of a flow step compute any step of its level: `flow/flow_step.py` runs a
level's K steps as a `tf.while_loop` whose body binds step k's weights (sliced from
their stack) to step 0's variables. The graph then holds one step instead of K, which
is what makes tracing and graph optimisation of the paper model fast. The recomputed
blocks (`flow/recompute.py`, `layers/recompute_block.py`) bind the same way, so
their weights enter a custom gradient as explicit inputs.

Bindings are keyed by the variable's identity (a Keras weight and the `tf.Variable`
it wraps count as one) and nest (the innermost wins).
They are plain Python state, used only while a function is being traced or run
eagerly on this thread.
"""

import contextlib
import threading

import keras
import tensorflow as tf

_STATE = threading.local()


def variable_key(variable):
    """A hashable identity of a variable; a Keras weight and its `tf.Variable` share it."""
    # A Keras 3 weight computes with the `tf.Variable` it wraps, and modules track
    # that `tf.Variable` (`layers/keras_tracking.py`): both name the same weight.
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return id(variable)


def _bindings():
    if not hasattr(_STATE, "stack"):
        _STATE.stack = []
    return _STATE.stack


def read(variable):
    """The value bound to `variable` by an enclosing `bind`, else `variable` itself."""
    for binding in reversed(_bindings()):
        value = binding.get(variable_key(variable))
        if value is not None:
            return value
    return variable


@contextlib.contextmanager
def bind(variables, values):
    """Within the block, `read(variables[i])` returns `values[i]`.

    Args:
      variables: sequence of variables (tf or Keras).
      values: tensors of the same shapes and dtypes, one per variable.

    Raises:
      ValueError: the two sequences differ in length, or a value's shape or dtype
        differs from its variable's.
    """
    variables, values = list(variables), list(values)
    if len(variables) != len(values):
        raise ValueError(f"bind needs one value per variable; got {len(variables)} "
                         f"variables and {len(values)} values.")
    for variable, value in zip(variables, values):
        dtype = tf.as_dtype(variable.dtype)  # Keras 3 variables give a string
        if not value.shape.is_compatible_with(variable.shape) or value.dtype != dtype:
            raise ValueError(
                f"Cannot bind a {value.dtype.name} tensor of shape {value.shape} to "
                f"variable {variable.name} ({dtype.name}, shape "
                f"{tuple(variable.shape)}).")
    stack = _bindings()
    stack.append({variable_key(v): t for v, t in zip(variables, values)})
    try:
        yield
    finally:
        stack.pop()
