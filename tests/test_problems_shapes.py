"""Stochastic shapes: T2T's counts and splits, geometry, motion, determinism, windows."""

import os

import numpy as np
import pytest
import tensorflow as tf

from t2t_videoflow.config import registry
from t2t_videoflow.data import pipeline
from t2t_videoflow.data.records import DataError
from t2t_videoflow.problems.stochastic_shapes import (
    COLOURS, DIRECTIONS, PX_PER_UNIT_64, StochasticShapes, StochasticShapes32, draw_video_params,
    render_frame, render_video)


def test_t2t_counts_and_splits():
    p = registry.problem("video_stochastic_shapes10k")
    assert isinstance(p, StochasticShapes) and p.name == "stochastic_shapes"
    assert (p.num_videos, p.frames_per_video, p.frame_shape) == (10000, 5, (64, 64, 3))
    assert p.num_shards == {"train": 10, "dev": 1} and "test" not in p.splits
    shards = p.split_videos()
    assert [len(s) for s in shards["train"]] == [910] + [909] * 9
    assert sum(len(s) for s in shards["train"]) == 9091
    assert sum(len(s) for s in shards["dev"]) == 909
    everything = np.sort(np.concatenate(shards["train"] + shards["dev"]))
    np.testing.assert_array_equal(everything, np.arange(10000))
    assert registry.problem("stochastic_shapes_32").frame_shape == (32, 32, 3)
    small = registry.problem("stochastic_shapes_16")
    assert (small.frame_shape, small.num_videos, small.num_shards) == (
        (16, 16, 3), 10000, {"train": 10, "dev": 1})


def test_random_draws_cover_every_value():
    prm = draw_video_params(2000, seed=429459)
    assert set(prm["direction"]) == set(range(8))
    assert set(prm["colour"]) == set(range(6))
    assert set(prm["shape"]) == set(range(3))
    assert 0.5 <= prm["size"].min() and prm["size"].max() < 1.5
    # Uniform: each direction within 4 sigma of 2000 / 8.
    counts = np.bincount(prm["direction"], minlength=8)
    assert np.all(np.abs(counts - 250) < 4 * np.sqrt(250 * 7 / 8)), counts
    again = draw_video_params(2000, seed=429459)
    assert all(np.array_equal(prm[k], again[k]) for k in prm)
    other = draw_video_params(2000, seed=1)
    assert not np.array_equal(prm["direction"], other["direction"])


def test_geometry_matches_t2t_figure():
    # A size-1 square at the centre: side 2 axis units = 16.4 px, centred on pixel 32.
    f = render_frame(64, "square", COLOURS[2], 1.0, (5.0, 5.0))
    rows, cols = np.nonzero(f[..., 0])
    assert rows.min() == cols.min() == round(32 - PX_PER_UNIT_64)
    assert rows.max() + 1 == cols.max() + 1 == round(32 + PX_PER_UNIT_64)
    assert len({tuple(c) for c in f.reshape(-1, 3)}) == 2          # pixel-snapped: 2 colours
    assert tuple(f[32, 32]) == (255, 0, 0)
    # Circles are anti-aliased, area ~ pi r^2.
    c = render_frame(64, "circle", COLOURS[0], 1.0, (5.0, 5.0))
    area = c[..., 2].astype(float).sum() / 255
    assert abs(area - np.pi * PX_PER_UNIT_64 ** 2) < 2.0
    assert len(np.unique(c[..., 2])) > 5
    # Colours are matplotlib's letters.
    g = render_frame(64, "circle", COLOURS[1], 1.0, (5.0, 5.0))
    assert tuple(g[32, 32]) == (0, 128, 0)
    # Triangle: base at y - s, apex at y - s + sqrt(3) s (y up = smaller rows).
    t = render_frame(64, "triangle", COLOURS[3], 1.0, (5.0, 5.0))
    rows = np.nonzero(t[..., 1] > 96)[0]
    assert abs((rows.max() + 1) - (32 + PX_PER_UNIT_64)) <= 1
    assert abs(rows.min() - (32 - (np.sqrt(3) - 1) * PX_PER_UNIT_64)) <= 1.5
    # Scaled frames: a 32x32 square is half as wide; axis value 1.09 is the left edge.
    h = render_frame(32, "square", COLOURS[2], 1.0, (5.0, 5.0))
    assert np.count_nonzero(h[16, :, 0]) == round(16 + PX_PER_UNIT_64 / 2) - round(
        16 - PX_PER_UNIT_64 / 2)
    edge = render_frame(64, "square", COLOURS[2], 0.5, (1.09 + 0.5, 5.0))
    assert np.nonzero(edge[32, :, 0])[0].min() == 0


def _centroid(frame):
    w = frame.astype(float).sum(axis=-1)
    i, j = np.indices(w.shape)
    return np.array([(w * j).sum(), (w * i).sum()]) / w.sum()


@pytest.mark.parametrize("size", [64, 32])
def test_all_8_directions_uniform_speed(size):
    prm = draw_video_params(200, seed=7)
    unit = PX_PER_UNIT_64 * size / 64
    seen = set()
    for v in range(200):
        video = render_video(size, 5, prm["direction"][v], prm["colour"][v], prm["shape"][v],
                             prm["size"][v])
        assert video.shape == (5, size, size, 3) and video.dtype == np.uint8
        c = np.stack([_centroid(video[k]) for k in range(3)])    # frames 0-2 fully visible
        steps = np.diff(c, axis=0)
        dx, dy = DIRECTIONS[prm["direction"][v]]
        # One axis unit per frame; image rows point down. Squares snap to whole pixels.
        atol = 0.6 if prm["shape"][v] == 1 else 0.3
        for step in steps:
            np.testing.assert_allclose(step, [dx * unit, -dy * unit], atol=atol)
        seen.add((dx, dy))
    assert seen == set(DIRECTIONS)


def test_generated_data_round_trip_deterministic_and_windows(tmp_path):
    p = StochasticShapes(num_videos=44, frame_size=32)
    d1, d2, d3 = (str(tmp_path / n) for n in ("a", "b", "c"))
    summary = p.generate_data(d1, log=None)
    assert summary["train"]["videos"] == 40 and summary["dev"]["videos"] == 4
    p.generate_data(d2, log=None)
    StochasticShapes(num_videos=44, frame_size=32, seed=5).generate_data(d3, log=None)
    names = sorted(os.listdir(d1))
    assert len(names) == 11 and names == sorted(os.listdir(d2))
    for n in names:      # same seed -> byte-identical shards
        assert open(os.path.join(d1, n), "rb").read() == open(os.path.join(d2, n), "rb").read()
    assert any(open(os.path.join(d1, n), "rb").read() != open(os.path.join(d3, n), "rb").read()
               for n in names)
    # The pipeline returns exactly the rendered frames 0-2 of every dev video.
    hp = registry.hparams("next_frame_glow_shapes")
    hp.override_from_dict({"frame_height": 32, "frame_width": 32, "batch_size": 4})
    dev = list(p.dataset("eval", d1, hp, deterministic=True))
    assert len(dev) == 1 and dev[0]["video"].shape == (4, 3, 32, 32, 3)
    prm = draw_video_params(44, p.seed)
    dev_ids = p.split_videos()["dev"][0]
    for got, v in zip(dev[0]["video"].numpy(), dev_ids):
        want = render_video(32, 5, prm["direction"][v], prm["colour"][v], prm["shape"][v],
                            prm["size"][v])
        np.testing.assert_array_equal(got, want[:3])
    assert pipeline.count_videos(p.data_files(d1, "train"), 3) == 40
    # Training: 2-frame windows from frames 0-2 (conditioning frame + target).
    train = p.dataset("train", d1, hp, deterministic=True, seed=1)
    renders = {}
    for v in range(44):
        renders[v] = render_video(32, 3, prm["direction"][v], prm["colour"][v],
                                  prm["shape"][v], prm["size"][v])
    starts = set()
    for b in train.take(12):
        assert b["inputs"].shape == (4, 1, 32, 32, 3) and b["targets"].shape == (4, 1, 32, 32, 3)
        for clip in b["video"].numpy():
            hits = [(v, s) for v in renders for s in (0, 1)
                    if np.array_equal(renders[v][s:s + 2], clip)]
            assert hits, "a training window is not two consecutive frames of a video"
            starts.add(hits[0][1])
    assert starts == {0, 1}


def test_deterministic_pipeline_and_exact_resume(tmp_path):
    p = registry.problem("stochastic_shapes_tiny")
    p.generate_data(str(tmp_path), log=None)
    hp = registry.hparams("videoflow_tiny")

    def first(n, seed):
        it = iter(p.dataset("train", str(tmp_path), hp, deterministic=True, seed=seed))
        return [next(it)["video"].numpy() for _ in range(n)]

    a, b, c = first(4, 0), first(4, 0), first(4, 1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    # Save the iterator mid-stream; restoring it replays exactly the same batches.
    it = iter(p.dataset("train", str(tmp_path), hp, deterministic=True, seed=0))
    for _ in range(3):
        next(it)
    ckpt = tf.train.Checkpoint(iterator=it)
    path = ckpt.write(str(tmp_path / "ckpt" / "it"))
    after = [next(it)["video"].numpy() for _ in range(3)]
    it2 = iter(p.dataset("train", str(tmp_path), hp, deterministic=True, seed=0))
    tf.train.Checkpoint(iterator=it2).read(path).assert_consumed()
    resumed = [next(it2)["video"].numpy() for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(after, resumed))
    np.testing.assert_array_equal(after[0], a[3])


def test_wrong_frame_size_on_disk_names_the_file(tmp_path):
    # 16x16 frames written under the 32x32 problem's file names.
    class Mislabelled(StochasticShapes32):
        frame_size = 16
        num_videos = 22
    Mislabelled.name = "stochastic_shapes_32"
    Mislabelled().generate_data(str(tmp_path), log=None)
    hp = registry.create_hparams("videoflow_shapes_cpu", problem_name="stochastic_shapes_32")
    with pytest.raises(DataError, match=r"stochastic_shapes_32-train-00000-of-00010: frame 0 is "
                                        r"16x16x3 but .* expects 32x32x3"):
        registry.problem("stochastic_shapes_32").dataset("train", str(tmp_path), hp)


def test_set_and_problem_mismatch():
    with pytest.raises(ValueError, match=r"'next_frame_glow_shapes' is for 64x64x3 frames but "
                                         r"problem 'stochastic_shapes_32' has 32x32x3"):
        registry.create_hparams("next_frame_glow_shapes", problem_name="stochastic_shapes_32")
    with pytest.raises(ValueError, match=r"needs 3\+10 frames .* 5 frames per video"):
        registry.create_hparams("next_frame_glow_bair_quant", problem_name="stochastic_shapes")
    with pytest.raises(ValueError, match=r"n_levels=5 squeezes by 32"):
        registry.create_hparams("videoflow_tiny", "n_levels=5",
                                problem_name="stochastic_shapes_tiny")
    for set_name, prob in (("next_frame_glow_shapes", "stochastic_shapes"),
                           ("videoflow_shapes_cpu", "stochastic_shapes_32"),
                           ("videoflow_tiny", "stochastic_shapes_tiny")):
        registry.create_hparams(set_name, problem_name=prob)


def test_missing_empty_and_truncated_data(tmp_path):
    p = registry.problem("stochastic_shapes_tiny")
    hp = registry.hparams("videoflow_tiny")
    with pytest.raises(DataError, match=r"Data dir .*nope.* does not exist"):
        p.dataset("train", str(tmp_path / "nope"), hp)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match=r"No 'train' shards of problem 'stochastic_shapes_tiny'"
                                        r".*t2t-videoflow-datagen"):
        p.dataset("train", str(tmp_path / "empty"), hp)
    with pytest.raises(DataError, match=r"no 'test' split"):
        p.dataset("eval", str(tmp_path / "empty"), hp, split="test")
    data = tmp_path / "data"
    p.generate_data(str(data), log=None)
    shard = data / "stochastic_shapes_tiny-train-00001-of-00002"
    size = shard.stat().st_size
    with open(shard, "r+b") as f:
        f.truncate(size - 50)
    with pytest.raises(DataError, match=r"stochastic_shapes_tiny-train-00001-of-00002: record "
                                        r"\d+ at byte \d+ .* truncated"):
        p.dataset("train", str(data), hp)
    open(shard, "wb").close()
    with pytest.raises(DataError, match=r"train-00001-of-00002: file is empty"):
        p.dataset("train", str(data), hp)
