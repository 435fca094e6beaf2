"""Decoder: GIFs, grids and samples from dev clips or user frames; errors; the CLI."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_videoflow.model.sampling import clip_seed
from t2t_videoflow.cli import decoder
from t2t_videoflow.data import media
from t2t_videoflow.config import registry
from t2t_videoflow.training import run_dir

from inference_testing import (FRAME_SHAPE, PROBLEM, assert_quantised, make_run_dir,
                               random_clips, run_cli)

CLI = os.path.join(os.path.dirname(sys.executable), "t2t-videoflow-decoder")
H, W, _ = FRAME_SHAPE


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_data_dir):
    output_dir = str(tmp_path_factory.mktemp("run"))
    model, hparams = make_run_dir(output_dir, steps=(3, 7))
    return dict(output_dir=output_dir, data_dir=tiny_data_dir, model=model,
                hparams=hparams)


def _gif_frames(path):
    with Image.open(path) as image:
        assert image.format == "GIF" and image.size == (W, H)
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
        return np.stack(frames)


def test_decode_dev_clips_writes_gifs_grid_and_model_samples(run, tmp_path, capsys):
    out = str(tmp_path / "decoded")
    code = run_cli(decoder, [f"--output_dir={run['output_dir']}",
                             f"--data_dir={run['data_dir']}", f"--decode_to_file={out}",
                             "--num_samples=2", "--num_target_frames=5",
                             "--temperature=0.7", "--random_seed=4",
                             "--progress_every=2"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert sorted(os.listdir(out)) == ["clip000_grid.png", "clip000_sample00.gif",
                                       "clip000_sample01.gif", "clip000_samples.npy"]
    assert "model.ckpt-7 (step 7, trained weights)" in stdout
    progress = [l for l in stdout.splitlines() if "clip 1/1:" in l]
    assert [l.split(": ")[-1].split(" (")[0] for l in progress] == [
        "2/5 frames", "4/5 frames", "5/5 frames"]
    assert all(os.path.join(out, n) in stdout for n in os.listdir(out))

    # The samples are the model's samples for the first dev clip's context.
    problem = registry.problem(PROBLEM)
    hp = run["hparams"].copy()
    hp.batch_size = 1
    clip = next(iter(problem.dataset("predict", run["data_dir"], hp, deterministic=True)))
    context, truth = clip["inputs"][0].numpy(), clip["targets"][0].numpy()
    samples = np.load(os.path.join(out, "clip000_samples.npy"))
    expected = run["model"].sample(np.repeat(context[None], 2, axis=0), 5,
                                   temperature=0.7, seed=clip_seed(4, 0)).numpy()
    np.testing.assert_array_equal(samples, expected)
    assert samples.shape == (2, 5, H, W, 3)

    for j in range(2):
        gif = _gif_frames(os.path.join(out, f"clip000_sample{j:02d}.gif"))
        assert gif.shape == (1 + 5, H, W, 3)          # context then samples
        # GIF palettes are lossy on random-looking samples; the context is exact-ish.
        assert np.abs(gif.astype(int) - np.concatenate([context, samples[j]])).mean() < 16

    grid = np.asarray(Image.open(os.path.join(out, "clip000_grid.png")).convert("RGB"))
    n_in, n_tgt = context.shape[0], truth.shape[0]
    assert grid.shape == (2 * H, media.grid_width(n_in, n_tgt, 5, W), 3)
    for j in range(2):
        row = grid[j * H:(j + 1) * H]
        np.testing.assert_array_equal(row[:, :W], context[0])
        gt0 = n_in * W + media.GROUP_GAP
        np.testing.assert_array_equal(row[:, gt0:gt0 + W], truth[0])
        s0 = gt0 + n_tgt * W + media.GROUP_GAP
        for k in range(5):
            np.testing.assert_array_equal(row[:, s0 + k * W:s0 + (k + 1) * W],
                                          samples[j, k])


def test_decode_writes_through_tf_filesystems(run, tmp_path):
    """Every decoder output goes through tf.io.gfile: a ram:// target (as gs://)
    holds the GIF, the grid and the samples, and nothing is written locally."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(random_clips((2, H, W, 3), seed=3)):
        Image.fromarray(frame).save(folder / f"f{i:02d}.png")
    out = "ram://decoder_test/decoded"
    paths = decoder.decode(run["output_dir"], out, input_frames=str(folder),
                           num_samples=1, num_target_frames=2, log=lambda _: None)
    assert sorted(os.path.basename(p) for p in paths) == [
        "clip000_grid.png", "clip000_sample00.gif", "clip000_samples.npy"]
    with tf.io.gfile.GFile(out + "/clip000_samples.npy", "rb") as f:
        assert np.load(io.BytesIO(f.read())).shape == (1, 2, H, W, 3)
    assert sorted(os.listdir(tmp_path)) == ["frames"]


@pytest.mark.slow
def test_decode_user_frames_long_run_xla(run, tmp_path):
    """100 frames from a PNG folder, XLA-compiled: one GIF of 3 + 100 frames, a grid
    without ground truth, and the same frames as the model's sampler."""
    folder = tmp_path / "frames"
    folder.mkdir()
    user = random_clips((3, H, W, 3), seed=9)
    for i, frame in enumerate(user):
        Image.fromarray(frame).save(folder / f"f{i:02d}.png")
    out = str(tmp_path / "decoded")
    lines = []
    paths = decoder.decode(run["output_dir"], out, input_frames=str(folder),
                           num_samples=1, num_target_frames=100, temperature=0.0,
                           random_seed=1, progress_every=25, jit_compile=True,
                           log=lines.append)
    assert sum("/100 frames" in l for l in lines) == 4
    assert len(paths) == 3
    gif = _gif_frames(os.path.join(out, "clip000_sample00.gif"))
    samples = np.load(os.path.join(out, "clip000_samples.npy"))
    assert samples.shape == (1, 100, H, W, 3)
    # Pillow merges identical consecutive frames; at temperature 0 the mean path can
    # settle, so the GIF holds at most 103 frames and at least the 3 distinct inputs.
    assert 3 < gif.shape[0] <= 103
    grid = np.asarray(Image.open(os.path.join(out, "clip000_grid.png")))
    assert grid.shape == (H, media.grid_width(3, 0, 100, W), 3)
    np.testing.assert_array_equal(grid[:, :W], user[0])
    # At temperature 0 no noise is drawn: XLA's frames are the eager float frames,
    # quantised, up to rounding at bin edges.
    eager, _ = run["model"].sample_with_log_density(user[None], 7, 0.0, seed=1)
    assert_quantised(samples[:, :7], eager.numpy())


def test_decoder_errors_are_one_line(run, tmp_path, capsys):
    out_dir, data_dir = run["output_dir"], run["data_dir"]
    empty = str(tmp_path / "no_checkpoint")
    run_dir.save_run(empty, run["hparams"], PROBLEM, "videoflow_tiny")
    bad_npy = str(tmp_path / "bad.npy")
    np.save(bad_npy, random_clips((3, 8, 8, 3)))
    common = [f"--decode_to_file={tmp_path / 'dec'}"]
    cases = [
        ([f"--output_dir={tmp_path / 'missing'}", f"--data_dir={data_dir}"],
         "does not exist"),
        ([f"--output_dir={empty}", f"--data_dir={data_dir}"], "No checkpoint in"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}",
          f"--checkpoint_path={out_dir}/model.ckpt-99"], "model.ckpt-99' not found"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--problem=stochastic_shapes"],
         "problem 'stochastic_shapes' has 64x64x3 frames"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--problem=bair"],
         "Unknown problem 'bair'"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--hparams_set=videoflow_tinyy"],
         "Unknown hparams set 'videoflow_tinyy'"),
        ([f"--output_dir={out_dir}", f"--data_dir={tmp_path / 'nodata'}"],
         "does not exist; run t2t-videoflow-datagen"),
        ([f"--output_dir={out_dir}"], "--data_dir is required"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--num_samples=0"],
         "--num_samples must be >= 1"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--temperature=-1"],
         "--temperature must be >= 0"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--num_target_frames=0"],
         "--num_target_frames must be >= 1"),
        ([f"--output_dir={out_dir}", f"--input_frames={bad_npy}"],
         "frames must have shape [time, 16, 16, 3]"),
        ([f"--output_dir={out_dir}", f"--input_frames={tmp_path / 'nothing'}"],
         "not found"),
        ([f"--output_dir={out_dir}", f"--data_dir={data_dir}", "--num_clips=50"],
         "has only 21 clip(s)"),
    ]
    for argv, expected in cases:
        assert run_cli(decoder, common + argv) == 1, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-decoder: error: "), err
        assert expected in err and "\n" not in err, (expected, err)


def test_decoder_console_script(run, tmp_path):
    """The installed command: a bad flag value is one line and exit code 1."""
    result = subprocess.run(
        [CLI, f"--output_dir={run['output_dir']}", f"--data_dir={run['data_dir']}",
         "--num_target_frames=-3", f"--decode_to_file={tmp_path}"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert [l for l in result.stderr.splitlines() if "t2t-videoflow-decoder" in l] == [
        "t2t-videoflow-decoder: error: --num_target_frames must be >= 1; got -3."]
    assert not os.listdir(tmp_path)
