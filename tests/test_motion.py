"""Motion diagnostic: shapes found, intact / still / coherent / incoherent on constructed
clips, the report, and the `t2t-videoflow-motion` CLI on a tiny run."""

import collections
import json
import os

import numpy as np
import pytest

from t2t_videoflow.evaluation import motion
from t2t_videoflow.cli import motion as motion_main
from t2t_videoflow.training import restore
from t2t_videoflow.problems.stochastic_shapes import (COLOURS, DIRECTIONS, PX_PER_UNIT_64,
                                                      SHAPES, render_video)

from inference_testing import PROBLEM, make_run_dir, run_cli

BLUE, RED = (0, 0, 255), (255, 0, 0)


def square_frame(size, top, left, side, colour=BLUE):
    """uint8 [size, size, 3]: a `side`-pixel square of `colour` at (top, left), clipped."""
    frame = np.zeros((size, size, 3), np.uint8)
    frame[max(top, 0):max(top + side, 0), max(left, 0):max(left + side, 0)] = colour
    return frame


def one_sample(frames):
    """A clip [T, H, W, 3] -> (context [1, 1, ...], samples [1, 1, T-1, ...])."""
    frames = np.asarray(frames, np.uint8)
    return frames[np.newaxis, :1], frames[np.newaxis, np.newaxis, 1:]


def classify_one(frames, **kwargs):
    classes = motion.classify_samples(*one_sample(frames), **kwargs)
    return classes, str(classes.motion[0, 0]), bool(classes.intact[0, 0])


def rendered_grid(frame_size, num_frames, sizes):
    """Every direction x colour x shape x size, rendered; returns (videos, metadata)."""
    videos, meta = [], []
    for d in range(len(DIRECTIONS)):
        for c in range(len(COLOURS)):
            for s in range(len(SHAPES)):
                for size in sizes:
                    videos.append(render_video(frame_size, num_frames, d, c, s, size))
                    meta.append((d, c, s, size))
    return np.stack(videos), meta


# -- finding the shape ----------------------------------------------------------------

def test_find_shape_measures_a_square():
    frame = square_frame(32, top=4, left=10, side=6, colour=(0, 191, 191))
    shape = motion.find_shape(frame)
    assert shape.area == 36 and shape.clutter == 0
    assert shape.centroid == (7.0, 13.0)                  # pixel centres: index + 0.5
    assert shape.bbox == (4, 10, 10, 16)
    np.testing.assert_allclose(shape.colour, (0, 191, 191))
    assert motion.find_shape(np.zeros((32, 32, 3), np.uint8)) is None
    # Below the threshold (64) is background; one pixel is under min_area (2 at 32x32).
    assert motion.find_shape(np.full((32, 32, 3), 64, np.uint8)) is None
    dot = np.zeros((32, 32, 3), np.uint8)
    dot[3, 3] = 255
    assert motion.find_shape(dot) is None
    assert motion.find_shape(dot, min_area=1).area == 1
    with pytest.raises(ValueError, match="uint8"):
        motion.find_shape(frame.astype(np.float32))


def test_largest_component_and_clutter():
    frame = square_frame(32, 2, 2, 3, RED)                # 9 pixels
    frame[20:24, 20:24] = BLUE                            # 16 pixels: the shape
    frame[30, 0] = RED                                    # 1 pixel of clutter
    frame[24, 24] = BLUE                                  # diagonal neighbour: 8-connected
    shape = motion.find_shape(frame)
    assert shape.area == 17 and shape.clutter == 10
    np.testing.assert_allclose(shape.colour, BLUE)
    # A tie goes to the component first in raster order.
    tie = square_frame(16, 9, 9, 2, BLUE)
    tie[1:3, 1:3] = RED
    np.testing.assert_allclose(motion.find_shape(tie).colour, RED)


def _components_by_search(mask):
    """Largest 8-connected component of one [H, W] mask by breadth-first search."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    best = np.zeros_like(mask)
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        component, queue = [start], collections.deque([start])
        seen[start] = True
        while queue:
            i, j = queue.popleft()
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    a, b = i + di, j + dj
                    if 0 <= a < h and 0 <= b < w and mask[a, b] and not seen[a, b]:
                        seen[a, b] = True
                        component.append((a, b))
                        queue.append((a, b))
        if len(component) > best.sum():
            best[:] = False
            best[tuple(np.array(component).T)] = True
    return best


def test_components_match_breadth_first_search():
    rng = np.random.RandomState(0)
    masks = rng.rand(40, 12, 17) < np.linspace(0.1, 0.7, 40)[:, None, None]
    got = motion._largest_components(masks, chunk=7)
    for mask, mine in zip(masks, got):
        np.testing.assert_array_equal(mine, _components_by_search(mask))


# -- classifying samples ----------------------------------------------------------------

@pytest.mark.parametrize("frame_size", [16, 32, 64])
def test_rendered_videos_are_intact_coherent_in_their_direction(frame_size):
    """All 8 directions x 6 colours x 3 shapes x sizes 0.5..1.5, 3 frames (the problem's
    context + 2 targets): every one intact, coherent, at the data's speed, in its own
    direction."""
    videos, meta = rendered_grid(frame_size, 3, np.linspace(0.5, 1.5, 6))
    classes = motion.classify_samples(videos[:, :1], videos[:, np.newaxis, 1:])
    directions = np.array([m[0] for m in meta])
    assert set(classes.motion[:, 0]) == {"coherent"}
    assert classes.intact.all()
    np.testing.assert_array_equal(classes.direction[:, 0], directions)
    np.testing.assert_allclose(classes.speed[:, 0], 1.0, atol=0.3)
    expected = np.array(DIRECTIONS, np.float64)[directions]
    error = classes.displacement[:, 0] - expected[:, np.newaxis]
    assert np.abs(error).max() < 0.45                    # in steps, per frame
    np.testing.assert_array_equal(classes.colour_distance, 0.0)

    report = motion.summarize(classes)
    assert report["counts"]["intact_coherent"] == len(videos)
    assert set(report["direction_histogram"].values()) == {len(videos) // 8}
    assert report["uniformity"] == {"represented": 8, "normalised_entropy": 1.0,
                                    "min_max_ratio": 1.0}


@pytest.mark.parametrize("frame_size", [32, 64])
def test_two_frame_contexts_give_the_direction_that_samples_should_follow(frame_size):
    """Context = frames 0-1 of rendered videos: the context's own direction is found,
    the real continuations all follow it, reversed or turned continuations are coherent
    but do not, and a one-frame context has no direction to follow."""
    videos, meta = rendered_grid(frame_size, 4, [0.8, 1.3])
    directions = np.array([m[0] for m in meta])
    context, truth = videos[:, :2], videos[:, np.newaxis, 2:]
    classes = motion.classify_samples(context, truth)
    np.testing.assert_array_equal(classes.context_direction, directions)
    report = motion.summarize(classes)
    assert report["counts"]["context_with_step"] == len(videos)
    assert report["counts"]["intact_coherent_follows_context"] == len(videos)
    assert report["share_following_context"] == 1.0
    assert "continue the context's direction (intact, coherent): " \
        f"{len(videos)} of {len(videos)} (100.0%)" in motion.format_report(report)

    # Each clip's frame 0 shows the shape at the centre: sampling "frame 0 again, then
    # frame 0 moved the other way" after a context that went one way is a reversal.
    opposite = [DIRECTIONS.index((-dx, -dy)) for dx, dy in DIRECTIONS]
    reversed_videos = np.stack([render_video(frame_size, 4, opposite[d], c, s, size)
                                for d, c, s, size in meta])
    back = np.concatenate([videos[:, :1], reversed_videos[:, 1:2]], axis=1)
    classes = motion.classify_samples(context, back[:, np.newaxis])
    assert set(classes.motion[:, 0]) == {"coherent"} and classes.intact.all()
    np.testing.assert_array_equal(classes.direction[:, 0], np.array(opposite)[directions])
    report = motion.summarize(classes)
    assert report["counts"]["intact_coherent_follows_context"] == 0
    assert report["share_following_context"] == 0.0

    # Two samples per clip, one following and one standing still: half follow.
    still = np.repeat(videos[:, 1:2], 2, axis=1)
    both = np.stack([videos[:, 2:], still], axis=1)
    report = motion.analyze_samples(context, both)
    assert report["counts"]["context_with_step"] == 2 * len(videos)
    assert report["share_following_context"] == 0.5

    one_frame = motion.summarize(motion.classify_samples(videos[:, 1:2], truth))
    assert (one_frame["counts"]["context_with_step"], one_frame["share_following_context"]) \
        == (0, None)
    assert "continue the context" not in motion.format_report(one_frame)


@pytest.mark.parametrize("frame_size", [32, 64])
def test_five_frame_videos_leaving_the_frame(frame_size):
    """Frames 3-4 clip the shape at the border: a sample either lost its shape (it left
    the frame) or is coherent in its direction; those still whole are intact."""
    videos, meta = rendered_grid(frame_size, 5, (0.5, 1.0, 1.5))
    classes = motion.classify_samples(videos[:, :1], videos[:, np.newaxis, 1:])
    kind, directions = classes.motion[:, 0], np.array([m[0] for m in meta])
    coherent = kind == "coherent"
    assert set(kind) <= {"coherent", "no_shape"}
    np.testing.assert_array_equal(classes.direction[coherent, 0], directions[coherent])
    assert coherent.mean() > 0.9
    assert classes.intact[coherent, 0].mean() > 0.95


def test_direction_convention_y_points_up():
    """A hand-drawn square moving up the image (smaller rows) goes (0, 1)."""
    step = PX_PER_UNIT_64 * 32 / 64                      # 4.09 px
    assert motion.step_pixels(32) == pytest.approx(step)
    up = [square_frame(32, 14 - 4 * k, 14, 4) for k in range(3)]
    right_down = [square_frame(32, 8 + 4 * k, 8 + 4 * k, 4) for k in range(3)]
    for frames, direction in ((up, (0, 1)), (right_down, (1, -1))):
        classes, kind, intact = classify_one(frames)
        assert (kind, intact) == ("coherent", True)
        assert DIRECTIONS[classes.direction[0, 0]] == direction


def test_still_shape():
    frames = [square_frame(32, 12, 12, 6)] * 3
    classes, kind, intact = classify_one(frames)
    assert (kind, intact) == ("still", True)
    assert classes.direction[0, 0] == -1 and np.isnan(classes.speed[0, 0])
    # Jitter below 0.3 steps (1.2 px at 32x32) is still; one full step is not.
    jitter = [square_frame(32, 12, 12, 6), square_frame(32, 13, 12, 6),
              square_frame(32, 13, 13, 6)]
    assert classify_one(jitter)[1] == "still"


def test_colour_change_or_shrinking_is_not_intact():
    moving = [square_frame(32, 14, 4 + 4 * k, 6) for k in range(3)]
    assert classify_one(moving)[1:] == ("coherent", True)
    recoloured = moving[:2] + [square_frame(32, 14, 12, 6, colour=(0, 191, 191))]
    assert classify_one(recoloured)[1:] == ("coherent", False)
    # Dimming keeps the hue, so it is not a colour change.
    dimmed = moving[:2] + [square_frame(32, 14, 12, 6, colour=(0, 0, 160))]
    assert classify_one(dimmed)[1:] == ("coherent", True)
    shrunk = moving[:2] + [square_frame(32, 16, 14, 2)]   # 36 -> 4 pixels
    classes, kind, intact = classify_one(shrunk)
    assert not intact and classes.area_ratio[0, 0, 1] == pytest.approx(4 / 36)
    grown = moving[:2] + [square_frame(32, 10, 8, 12)]    # 36 -> 144 pixels
    assert not classify_one(grown)[2]
    ghost = moving[:2] + [moving[2] | square_frame(32, 0, 24, 5, RED)]
    classes, _, intact = classify_one(ghost)              # a second shape: clutter 25
    assert not intact and classes.clutter[0, 0, 1] == 25
    assert classes.colour_distance[0, 0, 1] == 0 and classes.area_ratio[0, 0, 1] == 1


def test_noise_blobs_and_black_frames():
    rng = np.random.RandomState(3)
    start = square_frame(32, 12, 12, 6)
    black = np.zeros_like(start)
    noise = rng.randint(0, 256, start.shape).astype(np.uint8)
    blobs = np.zeros_like(start)
    for _ in range(12):
        i, j = rng.randint(0, 30, 2)
        blobs[i:i + 2, j:j + 2] = rng.randint(0, 256, 3)
    for frames, kind in (([start, black, black], "no_shape"),
                         ([start, start, black], "no_shape"),
                         ([start, noise, noise], None),
                         ([start, blobs, blobs], None)):
        classes, got, intact = classify_one(frames)
        assert not intact, got
        if kind is not None:
            assert got == kind and np.isnan(classes.displacement).all()
    # A black context: no reference, nothing else analysed.
    classes, kind, intact = classify_one([black, start, start])
    assert (kind, intact) == ("no_reference", False)


def test_changing_direction_or_speed_is_incoherent():
    a_then_b = [square_frame(32, 14, 14, 6), square_frame(32, 14, 18, 6),
                square_frame(32, 10, 18, 6)]              # right, then up
    classes, kind, intact = classify_one(a_then_b)
    assert (kind, intact) == ("incoherent", True)
    assert DIRECTIONS[classes.direction[0, 0]] == (1, 1)  # mean displacement
    half = [square_frame(32, 14, 14 + 2 * k, 6) for k in range(3)]
    double = [square_frame(32, 14, 6 + 8 * k, 6) for k in range(3)]
    there_and_back = [square_frame(32, 14, 14, 6), square_frame(32, 14, 18, 6),
                      square_frame(32, 14, 14, 6)]
    for frames in (half, double, there_and_back):
        assert classify_one(frames)[1] == "incoherent"


def test_shape_clipped_at_the_border_keeps_its_step():
    """Edge-anchored positions: a square sliding out of the left edge moves 1 step."""
    frames = [square_frame(32, 12, 8 - 4 * k, 8) for k in range(4)]   # last: 4 px wide
    classes, kind, intact = classify_one(frames)
    assert (kind, intact) == ("coherent", True)
    np.testing.assert_allclose(classes.displacement[0, 0], [[-4 / 4.089, 0]] * 3,
                               atol=0.01)
    np.testing.assert_allclose(classes.area_ratio[0, 0], 1.0)


def test_argument_checks():
    context, samples = one_sample([square_frame(16, 4, 4, 4)] * 2)
    with pytest.raises(ValueError, match="samples must have 6 dimensions"):
        motion.classify_samples(context, samples[0])
    with pytest.raises(ValueError, match="must follow context"):
        motion.classify_samples(context, samples[:, :, :, :8])
    with pytest.raises(ValueError, match="area_ratio"):
        motion.classify_samples(context, samples, area_ratio=(1.5, 2.0))
    with pytest.raises(ValueError, match="still_tolerance"):
        motion.classify_samples(context, samples, still_tolerance=0.6)


# -- the report ---------------------------------------------------------------------

def test_report_counts_histograms_json_and_table():
    """3 clips x 4 samples: coherent in 3 directions, still, incoherent, no shape."""
    start = square_frame(32, 13, 13, 6)
    clips = {
        "right": [square_frame(32, 13, 13 + 4 * k, 6) for k in range(1, 3)],
        "up": [square_frame(32, 13 - 4 * k, 13, 6) for k in range(1, 3)],
        "up_red": [square_frame(32, 13 - 4 * k, 13, 6, RED) for k in range(1, 3)],
        "still": [start, start],
        "zigzag": [square_frame(32, 13, 17, 6), square_frame(32, 9, 17, 6)],
        "gone": [start, np.zeros_like(start)],
    }
    order = [["right", "up", "still", "gone"], ["up_red", "zigzag", "right", "still"],
             ["right", "right", "up", "zigzag"]]
    samples = np.array([[clips[name] for name in row] for row in order], np.uint8)
    context = np.repeat(start[np.newaxis, np.newaxis], 3, axis=0)
    report = motion.analyze_samples(context, samples)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    counts = report["counts"]
    assert counts == {"still": 2, "coherent": 7, "incoherent": 2, "no_shape": 1,
                      "no_reference": 0, "intact": 10, "intact_still": 2,
                      "intact_coherent": 6, "intact_incoherent": 2,
                      # one-frame contexts: no direction to follow
                      "context_with_step": 0, "intact_coherent_follows_context": 0}
    assert report["share_following_context"] is None
    assert sum(counts[name] for name in motion.MOTION_CLASSES) == report["samples"] == 12
    assert report["shares"]["coherent"] == pytest.approx(7 / 12)
    assert list(report["direction_histogram"]) == list(motion.DIRECTION_NAMES)
    hist = report["direction_histogram"]
    assert (hist["(1, 0)"], hist["(0, 1)"], sum(hist.values())) == (4, 2, 6)
    moving = report["direction_histogram_moving"]
    assert (moving["(1, 0)"], moving["(0, 1)"], moving["(1, 1)"]) == (4, 3, 2)
    assert sum(moving.values()) == counts["coherent"] + counts["incoherent"]
    assert report["uniformity"]["represented"] == 2
    assert report["uniformity"]["min_max_ratio"] == 0.0
    assert 0 < report["uniformity"]["normalised_entropy"] < 1
    assert report["mean_area_context"] == [36.0]
    assert report["mean_area_samples"] == [36.0, 33.0]   # one sample lost its shape
    assert report["settings"]["area_ratio"] == [0.5, 2.0]

    table = motion.format_report(report, title="samples:")
    assert table.startswith("samples:\n")
    lines = {line[2:26].strip(): line[26:].split() for line in table.splitlines()[3:9]}
    assert lines == {
        "intact (area, colour)": ["10", "83.3%", "10", "83.3%"],
        "coherent motion": ["7", "58.3%", "6", "50.0%"],
        "still": ["2", "16.7%", "2", "16.7%"],
        "moving, incoherent": ["2", "16.7%", "2", "16.7%"],
        "no shape in a frame": ["1", "8.3%"],
        "no shape in context": ["0", "0.0%"]}, table
    for text in ("12 samples (3 clips x 4)", "all samples", "intact samples",
                 "(1, 0) 4", "2/8 directions", "context 36.0 | samples 36.0 33.0"):
        assert text in table, (text, table)


def test_empty_histogram_uniformity():
    assert motion.uniformity(dict.fromkeys(motion.DIRECTION_NAMES, 0)) == {
        "represented": 0, "normalised_entropy": None, "min_max_ratio": None}


# -- the CLI --------------------------------------------------------------------------

def test_motion_cli_on_a_tiny_run(tmp_path, capsys, tiny_data_dir):
    output_dir, data_dir = str(tmp_path / "run"), tiny_data_dir
    make_run_dir(output_dir)
    results_file = str(tmp_path / "out" / "motion.json")
    code = run_cli(motion_main, [f"--output_dir={output_dir}", f"--data_dir={data_dir}",
                                 "--num_clips=3", "--num_samples=2", "--batch=2",
                                 "--temperatures=0.5,1", f"--results_file={results_file}"])
    stdout = capsys.readouterr().out
    assert code == 0
    with open(results_file) as f:
        results = json.load(f)
    assert set(results) == {"run", "settings", "data", "samples", "background"}
    assert results["run"]["step"] == 7 and results["run"]["problem"] == PROBLEM
    assert results["settings"]["temperatures"] == [0.5, 1.0]
    data = results["data"]["motion"]
    assert (data["clips"], data["samples_per_clip"], data["frames"]) == (3, 1, 2)
    assert data["shares"]["intact_coherent"] == 1.0       # the real clips
    assert len(results["data"]["bpp_per_frame"]) == 2
    assert [row["temperature"] for row in results["samples"]] == [0.5, 1.0]
    for row in results["samples"]:
        assert row["motion"]["samples"] == 6
        assert len(row["bpp_per_frame"]) == 2 and row["bpp"] > 0
        assert row["bpp_minus_data"] == pytest.approx(row["bpp"] - results["data"]["bpp"])
    assert "temperature 1: 2/3 clips sampled" in stdout
    assert "temperature 1: 3/3 clips sampled" in stdout
    assert "real clips (dev):" in stdout and "samples at temperature 0.5:" in stdout
    assert "bits per pixel of the model's own samples" in stdout
    assert f"wrote {results_file}" in stdout
    background = results["background"]
    assert background["gaussian_floor_bits"] == pytest.approx(0.25461433, abs=1e-7)
    assert 0.5 < background["black_share"] < 1.0       # small shapes on black
    assert background["data_floor_bpp"] == pytest.approx(
        background["black_share"] * background["gaussian_floor_bits"])
    assert len(background["bpp_per_frame"]) == 2 and background["bpp"] > 0
    # The row is the model's bpp of all-black clips, scored as the data is.
    run = restore.restore_for_inference(output_dir)
    empty = np.zeros((3, 3, 16, 16, 3), np.uint8)
    expected = motion_main.score_clips(run.model, empty, 1, 0, 2).mean(axis=0)
    np.testing.assert_allclose(background["bpp_per_frame"], expected, rtol=1e-6)
    assert "bits per pixel of an empty (all-black) clip: " in stdout

    # Defaults: OUTPUT_DIR/motion.json; this tool's own --num_samples default of 8.
    assert run_cli(motion_main, [f"--output_dir={output_dir}", f"--data_dir={data_dir}",
                                 "--num_clips=1", "--num_target_frames=1"]) == 0
    with open(os.path.join(output_dir, "motion.json")) as f:
        results = json.load(f)
    assert results["settings"]["num_samples"] == 8
    assert results["settings"]["temperatures"] == [1.0]   # the set's, which is 1.0
    assert results["samples"][0]["motion"]["frames"] == 1
    capsys.readouterr()

    # Per-level temperatures: level 0 at its prior mean, noise only in the top latent.
    assert run_cli(motion_main, [f"--output_dir={output_dir}", f"--data_dir={data_dir}",
                                 "--num_clips=1", "--num_samples=2", "--num_target_frames=1",
                                 "--temperatures=0/1", f"--results_file={results_file}"]) == 0
    with open(results_file) as f:
        results = json.load(f)
    assert results["settings"]["temperatures"] == [[0.0, 1.0]]
    assert results["samples"][0]["temperature"] == [0.0, 1.0]
    assert results["samples"][0]["motion"]["samples"] == 2
    assert "samples at temperature 0/1:" in capsys.readouterr().out

    cases = [
        (["--num_clips=0"], "--num_clips must be >= 1; got 0."),
        (["--num_samples=-2"], "--num_samples must be >= 1"),
        (["--batch=0"], "--batch must be >= 1"),
        (["--temperatures=1,-0.5"], "every temperature must be a finite number >= 0; "
                                    "got '-0.5'."),
        (["--temperatures=hot"], "--temperatures: 'hot' is not a number"),
        (["--temperatures=0/-1"], "every temperature must be a finite number >= 0; "
                                  "got '0/-1'."),
        (["--temperatures=1,1.0"], "--temperatures: 1 is given twice."),
        (["--temperatures=1,1/1/1"], "entry 1/1/1 has 3 values; this model has 2 flow "
                                     "levels"),
        (["--num_target_frames=0"], "--num_target_frames must be >= 1"),
        (["--num_clips=50"], "has only 21 clip(s)"),
        ([f"--output_dir={tmp_path / 'missing'}"], "does not exist"),
        ([f"--data_dir={tmp_path / 'nodata'}"], "does not exist"),
        (["--data_dir="], "--data_dir is required"),
    ]
    for extra, expected in cases:
        argv = [f"--output_dir={output_dir}", f"--data_dir={data_dir}", *extra]
        assert run_cli(motion_main, argv) == 1, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("t2t-videoflow-motion: error: "), err
        assert expected in err and "\n" not in err, (expected, err)


def test_console_script_is_declared():
    setup_py = os.path.join(os.path.dirname(__file__), os.pardir, "setup.py")
    with open(setup_py) as f:
        assert '"t2t-videoflow-motion = t2t_videoflow.cli.motion:run_main"' in f.read()
