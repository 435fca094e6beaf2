"""`n_bits_x < 8`: the model sees n-bit pixel values (Glow's image preprocessing; T2T's
video model ignores the hparam and always uses 8 bits)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import perturb
from t2t_videoflow.config import registry
from t2t_videoflow.model.videoflow import VideoFlow, build_model, postprocess, preprocess

ALL_VALUES = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16, 1)


def tiny(n_bits, seed=1):
    return VideoFlow((8, 8, 3), n_levels=2, depth=1, coupling_width=8,
                     latent_encoder_depth=1, latent_encoder_width=8,
                     latent_pre_output_channels=8, num_cond_latents=2,
                     latent_dist_encoder="conv3d_net", n_bits_x=n_bits, seed=seed)


def shapes_like(seed=7):
    rng = np.random.default_rng(seed)
    colours = np.array([[0, 0, 255], [0, 128, 0], [191, 0, 191]], np.uint8)
    video = np.zeros((2, 2, 8, 8, 3), np.uint8)
    video[:, :, 2:5, 3:6] = colours[rng.integers(0, 3, (2, 1))][:, :, None, None]
    return video


@pytest.mark.parametrize("n", range(1, 8))
def test_preprocess_is_glows_bit_reduction_and_postprocess_returns_the_bin(n):
    v = ALL_VALUES.astype(np.int64)
    x = preprocess(ALL_VALUES, n).numpy()
    np.testing.assert_array_equal(x, (v >> (8 - n)) / 2.0 ** n - 0.5)
    back = postprocess(x, n).numpy().astype(np.int64)
    np.testing.assert_array_equal(back >> (8 - n), v >> (8 - n))    # same n-bit bin
    # Bins map to full-range colours: the darkest to 0, the brightest to 255.
    assert back.min() == 0 and back.max() == 255
    assert len(np.unique(back)) == 2 ** n
    np.testing.assert_array_equal(postprocess(preprocess(back, n), n).numpy(), back)
    # Every point of a bin, noise included, comes back as that bin's colour.
    top_of_bin = x + (1.0 - 1e-3) / 2.0 ** n
    np.testing.assert_array_equal(postprocess(top_of_bin, n).numpy(), back)


def test_eight_bits_is_t2ts_transform():
    v = ALL_VALUES.astype(np.float32)
    np.testing.assert_array_equal(preprocess(ALL_VALUES, 8).numpy(), v / 255.0 - 0.5)
    np.testing.assert_array_equal(postprocess(preprocess(ALL_VALUES)).numpy(), ALL_VALUES)


def test_dequantised_values_stay_in_their_bin_and_noise_is_stretched():
    model = tiny(3)
    noise = np.random.default_rng(0).uniform(0, 1 / 256, ALL_VALUES.shape).astype(np.float32)
    x = model.dequantize(ALL_VALUES, noise).numpy()
    v = ALL_VALUES.astype(np.int64)
    np.testing.assert_allclose(x, (v >> 5) / 8.0 - 0.5 + 32.0 * noise, atol=1e-6)
    np.testing.assert_array_equal(np.floor((x + 0.5) * 8.0), v >> 5)


def test_only_the_bin_is_scored_and_the_constant_is_n_bits():
    video = shapes_like()
    model = tiny(4)
    model.data_init(video)
    perturb(model.trainable_variables, 0.02, seed=3)
    noise = np.random.default_rng(2).uniform(0, 1 / 256, video.shape).astype(np.float32)
    bpp = model.bits_per_pixel(video, 1, noise=noise).numpy()
    same_bins = video | np.uint8(0x0F)               # other values in the same 4-bit bins
    np.testing.assert_array_equal(model.bits_per_pixel(same_bins, 1, noise=noise).numpy(),
                                  bpp)
    d = 8 * 8 * 3
    x = model.dequantize(video, noise)
    objectives = model.frame_objectives(x)[:, 1:]
    np.testing.assert_allclose(bpp, -objectives.numpy() / (d * math.log(2.0)), rtol=1e-6)
    # The same weights read as an 8-bit model: at equal x only the constant moves,
    # by -D (8 - 4) ln 2.
    model.n_bits = 8
    np.testing.assert_allclose(model.frame_objectives(x)[:, 1:].numpy() - objectives.numpy(),
                               -d * 4 * math.log(2.0), rtol=1e-5)


def test_sampler_draws_from_the_density_the_likelihood_scores_at_4_bits():
    video = shapes_like()
    model = tiny(4)
    model.data_init(video)
    perturb(model.trainable_variables, 0.02, seed=3)
    frames, log_density = model.sample_with_log_density(video, 2, temperature=1.0, seed=4)
    assert np.all(np.isfinite(log_density.numpy()))
    x = tf.concat([preprocess(video, 4), frames], axis=1)
    scored = model.frame_objectives(x)[:, 2:] + 8 * 8 * 3 * 4 * math.log(2.0)
    np.testing.assert_allclose(log_density.numpy(), scored.numpy(), rtol=1e-4, atol=1e-2)
    samples = model.sample(video, 2, 1.0, seed=4).numpy()
    np.testing.assert_array_equal(samples, postprocess(frames, 4).numpy())
    assert set(np.unique(samples)) <= {round(255 * k / 15) for k in range(16)}


def test_hparam_reaches_the_model_and_t2t_sets_keep_8_bits():
    for name in ("next_frame_glow_shapes", "next_frame_glow_bair_quant", "videoflow_bpp",
                 "videoflow_qual", "videoflow_shapes_cpu"):
        assert registry.hparams(name).n_bits_x == 8, name
    hp = registry.create_hparams("videoflow_tiny", "n_bits_x=5")
    assert build_model(hp, (hp.frame_height, hp.frame_width, 3)).n_bits == 5
    for bad in (0, 9, 4.5, True):
        with pytest.raises(ValueError, match="n_bits_x must be an integer from 1 to 8"):
            tiny(bad)
