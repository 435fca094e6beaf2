"""BAIR action-free: raw and TFDS sources, splits, frame ranges, windows, errors."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from conftest import fake_bair_record, write_fake_bair
from t2t_videoflow.config import registry
from t2t_videoflow.data import pipeline
from t2t_videoflow.data.records import DataError, iterate_records, parse_frame_record
from t2t_videoflow.problems.bair import BairActionFree


class SmallBair(BairActionFree):
    """The registered problem with fewer shards, for a handful of fake videos."""
    num_shards = {"train": 2, "dev": 1, "test": 1}
    dev_videos = 2


def _hp(**overrides):
    hp = registry.hparams("next_frame_glow_bair_quant")
    hp.override_from_dict(overrides)
    return hp


def _videos_in(files):
    """Video ids (red channel) and frame numbers per video, reading the shards directly."""
    videos = {}
    for path in files:
        for record in iterate_records(path):
            number, data = parse_frame_record(record, path)
            img = tf.io.decode_png(data).numpy()
            videos.setdefault(int(img[0, 0, 0]), []).append((number, int(img[0, 0, 1])))
    return videos


def test_registered_names_and_geometry():
    assert registry.problem_class("video_bair_robot_pushing") is BairActionFree
    p = registry.problem("bair_action_free")
    assert p.frame_shape == (64, 64, 3)
    assert p.num_shards == {"train": 10, "dev": 1, "test": 1}
    assert p.prefix == "video_bair_robot_pushing"   # reads T2T-written shards
    # The paper sets fit the problem: 3 + 10 frames of 30, 4-frame windows.
    registry.create_hparams("videoflow_bpp", problem_name="bair_action_free")
    registry.create_hparams("next_frame_glow_bair_qual", problem_name="video_bair_robot_pushing")


def test_raw_source_splits_frames_and_floats(tmp_path, fake_bair_raw):
    raw, ids = fake_bair_raw
    data_dir = str(tmp_path / "data")
    p = SmallBair()
    summary = p.generate_data(data_dir, raw_data_dir=raw, log=None)
    assert summary["train"]["videos"] == 4 and summary["dev"]["videos"] == 4
    assert summary["test"]["videos"] == 2
    train = _videos_in(p.data_files(data_dir, "train"))
    dev = _videos_in(p.data_files(data_dir, "dev"))
    test = _videos_in(p.data_files(data_dir, "test"))
    # Sorted train files: first two -> train, last two -> dev (T2T); test/ -> test.
    assert sorted(train) == ids["train"][:4]
    assert sorted(dev) == ids["train"][4:]
    assert sorted(test) == ids["test"]
    # All 30 frames stored, frame_number matching the frame content.
    for frames in list(train.values()) + list(dev.values()):
        assert [n for n, _ in frames] == list(range(30))
        assert all(n == g for n, g in frames)
    # T2T's per-frame state and action are kept.
    first = next(iterate_records(p.data_files(data_dir, "train")[0]))
    feats = tf.train.Example.FromString(first).features.feature
    assert list(feats["action"].float_list.value) == [ids["train"][0], 0.0, 0.5, -0.5]
    assert list(feats["state"].float_list.value) == [0.0, 1.0, 2.0]
    assert feats["image/format"].bytes_list.value[0] == b"png"


def test_registered_problem_shard_layout(tmp_path):
    raw = str(tmp_path / "raw")
    ids = write_fake_bair(raw, train_files=12, test_files=1, per_file=1)
    p = registry.problem("bair_action_free")
    data_dir = str(tmp_path / "data")
    p.generate_data(data_dir, raw_data_dir=raw, log=None)
    names = sorted(os.listdir(data_dir))
    assert names == ([f"video_bair_robot_pushing-dev-00000-of-00001",
                      f"video_bair_robot_pushing-test-00000-of-00001"]
                     + [f"video_bair_robot_pushing-train-{i:05d}-of-00010" for i in range(10)])
    # Contiguous runs of videos per train shard, in source order.
    per_shard = [sorted(_videos_in([os.path.join(data_dir, n)])) for n in names[2:]]
    assert per_shard == [[i] for i in ids["train"][:10]]


def test_eval_clips_are_frames_0_to_12(tmp_path, fake_bair_raw):
    raw, ids = fake_bair_raw
    data_dir = str(tmp_path / "data")
    p = SmallBair()
    p.generate_data(data_dir, raw_data_dir=raw, log=None)
    hp = _hp(batch_size=2)
    batches = list(p.dataset("eval", data_dir, hp, deterministic=True))
    assert len(batches) == 2                     # 4 dev videos, batch 2
    seen = []
    for b in batches:
        assert b["video"].shape == (2, 13, 64, 64, 3)
        assert b["inputs"].shape == (2, 3, 64, 64, 3)
        assert b["targets"].shape == (2, 10, 64, 64, 3)
        green = b["video"].numpy()[:, :, 0, 0, 1]
        np.testing.assert_array_equal(green, np.tile(np.arange(13), (2, 1)))
        np.testing.assert_array_equal(b["video"].numpy()[0, 5],
                                      _expected_frame(int(b["video"][0, 0, 0, 0, 0]), 5))
        seen += list(b["video"].numpy()[:, 0, 0, 0, 0])
    assert sorted(seen) == ids["train"][4:]
    test = list(p.dataset("eval", data_dir, hp, split="test", deterministic=True))
    assert sorted(test[0]["video"].numpy()[:, 0, 0, 0, 0]) == ids["test"]


def _expected_frame(video_id, frame):
    from conftest import fake_bair_frame
    return fake_bair_frame(video_id, frame)


def test_train_windows_are_random_4_frame_runs_within_0_12(tmp_path, fake_bair_raw):
    raw, _ = fake_bair_raw
    data_dir = str(tmp_path / "data")
    p = SmallBair()
    p.generate_data(data_dir, raw_data_dir=raw, log=None)
    hp = _hp(batch_size=8)
    it = iter(p.dataset("train", data_dir, hp, deterministic=True, seed=3))
    starts = []
    for _ in range(25):
        b = next(it)
        assert b["video"].shape == (8, 4, 64, 64, 3)
        assert b["inputs"].shape == (8, 3, 64, 64, 3) and b["targets"].shape == (8, 1, 64, 64, 3)
        green = b["video"].numpy()[:, :, 0, 0, 1].astype(int)
        np.testing.assert_array_equal(np.diff(green, axis=1), 1)   # consecutive frames
        starts += list(green[:, 0])
    # Starts are uniform over {0, ..., 9} (13 - 4 + 1 choices): all seen, none beyond.
    assert set(starts) == set(range(10))
    counts = np.bincount(starts, minlength=10)
    assert counts.min() >= 8, counts


def test_tfds_source_with_mock_data(tmp_path):
    data_dir = str(tmp_path / "data")
    p = SmallBair()
    with tfds.testing.mock_data(num_examples=7):
        summary = p.generate_data(data_dir, tfds_data_dir=str(tmp_path / "tfds"), log=None)
        builder = tfds.builder("bair_robot_pushing_small", data_dir=str(tmp_path / "tfds"))
        source = [ex["image_aux1"] for ex in
                  builder.as_dataset(split="train", shuffle_files=False).as_numpy_iterator()]
    assert summary["train"]["videos"] == 5 and summary["dev"]["videos"] == 2
    assert summary["test"]["videos"] == 7

    def frames_of(files):
        out = []
        for path in files:
            for record in iterate_records(path):
                out.append(tf.io.decode_png(parse_frame_record(record, path)[1]).numpy())
        return np.stack(out).reshape(-1, 30, 64, 64, 3)

    train = frames_of(p.data_files(data_dir, "train"))
    dev = frames_of(p.data_files(data_dir, "dev"))
    # Dev = the last 2 videos of TFDS's train order; train = the rest, in order.
    np.testing.assert_array_equal(train, np.stack(source[:5]))
    np.testing.assert_array_equal(dev, np.stack(source[5:]))
    assert len(frames_of(p.data_files(data_dir, "test"))) == 7


def test_tfds_not_prepared_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"not prepared in .*tfds_empty.*--raw_data_dir"):
        SmallBair().generate_data(str(tmp_path / "d"), tfds_data_dir=str(tmp_path / "tfds_empty"),
                                  log=None)
    assert not any(f.startswith("video_bair") for f in os.listdir(tmp_path / "d")) \
        if os.path.isdir(tmp_path / "d") else True


def test_raw_errors_name_the_file(tmp_path):
    # Wrong frame size inside a record.
    raw = str(tmp_path / "raw")
    write_fake_bair(raw, train_files=4, test_files=1, per_file=1, aux1_bytes=1000)
    with pytest.raises(DataError, match=r"traj_0000_to_0\.tfrecords record 0 frame 3: "
                                        r"image_aux1 has 1000 bytes, expected 12288"):
        SmallBair().generate_data(str(tmp_path / "d1"), raw_data_dir=raw, log=None)
    # Corrupt bytes (checksum) in the middle of a file.
    raw2 = str(tmp_path / "raw2")
    write_fake_bair(raw2, train_files=3, test_files=1, per_file=2)
    bad = os.path.join(raw2, "softmotion30_44k", "train", "traj_0000_to_1.tfrecords")
    blob = bytearray(open(bad, "rb").read())
    blob[len(blob) // 3] ^= 0xFF
    open(bad, "wb").write(bytes(blob))
    with pytest.raises(DataError, match=r"traj_0000_to_1\.tfrecords: corrupt or truncated"):
        SmallBair().generate_data(str(tmp_path / "d2"), raw_data_dir=raw2, log=None)
    assert not [f for f in os.listdir(tmp_path / "d2") if "train" in f]  # nothing half-written
    # Truncated file.
    with open(bad, "r+b") as f:
        f.truncate(len(blob) - 100)
    with pytest.raises(DataError, match=r"traj_0000_to_1\.tfrecords: record 1 .* truncated"):
        SmallBair().generate_data(str(tmp_path / "d3"), raw_data_dir=raw2, log=None)
    # Missing / empty raw dir.
    with pytest.raises(DataError, match="does not exist"):
        SmallBair().generate_data(str(tmp_path / "d4"), raw_data_dir=str(tmp_path / "nope"),
                                  log=None)
    os.makedirs(tmp_path / "empty" / "train")
    os.makedirs(tmp_path / "empty" / "test")
    with pytest.raises(DataError, match=r"empty[/\\]train is empty"):
        SmallBair().generate_data(str(tmp_path / "d5"), raw_data_dir=str(tmp_path / "empty"),
                                  log=None)


def test_not_a_bair_record(tmp_path):
    with pytest.raises(DataError, match=r"x\.tfrecords record 7: no '\{i\}/image_aux1"):
        from t2t_videoflow.problems.bair import parse_raw_bair_video
        ex = tf.train.Example(features=tf.train.Features(feature={
            "foo": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}))
        parse_raw_bair_video(ex.SerializeToString(), "x.tfrecords", 7)
    assert fake_bair_record(1, num_frames=2)  # the helper itself builds records


def test_set_that_does_not_fit(tmp_path):
    p = registry.problem("bair_action_free")
    hp = _hp(video_num_target_frames=28)
    with pytest.raises(ValueError, match=r"needs 3\+28 frames .* 30 frames per video"):
        p.check_hparams(hp)
    with pytest.raises(ValueError, match=r"num_train_frames=3 leaves no target frame"):
        p.check_hparams(_hp(num_train_frames=3))
    with pytest.raises(ValueError, match=r"for 32x32x3 frames but problem 'bair_action_free' "
                                         r"has 64x64x3"):
        registry.create_hparams("videoflow_shapes_cpu", problem_name="bair_action_free")


def test_per_replica_batches_split_the_files(tmp_path, fake_bair_raw):
    raw, _ = fake_bair_raw
    data_dir = str(tmp_path / "data")
    p = SmallBair()
    p.generate_data(data_dir, raw_data_dir=raw, log=None)
    hp = _hp(batch_size=4)
    ids = []
    for pipe in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipe,
                                         num_replicas_in_sync=2)
        b = list(p.dataset("eval", data_dir, hp, split="train", input_context=ctx,
                           deterministic=True))
        assert [x["video"].shape[0] for x in b] == [2]      # per-replica batch 4 / 2
        ids.append(set(b[0]["video"].numpy()[:, 0, 0, 0, 0]))
    assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == 4
    with pytest.raises(ValueError, match="divisible|evenly"):
        ctx = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=3)
        p.dataset("train", data_dir, hp, input_context=ctx)


def test_reads_t2t_written_shards_with_a_video_straddling_shards(tmp_path):
    """T2T's writer: frame_number/image/encoded/image/format (+state, action) only, and
    round-robin shards that can cut a video; a video cut inside frames 0-12 has no clip."""
    from conftest import fake_bair_frame

    def t2t_record(video_id, i):
        png = tf.io.encode_png(fake_bair_frame(video_id, i)).numpy()
        return tf.train.Example(features=tf.train.Features(feature={
            "frame_number": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
            "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
            "state": tf.train.Feature(float_list=tf.train.FloatList(value=[0.0, 0.0, 0.0])),
            "action": tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * 4)),
        })).SerializeToString()

    stream = [(v, i) for v in (1, 2, 3) for i in range(30)]
    cut = 30 + 10          # shard boundary after frame 9 of video 2
    for k, part in enumerate((stream[:cut], stream[cut:])):
        path = tmp_path / f"video_bair_robot_pushing-dev-{k:05d}-of-00002"
        with tf.io.TFRecordWriter(str(path)) as w:
            for v, i in part:
                w.write(t2t_record(v, i))
    p = registry.problem("video_bair_robot_pushing")
    hp = _hp(batch_size=1)
    clips = list(p.dataset("eval", str(tmp_path), hp, deterministic=True))
    got = [(int(c["video"][0, 0, 0, 0, 0]), list(c["video"].numpy()[0, :, 0, 0, 1]))
           for c in clips]
    assert got == [(1, list(range(13))), (3, list(range(13)))]
    assert pipeline.count_videos(p.data_files(str(tmp_path), "dev"), 13) == 2
