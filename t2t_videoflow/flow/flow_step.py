"""One Glow step and a level of `depth` steps (T2T `glow_ops.revnet_step`, `revnet`).

    step forward:  x -> actnorm -> invertible 1x1 conv -> coupling
    step inverse:  coupling^-1 -> 1x1 conv^-1 -> actnorm^-1
    log-det:       sum of the three (actnorm and 1x1: the same for every example;
                   affine coupling: per example)

    level forward: steps 0 .. K-1;   level inverse: steps K-1 .. 0

There is no other permutation or channel reversal between steps.

Looped levels. Inside a `tf.function` (the trainer's step, the decoder's sampling
loop, the exporter's signatures) a level of K > 1 steps runs as one `tf.while_loop`
over k: every step has the same structure, so the loop body is step 0's computation
with step k's weights bound to step 0's variables (`layers/variable_binding.py`),
read from a stack of the K steps' weights. The graph then holds one step per level
instead of K (the paper model's training step: ~59k ops unrolled), which cuts
tracing, graph optimisation and executor set-up; the arithmetic is the same ops on
the same values. Eagerly (data-dependent init, eager sampling) the steps run
one after another as Python calls. Off by default (`loop_steps=False`, hparam
`loop_flow_steps`): each loop iteration costs about 0.7 ms of loop bookkeeping, so
steps run a few percent slower (`benchmarks/startup.py`; results in
`benchmarks/results/startup.json`).
"""

import numpy as np
import tensorflow as tf

from t2t_videoflow.flow.actnorm import Actnorm
from t2t_videoflow.flow.base import SequentialFlow
from t2t_videoflow.flow.coupling import make_coupling
from t2t_videoflow.flow.invertible_conv import InvertibleConv1x1
from t2t_videoflow.layers.variable_binding import bind


def derive_seed(seed, *path):
    """A deterministic int seed for the sub-module at `path`, or None if `seed` is."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), *path]).generate_state(1)[0])


class FlowStep(SequentialFlow):
    """Actnorm -> invertible 1x1 conv -> coupling on `[*batch, H, W, channels]`.

    Args:
      channels: C (even).
      coupling: "affine" or "additive".
      coupling_width: hidden width of the coupling network.
      activation: "relu" or "gatu" (coupling network's second layer).
      coupling_dropout: dropout rate inside the coupling network (training only).
      seed: seed of the 1x1 conv's random initial rotation.
      network_dtype: the coupling network's compute dtype, "float32" | "bfloat16".
    `t2t_variables()` names are relative to T2T's `revnet_step_{k}/`.
    """

    def __init__(self, channels, coupling="affine", coupling_width=512, activation="relu",
                 coupling_dropout=0.0, seed=None, network_dtype="float32",
                 validate_args=False, name="flow_step"):
        parameters = dict(locals())
        super().__init__(name=name, parameters=parameters, validate_args=validate_args)
        self.actnorm = Actnorm(channels)
        self.invertible_conv = InvertibleConv1x1(channels, seed=seed)
        self.coupling = make_coupling(coupling, channels, coupling_width, activation,
                                      coupling_dropout, network_dtype)
        self.sequence = [self.actnorm, self.invertible_conv, self.coupling]


class FlowLevel(SequentialFlow):
    """`depth` flow steps on `[*batch, H, W, channels]` (T2T's `revnet`).

    Args: as `FlowStep`, plus `depth` (K) and `loop_steps` (run the steps as one
    `tf.while_loop` when inside a graph; see the module docstring). Step k's 1x1 conv
    is seeded with `derive_seed(seed, k)`. `t2t_variables()` names are relative to
    `revnet_{l}/`.
    """

    def __init__(self, channels, depth, coupling="affine", coupling_width=512,
                 activation="relu", coupling_dropout=0.0, seed=None,
                 network_dtype="float32", loop_steps=False, validate_args=False,
                 name="flow_level"):
        parameters = dict(locals())
        super().__init__(name=name, parameters=parameters, validate_args=validate_args)
        if depth < 1:
            raise ValueError(f"depth must be >= 1; got {depth}.")
        self.channels = int(channels)
        self.sequence = [
            FlowStep(channels, coupling, coupling_width, activation, coupling_dropout,
                     seed=derive_seed(seed, k), network_dtype=network_dtype,
                     name=f"flow_step_{k}")
            for k in range(depth)]
        self.loop_steps = bool(loop_steps)

    @property
    def steps(self):
        return self.sequence

    def _use_loop(self):
        return self.loop_steps and len(self.steps) > 1 and not tf.executing_eagerly()

    def _step_variables(self):
        """Per step, its float variables (the same structure for every step). The
        actnorms' boolean `initialized` flags are left out: a loop never initialises,
        so its body reads no flag."""
        per_step = [[v for v in step.variables if tf.as_dtype(v.dtype).is_floating]
                    for step in self.steps]
        if any(len(v) != len(per_step[0]) for v in per_step):
            raise ValueError(f"{self.name}: the steps of a level must have the same "
                             "variables to run as a loop.")
        return per_step

    def _step_weights(self):
        """Step 0's float variables, and per variable the `[K, ...]` stack of all
        steps' values."""
        per_step = self._step_variables()
        return per_step[0], [tf.stack(vs) for vs in zip(*per_step)]

    def _step_weight_arrays(self, stacks=None):
        """Step 0's float variables, and per variable a `TensorArray` of all K steps'
        values (entry k: step k's), from which a loop body reads step k's weights.
        `stacks`: the `[K, ...]` stacks to use (default: read from the variables)."""
        if stacks is None:
            template, stacks = self._step_weights()
        else:
            template = self._step_variables()[0]
        return template, [tf.TensorArray(s.dtype, size=len(self.steps),
                                         element_shape=s.shape[1:],
                                         infer_shape=True).unstack(s) for s in stacks]

    def _loop(self, x, step_fn, order, stacks=None):
        """Applies `step_fn(template, x) -> (x, log_det)` for k in `order`, looped,
        with the steps' weights from `stacks` (default: the variables)."""
        template, weights = self._step_weight_arrays(stacks)
        depth = len(self.steps)
        indices = tf.constant(list(order), tf.int32)

        def body(i, h, log_det):
            k = indices[i]
            with bind(template, [w.read(k) for w in weights]):
                h, step_log_det = step_fn(self.steps[0], h)
            return i + 1, h, log_det + step_log_det

        _, y, log_det = tf.while_loop(
            lambda i, h, log_det: i < depth, body,
            (tf.constant(0), x, tf.zeros(tf.shape(x)[:1], x.dtype)),
            maximum_iterations=depth)
        return y, log_det

    def looped_forward(self, x, training, stacks):
        """The looped forward pass with the steps' weights given as `[K, ...]` stacks
        (in `_step_weights` order) instead of read from the variables."""
        return self._loop(x, lambda step, h: step._forward_frames(h, training),
                          range(len(self.steps)), stacks)

    def _forward_frames(self, x, training):
        if not self._use_loop():
            return super()._forward_frames(x, training)
        return self._loop(x, lambda step, h: step._forward_frames(h, training),
                          range(len(self.steps)))

    def _inverse_frames(self, y):
        if not self._use_loop():
            return super()._inverse_frames(y)
        return self._loop(y, lambda step, h: step._inverse_frames(h),
                          reversed(range(len(self.steps))))

    def t2t_prefix(self, index):
        return f"revnet_step_{index}/"
