"""The optional asinh input bijection (hparam `input_asinh_gain`): exact inverse, log-det
against the brute-force Jacobian (alone and as part of the flow), the sampler still
draws from the density the likelihood scores, T2T's sets are unaffected, bad gains."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import brute_force_flow_log_det, brute_force_log_det, perturb
from t2t_videoflow.config import registry
from t2t_videoflow.errors import HParamsError
from t2t_videoflow.flow.input_transform import AsinhInput, log_cosh
from t2t_videoflow.flow.multiscale import MultiScaleFlow
from t2t_videoflow.flow.squeeze import squeeze2
from t2t_videoflow.model.videoflow import VideoFlow, build_model, postprocess, preprocess


def dequantised(shape, seed):
    """Shapes-like dequantised frames: mostly black, a few bright sub-pixels."""
    rng = np.random.default_rng(seed)
    v = np.where(rng.uniform(size=shape) < 0.8, 0, rng.integers(0, 256, shape))
    return tf.constant(v / 255.0 - 0.5 + rng.uniform(0, 1 / 256, shape), tf.float32)


def test_forward_values_inverse_and_log_det():
    bij = AsinhInput(256.0)
    x = dequantised([2, 4, 4, 3], seed=0)
    y, log_det = bij.forward_and_log_det(x)
    t = 256.0 * (x.numpy().astype(np.float64) + 0.5)
    np.testing.assert_allclose(y, np.arcsinh(t), rtol=1e-6, atol=1e-6)
    expected = np.sum(math.log(256.0) - 0.5 * np.log1p(t ** 2), axis=(1, 2, 3))
    np.testing.assert_allclose(log_det, expected, rtol=1e-5)
    x_back, inverse_log_det = bij.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, x, atol=2e-6)
    np.testing.assert_allclose(inverse_log_det, -log_det, rtol=1e-6)
    # The black bin [-1/2, -1/2 + 1/256) maps onto [0, asinh(1)).
    black = bij.forward(tf.fill([1, 1, 1, 1], -0.5 + 1 / 256 - 1e-7))
    assert 0.0 < float(black[0, 0, 0, 0]) < math.asinh(1.0)
    # Also as a plain TFP bijector (log-det over the [H, W, C] event).
    np.testing.assert_allclose(bij.forward_log_det_jacobian(x, event_ndims=3), log_det,
                               rtol=1e-6)


def test_log_det_against_brute_force_jacobian():
    bij = AsinhInput(64.0)
    x = dequantised([1, 2, 2, 3], seed=1)
    expected = brute_force_log_det(bij.forward, x)
    np.testing.assert_allclose(bij.forward_and_log_det(x)[1].numpy()[0], expected,
                               rtol=1e-5)


def test_log_cosh_is_stable_for_large_arguments():
    y = tf.constant([0.0, 1.0, -3.0, 100.0, -500.0])
    expected = [0.0, math.log(math.cosh(1.0)), math.log(math.cosh(3.0)),
                100.0 - math.log(2.0), 500.0 - math.log(2.0)]
    np.testing.assert_allclose(log_cosh(y), expected, rtol=1e-6, atol=1e-6)


def flow_pair(gain):
    """The same tiny 2-level flow with and without the transform (same weights)."""
    kwargs = dict(n_levels=2, depth=2, coupling="affine", coupling_width=8, seed=0)
    with_transform = MultiScaleFlow((4, 4, 3), input_asinh_gain=gain, **kwargs)
    plain = MultiScaleFlow((4, 4, 3), **kwargs)
    x = dequantised([8, 4, 4, 3], seed=2)
    with_transform.data_init(x)
    perturb(with_transform.trainable_variables, 0.05, seed=7)
    plain.encode(x)
    for target, source in zip(plain.variables, with_transform.variables):
        target.assign(source)
    return with_transform, plain


def test_flow_with_transform_is_the_plain_flow_after_asinh():
    flow, plain = flow_pair(256.0)
    assert plain.input_transform is None
    x = dequantised([2, 4, 4, 3], seed=3)
    enc = flow.encode(x)
    y, transform_log_det = AsinhInput(256.0).forward_and_log_det(x)
    plain_enc = plain.encode(y)
    np.testing.assert_allclose(enc.top, plain_enc.top, atol=1e-6)
    np.testing.assert_allclose(enc.log_det, plain_enc.log_det + transform_log_det,
                               rtol=1e-6)
    x_back, _, inverse_log_det = flow.decode(enc.top, enc.latents)
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    np.testing.assert_allclose(inverse_log_det, -enc.log_det, rtol=1e-5)


def test_flow_log_det_against_brute_force_jacobian():
    flow, _ = flow_pair(32.0)
    x = dequantised([1, 4, 4, 3], seed=4)
    expected = brute_force_flow_log_det(flow, x)
    np.testing.assert_allclose(flow.encode(x).log_det.numpy()[0], expected, rtol=1e-4)


def test_data_init_sees_the_transformed_frames():
    flow = MultiScaleFlow((4, 4, 3), n_levels=1, depth=1, coupling_width=8,
                          input_asinh_gain=256.0, seed=0)
    x = dequantised([16, 4, 4, 3], seed=5)
    flow.data_init(x)
    # The first actnorm standardises the squeezed asinh(256 (x + 1/2)), not x.
    actnorm = flow.levels[0].steps[0].actnorm
    out = actnorm.forward(squeeze2(tf.asinh(256.0 * (x + 0.5)))).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-3)


def test_sampler_draws_from_the_density_the_likelihood_scores_with_transform():
    rng = np.random.default_rng(7)
    video = np.where(rng.uniform(size=(2, 2, 8, 8, 3)) < 0.8, 0,
                     rng.integers(0, 256, (2, 2, 8, 8, 3))).astype(np.uint8)
    model = VideoFlow((8, 8, 3), n_levels=2, depth=1, coupling_width=8,
                      latent_encoder_depth=1, latent_encoder_width=8,
                      latent_pre_output_channels=8, num_cond_latents=2,
                      latent_dist_encoder="conv3d_net", input_asinh_gain=256.0, seed=1)
    model.data_init(video)
    perturb(model.trainable_variables, 0.02, seed=3)
    frames, log_density = model.sample_with_log_density(video, 2, temperature=1.0, seed=4)
    assert np.all(np.isfinite(log_density.numpy()))
    x = tf.concat([preprocess(video), frames], axis=1)
    scored = model.frame_objectives(x)[:, 2:] + 8 * 8 * 3 * math.log(256.0)
    np.testing.assert_allclose(log_density.numpy(), scored.numpy(), rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(model.sample(video, 2, 1.0, seed=4).numpy(),
                                  postprocess(frames).numpy())


def test_hparam_reaches_the_flow_and_t2t_sets_keep_the_identity():
    for name in ("next_frame_glow_shapes", "videoflow_bpp", "videoflow_qual"):
        assert registry.hparams(name).input_asinh_gain == 0.0, name
    hp = registry.create_hparams("videoflow_tiny", "input_asinh_gain=128")
    model = build_model(hp, (hp.frame_height, hp.frame_width, 3))
    assert model.flow.input_transform.gain == 128.0
    plain = build_model(registry.create_hparams("videoflow_tiny"), (16, 16, 3))
    assert plain.flow.input_transform is None


def test_negative_gain_is_a_clear_error():
    with pytest.raises(HParamsError, match="input_asinh_gain"):
        registry.create_hparams("videoflow_tiny", "input_asinh_gain=-1")
    with pytest.raises(ValueError, match="input_asinh_gain must be >= 0"):
        MultiScaleFlow((4, 4, 3), 1, 1, input_asinh_gain=-2.0)
    with pytest.raises(ValueError, match="gain must be > 0"):
        AsinhInput(0.0)


def test_run_dir_written_before_the_option_loads_with_its_default(tmp_path):
    """A run whose hparams.json predates `input_asinh_gain` (and `network_dtype`)
    computed without them: loading it gives the defaults that reproduce that."""
    from t2t_videoflow.training import run_dir
    hp = registry.create_hparams("videoflow_tiny")
    old = {k: v for k, v in hp.values().items()
           if k not in ("input_asinh_gain", "network_dtype")}
    (tmp_path / "hparams.json").write_text(json.dumps(old))
    loaded, _ = run_dir.load_run(str(tmp_path))
    assert loaded.input_asinh_gain == 0.0 and loaded.network_dtype == "float32"
    assert loaded.depth == hp.depth
