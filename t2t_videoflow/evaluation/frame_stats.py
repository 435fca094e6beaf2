"""Per-frame pixel statistics of generated frames, to make drift visible in a JSON table.

Used by `long_rollout` (statistics vs generated frame) and `interpolate` (vs the
interpolation coefficient). Pure numpy; frames are uint8 `[..., T, H, W, 3]`, the
leading axes (samples, clips) averaged over.
"""

import numpy as np

# A pixel is "near-black" when its brightest channel is below this value (of 255).
NEAR_BLACK = 16


def frame_statistics(frames, previous=None):
    """Statistics per frame index t of uint8 `frames [..., T, H, W, 3]`.

    Args:
      frames: uint8 `[..., T, H, W, 3]` (e.g. `[samples, T, H, W, 3]`).
      previous: optional uint8 `[..., H, W, 3]` (same leading axes): the frame before
        frame 0 (the last context frame), for frame 0's change.

    Returns:
      dict of lists of length T, each averaged over the leading axes:
        mean:       `[T][3]` mean intensity per channel (0..255), over pixels;
        std:        `[T]` standard deviation of one frame's values (pixels and
                    channels, ddof 0), i.e. its contrast; a flat frame has 0;
        near_black: `[T]` fraction of pixels whose largest channel < NEAR_BLACK;
        change:     `[T]` mean |x_t - x_{t-1}| over pixels and channels (0..255);
                    frame 0 against `previous`, None when not given.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim < 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [..., T, H, W, 3]; got {frames.dtype} "
                         f"{list(frames.shape)}.")
    x = frames.astype(np.float64)
    lead = tuple(range(x.ndim - 4))                    # the averaged leading axes
    mean = x.mean(axis=(-3, -2)).mean(axis=lead) if lead else x.mean(axis=(-3, -2))
    std = x.reshape(*x.shape[:-3], -1).std(axis=-1)                       # [..., T]
    dark = (frames.max(axis=-1) < NEAR_BLACK).mean(axis=(-2, -1))        # [..., T]
    change = np.abs(np.diff(x, axis=-4)).mean(axis=(-3, -2, -1))        # [..., T-1]
    if previous is not None:
        previous = np.asarray(previous)
        if previous.shape != frames.shape[:-4] + frames.shape[-3:]:
            raise ValueError(f"previous must be {list(frames.shape[:-4] + frames.shape[-3:])}"
                             f"; got {list(previous.shape)}.")
        first = np.abs(x[..., 0, :, :, :] - previous.astype(np.float64)).mean(
            axis=(-3, -2, -1))
    average = lambda v: v.mean(axis=lead) if lead else v
    change = average(change).tolist()
    return {
        "mean": mean.tolist(),
        "std": average(std).tolist(),
        "near_black": average(dark).tolist(),
        "change": [float(average(first)) if previous is not None else None] + change,
    }
