"""Frames to and from files: animated GIFs, PNG grids, user-given context frames.

Frames are uint8 numpy arrays `[T, H, W, 3]` (one clip) throughout.

    write_gif(path, frames)                    one animated GIF, T frames
    make_grid(context, ground_truth, samples)  one row per sample:
                                               context | ground truth | sample
    write_png(path, image)                     a PNG of one uint8 image
    read_frames(path, frame_shape)             a folder of PNGs or a .npy -> [N, T, H, W, 3]

Pillow writes the GIFs: TensorFlow encodes PNG but not animated GIF. GIFs hold at
most 256 colours per frame, so they are for looking at; the exact pixels are in
the PNG grid. Pillow merges consecutive identical frames into one longer frame
(the playing time is kept), so a GIF of a still video may hold fewer frames.
"""

import io
import os

import numpy as np
from PIL import Image

from t2t_videoflow.errors import MediaError

# Gap between the context, ground-truth and sample columns of a grid, in pixels.
GROUP_GAP = 4
GAP_VALUE = 255


def _check_clip(frames, name="frames"):
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise MediaError(f"{name} must be uint8; got dtype {frames.dtype}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise MediaError(f"{name} must have shape [time >= 1, height, width, 3]; "
                         f"got {frames.shape}.")
    return frames


def gif_bytes(frames, fps=4):
    """The bytes of an animated GIF (looping forever) of uint8 `[T, H, W, 3]` frames."""
    frames = _check_clip(frames)
    if fps <= 0:
        raise MediaError(f"fps must be > 0; got {fps}.")
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(round(1000.0 / fps)), loop=0)
    return buffer.getvalue()


def _write_bytes(path, data):
    """Writes through a temporary name and a rename, so no half-written file remains;
    through `tf.io.gfile`, so `path` may be on any filesystem TensorFlow reads
    (`gs://...`, `ram://...`)."""
    gfile = _gfile()
    gfile.makedirs(os.path.dirname(path) or ".")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with gfile.GFile(tmp, "wb") as f:
            f.write(data)
        gfile.rename(tmp, path, overwrite=True)
    finally:
        if gfile.exists(tmp):
            gfile.remove(tmp)
    return path


def _gfile():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (heavy; writes only)
    return tf.io.gfile


def write_npy(path, array):
    """Writes `array` as a `.npy` file at `path` (any TF filesystem); returns `path`."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return _write_bytes(path, buffer.getvalue())


def write_gif(path, frames, fps=4):
    """Writes uint8 `[T, H, W, 3]` frames as an animated GIF at `path`; returns `path`."""
    return _write_bytes(path, gif_bytes(frames, fps))


def write_png(path, image):
    """Writes one uint8 `[H, W, 3]` image as a PNG at `path`; returns `path`."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise MediaError(f"A PNG image must be uint8 [height, width, 3]; got "
                         f"{image.dtype} {image.shape}.")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return _write_bytes(path, buffer.getvalue())


def _row(groups, height, width):
    """Concatenates groups of frames along the width with a gap between groups."""
    parts = []
    for frames in groups:
        if parts:
            parts.append(np.full((height, GROUP_GAP, 3), GAP_VALUE, np.uint8))
        if frames is None:
            continue
        parts.extend(list(frames))
    return np.concatenate(parts, axis=1)


def make_grid(context, ground_truth, samples):
    """A uint8 image with one row per sample: context | ground truth | sample.

    Args:
      context: uint8 `[C, H, W, 3]`, repeated on every row.
      ground_truth: uint8 `[G, H, W, 3]` or None (user-given context has none); when
        present, repeated on every row.
      samples: uint8 `[S, K, H, W, 3]`: S samples of K frames.

    Returns:
      uint8 `[S * H, width, 3]`; `width = (C + G + K) * W + gaps`, with a
      `GROUP_GAP`-pixel white gap between the groups (two gaps with ground truth,
      one without).
    """
    context = _check_clip(context, "context")
    samples = np.asarray(samples)
    if samples.dtype != np.uint8 or samples.ndim != 5 or samples.shape[-1] != 3:
        raise MediaError(f"samples must be uint8 [num_samples, time, height, width, 3]; "
                         f"got {samples.dtype} {samples.shape}.")
    height, width = context.shape[1:3]
    if samples.shape[2:4] != (height, width):
        raise MediaError(f"samples are {samples.shape[2]}x{samples.shape[3]} but the "
                         f"context is {height}x{width}.")
    groups = [context]
    if ground_truth is not None and len(ground_truth):
        ground_truth = _check_clip(ground_truth, "ground_truth")
        if ground_truth.shape[1:3] != (height, width):
            raise MediaError(f"ground_truth is {ground_truth.shape[1]}x"
                             f"{ground_truth.shape[2]} but the context is {height}x{width}.")
        groups.append(ground_truth)
    rows = [_row(groups + [sample], height, width) for sample in samples]
    return np.concatenate(rows, axis=0)


def grid_width(num_context, num_ground_truth, num_sample_frames, width):
    """Pixel width of a `make_grid` row (for checks)."""
    gaps = 1 + int(num_ground_truth > 0)
    return (num_context + num_ground_truth + num_sample_frames) * width + gaps * GROUP_GAP


# Pillow's modes of 16-bit (and 32-bit int) greyscale images.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _read_png(path):
    """One image file as uint8 `[H, W, 3]`.

    8-bit RGB is taken as is; greyscale ("L", "1") and opaque palette ("P") images are
    converted to RGB as Pillow converts them. 16-bit images are scaled to 8 bits by
    keeping the high byte (`v >> 8`, what Pillow does for 16-bit RGB PNGs), never
    clipped at 255. Transparency is refused, never dropped or composited: an alpha
    channel ("RGBA", "LA", "PA", ...) or a transparent palette entry / colour key
    (a PNG tRNS chunk) is a MediaError naming the file (flatten the image onto the
    background you mean and save it as opaque RGB).
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L", "RGB", "1") and "transparency" in image.info:
                raise MediaError(f"{path}: image mode {mode!r} has transparency (a "
                                 "transparent palette entry or colour key); save it as "
                                 "opaque RGB (transparency is not dropped silently).")
            if mode in _WIDE_GREY_MODES:
                grey = np.asarray(image).astype(np.int64)
                if mode == "I" and (grey.min() < 0 or grey.max() > 65535):
                    raise MediaError(f"{path}: 32-bit integer pixels outside 0-65535 "
                                     f"(range [{grey.min()}, {grey.max()}]); save it as "
                                     "8- or 16-bit RGB.")
                grey = (grey >> 8).astype(np.uint8)
                return np.repeat(grey[..., np.newaxis], 3, axis=-1)
            if mode in ("L", "P", "1"):
                image = image.convert("RGB")
            elif mode != "RGB":
                raise MediaError(f"{path}: image mode {mode!r} is not RGB (3 channels); "
                                 "convert it to RGB (an alpha channel is not dropped "
                                 "silently).")
            return np.asarray(image, dtype=np.uint8)
    except MediaError:
        raise
    except (OSError, ValueError) as e:
        raise MediaError(f"{path}: not a readable image ({e}).") from e


def read_frames(path, frame_shape, min_frames=1):
    """User-given frames as uint8 `[N, T, H, W, 3]` (N clips of T frames).

    Args:
      path: a folder of PNG files (one clip; the frames in file-name order) or a
        `.npy` file holding uint8 `[T, H, W, 3]` (one clip) or `[N, T, H, W, 3]`.
      frame_shape: the expected `(H, W, 3)`.
      min_frames: the least number of frames per clip.

    PNGs: greyscale and opaque palette images become RGB as Pillow converts them;
    16-bit images are scaled to 8 bits (`v >> 8`); any transparency (alpha channel,
    transparent palette entry) is refused with a MediaError, never dropped.

    Raises:
      MediaError naming the file and what is wrong (missing, wrong dtype, shape,
      frame size, transparency or too few frames).
    """
    h, w, c = (int(v) for v in frame_shape)
    if not path or not os.path.exists(path):
        raise MediaError(f"Input frames {path!r} not found (give a folder of PNGs or a "
                         ".npy file).")
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(".png"))
        if not names:
            raise MediaError(f"Input frames folder {path!r} holds no .png files.")
        frames = []
        for name in names:
            frame = _read_png(os.path.join(path, name))
            if frame.shape != (h, w, c):
                raise MediaError(
                    f"{os.path.join(path, name)} is {frame.shape[0]}x{frame.shape[1]}x"
                    f"{frame.shape[2]} but the model takes {h}x{w}x{c} frames.")
            frames.append(frame)
        clips = np.stack(frames)[np.newaxis]
    elif path.endswith(".npy"):
        try:
            clips = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise MediaError(f"{path}: not a readable .npy file ({e}).") from e
        if clips.dtype != np.uint8:
            raise MediaError(f"{path}: frames must be uint8 (pixel values 0-255); got "
                             f"dtype {clips.dtype}.")
        stored = clips.shape
        if clips.ndim == 4:
            clips = clips[np.newaxis]
        if clips.ndim != 5 or clips.shape[2:] != (h, w, c):
            raise MediaError(f"{path}: frames must have shape [time, {h}, {w}, {c}] or "
                             f"[clips, time, {h}, {w}, {c}]; got {stored}.")
        if clips.shape[0] < 1:
            raise MediaError(f"{path}: holds no clip (shape {clips.shape}).")
    else:
        raise MediaError(f"Input frames {path!r}: expected a folder of PNGs or a .npy "
                         "file.")
    if clips.shape[1] < min_frames:
        raise MediaError(f"{path}: {clips.shape[1]} frame(s) per clip, but the model "
                         f"needs at least {min_frames} context frame(s).")
    return clips
