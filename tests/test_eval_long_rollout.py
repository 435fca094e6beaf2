"""`t2t-videoflow-eval --experiment=long_rollout`: the per-frame statistics on
constructed frames, the rollout equals `model.sample`, the files, the CLI."""

import importlib.util
import json
import os

import numpy as np
import pytest
from PIL import Image

from t2t_videoflow.model import sampling
from t2t_videoflow.cli import evaluate
from t2t_videoflow.data import media
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import context as context_lib, frame_stats, long_rollout

from inference_testing import eval_run, quiet_context, random_clips, run_cli

# matplotlib is the optional `plots` extra (CI installs only `test`).
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    return eval_run(str(tmp_path_factory.mktemp("run")), tiny_data_dir)


def test_frame_statistics_on_constructed_frames():
    """Sample 0: black, then a flat (10, 20, 30) frame; sample 1: a half-white frame,
    then black. Averaged over the two samples."""
    frames = np.zeros((2, 2, 4, 4, 3), np.uint8)
    frames[0, 1] = (10, 20, 30)
    frames[1, 0, :2] = 255
    previous = np.zeros((2, 4, 4, 3), np.uint8)
    previous[1] = 100
    s = frame_stats.frame_statistics(frames, previous=previous)
    np.testing.assert_allclose(s["mean"], [[127.5 / 2] * 3, [5, 10, 15]])
    # Frame 0: sample 0 flat (0), sample 1 half 0 / half 255 (std 127.5).
    # Frame 1: std of {10, 20, 30} (8.165) and flat black (0).
    np.testing.assert_allclose(s["std"], [127.5 / 2, np.std([10, 20, 30]) / 2])
    # Near-black: sample 0 frame 0 all, sample 1 frame 0 half; frame 1: 0 and all.
    np.testing.assert_allclose(s["near_black"], [0.75, 0.5])
    # Change: frame 0 vs previous: 0 and |255 - 100| / 2 + |0 - 100| / 2 = 127.5;
    # frame 1 vs frame 0: 20 and 127.5.
    np.testing.assert_allclose(s["change"], [127.5 / 2, (20 + 127.5) / 2])
    assert frame_stats.frame_statistics(frames[0])["change"][0] is None
    single = frame_stats.frame_statistics(frames[0, :, :, :, :])
    np.testing.assert_allclose(single["mean"], [[0, 0, 0], [10, 20, 30]])
    with pytest.raises(ValueError, match="uint8"):
        frame_stats.frame_statistics(frames.astype(np.float32))
    with pytest.raises(ValueError, match="previous must be"):
        frame_stats.frame_statistics(frames, previous=previous[0])


def test_rollout_is_model_sample_and_statistics_are_of_it(run, tmp_path):
    model, n = run["model"], run["hparams"].video_num_input_frames
    clips = random_clips((2, n, 16, 16, 3), seed=11)
    seen = []
    sampler = sampling.Sampler(model)
    samples = sampler.sample_clip(clips[1], 1, 3, 12, 0.5, 6, chunk=long_rollout.CHUNK,
                                  log=lambda done, total, s: seen.append((done, total)))
    assert seen == [(10, 12), (12, 12)]
    expected = model.sample(np.repeat(clips[1:2], 3, axis=0), 12, 0.5,
                            seed=sampling.clip_seed(6, 1)).numpy()
    np.testing.assert_array_equal(samples, expected)
    assert not np.array_equal(samples[0], samples[1])      # one seed, different rows
    # run() on clips 0 and 1 (seed 6): the statistics are those of the samples.
    logged = []
    context = context_lib.RunContext.from_arrays(model, run["hparams"], clips,
                                                 log=logged.append)
    result = long_rollout.run(context, seed=6, num_frames=12, temperature=0.5,
                              num_samples=3, max_clips=2, plots=HAS_MATPLOTLIB,
                              results_dir=str(tmp_path))
    first = sampler.sample_clip(clips[0], 0, 3, 12, 0.5, 6)
    both = np.stack([first, samples])
    last = np.broadcast_to(clips[:, None, -1], (2, 3, 16, 16, 3))
    assert result["statistics"] == frame_stats.frame_statistics(both, previous=last)
    assert result["context_statistics"] == frame_stats.frame_statistics(clips)
    assert result["strip_frames"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert sum("clip 2: 12/12 frames" in line for line in logged) == 1
    names = sorted(os.listdir(tmp_path / "long_rollout"))
    assert names == sorted([f"clip{i:03d}_sample{j:02d}.gif" for i in range(2)
                            for j in range(3)] + ["clip000_strip.png", "clip001_strip.png"])
    with Image.open(tmp_path / "long_rollout" / "clip001_strip.png") as im:
        assert np.array_equal(np.asarray(im), media.make_grid(clips[1], None, samples))
    if HAS_MATPLOTLIB:
        with open(tmp_path / "long_rollout.png", "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "context 1" in long_rollout.format_result(result)


def test_defaults_and_bad_values(run):
    clips = random_clips((2, 1, 16, 16, 3), seed=12)
    context = quiet_context(run, clips)
    result = long_rollout.run(context, num_frames=25, num_samples=1, plots=False)
    assert result["clips"] == 1 and result["temperature"] == 0.5
    assert result["strip_frames"] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]
    assert len(result["statistics"]["std"]) == 25
    assert long_rollout.DEFAULT_NUM_FRAMES == 100
    for kwargs, message in ((dict(num_samples=0), "--num_samples must be >= 1"),
                            (dict(temperature=-1.0), "--temperature must be >= 0"),
                            (dict(num_frames=0), "--num_frames must be >= 1")):
        with pytest.raises(UsageError, match=message):
            long_rollout.run(context, **kwargs)


def test_cli_samples_one_clip_by_default(run, tmp_path, capsys):
    results_dir = str(tmp_path / "results")
    code = run_cli(evaluate, [f"--output_dir={run['output_dir']}",
                              "--experiment=long_rollout", f"--data_dir={run['data_dir']}",
                              "--num_frames=15", "--num_samples=2", "--plots=false",
                              f"--results_dir={results_dir}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "clip 1: 10/15 frames" in out and "clip 1: 15/15 frames" in out
    assert "near-black" in out and "clip 2" not in out
    with open(os.path.join(results_dir, "long_rollout.json")) as f:
        saved = json.load(f)
    assert saved["clips"] == 1 and saved["samples_per_clip"] == 2
    assert saved["temperature"] == 0.5 and len(saved["statistics"]["change"]) == 15
    assert not os.path.exists(os.path.join(results_dir, "long_rollout.png"))
    assert len(os.listdir(os.path.join(results_dir, "long_rollout"))) == 3
