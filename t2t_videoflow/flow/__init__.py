"""The per-frame multi-scale Glow flow, as `tfp.bijectors.Bijector` pieces."""

from t2t_videoflow.flow.actnorm import Actnorm
from t2t_videoflow.flow.base import FlowChain
from t2t_videoflow.flow.coupling import AdditiveCoupling, AffineCoupling, make_coupling
from t2t_videoflow.flow.flow_step import FlowLevel, FlowStep
from t2t_videoflow.flow.invertible_conv import InvertibleConv1x1
from t2t_videoflow.flow.multiscale import FlowEncoding, MultiScaleFlow
from t2t_videoflow.flow.squeeze import Squeeze

__all__ = ["Actnorm", "AdditiveCoupling", "AffineCoupling", "FlowChain", "FlowEncoding",
           "FlowLevel", "FlowStep", "InvertibleConv1x1", "MultiScaleFlow", "Squeeze",
           "make_coupling"]
