"""`t2t-videoflow-eval --experiment=fvd`: the Frechet distance against closed forms, the
I3D plumbing with a tiny fake I3D SavedModel written here (never a download), the
experiment and its one-line errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.model.sampling import clip_seed
from t2t_videoflow.cli import evaluate
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import fvd

from inference_testing import eval_run, quiet_context, random_clips, run_cli


# -- the Frechet distance ----------------------------------------------------------------

def random_covariance(rng, f):
    a = rng.normal(size=(f, f))
    return a @ a.T + 0.1 * np.eye(f)


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.RandomState(0)
    mu, cov = rng.normal(size=5), random_covariance(rng, 5)
    assert fvd.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9)


def test_closed_forms():
    # Same covariance: only the squared distance of the means.
    rng = np.random.RandomState(1)
    cov = random_covariance(rng, 4)
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
    assert fvd.frechet_distance(mu1, cov, mu2, cov) == pytest.approx(
        np.sum((mu1 - mu2) ** 2), rel=1e-9)
    # Diagonal covariances: sum (sqrt(a) - sqrt(b))^2 plus the means.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = 1.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert fvd.frechet_distance([0, 0, 1], np.diag(a), [0, 0, 0], np.diag(b)) == \
        pytest.approx(expected, rel=1e-9)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2.
    assert fvd.frechet_distance([2.0], [[9.0]], [-1.0], [[1.0]]) == pytest.approx(9 + 4)
    # Non-commuting 2 x 2: tr sqrt(C1 C2) = sqrt(tr(C1 C2) + 2 sqrt(det(C1 C2))).
    c1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    c2 = np.array([[1.0, -0.4], [-0.4, 3.0]])
    assert not np.allclose(c1 @ c2, c2 @ c1)
    product = c1 @ c2
    cross = np.sqrt(np.trace(product) + 2 * np.sqrt(np.linalg.det(product)))
    expected = np.trace(c1) + np.trace(c2) - 2 * cross
    assert fvd.frechet_distance([0, 0], c1, [0, 0], c2) == pytest.approx(expected,
                                                                          rel=1e-9)
    # Symmetric, and scaling the features by k scales d^2 by k^2.
    assert fvd.frechet_distance([1, 0], c2, [0, 0], c1) == pytest.approx(
        fvd.frechet_distance([0, 0], c1, [1, 0], c2), rel=1e-9)
    assert fvd.frechet_distance([3, 0], 9 * c1, [0, 0], 9 * c2) == pytest.approx(
        9 * fvd.frechet_distance([1, 0], c1, [0, 0], c2), rel=1e-9)


def test_sample_statistics_and_singular_covariances():
    rng = np.random.RandomState(2)
    c1, c2 = random_covariance(rng, 3), random_covariance(rng, 3)
    a = rng.multivariate_normal([0, 0, 0], c1, size=20000)
    b = rng.multivariate_normal([1, 0, 0], c2, size=20000)
    expected = fvd.frechet_distance([0, 0, 0], c1, [1, 0, 0], c2)
    assert fvd.frechet_distance_of_features(a, b) == pytest.approx(expected, rel=0.05)
    mean, cov = fvd.feature_statistics(a[:5])
    np.testing.assert_allclose(cov, np.cov(a[:5].T))
    # Fewer samples than features: singular covariances, still finite and >= 0.
    small = fvd.frechet_distance_of_features(rng.normal(size=(3, 8)),
                                             rng.normal(size=(4, 8)))
    assert np.isfinite(small) and small >= 0
    with pytest.raises(ValueError, match="N >= 2"):
        fvd.feature_statistics(a[:1])
    with pytest.raises(ValueError, match="must agree"):
        fvd.frechet_distance([0, 0], c1, [0, 0, 0], c2)


# -- the I3D plumbing --------------------------------------------------------------------

class FakeI3D(tf.Module):
    """Stands for I3D: [B, T, 8, 8, 3] in [-1, 1] -> 7 features (mean per channel, std,
    min, max, mean |temporal difference|)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, 8, 8, 3], tf.float32)])
    def __call__(self, videos):
        change = tf.reduce_mean(tf.abs(videos[:, 1:] - videos[:, :-1]), axis=[1, 2, 3, 4])
        return tf.concat([tf.reduce_mean(videos, axis=[1, 2, 3]),
                          tf.math.reduce_std(videos, axis=[1, 2, 3, 4])[:, None],
                          tf.reduce_min(videos, axis=[1, 2, 3, 4])[:, None],
                          tf.reduce_max(videos, axis=[1, 2, 3, 4])[:, None],
                          change[:, None]], axis=1)


@pytest.fixture(scope="module")
def i3d_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("i3d"))
    module = FakeI3D()
    tf.saved_model.save(module, path, signatures=module.__call__)
    return path


def test_i3d_wrapper_resizes_scales_and_returns_features(i3d_dir):
    i3d = fvd.I3D(i3d_dir)
    assert i3d.size == (8, 8) and i3d.frames is None
    videos = np.zeros((3, 4, 16, 16, 3), np.uint8)
    videos[1] = 255
    videos[2, :, :, :, 0] = 255          # red, still
    videos[2, 2:, :, :, 1] = 255         # green from frame 2 on
    features = i3d(videos)
    assert features.shape == (3, 7)
    np.testing.assert_allclose(features[0], [-1, -1, -1, 0, -1, -1, 0], atol=1e-6)
    np.testing.assert_allclose(features[1], [1, 1, 1, 0, 1, 1, 0], atol=1e-6)
    np.testing.assert_allclose(features[2, :3], [1, 0, -1], atol=1e-6)
    assert features[2, 6] == pytest.approx(2 / 3 / 3, abs=1e-6)  # one step of 2 in 1/3
    batched = fvd.features_of(i3d, videos, batch_size=2)
    np.testing.assert_allclose(batched, features, rtol=1e-6)


def test_missing_or_wrong_i3d_model_errors(tmp_path):
    with pytest.raises(UsageError, match="FVD needs a local I3D SavedModel.*--i3d_model"):
        fvd.I3D(None)
    with pytest.raises(UsageError, match="does not exist"):
        fvd.I3D(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="holds no SavedModel"):
        fvd.I3D(str(tmp_path))


# -- the experiment ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


def test_fvd_is_of_the_real_clips_and_their_samples(run, i3d_dir):
    """The generated videos are the real context plus `model.sample` (seed
    `clip_seed(seed, clip index)`); FVD pools all samples, per draw takes sample s of every clip."""
    model, n = run["model"], run["hparams"].video_num_input_frames
    clips = random_clips((4, 4, 16, 16, 3), seed=13)
    context = quiet_context(run, clips, model=model)
    i3d = fvd.I3D(i3d_dir)
    result = fvd.run(context, i3d, seed=3, num_samples=2, batch_size=3, temperature=0.5)
    assert result["clips"] == 4 and result["num_frames"] == 4
    assert result["feature_dim"] == 7 and len(result["fvd_per_draw"]) == 2
    generated = np.stack([
        np.concatenate([np.repeat(clip[None, :n], 2, 0),
                        model.sample(np.repeat(clip[None, :n], 2, 0), 4 - n, 0.5,
                                     seed=clip_seed(3, i)).numpy()], axis=1)
        for i, clip in enumerate(clips)])                      # [4, 2, 4, 16, 16, 3]
    real, fake = i3d(clips), i3d(generated.reshape(8, 4, 16, 16, 3)).reshape(4, 2, 7)
    assert result["fvd"] == pytest.approx(
        fvd.frechet_distance_of_features(real, fake.reshape(8, 7)), rel=1e-6)
    for s in range(2):
        assert result["fvd_per_draw"][s] == pytest.approx(
            fvd.frechet_distance_of_features(real, fake[:, s]), rel=1e-6)
    assert result["fvd"] > 0 and result["fvd_per_draw_std"] is not None
    assert fvd.frechet_distance_of_features(real, real) == pytest.approx(0, abs=1e-9)


def test_cli_needs_i3d_model_and_writes_json(run, i3d_dir, tmp_path, capsys):
    base = [f"--output_dir={run['output_dir']}", "--experiment=fvd",
            f"--data_dir={run['data_dir']}", f"--results_dir={tmp_path / 'r'}"]
    for extra, expected in (([], "FVD needs a local I3D SavedModel"),
                            ([f"--i3d_model={tmp_path / 'nope'}"], "nope' does not exist"),
                            (["--i3d_model=" + i3d_dir, "--num_frames=1"],
                             "leaves no frame to sample")):
        assert run_cli(evaluate, base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-eval: error: ") and "\n" not in err, err
        assert expected in err, err
    code = run_cli(evaluate, base + [f"--i3d_model={i3d_dir}", "--max_clips=3",
                                     "--num_samples=2"])
    assert code == 0
    assert "FVD" in capsys.readouterr().out
    with open(tmp_path / "r" / "fvd.json") as f:
        saved = json.load(f)
    assert saved["clips"] == 3 and saved["num_frames"] == 5 and saved["fvd"] > 0
    assert saved["i3d_model"] == i3d_dir and saved["i3d_input_size"] == [8, 8]


def test_missing_i3d_model_is_reported_before_the_run_is_restored(tmp_path, capsys):
    """The I3D check runs before the restore: even a missing run dir reports it."""
    argv = [f"--output_dir={tmp_path / 'no_run'}", "--experiment=fvd",
            f"--data_dir={tmp_path}", f"--results_dir={tmp_path / 'r'}"]
    assert run_cli(evaluate, argv) == 1
    assert "FVD needs a local I3D SavedModel" in capsys.readouterr().err
