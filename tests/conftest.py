"""Shared test helpers: fake original-format BAIR TFRecords."""

import os

import numpy as np
import pytest
import tensorflow as tf


def fake_bair_frame(video_id, frame, size=64):
    """A frame whose red channel is the video id and green channel the frame number."""
    img = np.zeros((size, size, 3), np.uint8)
    img[..., 0] = video_id
    img[..., 1] = frame
    img[..., 2] = (np.arange(size)[:, None] + np.arange(size)[None, :] + frame) % 256
    return img


def fake_bair_record(video_id, num_frames=30, size=64, aux1_bytes=None):
    """One video in the original BAIR layout (raw RGB bytes per frame, 4 keys per frame)."""
    feature = {}
    for i in range(num_frames):
        data = fake_bair_frame(video_id, i, size).tobytes()
        if aux1_bytes is not None and i == 3:
            data = data[:aux1_bytes]
        feature[f"{i}/image_aux1/encoded"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[data]))
        feature[f"{i}/image_main/encoded"] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[bytes(size * size * 3)]))
        feature[f"{i}/action"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=[video_id, i, 0.5, -0.5]))
        feature[f"{i}/endeffector_pos"] = tf.train.Feature(
            float_list=tf.train.FloatList(value=[i, 1.0, 2.0]))
    return tf.train.Example(
        features=tf.train.Features(feature=feature)).SerializeToString()


def write_fake_bair(root, train_files=4, test_files=1, per_file=2, **record_kwargs):
    """Writes `root/softmotion30_44k/{train,test}/traj_*.tfrecords`; returns video ids."""
    ids = {"train": [], "test": []}
    next_id = 1
    for split, n_files in (("train", train_files), ("test", test_files)):
        d = os.path.join(root, "softmotion30_44k", split)
        os.makedirs(d, exist_ok=True)
        for f in range(n_files):
            path = os.path.join(d, f"traj_{f * per_file:04d}_to_{f * per_file + per_file - 1}"
                                   ".tfrecords")
            with tf.io.TFRecordWriter(path) as w:
                for _ in range(per_file):
                    w.write(fake_bair_record(next_id, **record_kwargs))
                    ids[split].append(next_id)
                    next_id += 1
    return ids


@pytest.fixture
def fake_bair_raw(tmp_path):
    """Raw BAIR dir with 4 train files (x2 videos) and 1 test file (x2 videos)."""
    root = tmp_path / "bair_raw"
    ids = write_fake_bair(str(root))
    return str(root), ids


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """The `stochastic_shapes_tiny` shards, generated once per test session and shared
    (read-only) by every test that needs them; tests that damage data copy them."""
    from t2t_videoflow.data.generate import generate_data
    path = str(tmp_path_factory.mktemp("tiny_data"))
    generate_data("stochastic_shapes_tiny", path, log=lambda _: None)
    return path


# Slow tests in modules owned elsewhere (marked here so those files need no edit); the
# test below fails if a name goes stale. Tests in other modules carry
# `@pytest.mark.slow` themselves.
SLOW_ELSEWHERE = (
    "tests/test_model.py::test_paper_config_one_loss_and_gradient_on_cpu",
    "tests/test_model_xla.py::test_xla_bits_per_pixel_and_sampling_match_eager",
    "tests/test_multiscale_flow.py::test_paper_size_shapes_and_invertibility",
    "tests/test_multiscale_flow.py::test_tf_function_and_xla_match_eager[True]",
    "tests/test_recompute.py::test_mirrored_strategy_two_replicas",
    "tests/test_recompute.py::test_flow_gradients_under_xla",
)


def pytest_collection_modifyitems(config, items):
    """Adds the `slow` marker to the tests named in `SLOW_ELSEWHERE` (a name without
    `[params]` marks every parametrisation)."""
    for item in items:
        if item.nodeid in SLOW_ELSEWHERE or item.nodeid.split("[")[0] in SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)
