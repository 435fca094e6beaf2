"""The speed rewrites compute the same math as the plain formulas (up to float rounding).

* `edge_bias_conv2d`: the concat form (narrow inputs) and the split form (wide inputs)
  against `conv2d(add_edge_bias(x), W, VALID)`.
* `ConvActNorm2D` / `ZeroConv2D`: the actnorm / output scale folded into the kernel
  against scaling the conv's output.
* `VideoFlow.encode_clip`: one flow pass over all B*T frames against one pass per
  frame, and the model's objective against the per-frame assembly.
"""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import perturb
from t2t_videoflow.layers import conv
from t2t_videoflow.layers.conv import ConvActNorm2D, ZeroConv2D, add_edge_bias
from t2t_videoflow.model.videoflow import VideoFlow, gaussian_log_prob


def _random(shape, seed):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@pytest.mark.parametrize("channels", [5, conv.CONCAT_EDGE_MAX_CHANNELS + 3])
@pytest.mark.parametrize("kernel_size", [(3, 3), (1, 1), (3, 5)])
def test_edge_bias_conv2d_matches_concat_formula(channels, kernel_size):
    x = _random([2, 6, 7, channels], 0)
    extra = 0 if kernel_size == (1, 1) else 1
    kernel = _random([*kernel_size, channels + extra, 4], 1)
    bias = _random([4], 2)
    if kernel_size == (1, 1):
        expected = tf.nn.conv2d(x, kernel, 1, "VALID")
    else:
        expected = tf.nn.conv2d(add_edge_bias(x, kernel_size), kernel, 1, "VALID")
    got = conv.edge_bias_conv2d(x, kernel, kernel_size)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    got = conv.edge_bias_conv2d(x, kernel, kernel_size, bias=bias)
    np.testing.assert_allclose(got, expected + bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("channels", [6, 80])
def test_folded_actnorm_and_zero_conv_match_output_scaling(kernel_size, channels):
    x = _random([3, 5, 5, channels], 3)
    layer = ConvActNorm2D(7, kernel_size)
    layer(x, init=True)
    zero = ZeroConv2D(7, kernel_size)
    zero.build(x.shape)
    perturb([w.value for w in layer.weights + zero.weights], 0.3, seed=4)
    # Float32 rounding: sums of up to 9 * 81 products of O(1) terms, then scales of up
    # to ~e^3; the two orders of operations differ by a few 1e-5 at most.
    plain = layer.actnorm(conv.edge_bias_conv2d(x, layer.kernel, layer.kernel_size))
    np.testing.assert_allclose(layer(x), plain, rtol=1e-4, atol=1e-4)
    scale = tf.exp(tf.reshape(zero.logs, [-1]) * zero.logscale_factor)
    plain = (conv.edge_bias_conv2d(x, zero.kernel, zero.kernel_size)
             + tf.reshape(zero.bias, [-1])) * scale
    np.testing.assert_allclose(zero(x), plain, rtol=1e-4, atol=1e-4)


def test_encode_frames_in_one_pass_matches_per_frame_encoding():
    rng = np.random.default_rng(5)
    video = rng.integers(0, 256, (2, 3, 8, 8, 3), dtype=np.uint8)
    noise = rng.uniform(0, 1 / 256, video.shape).astype(np.float32)
    model = VideoFlow((8, 8, 3), n_levels=2, depth=2, coupling_width=8,
                      latent_dist_encoder="conv3d_net", latent_encoder_depth=1,
                      latent_encoder_width=8, num_cond_latents=1, seed=0)
    model.data_init(video)
    perturb(model.trainable_variables, 0.05, seed=6)
    x = model.dequantize(video, noise=noise)
    clip = model.encode_clip(x)
    objectives = model.frame_objectives(x)
    d = 8 * 8 * 3
    for t in range(3):
        enc = model.flow.encode(x[:, t])
        np.testing.assert_allclose(clip.top[:, t], enc.top, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(clip.log_det[:, t], enc.log_det, rtol=1e-5, atol=1e-4)
        for z, z_ref, x1, x1_ref, (mu0, sigma0) in zip(
                clip.latents, enc.latents, clip.conditions, enc.conditions, clip.marginals):
            np.testing.assert_allclose(z[:, t], z_ref, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(x1[:, t], x1_ref, rtol=1e-5, atol=1e-5)
            mu_ref, sigma_ref = model.level_priors[0](x1_ref)
            np.testing.assert_allclose(mu0[:, t], mu_ref, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(sigma0[:, t], sigma_ref, rtol=1e-5, atol=1e-5)
        if t == 0:  # no history: marginal priors, assembled by hand from `enc`
            mu0, sigma0 = model.level_priors[0](enc.conditions[0])
            loc, scale = model.marginal_top_prior(enc.top)
            expected = (-d * np.log(256.0) + enc.log_det
                        + gaussian_log_prob(enc.latents[0], mu0, sigma0)
                        + gaussian_log_prob(enc.top, loc, scale))
            np.testing.assert_allclose(objectives[:, 0], expected, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_deinterleaved_zero_conv_is_the_even_then_odd_channels(kernel_size):
    x = _random([2, 5, 5, 70], 5)
    plain, split = ZeroConv2D(8, kernel_size), ZeroConv2D(8, kernel_size, deinterleave=True)
    plain.build(x.shape)
    split.build(x.shape)
    perturb([w.value for w in plain.weights], 0.3, seed=6)
    for mine, theirs in zip(split.weights, plain.weights):
        mine.assign(theirs)
    expected = plain(x).numpy()
    np.testing.assert_allclose(
        split(x), np.concatenate([expected[..., 0::2], expected[..., 1::2]], -1),
        rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="even number"):
        ZeroConv2D(7, kernel_size, deinterleave=True)
