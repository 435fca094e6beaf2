"""evaluation.metrics: T2T's per-frame PSNR / SSIM against closed forms and an
independent SSIM, exact frames, best-of-N selection, and the VGG cosine similarity
on a randomly initialised VGG16 loaded from local weights files."""

import math

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.errors import DataError, UsageError
from t2t_videoflow.evaluation import metrics


def frames(shape, seed, low=0, high=256):
    return np.random.RandomState(seed).randint(low, high, shape).astype(np.uint8)


def noisy(x, seed, amplitude=30):
    noise = np.random.RandomState(seed).randint(-amplitude, amplitude + 1, x.shape)
    return np.clip(x.astype(int) + noise, 0, 255).astype(np.uint8)


# -- PSNR ------------------------------------------------------------------------------

def test_psnr_is_the_closed_form_per_frame_and_broadcasts():
    truth = frames((3, 16, 16, 3), 0)                     # K frames
    samples = np.stack([noisy(truth, s) for s in (1, 2)])  # [S, K, ...]
    psnr = metrics.frame_psnr(samples, truth).numpy()
    assert psnr.shape == (2, 3) and psnr.dtype == np.float32
    mse = ((samples.astype(np.float64) - truth) ** 2).mean(axis=(2, 3, 4))
    np.testing.assert_allclose(psnr, 10 * np.log10(255.0 ** 2 / mse), atol=1e-4)
    # Broadcasting the truth equals tiling it; T2T's int32 path equals float32 0..255.
    tiled = np.broadcast_to(truth, samples.shape)
    np.testing.assert_array_equal(psnr, metrics.frame_psnr(samples, tiled).numpy())
    as_float = tf.image.psnr(samples.astype(np.float32), tiled.astype(np.float32), 255.0)
    np.testing.assert_allclose(psnr, as_float.numpy(), atol=1e-4)


@pytest.mark.parametrize("offset", [7, -20])
def test_psnr_of_a_constant_offset(offset):
    """Every value off by c: MSE = c^2, PSNR = 20 log10(255 / |c|)."""
    truth = frames((2, 16, 16, 3), 3, low=20, high=236)
    shifted = (truth.astype(int) + offset).astype(np.uint8)
    psnr = metrics.frame_psnr(shifted, truth).numpy()
    np.testing.assert_allclose(psnr, 20 * math.log10(255 / abs(offset)), atol=1e-4)


def test_exact_frames_get_the_ceiling_not_inf():
    """T2T (tf.image.psnr) gives +inf for an exact frame; frame_psnr reports the ceiling
    10 log10(2 255^2 D), above the best finite PSNR (one value off by one, MSE 1/D)."""
    truth = frames((2, 16, 16, 3), 4, low=1, high=255)
    one_off = truth.copy()
    one_off[1, 5, 7, 2] += 1
    d = 16 * 16 * 3
    assert np.all(np.isinf(tf.image.psnr(tf.cast(truth, tf.int32), tf.cast(truth, tf.int32),
                                         255).numpy()))
    assert np.all(np.isinf(metrics.frame_psnr(truth, truth, cap=False).numpy()))
    psnr = metrics.frame_psnr(one_off, truth).numpy()
    assert metrics.psnr_ceiling(d) == pytest.approx(10 * math.log10(2 * 255 ** 2 * d))
    assert psnr[0] == pytest.approx(metrics.psnr_ceiling(d), abs=1e-4)
    assert psnr[1] == pytest.approx(10 * math.log10(255 ** 2 * d), abs=1e-3)
    assert psnr[1] == pytest.approx(psnr[0] - 10 * math.log10(2), abs=1e-3)
    # The ceiling depends on the frame size (64x64x3: 92.0 dB).
    big = frames((1, 64, 64, 3), 5)
    assert metrics.frame_psnr(big, big).numpy()[0] == pytest.approx(
        metrics.psnr_ceiling(64 * 64 * 3), abs=1e-4)
    assert metrics.psnr_ceiling(64 * 64 * 3) == pytest.approx(92.03, abs=0.01)


# -- SSIM ------------------------------------------------------------------------------

def numpy_ssim(a, b, max_val=255.0, size=11, sigma=1.5, k1=0.01, k2=0.03):
    """SSIM of two [H, W, C] images written out: Gaussian-weighted local means,
    variances and covariance over VALID size x size windows, then the mean over
    positions and channels."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * sigma ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def local(x):   # [H, W, C] -> weighted window means [H-10, W-10, C]
        win = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))
        return np.einsum("hwcij,ij->hwc", win, w)

    mu_a, mu_b = local(a), local(b)
    var_a = local(a * a) - mu_a ** 2
    var_b = local(b * b) - mu_b ** 2
    cov = local(a * b) - mu_a * mu_b
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
            / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    return ssim.mean()


def test_ssim_matches_an_independent_implementation():
    truth = frames((2, 16, 16, 3), 6)
    samples = np.stack([noisy(truth, 7, 40), noisy(truth, 8, 5), frames((2, 16, 16, 3), 9)])
    ssim = metrics.frame_ssim(samples, truth).numpy()
    assert ssim.shape == (3, 2)
    expected = [[numpy_ssim(samples[s, k], truth[k]) for k in range(2)] for s in range(3)]
    np.testing.assert_allclose(ssim, expected, atol=2e-5)
    assert ssim[1].min() > ssim[0].max() > ssim[2].max()   # less noise, more similar
    np.testing.assert_allclose(metrics.frame_ssim(truth, truth).numpy(), 1.0, atol=1e-6)
    # tf.image.ssim takes int32 (T2T's cast) or float32 0..255 alike.
    as_float = tf.image.ssim(samples.astype(np.float32),
                             np.broadcast_to(truth, samples.shape).astype(np.float32), 255.0)
    np.testing.assert_allclose(ssim, as_float.numpy(), atol=1e-5)


def test_ssim_needs_frames_of_at_least_11x11():
    small = frames((2, 8, 8, 3), 0)
    with pytest.raises(DataError, match="11x11"):
        metrics.frame_ssim(small, small)


# -- best of N -------------------------------------------------------------------------

def test_best_of_n_keeps_the_whole_curve_of_the_best_decode_per_video():
    """Video 0: decode 1 has the best average (5) but decode 0 wins frame 0 (9); the
    best-of-N curve is decode 1's whole curve, not the per-frame maximum."""
    values = np.array([
        # decode 0              decode 1            decode 2
        [[9, 0, 0], [2, 2, 8]],
        [[5, 5, 5], [3, 3, 3]],
        [[1, 1, 1], [0, 6, 0]],
    ], np.float64)                                    # [decodes, videos, frames]
    stats = metrics.reduce_decodes(values)
    # best: video 0 -> decode 1 [5, 5, 5], video 1 -> decode 0 [2, 2, 8] (avg 4 > 3 > 2)
    np.testing.assert_allclose(stats["best"], [3.5, 3.5, 6.5])
    per_frame_max = values.max(axis=0).mean(axis=0)
    assert not np.allclose(stats["best"], per_frame_max)
    # worst: video 0 -> decode 2 [1, 1, 1], video 1 -> decode 2 [0, 6, 0]
    np.testing.assert_allclose(stats["worst"], [0.5, 3.5, 0.5])
    np.testing.assert_allclose(stats["mean"], [20 / 6, 17 / 6, 17 / 6])
    std_v0 = np.std([[9, 0, 0], [5, 5, 5], [1, 1, 1]], axis=0)
    std_v1 = np.std([[2, 2, 8], [3, 3, 3], [0, 6, 0]], axis=0)
    np.testing.assert_allclose(stats["std"], (std_v0 + std_v1) / 2)


def test_best_of_n_ties_and_shapes():
    tied = np.array([[[1, 3]], [[3, 1]]], np.float64)   # equal averages: first decode
    np.testing.assert_allclose(metrics.reduce_decodes(tied)["best"], [1, 3])
    np.testing.assert_allclose(metrics.reduce_decodes(tied)["worst"], [1, 3])
    one = metrics.reduce_decodes(np.ones([1, 4, 2]))
    np.testing.assert_allclose(one["std"], 0)
    for bad in (np.ones([2, 3]), np.ones([0, 2, 2])):
        with pytest.raises(ValueError, match=r"\[decodes, videos, frames\]"):
            metrics.reduce_decodes(bad)


# -- VGG cosine similarity -------------------------------------------------------------

@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory):
    """A randomly initialised VGG16(include_top=False) (32x32 input) saved as a Keras 3
    `.weights.h5` and, with the same weights, in the legacy HDF5 layout of Keras'
    downloadable `..._notop.h5` (written by tf_keras)."""
    import keras
    import tf_keras
    root = tmp_path_factory.mktemp("vgg")
    keras.utils.set_random_seed(0)
    source = keras.applications.VGG16(include_top=False, weights=None,
                                      input_shape=(32, 32, 3))
    # Keras' default zero biases would leave dead features; random biases make the
    # ReLU maps mostly non-zero, as with trained weights.
    for layer in source.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.random.RandomState(1).uniform(0, 0.1, bias.shape)])
    new_path = str(root / "vgg16_notop.weights.h5")
    source.save_weights(new_path)
    legacy = tf_keras.applications.VGG16(include_top=False, weights=None,
                                         input_shape=(32, 32, 3))
    legacy.set_weights(source.get_weights())
    legacy_path = str(root / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    legacy.save_weights(legacy_path)
    return dict(source=source, new=new_path, legacy=legacy_path, root=root)


@pytest.fixture(scope="module")
def vgg(vgg_files):
    return metrics.VGGCosineSimilarity(vgg_files["new"], input_size=32)


def test_vgg_loads_the_weights_and_uses_18_maps(vgg, vgg_files):
    assert len(vgg.layer_names) == 18
    assert vgg.layer_names[0] == "block1_conv1" and vgg.layer_names[-1] == "block5_pool"
    x = frames((2, 16, 16, 3), 10)
    prepared = vgg.prepare(x)
    assert prepared.shape == (2, 32, 32, 3)
    features = vgg.features(x)
    assert len(features) == 18
    np.testing.assert_allclose(features[-1].numpy(),
                               vgg_files["source"](prepared).numpy(), rtol=1e-4, atol=1e-4)
    assert features[0].shape == (2, 32, 32, 64) and features[-1].shape == (2, 1, 1, 512)


def test_vgg_preprocessing_resizes_the_shorter_side_and_crops_the_centre(vgg):
    """A 16x24 frame: shorter side to round(32 * 256/224) = 37 (so 37x56), then the
    central 32x32, then Keras' caffe preprocessing (BGR, ImageNet means off)."""
    x = np.zeros((1, 16, 24, 3), np.uint8)
    x[..., 0] = 200                                        # red everywhere
    x[:, :, :4, 1] = 255                                   # green stripe at the left
    prepared = vgg.prepare(x).numpy()
    assert prepared.shape == (1, 32, 32, 3)
    # Channel 2 of the output is red minus its ImageNet mean 123.68.
    np.testing.assert_allclose(prepared[..., 2], 200 - 123.68, atol=1e-3)
    # The stripe (the left 1/6 of the width, 9 of 56 columns) is cropped away.
    np.testing.assert_allclose(prepared[..., 1], -116.779, atol=1e-3)


def test_vgg_similarity_is_one_for_identical_frames_and_below_for_others(vgg):
    truth = frames((3, 16, 16, 3), 11)
    samples = np.stack([truth, noisy(truth, 12, 20), frames((3, 16, 16, 3), 13)])
    sim = vgg.similarity(samples, truth)
    assert sim.shape == (3, 3) and sim.dtype == np.float32
    np.testing.assert_allclose(sim[0], 1.0, atol=1e-5)
    assert np.all(sim[1:] < 0.999) and np.all(sim[1:] > 0.0)
    assert sim[1].min() > sim[2].max()            # mild noise is closer than new frames
    # Frame pairs, and several passes (frames_per_pass) give the same numbers.
    np.testing.assert_allclose(vgg(samples[2], truth), sim[2], rtol=1e-5)
    vgg.frames_per_pass, kept = 2, vgg.frames_per_pass
    try:
        np.testing.assert_allclose(vgg.similarity(samples, truth), sim, rtol=1e-5)
        np.testing.assert_allclose(vgg(samples[1], truth), sim[1], rtol=1e-5)
    finally:
        vgg.frames_per_pass = kept


def test_vgg_similarity_is_the_mean_over_maps_of_the_mean_channel_cosine(vgg):
    a, b = frames((1, 16, 16, 3), 14), frames((1, 16, 16, 3), 15)
    expected = []
    for fa, fb in zip(vgg.features(a), vgg.features(b)):
        fa, fb = fa.numpy()[0].astype(np.float64), fb.numpy()[0].astype(np.float64)
        na, nb = np.linalg.norm(fa, axis=-1), np.linalg.norm(fb, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = (fa * fb).sum(-1) / (na * nb)
        cosine = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0,
                                                               cosine))
        expected.append(cosine.mean())
    assert vgg(a, b)[0] == pytest.approx(np.mean(expected), abs=1e-5)


def test_vgg_legacy_h5_weights_give_the_same_similarity(vgg, vgg_files):
    legacy = metrics.VGGCosineSimilarity(vgg_files["legacy"], input_size=32)
    a, b = frames((2, 16, 16, 3), 16), frames((2, 16, 16, 3), 17)
    np.testing.assert_allclose(legacy(a, b), vgg(a, b), rtol=1e-5)


def test_vgg_weights_are_read_through_gfile(vgg, vgg_files):
    """A non-local path (here TF's in-memory filesystem) is copied to a temporary local
    file for h5py."""
    import tensorflow as tf
    path = "ram://vgg_weights/vgg16_notop.weights.h5"
    tf.io.gfile.makedirs("ram://vgg_weights")
    tf.io.gfile.copy(vgg_files["new"], path, overwrite=True)
    try:
        remote = metrics.VGGCosineSimilarity(path, input_size=32)
    finally:
        tf.io.gfile.remove(path)
    a, b = frames((2, 16, 16, 3), 18), frames((2, 16, 16, 3), 19)
    np.testing.assert_allclose(remote(a, b), vgg(a, b), rtol=1e-5)


def test_vgg_bad_weights_are_one_line_errors_naming_the_file(vgg_files, tmp_path):
    import keras
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(UsageError, match="nope.h5' is not a file"):
        metrics.VGGCosineSimilarity(missing, input_size=32)
    with pytest.raises(UsageError, match="is not a file"):
        metrics.VGGCosineSimilarity(str(tmp_path), input_size=32)
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_text("not hdf5")
    other = str(tmp_path / "other.weights.h5")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    for path in (str(garbage), other):
        with pytest.raises(UsageError, match="could not be loaded") as info:
            metrics.VGGCosineSimilarity(path, input_size=32)
        assert path in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UsageError, match=">= 32"):
        metrics.VGGCosineSimilarity(vgg_files["new"], input_size=16)


def test_vgg_weights_that_leave_layers_unloaded_are_refused(vgg_files, monkeypatch):
    """Should a load skip layers without raising, their random initial kernels remain:
    refused (here a load that assigns nothing)."""
    import keras
    monkeypatch.setattr(keras.Model, "load_weights", lambda self, path, **kwargs: None)
    with pytest.raises(UsageError, match="holds no weights for VGG16 layer.*block1_conv1"):
        metrics.VGGCosineSimilarity(vgg_files["new"], input_size=32)
