"""Motion diagnostic for stochastic shapes: do samples keep the shape and move like the data?

In the stochastic shapes problem (`problems/stochastic_shapes.py`) every video shows one
shape of one colour on black, moving one axis unit per frame in one of 8 directions. A
model that fits the data should sample the same: the context's shape, intact, moving
with a constant step in one of the 8 directions, the 8 about equally often. This module
measures that on uint8 frames, in NumPy only (no model and no TensorFlow code, though
importing the problem's constants loads TensorFlow).

Pipeline:

    measure_frames(frames)            per frame: the shape's area, colour, centroid, ...
    find_shape(frame)                 the same for one frame, as a `Shape` (or None)
    classify_samples(context, samples)  per sample: intact?, still / coherent / ...,
                                        direction, per-frame displacements
    summarize(classes)                counts, shares, direction histograms, areas
    analyze_samples(context, samples) = summarize(classify_samples(...)), a JSON-able dict
    format_report(report)             a short text table

Definitions (pixel (i, j) covers [j, j+1] x [i, i+1]; rows point down):

  * Foreground: pixels whose largest channel exceeds `threshold` (default 64, a quarter
    of full scale and half the dimmest colour, matplotlib's green at 128). Anti-aliased
    edge pixels below it are background, so the measured area of a shape depends on its
    colour (green keeps pixels >= 1/2 covered, blue those >= 1/4 covered); every
    comparison is against the same clip's reference shape, so this cancels.
  * Shape: the largest 8-connected foreground component (`area` pixels; ties go to
    the first in raster order). Other foreground pixels are `clutter`. A frame whose
    shape has fewer than `min_area` pixels has no shape (default `max(2, H*W // 512)`:
    2 pixels at 16x16 and 32x32, 8 at 64x64; the smallest rendered shape, a size-0.5
    triangle, has about 2, 6 and 28 pixels there).
  * Colour: the mean RGB of the shape's pixels (0..255); brightness: the mean of their
    largest channels. Colour distance: the Euclidean distance between two shapes'
    normalised colours, colour / brightness (`normalised_colour`). Anti-aliasing
    scales a pixel's channels together and so leaves it unchanged (a rendered shape
    scores 0 in every frame, slivers at the border included); the problem's 6 colours
    are at least 1 apart. Dimming is not a colour change; it shows in the area.
  * Centroid: the mean (row, col) of the shape's pixel centres (index + 0.5).
  * Position: the centroid, except along an axis where the shape touches one frame
    border and not the opposite one (it may be clipped): there it is the far edge of the
    shape's bounding box minus the reference shape's centroid-to-edge distance, which is
    unbiased for a translated copy of the reference.
  * Reference: the shape in the last context frame (in this problem frame 0 shows the
    shape at the frame centre, whole). A clip whose reference has no shape is counted
    as `no_reference` and not analysed further.
  * Context direction (contexts of 2 or more frames): the direction bin of the step
    between the last two context frames; a sample "follows the context" when it is
    intact and coherent in that direction (the data always does: with two frames the
    direction is known and only a model that continues the motion fits it).
  * Expected area: the reference area, or, for a shape touching the border, the number
    of reference pixels that stay inside the frame when the reference is moved to the
    shape's position.
  * Intact sample: every sampled frame has a shape whose area is within `area_ratio`
    of the expected area (default 0.5..2; 0.4..2.5 below 32 pixels, see
    `default_area_ratio`; for a shape touching the border the upper bound is `high`
    times the whole reference area), whose colour distance to the reference is at
    most `colour_tolerance` (default 0.3), and whose clutter is at most `max_clutter`
    (default 0.5) times the reference area.
  * Displacement: the position change from the previous frame (the first sampled frame
    from the last context frame), in steps: `(d_col, -d_row) / step_px`, so x points
    right and y up as in the problem's axes. `step_px` defaults to the problem's step,
    `PX_PER_UNIT_64 * H / 64` pixels (2.04 at 16x16, 4.09 at 32x32, 8.18 at 64x64);
    a diagonal step is sqrt(2) steps long.
  * Direction bin of a displacement: the nearest of the 8 `DIRECTIONS` by angle (bins
    45 degrees wide). Direction of a sample: the bin of its mean displacement.
  * Motion class of a sample whose frames all have a shape (exclusive):
      still       every displacement is shorter than `still_tolerance` (0.3) steps;
      coherent    every displacement falls in the same direction bin and its length is
                  within `speed_tolerance` (0.5, relative) of that direction's step
                  (1 or sqrt(2)): a constant per-frame step like the data's;
      incoherent  anything else (moving, but not like the data).
    Samples with a frame without a shape are `no_shape` (so are real clips whose shape
    has left the frame: with the problem's 64-px geometry a shape stays whole for 2
    steps after the centre frame and may leave after 4).
"""

import dataclasses
import math

import numpy as np

from t2t_videoflow.problems.stochastic_shapes import DIRECTIONS, PX_PER_UNIT_64

# Bits per sub-pixel that a flow which is affine across each 1/256 dequantisation bin
# pays on a pixel that is always the same value: the noise u ~ U[0, w) in that bin maps
# to a uniform on a parallelepiped, and the cross-entropy of a uniform of width w under
# the best Gaussian (variance w^2 / 12) is log w + log(2 pi e / 12) / 2, i.e.
# log2(2 pi e / 12) / 2 = 0.2546 bits above the uniform's entropy, whatever the affine
# map. Below it only by curving the map inside the bin (measured: a model trained on
# empty frames passes it, `experiments/results/background_floor.json`).
BIN_AFFINE_FLOOR_BITS = 0.5 * math.log2(2.0 * math.pi * math.e / 12.0)

THRESHOLD = 64
AREA_RATIO = (0.5, 2.0)
AREA_RATIO_BELOW_32 = (0.4, 2.5)
COLOUR_TOLERANCE = 0.3
MAX_CLUTTER = 0.5
STILL_TOLERANCE = 0.3
SPEED_TOLERANCE = 0.5

MOTION_CLASSES = ("still", "coherent", "incoherent", "no_shape", "no_reference")
DIRECTION_NAMES = tuple(f"({dx}, {dy})" for dx, dy in DIRECTIONS)
# Direction bin k (angle k * 45 degrees, counter-clockwise from +x) -> DIRECTIONS index.
_BIN_TO_DIRECTION = np.array([
    DIRECTIONS.index((int(round(math.cos(k * math.pi / 4))),
                      int(round(math.sin(k * math.pi / 4))))) for k in range(8)])
_STEP_LENGTH = np.array([math.hypot(dx, dy) for dx, dy in DIRECTIONS])


def default_min_area(height, width):
    """Fewest pixels of a shape: `max(2, H*W // 512)`."""
    return max(2, (height * width) // 512)


def default_area_ratio(height, width):
    """Area bounds of an intact shape: `AREA_RATIO` (0.5..2), or `AREA_RATIO_BELOW_32`
    (0.4..2.5) for frames under 32 pixels, where the smallest shapes cover 2-9 pixels
    and a translated copy's area changes by pixel snapping alone from 4 to 9 pixels (a
    square) or from 4 to 2 (a triangle)."""
    return AREA_RATIO_BELOW_32 if min(height, width) < 32 else AREA_RATIO


def step_pixels(height):
    """The problem's step (one axis unit) in pixels at frame height `height`."""
    return PX_PER_UNIT_64 * height / 64.0


@dataclasses.dataclass(frozen=True)
class Shape:
    """The shape found in one frame.

    Attributes:
      area: pixels of the largest 8-connected foreground component.
      colour: its mean RGB, floats in [0, 255].
      centroid: (row, col) of its pixel centres, in pixels.
      bbox: (top, left, bottom, right), bottom and right exclusive.
      clutter: foreground pixels outside it.
    """

    area: int
    colour: tuple
    centroid: tuple
    bbox: tuple
    clutter: int


def _check_frames(frames, name, ndim):
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8; got dtype {frames.dtype}.")
    if frames.ndim != ndim or frames.shape[-1] != 3:
        raise ValueError(f"{name} must have {ndim} dimensions ending in 3 colour "
                         f"channels; got shape {frames.shape}.")
    return frames


def _largest_components(mask, chunk=128):
    """Largest 8-connected component of each mask `[F, H, W]` bool -> `[F, H, W]` bool.

    Works on the foreground pixels only, `chunk` frames at a time: each pixel starts
    with its own label (its rank in raster order); every pair of 8-neighbours takes the
    smaller of their labels, then each label is replaced by its own pixel's label
    (pointer jumping), until nothing changes. Each frame keeps its largest component;
    ties go to the component that comes first in raster order.
    """
    f, h, w = mask.shape
    if f > chunk:
        return np.concatenate([_largest_components(mask[i:i + chunk], chunk)
                               for i in range(0, f, chunk)])
    flat = mask.ravel()
    index = np.flatnonzero(flat)                  # raster order, frame by frame
    out = np.zeros(flat.size, bool)
    if index.size == 0:
        return out.reshape(mask.shape)
    rank = np.cumsum(flat) - 1                    # rank[index[i]] == i
    row, col = (index // w) % h, index % w
    first, second = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        inside = (row + dr < h) & (col + dc >= 0) & (col + dc < w)
        neighbour = np.where(inside, index + dr * w + dc, 0)
        linked = inside & flat[neighbour]
        first.append(np.flatnonzero(linked))
        second.append(rank[neighbour[linked]])
    first, second = np.concatenate(first), np.concatenate(second)
    labels = np.arange(index.size)
    while True:
        smaller = np.minimum(labels[first], labels[second])
        updated = labels.copy()
        np.minimum.at(updated, first, smaller)
        np.minimum.at(updated, second, smaller)
        updated = updated[updated]
        if np.array_equal(updated, labels):
            break
        labels = updated
    frame = index // (h * w)
    size = np.bincount(labels, minlength=index.size)[labels]
    key = size * (index.size + 1) + (index.size - labels)    # larger, then earlier
    best = np.zeros(f, np.int64)
    np.maximum.at(best, frame, key)
    out[index[key == best[frame]]] = True
    return out.reshape(mask.shape)


def measure_frames(frames, threshold=THRESHOLD, min_area=None):
    """Measures the shape in every frame.

    Args:
      frames: uint8 `[..., H, W, 3]`.
      threshold: foreground = pixels whose largest channel is > threshold.
      min_area: fewest shape pixels; default `default_min_area(H, W)`.

    Returns:
      dict of arrays over the leading dims `L = frames.shape[:-3]`:
        foreground int [L]   pixels above the threshold
        area       int [L]   pixels of the shape (largest 8-connected component)
        clutter    int [L]   foreground - area
        found      bool [L]  area >= min_area
        colour     float [L, 3]  mean RGB of the shape (NaN when area is 0)
        brightness float [L]     mean largest channel of the shape's pixels (NaN ditto)
        centroid   float [L, 2]  (row, col) of the shape (NaN when area is 0)
        bbox       int [L, 4]    (top, left, bottom, right), exclusive ends (0s if none)
        mask       bool [L, H, W] the shape's pixels
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 3 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [..., H, W, 3]; got {frames.dtype} "
                         f"{frames.shape}.")
    lead, (h, w) = frames.shape[:-3], frames.shape[-3:-1]
    if min_area is None:
        min_area = default_min_area(h, w)
    flat = frames.reshape(-1, h, w, 3)
    count = flat.shape[0]
    brightest = np.maximum(np.maximum(flat[..., 0], flat[..., 1]), flat[..., 2])
    foreground = brightest > threshold
    shape = _largest_components(foreground)
    index, row, col = np.nonzero(shape)
    area = np.bincount(index, minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.stack([np.bincount(index, flat[index, row, col, ch], count)
                           for ch in range(3)], axis=-1) / area[:, None]
        brightness = np.bincount(index, brightest[index, row, col], count) / area
        rows = np.bincount(index, row + 0.5, count) / area
        cols = np.bincount(index, col + 0.5, count) / area
    any_row, any_col = shape.any(axis=2), shape.any(axis=1)
    has = area > 0
    top = np.where(has, any_row.argmax(axis=1), 0)
    bottom = np.where(has, h - any_row[:, ::-1].argmax(axis=1), 0)
    left = np.where(has, any_col.argmax(axis=1), 0)
    right = np.where(has, w - any_col[:, ::-1].argmax(axis=1), 0)
    pixels = foreground.sum(axis=(1, 2))
    out = {
        "foreground": pixels,
        "area": area,
        "clutter": pixels - area,
        "found": area >= min_area,
        "colour": colour,
        "brightness": brightness,
        "centroid": np.stack([rows, cols], axis=-1),
        "bbox": np.stack([top, left, bottom, right], axis=-1),
        "mask": shape,
    }
    return {k: v.reshape(*lead, *v.shape[1:]) for k, v in out.items()}


def normalised_colour(measured):
    """Mean RGB over mean brightness `[..., 3]`: the shape's colour scaled so that its
    brightest channel is about 1. Anti-aliasing and uniform dimming scale a pixel's
    channels together, so they leave it unchanged; the problem's 6 colours become
    (0,0,1), (0,1,0), (1,0,0), (0,1,1), (1,0,1), (1,1,0), at least 1 apart."""
    return measured["colour"] / measured["brightness"][..., None]


def find_shape(frame, threshold=THRESHOLD, min_area=None):
    """The `Shape` in a uint8 `[H, W, 3]` frame, or None if it has fewer than
    `min_area` pixels (see `measure_frames`)."""
    frame = _check_frames(frame, "frame", 3)
    m = measure_frames(frame[np.newaxis], threshold, min_area)
    if not m["found"][0]:
        return None
    return Shape(area=int(m["area"][0]),
                 colour=tuple(float(c) for c in m["colour"][0]),
                 centroid=tuple(float(c) for c in m["centroid"][0]),
                 bbox=tuple(int(b) for b in m["bbox"][0]),
                 clutter=int(m["clutter"][0]))


@dataclasses.dataclass(frozen=True)
class SampleClasses:
    """Per-sample results of `classify_samples` (N clips, K samples, T frames).

    Attributes:
      reference_found: bool [N], the last context frame has a shape.
      found: bool [N, K, T], the sampled frame has a shape.
      frame_intact: bool [N, K, T], area, colour and clutter as the reference's.
      intact: bool [N, K], every sampled frame intact (False without a reference).
      area_ratio: float [N, K, T], area / expected area (NaN without a shape).
      colour_distance: float [N, K, T], normalised-colour distance to the reference
        (NaN ditto).
      displacement: float [N, K, T, 2], (x right, y up) in steps (NaN ditto).
      motion: str [N, K], one of MOTION_CLASSES.
      direction: int [N, K], index into DIRECTIONS of the mean displacement of a moving
        (coherent or incoherent) sample, else -1.
      speed: float [N, K], mean displacement length over the direction's step length
        for moving samples (1 = the data's speed), else NaN.
      context_direction: int [N], index into DIRECTIONS of the context's own last
        step (its last two frames, when both have a shape and the step is at least
        `still_tolerance` long), else -1; always -1 for a one-frame context.
      context_area, context_clutter: int [N, C]; area, clutter: int [N, K, T].
      step_px: the step length in pixels used.
      settings: the thresholds used (a JSON-able dict).
    """

    reference_found: np.ndarray
    found: np.ndarray
    frame_intact: np.ndarray
    intact: np.ndarray
    area_ratio: np.ndarray
    colour_distance: np.ndarray
    displacement: np.ndarray
    motion: np.ndarray
    direction: np.ndarray
    context_direction: np.ndarray
    speed: np.ndarray
    context_area: np.ndarray
    context_clutter: np.ndarray
    area: np.ndarray
    clutter: np.ndarray
    step_px: float
    settings: dict


def _positions(measured, reference, height, width):
    """Shape positions (row, col) `[..., 2]`, edge-anchored where clipped (module doc).

    `measured` has leading dims [N, K, T]; `reference` [N].
    """
    pos = measured["centroid"].copy()
    ref_pos, ref_box = reference["centroid"], reference["bbox"]
    box = measured["bbox"]
    ref_whole = ((ref_box[:, 0] > 0) & (ref_box[:, 1] > 0) & (ref_box[:, 2] < height)
                 & (ref_box[:, 3] < width))[:, None, None]
    for axis, size in ((0, height), (1, width)):
        low, high = box[..., axis], box[..., axis + 2]
        ref_low = ref_box[:, axis][:, None, None]
        ref_high = ref_box[:, axis + 2][:, None, None]
        ref_c = ref_pos[:, axis][:, None, None]
        cut_low = ref_whole & (low == 0) & (high < size)
        cut_high = ref_whole & (high == size) & (low > 0)
        pos[..., axis] = np.where(cut_low, high - (ref_high - ref_c), pos[..., axis])
        pos[..., axis] = np.where(cut_high, low + (ref_c - ref_low), pos[..., axis])
    return pos


def _reference_position(reference, previous, height, width):
    """`_positions` of one frame per clip (`reference`, leading dim [N]) against the
    frame before it (`previous`): `[N, 2]`."""
    one = {key: value[:, None, None] for key, value in reference.items()}
    return _positions(one, previous, height, width)[:, 0, 0]


def _expected_areas(measured, reference, positions, height, width):
    """Reference area, or for a shape touching the border the reference pixels that
    stay inside the frame when moved to the shape's position. `[N, K, T]` float."""
    box = measured["bbox"]
    touches = measured["found"] & ((box[..., 0] == 0) | (box[..., 1] == 0)
                                   | (box[..., 2] == height) | (box[..., 3] == width))
    expected = np.broadcast_to(reference["area"][:, None, None].astype(np.float64),
                               touches.shape).copy()
    for n, k, t in zip(*np.nonzero(touches)):
        rows, cols = np.nonzero(reference["mask"][n])
        shift = np.round(positions[n, k, t] - reference["centroid"][n]).astype(int)
        r, c = rows + shift[0], cols + shift[1]
        visible = np.count_nonzero((r >= 0) & (r < height) & (c >= 0) & (c < width))
        expected[n, k, t] = max(visible, 1)
    return expected


def _direction_bins(d):
    """DIRECTIONS index of the nearest direction by angle of `d [..., 2]` (x, y)."""
    angle = np.arctan2(d[..., 1], d[..., 0])
    k = np.mod(np.round(angle / (np.pi / 4)).astype(int), 8)
    return _BIN_TO_DIRECTION[k]


def classify_samples(context, samples, step_px=None, threshold=THRESHOLD, min_area=None,
                     area_ratio=None, colour_tolerance=COLOUR_TOLERANCE,
                     max_clutter=MAX_CLUTTER, still_tolerance=STILL_TOLERANCE,
                     speed_tolerance=SPEED_TOLERANCE):
    """Intactness and motion class of every sample (definitions in the module doc).

    Args:
      context: uint8 `[N, C, H, W, 3]`; frame C-1 holds the reference shape.
      samples: uint8 `[N, K, T, H, W, 3]`, K samples of T frames after each context.
      step_px: the data's per-frame step in pixels; default `step_pixels(H)`.
      threshold, min_area: foreground threshold and fewest shape pixels.
      area_ratio: (low, high) bounds of area / expected area of an intact shape;
        default `default_area_ratio(H, W)`.
      colour_tolerance: largest distance of an intact shape's normalised colour to the
        reference's.
      max_clutter: largest clutter of an intact frame, in reference areas.
      still_tolerance: displacements below this many steps are "not moving".
      speed_tolerance: a coherent step's length is within this fraction of the
        direction's step length.

    Returns:
      A `SampleClasses`.
    """
    context = _check_frames(context, "context", 5)
    samples = _check_frames(samples, "samples", 6)
    n, c, h, w, _ = context.shape
    if (c < 1 or samples.shape[0] != n or samples.shape[3:5] != (h, w)
            or samples.shape[2] < 1):
        raise ValueError(f"samples [N, K, T, H, W, 3] must follow context [N, C, H, W, 3] "
                         f"with C, T >= 1; got {samples.shape} after {context.shape}.")
    low, high = default_area_ratio(h, w) if area_ratio is None else area_ratio
    if not 0 < low <= 1 <= high:
        raise ValueError(f"area_ratio must satisfy 0 < low <= 1 <= high; got {area_ratio}.")
    if not 0 <= still_tolerance < 1 - speed_tolerance:
        raise ValueError("still_tolerance must be in [0, 1 - speed_tolerance) so that "
                         f"still and coherent do not overlap; got {still_tolerance}, "
                         f"{speed_tolerance}.")
    step_px = step_pixels(h) if step_px is None else float(step_px)
    if min_area is None:
        min_area = default_min_area(h, w)
    ctx = measure_frames(context, threshold, min_area)
    ref = {key: value[:, -1] for key, value in ctx.items()}
    got = measure_frames(samples, threshold, min_area)
    k, t = samples.shape[1:3]

    # Intactness.
    positions = _positions(got, ref, h, w)
    expected = _expected_areas(got, ref, positions, h, w)
    ref_area = ref["area"][:, None, None].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(got["found"], got["area"] / expected, np.nan)
        colour_distance = np.where(got["found"], np.linalg.norm(
            normalised_colour(got) - normalised_colour(ref)[:, None, None], axis=-1),
            np.nan)
        clutter_ok = got["clutter"] <= max_clutter * ref_area
        # A clipped shape may not exceed the whole reference (a sliver's expected area
        # is too coarse to bound it from above).
        upper = ref_area / expected * high
    frame_intact = (got["found"] & ref["found"][:, None, None] & (ratio >= low)
                    & (ratio <= upper) & (colour_distance <= colour_tolerance) & clutter_ok)
    intact = frame_intact.all(axis=2)

    # Motion.
    ref_pos = np.broadcast_to(ref["centroid"][:, None, None], (n, k, 1, 2))
    path = np.concatenate([ref_pos, positions], axis=2)          # [N, K, T + 1, 2]
    d_rc = np.diff(path, axis=2)
    displacement = np.stack([d_rc[..., 1], -d_rc[..., 0]], axis=-1) / step_px
    all_found = got["found"].all(axis=2) & ref["found"][:, None]
    displacement = np.where(all_found[..., None, None], displacement, np.nan)
    length = np.linalg.norm(displacement, axis=-1)               # [N, K, T]
    bins = _direction_bins(np.nan_to_num(displacement))
    still = all_found & (length < still_tolerance).all(axis=2)
    relative = length / _STEP_LENGTH[bins]
    coherent = (all_found & ~still & (bins == bins[..., :1]).all(axis=2)
                & (np.abs(relative - 1.0) <= speed_tolerance).all(axis=2))
    motion = np.full((n, k), "incoherent", dtype=object)
    motion[~got["found"].all(axis=2)] = "no_shape"
    motion[still] = "still"
    motion[coherent] = "coherent"
    motion[~ref["found"]] = "no_reference"
    moving = (motion == "coherent") | (motion == "incoherent")
    mean_d = np.nan_to_num(displacement.mean(axis=2))
    direction = np.where(moving, _direction_bins(mean_d), -1)
    speed = np.where(moving, np.linalg.norm(mean_d, axis=-1)
                     / _STEP_LENGTH[np.maximum(direction, 0)], np.nan)
    context_direction = np.full(n, -1)
    if c >= 2:
        prev = {key: value[:, -2] for key, value in ctx.items()}
        d_rc = _reference_position(ref, prev, h, w) - prev["centroid"]
        context_step = np.stack([d_rc[:, 1], -d_rc[:, 0]], axis=-1) / step_px
        has_step = (prev["found"] & ref["found"]
                    & (np.linalg.norm(context_step, axis=-1) >= still_tolerance))
        context_direction = np.where(has_step, _direction_bins(context_step), -1)
    settings = {"threshold": float(threshold), "min_area": int(min_area),
                "area_ratio": [float(low), float(high)],
                "colour_tolerance": float(colour_tolerance),
                "max_clutter": float(max_clutter),
                "still_tolerance": float(still_tolerance),
                "speed_tolerance": float(speed_tolerance)}
    return SampleClasses(
        reference_found=ref["found"], found=got["found"], frame_intact=frame_intact,
        intact=intact, area_ratio=ratio, colour_distance=colour_distance,
        displacement=displacement, motion=motion.astype(str), direction=direction,
        context_direction=context_direction,
        speed=speed, context_area=ctx["area"], context_clutter=ctx["clutter"],
        area=got["area"], clutter=got["clutter"], step_px=step_px, settings=settings)


def _histogram(directions):
    counts = np.bincount(directions[directions >= 0], minlength=len(DIRECTIONS))
    return {name: int(count) for name, count in zip(DIRECTION_NAMES, counts)}


def uniformity(histogram):
    """How evenly a direction histogram fills the 8 bins.

    Returns:
      dict: `represented` (bins with a count), `normalised_entropy` (entropy / log 8:
      1 = uniform, 0 = one bin) and `min_max_ratio` (smallest / largest count); the
      last two are None for an empty histogram.
    """
    counts = np.array(list(histogram.values()), np.float64)
    total = counts.sum()
    if total == 0:
        return {"represented": 0, "normalised_entropy": None, "min_max_ratio": None}
    p = counts[counts > 0] / total
    return {"represented": int((counts > 0).sum()),
            "normalised_entropy": float(-(p * np.log(p)).sum() / np.log(len(counts))),
            "min_max_ratio": float(counts.min() / counts.max())}


def _mean(values):
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def summarize(classes):
    """The JSON-able report of a `SampleClasses` (see `analyze_samples`)."""
    n, k, t = classes.found.shape
    total = n * k
    motion, intact = classes.motion, classes.intact
    counts = {name: int((motion == name).sum()) for name in MOTION_CLASSES}
    counts["intact"] = int(intact.sum())
    for name in ("still", "coherent", "incoherent"):
        counts[f"intact_{name}"] = int((intact & (motion == name)).sum())
    has_context_step = classes.context_direction >= 0
    counts["context_with_step"] = int(has_context_step.sum()) * k
    counts["intact_coherent_follows_context"] = int(
        (intact & (motion == "coherent")
         & (classes.direction == classes.context_direction[:, None])
         & has_context_step[:, None]).sum())
    good = np.where(intact & (motion == "coherent"), classes.direction, -1)
    histogram = _histogram(good)
    moving = (motion == "coherent") | (motion == "incoherent")
    return {
        "clips": n, "samples_per_clip": k, "samples": total, "frames": t,
        "context_frames": int(classes.context_area.shape[1]),
        "step_px": float(classes.step_px), "settings": dict(classes.settings),
        "counts": counts,
        "shares": {name: (count / total if total else None)
                   for name, count in counts.items()},
        "share_following_context": (
            counts["intact_coherent_follows_context"] / counts["context_with_step"]
            if counts["context_with_step"] else None),
        "directions": list(DIRECTION_NAMES),
        "direction_histogram": histogram,
        "direction_histogram_moving": _histogram(classes.direction),
        "uniformity": uniformity(histogram),
        "mean_speed_moving": _mean(classes.speed[moving]),
        "mean_area_context": [float(a) for a in classes.context_area.mean(axis=0)],
        "mean_area_samples": [float(a) for a in classes.area.mean(axis=(0, 1))],
        "mean_clutter_samples": [float(a) for a in classes.clutter.mean(axis=(0, 1))],
    }


def analyze_samples(context, samples, step_px=None, **thresholds):
    """The motion report of K samples after each of N contexts.

    Args:
      context: uint8 `[N, C, H, W, 3]`.
      samples: uint8 `[N, K, T, H, W, 3]` (real clips: `truth[:, None]`).
      step_px, **thresholds: as `classify_samples`.

    Returns:
      A JSON-serialisable dict:
        clips, samples_per_clip, samples, frames, context_frames, step_px, settings;
        counts / shares (of all samples): the 5 motion classes still, coherent,
          incoherent, no_shape, no_reference (they add up to `samples`); intact; and
          intact_still, intact_coherent, intact_incoherent (the motion of the intact
          samples: a noise frame is one big blob that may well stand "still");
          context_with_step (samples after a context of >= 2 frames whose shape moved
          between its last two frames) and intact_coherent_follows_context (those
          samples that are intact and coherent and keep the context's direction);
        share_following_context: the second over the first, or None (one-frame
          contexts, or no context step): with the direction given by the context
          the data continues it, so a model that fits it should come close to 1;
        directions: the 8 direction names, in `DIRECTIONS` order;
        direction_histogram: {direction: count} of intact coherent samples;
        direction_histogram_moving: the same over all moving samples (coherent or not),
          by the direction of the mean displacement;
        uniformity: `uniformity(direction_histogram)`;
        mean_speed_moving: mean speed of moving samples, in the data's steps per frame;
        mean_area_context [C], mean_area_samples [T], mean_clutter_samples [T]: mean
          shape area / clutter in pixels per frame index (0 where none), which shows
          shapes fading or growing over time.
    """
    return summarize(classify_samples(context, samples, step_px=step_px, **thresholds))


def _pct(share):
    return "   -  " if share is None else f"{100 * share:5.1f}%"


def format_report(report, title=None):
    """A short text table of an `analyze_samples` report."""
    counts, shares = report["counts"], report["shares"]
    lines = []
    if title:
        lines.append(title)
    lines.append(f"  {report['samples']} samples ({report['clips']} clips x "
                 f"{report['samples_per_clip']}), {report['frames']} frame(s), "
                 f"step {report['step_px']:.2f} px")
    lines.append(f"  {'':<24}{'all samples':>13}   {'intact samples':>14}")

    def cell(key):
        return "" if key is None else f"{counts[key]:6d} {_pct(shares[key])}"

    rows = (("intact (area, colour)", "intact", "intact"),
            ("coherent motion", "coherent", "intact_coherent"),
            ("still", "still", "intact_still"),
            ("moving, incoherent", "incoherent", "intact_incoherent"),
            ("no shape in a frame", "no_shape", None),
            ("no shape in context", "no_reference", None))
    for label, every, intact in rows:
        lines.append(f"  {label:<24}{cell(every):>13}   {cell(intact):>14}".rstrip())
    hist = report["direction_histogram"]
    lines.append("  directions (intact, coherent): "
                 + "  ".join(f"{name} {count}" for name, count in hist.items()))
    u = report["uniformity"]
    entropy = "-" if u["normalised_entropy"] is None else f"{u['normalised_entropy']:.2f}"
    ratio = "-" if u["min_max_ratio"] is None else f"{u['min_max_ratio']:.2f}"
    speed = report["mean_speed_moving"]
    lines.append(f"  uniformity: {u['represented']}/8 directions, entropy {entropy}, "
                 f"min/max {ratio}; mean speed of moving samples "
                 + ("-" if speed is None else f"{speed:.2f} steps/frame"))
    follows = report.get("share_following_context")
    if follows is not None:
        lines.append(f"  continue the context's direction (intact, coherent): "
                     f"{report['counts']['intact_coherent_follows_context']} of "
                     f"{report['counts']['context_with_step']} ({_pct(follows).strip()})")
    context = " ".join(f"{a:.1f}" for a in report["mean_area_context"])
    samples = " ".join(f"{a:.1f}" for a in report["mean_area_samples"])
    lines.append(f"  mean shape area per frame: context {context} | samples {samples}")
    return "\n".join(lines)
