"""VideoFlow's latent prior networks p(z_t | z_<t) as Keras 3 layers (docs/t2t.md,
Conditioning)."""

from t2t_videoflow.prior.conv_lstm import ConvLSTMCell
from t2t_videoflow.prior.latent_prior import (
    ENCODERS, ConditionalPrior, Conv3dNetPrior, ConvLSTMPrior, ConvNetPrior,
    MarginalTopPrior, PointwisePrior, conditional_prior, encoder_class)
from t2t_videoflow.prior.latent_to_dist import (
    ARCHITECTURES, LatentToDist, SingleConvDist, split_mean_logscale)
from t2t_videoflow.prior.pointwise import (
    LEVEL_SCALES, MergeLevelAndLatent, ScaleGaussianPrior)
from t2t_videoflow.prior.temporal_network import TemporalLatentToDist, dilation_factors
