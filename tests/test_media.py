"""media: GIF and PNG writing, grids, and reading user frames with clear errors."""

import os

import numpy as np
import pytest
from PIL import Image

from t2t_videoflow.data import media
from t2t_videoflow.data.media import MediaError

SHAPE = (16, 12, 3)


def _solid_clip(n, shape=SHAPE):
    """Frames of one distinct colour each (exact through a GIF palette)."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255),
               (255, 0, 255), (10, 20, 30)]
    return np.stack([np.broadcast_to(np.array(colours[i], np.uint8), shape)
                     for i in range(n)]).copy()


def test_gif_has_every_frame_at_size_and_loops(tmp_path):
    frames = _solid_clip(5)
    path = media.write_gif(str(tmp_path / "sub" / "a.gif"), frames, fps=5)
    with Image.open(path) as image:
        assert image.format == "GIF" and image.size == (12, 16)
        assert image.n_frames == 5 and image.info["loop"] == 0
        assert image.info["duration"] == 200
        for i in range(5):
            image.seek(i)
            np.testing.assert_array_equal(np.asarray(image.convert("RGB")), frames[i])
    assert os.listdir(tmp_path / "sub") == ["a.gif"]          # no temporary left


def test_gif_rejects_bad_frames(tmp_path):
    with pytest.raises(MediaError, match="must be uint8"):
        media.write_gif(str(tmp_path / "a.gif"), _solid_clip(2).astype(np.float32))
    with pytest.raises(MediaError, match=r"\[time >= 1, height, width, 3\]"):
        media.write_gif(str(tmp_path / "a.gif"), _solid_clip(2)[..., :2])
    with pytest.raises(MediaError, match="fps must be > 0"):
        media.write_gif(str(tmp_path / "a.gif"), _solid_clip(2), fps=0)
    assert not os.listdir(tmp_path)


def test_png_round_trip(tmp_path):
    image = np.random.RandomState(0).randint(0, 256, (7, 9, 3)).astype(np.uint8)
    path = media.write_png(str(tmp_path / "x.png"), image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    with pytest.raises(MediaError, match="uint8"):
        media.write_png(str(tmp_path / "y.png"), image[..., 0])


def test_grid_rows_are_context_truth_sample():
    rng = np.random.RandomState(1)
    context = rng.randint(0, 256, (2, *SHAPE)).astype(np.uint8)
    truth = rng.randint(0, 256, (3, *SHAPE)).astype(np.uint8)
    samples = rng.randint(0, 256, (4, 5, *SHAPE)).astype(np.uint8)
    grid = media.make_grid(context, truth, samples)
    h, w = SHAPE[:2]
    gap = media.GROUP_GAP
    assert grid.shape == (4 * h, media.grid_width(2, 3, 5, w), 3)
    assert grid.shape[1] == 10 * w + 2 * gap
    for j in range(4):
        row = grid[j * h:(j + 1) * h]
        np.testing.assert_array_equal(row[:, :2 * w],
                                      np.concatenate(list(context), axis=1))
        np.testing.assert_array_equal(row[:, 2 * w:2 * w + gap], 255)
        np.testing.assert_array_equal(row[:, 2 * w + gap:5 * w + gap],
                                      np.concatenate(list(truth), axis=1))
        np.testing.assert_array_equal(row[:, 5 * w + 2 * gap:],
                                      np.concatenate(list(samples[j]), axis=1))
    no_truth = media.make_grid(context, None, samples)
    assert no_truth.shape == (4 * h, 7 * w + gap, 3) == (
        4 * h, media.grid_width(2, 0, 5, w), 3)
    with pytest.raises(MediaError, match="samples are 8x12 but the context is 16x12"):
        media.make_grid(context, truth, samples[:, :, :8])


def test_read_png_folder_in_name_order(tmp_path):
    frames = _solid_clip(3)
    for i, name in enumerate(["b.png", "c.png", "a.png"]):
        Image.fromarray(frames[i]).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    clips = media.read_frames(str(tmp_path), SHAPE, min_frames=2)
    assert clips.shape == (1, 3, *SHAPE) and clips.dtype == np.uint8
    np.testing.assert_array_equal(clips[0], frames[[2, 0, 1]])


def test_read_grayscale_png_is_converted(tmp_path):
    Image.fromarray(np.full(SHAPE[:2], 77, np.uint8)).save(tmp_path / "g.png")
    clips = media.read_frames(str(tmp_path), SHAPE)
    np.testing.assert_array_equal(clips, 77)


def test_read_npy_one_clip_or_many(tmp_path):
    one, many = _solid_clip(4), np.stack([_solid_clip(4)] * 2)
    np.save(tmp_path / "one.npy", one)
    np.save(tmp_path / "many.npy", many)
    np.testing.assert_array_equal(media.read_frames(str(tmp_path / "one.npy"), SHAPE),
                                  one[None])
    np.testing.assert_array_equal(media.read_frames(str(tmp_path / "many.npy"), SHAPE),
                                  many)


def test_read_frames_errors(tmp_path):
    def error(path, min_frames=1):
        with pytest.raises(MediaError) as info:
            media.read_frames(str(path), SHAPE, min_frames=min_frames)
        return str(info.value)

    assert "not found" in error(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no .png files" in error(empty)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    Image.fromarray(_solid_clip(1, (8, 8, 3))[0]).save(wrong / "0.png")
    assert "0.png is 8x8x3 but the model takes 16x12x3 frames" in error(wrong)
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    Image.fromarray(np.zeros((*SHAPE[:2], 4), np.uint8)).save(rgba / "0.png")
    assert "mode 'RGBA' is not RGB" in error(rgba)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"not a png")
    assert "not a readable image" in error(broken)
    np.save(tmp_path / "float.npy", _solid_clip(2).astype(np.float32))
    assert "must be uint8" in error(tmp_path / "float.npy")
    np.save(tmp_path / "shape.npy", _solid_clip(2)[:, :8])
    assert "[time, 16, 12, 3] or [clips, time, 16, 12, 3]; got (2, 8, 12, 3)" in error(
        tmp_path / "shape.npy")
    np.save(tmp_path / "short.npy", _solid_clip(2))
    assert "2 frame(s) per clip, but the model needs at least 3" in error(
        tmp_path / "short.npy", min_frames=3)
    (tmp_path / "clip.mp4").write_bytes(b"")
    assert "expected a folder of PNGs or a .npy" in error(tmp_path / "clip.mp4")
