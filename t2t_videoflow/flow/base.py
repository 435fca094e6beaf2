"""Shared base for the flow's bijectors: one-pass transform + per-example log-det.

TFP's hooks (`_forward`, `_forward_log_det_jacobian`, ...) compute the transform and
its log-det separately, which for a coupling layer runs its network twice. The
multi-scale flow instead calls `forward_and_log_det` / `inverse_and_log_det`, which do
both in one pass, always return a per-example `[batch]` log-det (event-independent
layers broadcast their scalar), and bypass TFP's tensor-identity cache (that cache
returns stale results after variable updates: TF-PITFALLS.md). The TFP hooks are
derived from the same two methods, so `tfb.Chain`, `TransformedDistribution`, etc.
see exactly the same math.

Every piece also has `data_init(x)`: set data-dependent parameters from `x` (a no-op
for pieces without any) and return the forward output, so a whole flow initialises
sequentially, layer after layer, in one explicit pass.

Shapes: events are frames `[height, width, channels]`; inputs `[batch, H, W, C]`.
"""

import tensorflow as tf
import tensorflow_probability as tfp


def check_frame_tensor(x, channels=None, name="x"):
    """Raises ValueError unless `x` is a float `[batch, H, W, channels]` tensor."""
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
    """Broadcasts a scalar or `[batch]` log-det to `[batch]` for input `x`."""
    return tf.broadcast_to(tf.cast(value, x.dtype), tf.shape(x)[:1])


class FlowBijector(tfp.bijectors.Bijector):
    """A bijector on `[H, W, C]` events defined by its one-pass methods.

    Subclasses implement `forward_and_log_det(x, training=False)` and
    `inverse_and_log_det(y)` (log-dets of shape `[batch]`; the inverse returns the
    inverse log-det, i.e. minus the forward log-det at the reconstructed input), and
    may override `data_init`.
    """

    def __init__(self, name, parameters, validate_args=False):
        super().__init__(
            forward_min_event_ndims=3,
            validate_args=validate_args,
            parameters=parameters,
            name=name)

    def forward_and_log_det(self, x, training=False):
        raise NotImplementedError

    def inverse_and_log_det(self, y):
        raise NotImplementedError

    def data_init(self, x):
        """Sets data-dependent parameters from `x` (none here); returns forward(x)."""
        return self.forward_and_log_det(x)[0]

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

    def forward_and_log_det(self, x, training=False):
        log_det = 0.0
        for piece in self.sequence:
            x, piece_log_det = piece.forward_and_log_det(x, training=training)
            log_det += piece_log_det
        return x, log_det

    def inverse_and_log_det(self, y):
        log_det = 0.0
        for piece in reversed(self.sequence):
            y, piece_log_det = piece.inverse_and_log_det(y)
            log_det += piece_log_det
        return y, log_det

    def data_init(self, x):
        for piece in self.sequence:
            x = piece.data_init(x)
        return x

    def t2t_variables(self):
        return {self.t2t_prefix(i) + name: var
                for i, piece in enumerate(self.sequence)
                for name, var in piece.t2t_variables().items()}
