"""One Glow step and a level of `depth` steps (T2T `revnet_step`, `revnet`; REFERENCE 2.8).

    step forward:  x -> actnorm -> invertible 1x1 conv -> coupling
    step inverse:  coupling^-1 -> 1x1 conv^-1 -> actnorm^-1
    log-det:       sum of the three (actnorm and 1x1: the same for every example;
                   affine coupling: per example)

    level forward: steps 0 .. K-1;   level inverse: steps K-1 .. 0

There is no other permutation or channel reversal between steps.
"""

import numpy as np

from t2t_videoflow.flow.actnorm import Actnorm
from t2t_videoflow.flow.base import SequentialFlow
from t2t_videoflow.flow.coupling import make_coupling
from t2t_videoflow.flow.invertible_conv import InvertibleConv1x1


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

    Args: as `FlowStep`, plus `depth` (K). Step k's 1x1 conv is seeded with
    `derive_seed(seed, k)`. `t2t_variables()` names are relative to `revnet_{l}/`.
    """

    def __init__(self, channels, depth, coupling="affine", coupling_width=512,
                 activation="relu", coupling_dropout=0.0, seed=None,
                 network_dtype="float32", validate_args=False, name="flow_level"):
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

    @property
    def steps(self):
        return self.sequence

    def t2t_prefix(self, index):
        return f"revnet_step_{index}/"
