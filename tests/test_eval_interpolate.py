"""`t2t-videoflow-eval --experiment=interpolate`: marginal encoding and decoding are
inverse, alpha = 0 / 1 give back the endpoints (up to quantisation), the level choices,
T2T's ranked channel, the CLI's files and errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_videoflow.model.noise import clip_noise
from t2t_videoflow.cli import evaluate
from t2t_videoflow.data import media
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import bpp, interpolate

from inference_testing import (assert_quantised, eval_run, quiet_context, random_clips,
                               run_cli)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


@pytest.fixture(scope="module")
def pair():
    """Two uint8 clips' endpoint frames `[2, 2, H, W, 3]` and their noise."""
    frames = random_clips((2, 2, 16, 16, 3), seed=8)
    return frames, clip_noise(frames.shape, [1, 0], [0, 1])


def test_marginal_encoding_is_inverted_by_decoding(run, pair):
    """decode(encode(x)) = x: eps^l standardised against the kept half's prior and
    re-scaled against the decoded kept half's prior, which is the same tensor."""
    model = run["model"]
    x = model.dequantize(pair[0][:, 0], noise=pair[1][:, 0])
    entries = interpolate.encode_frame(model, x)
    assert len(entries) == model.flow.n_levels
    assert entries[-1].shape[1:] == tuple(model.top_shape)
    np.testing.assert_allclose(interpolate.decode_entries(model, entries).numpy(),
                               x.numpy(), atol=1e-4)
    # The levels are standardised: not the raw latents.
    raw = model.flow.encode(x).latents[0]
    assert not np.allclose(entries[0].numpy(), raw.numpy(), atol=1e-3)


def test_all_levels_reproduce_both_endpoints(run, pair):
    model = run["model"]
    frames, noise = pair
    out = interpolate.interpolate_frames(model, frames[:, 0], frames[:, 1], 5, "all",
                                         noise)
    assert out.shape == (2, 5, 16, 16, 3) and out.dtype == np.uint8
    x = model.dequantize(frames, noise=noise).numpy()
    assert_quantised(out[:, 0], x[:, 0])
    assert_quantised(out[:, -1], x[:, 1])
    assert np.abs(out[:, 0].astype(int) - frames[:, 0]).max() <= 1
    # The middle is neither endpoint.
    assert np.abs(out[:, 2].astype(int) - frames[:, 0]).mean() > 5
    assert np.abs(out[:, 2].astype(int) - frames[:, 1]).mean() > 5


@pytest.mark.parametrize("levels", ["top", "bottom"])
def test_partial_levels_start_at_the_first_frame_only(run, pair, levels):
    model = run["model"]
    frames, noise = pair
    out = interpolate.interpolate_frames(model, frames[:, 0], frames[:, 1], 3, levels,
                                         noise)
    x = model.dequantize(frames, noise=noise).numpy()
    assert_quantised(out[:, 0], x[:, 0])
    assert np.abs(out[:, -1].astype(int) - frames[:, 1]).mean() > 5
    assert np.abs(out[:, -1].astype(int) - frames[:, 0]).mean() > 1


def test_levels_choice_and_its_errors():
    assert interpolate.interpolated_indices("all", 3) == {0, 1, 2}
    assert interpolate.interpolated_indices("top", 3) == {2}
    assert interpolate.interpolated_indices("bottom", 3) == {0}
    with pytest.raises(UsageError, match="at least 2 levels"):
        interpolate.interpolated_indices("bottom", 1)
    with pytest.raises(UsageError, match="one of all, top, bottom"):
        interpolate.interpolated_indices("middle", 3)


def test_ranked_channel_moves_one_channel_per_example():
    a = np.zeros((2, 2, 2, 3), np.float32)
    b = np.zeros((2, 2, 2, 3), np.float32)
    b[0, ..., 2], b[0, ..., 0], b[0, ..., 1] = 3.0, 2.0, 1.0   # example 0: 2 > 0 > 1
    b[1, ..., 1], b[1, ..., 0], b[1, ..., 2] = -3.0, 2.0, 1.0  # example 1: 1 > 0 > 2
    alphas = [0.0, 0.5, 1.0]
    full = interpolate.interpolate_entry(tf.constant(a), tf.constant(b), alphas).numpy()
    np.testing.assert_allclose(full[1], 0.5 * b)
    for rank, channels in ((1, (2, 1)), (2, (0, 0)), (3, (1, 2))):
        out = interpolate.interpolate_entry(tf.constant(a), tf.constant(b), alphas,
                                            rank=rank).numpy()
        for example, channel in enumerate(channels):
            expected = np.zeros((3, 2, 2, 3), np.float32)
            expected[..., channel] = np.array(alphas)[:, None, None] * b[example, ...,
                                                                         channel]
            np.testing.assert_allclose(out[:, example], expected)
    with pytest.raises(UsageError, match="rank must be in 1..3"):
        interpolate.interpolate_entry(tf.constant(a), tf.constant(b), alphas, rank=4)


def test_run_statistics_and_ranked_option(run):
    clips = random_clips((3, 3, 16, 16, 3), seed=9)
    context = quiet_context(run, clips)
    result = interpolate.run(context, seed=2, num_interp=4, batch_size=2)
    assert result["clips"] == 3 and result["endpoints"] == [1, 3]
    assert result["alphas"] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert result["first_reconstruction_max_abs"] <= 1
    assert result["last_reconstruction_max_abs"] <= 1
    d0, d1 = result["distance_to_first"], result["distance_to_last"]
    assert d0[0] < 1 and d1[-1] < 1 and d0[-1] > 5 and d1[0] > 5
    stats = result["statistics"]
    assert np.array(stats["mean"]).shape == (4, 3) and len(stats["change"]) == 4
    assert stats["change"][0] == pytest.approx(d0[0])   # alpha 0 vs the first frame
    ranked = interpolate.run(context, seed=2, num_interp=4, batch_size=3, rank=1)
    assert ranked["first_reconstruction_max_abs"] <= 1
    assert ranked["distance_to_last"][-1] > 5            # one channel does not get there


def test_cli_writes_gifs_pngs_and_json(run, tmp_path, capsys):
    results_dir = str(tmp_path / "results")
    code = run_cli(evaluate, [f"--output_dir={run['output_dir']}", "--experiment=interpolate",
                              f"--data_dir={run['data_dir']}", "--max_clips=2",
                              "--num_interp=4", "--interp_levels=top",
                              f"--results_dir={results_dir}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "alpha" in out and "levels top" in out and "2 clip(s)" in out
    with open(os.path.join(results_dir, "interpolate.json")) as f:
        saved = json.load(f)
    assert saved["levels"] == "top" and saved["clips"] == 2 and len(saved["alphas"]) == 4
    assert saved["rank"] is None                       # --interp_rank=0: every channel
    assert run_cli(evaluate, [f"--output_dir={run['output_dir']}", "--experiment=interpolate",
                              f"--data_dir={run['data_dir']}", "--max_clips=1",
                              "--num_interp=3", "--interp_rank=2",
                              f"--results_dir={tmp_path / 'ranked'}"]) == 0
    with open(os.path.join(tmp_path, "ranked", "interpolate.json")) as f:
        assert json.load(f)["rank"] == 2
    for i in range(2):
        with Image.open(os.path.join(results_dir, "interpolate", f"clip{i:03d}.png")) as im:
            assert im.size == (16 * 6 + 2 * media.GROUP_GAP, 16)
        with Image.open(os.path.join(results_dir, "interpolate", f"clip{i:03d}.gif")) as im:
            assert im.size == (16, 16) and im.n_frames >= 2


def test_cli_errors_are_one_line(run, tmp_path, capsys):
    base = [f"--output_dir={run['output_dir']}", "--experiment=interpolate",
            f"--data_dir={run['data_dir']}", f"--results_dir={tmp_path}"]
    for extra, expected in ((["--num_frames=6"], "the data has 5"),
                            (["--num_frames=1"], "two different endpoint frames"),
                            (["--num_interp=1"], "--num_interp"),
                            (["--interp_rank=-1"], "--interp_rank must be >= 0"),
                            (["--interp_rank=99"], "rank must be in 1..")):
        assert run_cli(evaluate, base + extra) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-eval: error: ") and "\n" not in err, err
        assert expected in err, err
