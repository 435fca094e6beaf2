"""Stochastic shapes (T2T `video_generated.py`, `video_stochastic_shapes10k`), in numpy.

Each video shows one shape (circle, square or triangle; one of 6 colours; size
`s ~ U(0.5, 1.5)` axis units) on black, starting at the centre (5, 5) of a
[0, 10] x [0, 10] axis box and moving 1 axis unit per frame in one of 8 directions
(the 8-neighbourhood, so diagonals move (1, 1)). 5 frames per video, 10,000 videos;
T2T's round-robin sharding gives dev (1 shard) 909 videos and train (10 shards) 9,091.

Geometry follows T2T's matplotlib figure: the axes box extends ~8.89 px beyond each
edge of a 64-px frame, so one axis unit is 81.78/10 = 8.178 px and data (5, 5) is
the frame centre; y points up. Smaller frames scale all of this by `size / 64`.

What differs from T2T's matplotlib rendering:
  * Circles and triangles are anti-aliased by 4x4 supersampling (exact area
    coverage up to 1/16), not by Agg's scanline coverage, so edge colours differ by
    a few grey levels. Squares are pixel-snapped to two colours as matplotlib does,
    with their edges rounded to the nearest pixel boundary (Agg's snapping rule may
    differ by one pixel).
  * Colours are matplotlib's letters b, g, r, c, m, y converted with round(255 * v).
  * The per-video draws use their own `numpy.random.RandomState(seed)` in T2T's
    order (direction index in [0, 8), colour, shape type, size), not numpy's global
    RNG after T2T's other seeding; so the same seed gives the same *distribution*,
    not T2T's exact videos (the pixels would differ anyway).
"""

import time

import numpy as np

from t2t_videoflow.config import registry
from t2t_videoflow.data.records import ShardSetWriter, video_examples
from t2t_videoflow.problems.base import VideoProblem

# T2T's direction list, indexed by the drawn integer (docs/t2t.md, Stochastic shapes).
DIRECTIONS = ((1, 1), (1, 0), (1, -1), (0, 1), (0, -1), (-1, 1), (-1, 0), (-1, -1))
# matplotlib colour letters b, g, r, c, m, y.
COLOURS = ((0.0, 0.0, 1.0), (0.0, 0.5, 0.0), (1.0, 0.0, 0.0),
           (0.0, 0.75, 0.75), (0.75, 0.0, 0.75), (0.75, 0.75, 0.0))
SHAPES = ("circle", "square", "triangle")
PX_PER_UNIT_64 = (64.0 + 2 * 8.89) / 10.0   # 8.178 px per axis unit at 64x64
SUPERSAMPLE = 4


def draw_video_params(num_videos, seed):
    """Per-video random draws, in T2T's order. Returns a dict of arrays."""
    rng = np.random.RandomState(seed)
    out = {"direction": np.empty(num_videos, np.int64), "colour": np.empty(num_videos, np.int64),
           "shape": np.empty(num_videos, np.int64), "size": np.empty(num_videos, np.float64)}
    for i in range(num_videos):
        out["direction"][i] = rng.randint(len(DIRECTIONS))
        out["colour"][i] = rng.randint(len(COLOURS))
        out["shape"][i] = rng.randint(len(SHAPES))
        out["size"][i] = rng.uniform(0.5, 1.5)
    return out


def render_frame(frame_size, shape, colour, size, centre):
    """One uint8 [S, S, 3] frame: `shape` of half-size `size` at axis point `centre`."""
    s_px = frame_size
    unit = PX_PER_UNIT_64 * s_px / 64.0
    cx, cy = centre
    frame = np.zeros((s_px, s_px, 3), np.uint8)
    rgb = np.round(np.asarray(colour) * 255.0)
    # Axis -> pixel coordinates (continuous; pixel (i, j) covers [j, j+1] x [i, i+1]).
    px = s_px / 2.0 + (cx - 5.0) * unit
    py = s_px / 2.0 - (cy - 5.0) * unit
    r = size * unit
    if shape == "square":
        left, right = int(round(px - r)), int(round(px + r))
        top, bottom = int(round(py - r)), int(round(py + r))
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, s_px), min(bottom, s_px)
        if left < right and top < bottom:
            frame[top:bottom, left:right] = rgb.astype(np.uint8)
        return frame
    if shape == "triangle":
        # Vertices (x-s, y-s), (x, y-s+sqrt3 s), (x+s, y-s) in axis units; y up.
        y_top, y_bottom = py - (np.sqrt(3.0) - 1.0) * r, py + r
    else:
        y_top, y_bottom = py - r, py + r
    j0, j1 = max(int(np.floor(px - r)), 0), min(int(np.ceil(px + r)), s_px)
    i0, i1 = max(int(np.floor(y_top)), 0), min(int(np.ceil(y_bottom)), s_px)
    if j0 >= j1 or i0 >= i1:
        return frame
    offs = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = (np.arange(j0, j1)[:, None] + offs[None, :]).ravel()    # sample x, pixels
    ys = (np.arange(i0, i1)[:, None] + offs[None, :]).ravel()
    dx = xs[None, :] - px
    dy = py - ys[:, None]          # up is positive, as in axis units
    if shape == "circle":
        inside = dx * dx + dy * dy <= r * r
    else:
        h = dy + r                  # height above the base line
        inside = (h >= 0) & (h <= np.sqrt(3.0) * (dx + r)) & (h <= np.sqrt(3.0) * (r - dx))
    cover = inside.reshape(i1 - i0, SUPERSAMPLE, j1 - j0, SUPERSAMPLE).mean(axis=(1, 3))
    frame[i0:i1, j0:j1] = np.round(cover[..., None] * rgb).astype(np.uint8)
    return frame


def render_video(frame_size, num_frames, direction, colour, shape, size):
    """uint8 [T, S, S, 3]; frame k shows the shape at (5, 5) + k * direction."""
    dxy = np.asarray(DIRECTIONS[direction], np.float64)
    return np.stack([
        render_frame(frame_size, SHAPES[shape], COLOURS[colour], size,
                     (5.0 + k * dxy[0], 5.0 + k * dxy[1]))
        for k in range(num_frames)])


@registry.register_problem("stochastic_shapes", aliases=("video_stochastic_shapes10k",))
class StochasticShapes(VideoProblem):
    """T2T's `video_stochastic_shapes10k` at 64x64: 10,000 videos of 5 frames.

    Train on 2-frame windows from frames 0-2 (`next_frame_glow_shapes`: 1 conditioning
    frame, 2 targets, `num_train_frames=2`). Train 9,091 / dev 909 videos; no test split.

    Args:
      num_videos, frame_size, seed: override the class defaults (e.g. for tests).
    """

    file_prefix = "video_stochastic_shapes10k"
    frame_size = 64
    num_videos = 10000
    frames_per_video = 5
    seed = 429459       # t2t-datagen's default random seed
    num_shards = {"train": 10, "dev": 1}

    def __init__(self, num_videos=None, frame_size=None, seed=None):
        if num_videos is not None:
            self.num_videos = int(num_videos)
        if frame_size is not None:
            self.frame_size = int(frame_size)
        if seed is not None:
            self.seed = int(seed)
        if self.frame_size < 8:
            raise ValueError(f"frame_size must be >= 8, got {self.frame_size}.")
        self.frame_height = self.frame_width = self.frame_size
        total = sum(self.num_shards.values())
        if self.num_videos < total:
            raise ValueError(f"num_videos={self.num_videos} is fewer than the {total} shards.")

    def video_shard(self):
        """Shard index (train shards first, then dev) of every video, as T2T assigns.

        T2T writes the frame stream round-robin, switching shard every
        `total_frames // num_shards` frames; with 5-frame videos that is every
        `num_videos // num_shards` videos, wrapping around to shard 0.
        """
        total = sum(self.num_shards.values())
        per_shard = self.num_videos // total
        return (np.arange(self.num_videos) // per_shard) % total

    def split_videos(self):
        """Dict split -> list over shards of the video indices in that shard."""
        shard_of = self.video_shard()
        out, base = {}, 0
        for split, count in self.num_shards.items():
            out[split] = [np.flatnonzero(shard_of == base + k) for k in range(count)]
            base += count
        return out

    def generate_data(self, data_dir, raw_data_dir=None, log=print, **kwargs):
        del raw_data_dir, kwargs  # generated locally
        log = log or (lambda msg: None)
        params = draw_video_params(self.num_videos, self.seed)
        summary = {}
        start = time.time()
        rendered = 0
        for split, shards in self.split_videos().items():
            writer = ShardSetWriter(self.shard_paths(data_dir, split), log=log,
                                    label=f"{self.name} {split}")
            try:
                for k, videos in enumerate(shards):
                    if not writer.needed(k):
                        continue
                    for v in videos:
                        frames = render_video(self.frame_size, self.frames_per_video,
                                              params["direction"][v], params["colour"][v],
                                              params["shape"][v], params["size"][v])
                        writer.write_video(k, video_examples(frames))
                        rendered += 1
                    writer.close(k)
            except BaseException:
                writer.abort()
                raise
            summary[split] = dict(writer.stats(), videos=int(sum(len(v) for v in shards)))
        secs = time.time() - start
        log(f"{self.name}: {rendered} videos rendered in {secs:.1f} s"
            + (f" ({rendered / secs:.0f} videos/s)" if rendered and secs > 0 else ""))
        return summary


@registry.register_problem("stochastic_shapes_32")
class StochasticShapes32(StochasticShapes):
    """Stochastic shapes at 32x32 for CPU training (set `videoflow_shapes_cpu`)."""

    file_prefix = "stochastic_shapes_32"
    frame_size = 32


@registry.register_problem("stochastic_shapes_16")
class StochasticShapes16(StochasticShapes):
    """Stochastic shapes at 16x16: all 10,000 videos, for the quickest CPU runs."""

    file_prefix = "stochastic_shapes_16"
    frame_size = 16


@registry.register_problem("stochastic_shapes_tiny")
class StochasticShapesTiny(StochasticShapes):
    """64 videos at 16x16 in 2 train shards + 1 dev shard: seconds to generate (tests)."""

    file_prefix = "stochastic_shapes_tiny"
    frame_size = 16
    num_videos = 64
    num_shards = {"train": 2, "dev": 1}
