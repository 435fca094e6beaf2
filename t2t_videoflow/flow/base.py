"""Shared base for the flow's bijectors: one-pass transform + per-example log-det.

TFP's hooks (`_forward`, `_forward_log_det_jacobian`, ...) compute the transform and
its log-det separately, which for a coupling layer runs its network twice. The
multi-scale flow instead calls `forward_and_log_det` / `inverse_and_log_det`, which do
both in one pass and return a log-det with the input's batch shape (event-independent
layers broadcast their scalar). The TFP hooks are derived from the same two methods,
so `tfb.Chain`, `tfb.Invert`, `tfd.TransformedDistribution`, etc. see exactly the same
math.

Shapes. An event is a frame `[H, W, C]` (`forward_min_event_ndims = 3`); inputs may
have any number of leading batch dimensions, none included: `[*batch, H, W, C]`. The
pieces compute on `[N, H, W, C]`; `flatten_batch` folds `*batch` into `N` and unfolds
the results (for rank-4 input it returns the tensor itself: no ops are added). The
log-det has shape `batch`, the TFP convention for `event_ndims = 3`; TFP's public
methods sum it over any further event dimensions.

Caching and identity. TFP caches `forward`/`inverse` results and log-dets keyed by
the input tensor's identity and by bijector *equality*, which it derives from the
constructor arguments. For bijectors that own variables both are wrong: a cached
result outlives a variable update (an eager training loop on a fixed data tensor
optimises a stale log-det), and two instances built with equal arguments (but their
own variables) would share entries, in TFP's cache and in `tf.function`'s trace cache.
`StatefulBijector` therefore disables the cache (every call computes from the current
variable values, as a plain function would) and makes equality and hashing those of
object identity. Stateless pieces (`Squeeze`) keep TFP's cache and equality.

Every piece also has `data_init(x)`: set data-dependent parameters from `x` (a no-op
for pieces without any) and return the forward output, so a whole flow initialises
sequentially, layer after layer, in one explicit pass.
"""

import tensorflow as tf
import tensorflow_probability as tfp
# The cache class Bijector itself uses; subclassed to store nothing.
from tensorflow_probability.python.internal import cache_util


def check_frame_tensor(x, channels=None, name="x"):
    """Raises ValueError unless `x` is a float `[N, H, W, channels]` tensor."""
    shape = x.shape
    if not x.dtype.is_floating:
        raise ValueError(
            f"{name} must be a float tensor [batch, height, width, channels]; "
            f"got dtype {x.dtype.name}. Convert frames first (uint8 v -> v/255 - 0.5).")
    if shape.rank is not None and shape.rank != 4:
        raise ValueError(
            f"{name} must have rank 4 [batch, height, width, channels]; "
            f"got shape {shape}.")
    if channels is not None and shape.rank == 4 and shape[-1] is not None \
            and shape[-1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels [batch, height, width, {channels}]; "
            f"got shape {shape}.")


def batch_log_det(value, x):
    """Broadcasts a scalar or `[N]` log-det to `[N]` for input `x` `[N, ...]`."""
    return tf.broadcast_to(tf.cast(value, x.dtype), tf.shape(x)[:1])


def _identity(t):
    return t


def _static_or_dynamic(shape, dynamic):
    """`shape` as a list of ints if fully known, else the int32 tensor `dynamic()`."""
    return shape.as_list() if shape.is_fully_defined() else dynamic()


def _concat_shapes(first, second):
    if isinstance(first, list) and isinstance(second, list):
        return first + second
    return tf.concat([tf.cast(first, tf.int32), tf.cast(second, tf.int32)], axis=0)


def flatten_batch(x, event_ndims, name="x"):
    """`[*batch, *event] -> [N, *event]` and the function that undoes it on results.

    Args:
      x: a tensor of static rank >= `event_ndims`.
      event_ndims: number of trailing event dimensions.
      name: used in error messages.

    Returns:
      `(flat, unflatten)`: `flat` has exactly one batch dimension N (the product of
      `batch`, 1 when there is none); `unflatten(t)` reshapes a result `[N, ...]` to
      `[*batch, ...]`. With exactly one batch dimension, `flat` is `x` and `unflatten`
      the identity (no ops).

    Raises:
      ValueError: unknown rank, or rank below `event_ndims`.
    """
    if not tf.is_tensor(x):
        x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    if rank == event_ndims + 1:
        return x, _identity
    if rank is None:
        raise ValueError(f"{name} must have a static rank (a [..., event] tensor); got "
                         f"an unknown rank.")
    if rank < event_ndims:
        raise ValueError(f"{name} must have at least {event_ndims} dimensions (the event); "
                         f"got shape {x.shape}.")
    if rank == event_ndims:
        return x[tf.newaxis], lambda t: t[0]
    n_batch = rank - event_ndims
    batch = _static_or_dynamic(x.shape[:n_batch], lambda: tf.shape(x)[:n_batch])
    event = _static_or_dynamic(x.shape[n_batch:], lambda: tf.shape(x)[n_batch:])
    flat = tf.reshape(x, _concat_shapes([-1], event))

    def unflatten(t):
        tail = _static_or_dynamic(t.shape[1:], lambda: tf.shape(t)[1:])
        return tf.reshape(t, _concat_shapes(batch, tail))

    return flat, unflatten


class _Uncached(cache_util.BijectorCache):
    """A `Bijector._cache` that stores nothing: every call invokes the bijector."""

    def _lookup(self, input, forward_name, inverse_name, **kwargs):  # noqa: A002
        del inverse_name
        return self._invoke(input, forward_name, kwargs, {})

    def _attributes(self, input, fn_name, **kwargs):  # noqa: A002
        del input, fn_name, kwargs
        return {}


class StatefulBijector(tfp.bijectors.Bijector):
    """A `tfb.Bijector` that owns variables: no TFP cache, identity equality.

    * `forward`, `inverse` and the log-det methods always compute from the current
      variable values (TFP's cache would return results computed before an `assign`).
    * `b1 == b2` iff `b1 is b2`, and `hash` follows, so TFP's cache and
      `tf.function`'s trace cache never give one instance's results to another.
    * `experimental_batch_shape()` is `[]` (no parameter batch: one transformation).
    """

    _cache = _Uncached()

    def _get_parameterization(self):
        # TFP's own choice for bijectors without `parameters`: all instances unique.
        return id(self)

    @classmethod
    def _parameter_properties(cls, dtype):
        del dtype
        return {}  # No Tensor-valued constructor arguments: batch shape [].


class FlowBijector(StatefulBijector):
    """A bijector on `[H, W, C]` events defined by its one-pass methods.

    Subclasses implement `_forward_frames(x, training)` and `_inverse_frames(y)` on
    `[N, H, W, C]` (log-dets `[N]`; the inverse returns the inverse log-det, i.e.
    minus the forward log-det at the reconstructed input), and may override
    `_data_init_frames`. The public `forward_and_log_det`, `inverse_and_log_det` and
    `data_init` accept `[*batch, H, W, C]`.
    """

    def __init__(self, name, parameters, validate_args=False, is_constant_jacobian=False):
        super().__init__(
            forward_min_event_ndims=3,
            is_constant_jacobian=is_constant_jacobian,
            validate_args=validate_args,
            parameters=parameters,
            name=name)

    def forward_and_log_det(self, x, training=False):
        """`[*batch, H, W, C]` -> `(y [*batch, H', W', C'], log_det [*batch])`."""
        flat, unflatten = flatten_batch(x, 3)
        y, log_det = self._forward_frames(flat, training)
        return unflatten(y), unflatten(log_det)

    def inverse_and_log_det(self, y):
        """`[*batch, H', W', C']` -> `(x [*batch, H, W, C], inverse log_det [*batch])`."""
        flat, unflatten = flatten_batch(y, 3, name="y")
        x, log_det = self._inverse_frames(flat)
        return unflatten(x), unflatten(log_det)

    def data_init(self, x):
        """Sets data-dependent parameters from `x` `[*batch, H, W, C]`; returns forward(x)."""
        flat, unflatten = flatten_batch(x, 3)
        return unflatten(self._data_init_frames(flat))

    def _forward_frames(self, x, training):
        raise NotImplementedError

    def _inverse_frames(self, y):
        raise NotImplementedError

    def _data_init_frames(self, x):
        """No data-dependent parameters here: just the forward pass."""
        return self._forward_frames(x, False)[0]

    def t2t_variables(self):
        """T2T checkpoint names -> variables (none here)."""
        return {}

    def _forward(self, x):
        return self.forward_and_log_det(x)[0]

    def _inverse(self, y):
        return self.inverse_and_log_det(y)[0]

    def _forward_log_det_jacobian(self, x):
        return self.forward_and_log_det(x)[1]

    def _inverse_log_det_jacobian(self, y):
        return self.inverse_and_log_det(y)[1]


class SequentialFlow(FlowBijector):
    """Applies `self.sequence` (a list of FlowBijectors) in order; inverse in reverse.

    Log-dets add up; `data_init` initialises each piece from the output of the one
    before it, and `t2t_variables` merges the pieces' names under `t2t_prefix(i)`.
    """

    sequence = ()

    def t2t_prefix(self, index):
        del index
        return ""

    def _forward_frames(self, x, training):
        log_det = 0.0
        for piece in self.sequence:
            x, piece_log_det = piece._forward_frames(x, training)
            log_det += piece_log_det
        return x, log_det

    def _inverse_frames(self, y):
        log_det = 0.0
        for piece in reversed(self.sequence):
            y, piece_log_det = piece._inverse_frames(y)
            log_det += piece_log_det
        return y, log_det

    def _data_init_frames(self, x):
        for piece in self.sequence:
            x = piece._data_init_frames(x)
        return x

    def t2t_variables(self):
        return {self.t2t_prefix(i) + name: var
                for i, piece in enumerate(self.sequence)
                for name, var in piece.t2t_variables().items()}

    def _forward_event_shape(self, input_shape):
        for piece in self.sequence:
            input_shape = piece.forward_event_shape(input_shape)
        return input_shape

    def _forward_event_shape_tensor(self, input_shape):
        for piece in self.sequence:
            input_shape = piece.forward_event_shape_tensor(input_shape)
        return input_shape

    def _inverse_event_shape(self, output_shape):
        for piece in reversed(self.sequence):
            output_shape = piece.inverse_event_shape(output_shape)
        return output_shape

    def _inverse_event_shape_tensor(self, output_shape):
        for piece in reversed(self.sequence):
            output_shape = piece.inverse_event_shape_tensor(output_shape)
        return output_shape


class FlowChain(SequentialFlow):
    """Flow pieces applied in list order, as one uncached bijector.

        forward:  x -> pieces[0] -> pieces[1] -> ... -> y   (note: `tfb.Chain` applies
                  its list right to left)
        inverse:  the pieces' inverses in reverse order
        log-det:  the sum of the pieces' log-dets

    Use it instead of `tfb.Chain` to compose pieces that own variables: `tfb.Chain`
    keeps TFP's own cache for its `forward`/`inverse`, so while an output
    `y = chain.forward(x)` is alive, `chain.forward(x)` and `chain.inverse(y)` return
    that cached pair even after a variable update (TFP does the same for
    `tfb.Chain([tfb.Scale(tf.Variable(...))])`). `FlowChain` computes every call.

    Args:
      pieces: non-empty list of `FlowBijector`s (frame events `[H, W, C]`).
      validate_args: TFP's flag.
      name: bijector name.
    Raises:
      ValueError: `pieces` empty or not all `FlowBijector`s.
    """

    def __init__(self, pieces, validate_args=False, name="flow_chain"):
        parameters = dict(locals())
        pieces = list(pieces)
        if not pieces or not all(isinstance(p, FlowBijector) for p in pieces):
            raise ValueError("FlowChain needs a non-empty list of flow pieces (FlowBijector "
                             f"instances); got {pieces!r}.")
        super().__init__(name=name, parameters=parameters, validate_args=validate_args,
                         is_constant_jacobian=all(p.is_constant_jacobian for p in pieces))
        self.sequence = pieces
