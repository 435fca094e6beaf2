r"""Per-frame video metrics of sampled against true frames, and T2T's best-of-N.

PSNR and SSIM are T2T's (`video_metrics.psnr_and_ssim`): both uint8
frames are cast to int32 and scored per frame by `tf.image.psnr(max_val=255)` and
`tf.image.ssim(max_val=255)`:

    PSNR = 10 log10(255^2 / MSE),   MSE = mean over the H*W*C values of (a - b)^2,
    SSIM = mean over VALID 11x11 windows and channels of
           (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))

(Gaussian window sigma 1.5, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2), so SSIM needs
frames of at least 11x11. Dtypes: `tf.image.ssim` and `tf.image.psnr` accept any
integer or float image. Integer images go through `tf.image.convert_image_dtype`, and
`max_val` is converted the same way, so the metrics do not change with the dtype. For
int32 that conversion scales by 1/(2^31 - 1). T2T's int32 path and a float32 0..255
path agree to float32 rounding (about 1e-6 relative). We keep T2T's int32 cast.

Exact frames: T2T's PSNR of a frame equal to the truth is +inf (MSE = 0), and one inf
makes every mean it enters inf. `frame_psnr` therefore reports such a frame as
`psnr_ceiling(D)` = 10 log10(2 * 255^2 * D), the PSNR at half the smallest non-zero
MSE a uint8 frame of D values can have (1/D). That is 3.01 dB above every finite
PSNR of that frame size (ceiling 79.99 dB at 16x16x3, where the best finite PSNR is
76.98 dB; 92.04 dB at 64x64x3, best finite 89.03 dB). An exact frame still ranks
above every inexact one, and means stay finite. `cap=False` gives T2T's inf.

Aggregation (`reduce_decodes`, T2T's `compute_all_metrics_statistics` /
`reduce_to_best_decode`): a metric array `[num_decodes, num_videos, num_frames]`
gives per-frame curves averaged over videos: `mean` and `std` over decodes, and
`best` / `worst`, where each video contributes the WHOLE per-frame curve of its
decode with the highest / lowest frame-averaged metric (best-of-N).

VGG cosine similarity (paper Fig. 2; the final T2T has none): see
`VGGCosineSimilarity`. It follows the definition of T2T's early
`tensor2tensor/metrics/vgg_cosine_similarity.py` (tensorflow/tensor2tensor at
7ad13fe; not in the final T2T). Every conv and pool output of VGG16 is used, the cosine is
taken across channels at each position, averaged over positions, then averaged over
the 18 maps. Frames are resized and centre-cropped to 224x224 as there. The network is Keras'
`VGG16(include_top=False)` with weights from a local file, never downloaded.
"""

import math
import os
import warnings

import numpy as np
import tensorflow as tf

from t2t_videoflow.errors import DataError, UsageError

MAX_VALUE = 255
SSIM_WINDOW = 11   # tf.image.ssim's default filter size


def psnr_ceiling(num_values):
    """The PSNR (dB) reported for an exact frame of `num_values` = H*W*C uint8 values:
    10 log10(255^2 / (1 / (2 D))), 3.01 dB above the largest finite PSNR (MSE = 1/D)."""
    return 10.0 * math.log10(2.0 * MAX_VALUE ** 2 * num_values)


def _pair(predicted, true):
    """int32 tensors of `predicted [..., H, W, C]` and `true`, broadcast against each
    other (T2T casts both uint8 frame tensors to int32)."""
    predicted = tf.cast(predicted, tf.int32)
    true = tf.cast(true, tf.int32)
    shape = tf.broadcast_dynamic_shape(tf.shape(predicted), tf.shape(true))
    return tf.broadcast_to(predicted, shape), tf.broadcast_to(true, shape)


def frame_psnr(predicted, true, cap=True):
    """T2T's per-frame PSNR (dB) of uint8 frames.

    Args:
      predicted, true: uint8 `[..., H, W, C]`, broadcastable (e.g. samples
        `[S, K, H, W, C]` against the truth `[K, H, W, C]`).
      cap: report exact frames (MSE 0, PSNR +inf in T2T) as `psnr_ceiling(H*W*C)`
        (see the module doc); False keeps +inf.

    Returns:
      float32 `[...]`.
    """
    a, b = _pair(predicted, true)
    psnr = tf.image.psnr(a, b, max_val=MAX_VALUE)
    if not cap:
        return psnr
    num_values = tf.cast(tf.reduce_prod(tf.shape(a)[-3:]), tf.float64)
    ceiling = tf.cast(10.0 * tf.math.log(2.0 * MAX_VALUE ** 2 * num_values)
                      / tf.math.log(tf.constant(10.0, tf.float64)), tf.float32)
    return tf.where(tf.math.is_inf(psnr), ceiling, psnr)


def frame_ssim(predicted, true):
    """T2T's per-frame SSIM of uint8 frames (`tf.image.ssim(max_val=255)` on int32;
    11x11 Gaussian window, sigma 1.5, VALID, mean over channels and positions).

    Args:
      predicted, true: uint8 `[..., H, W, C]`, broadcastable, H and W >= 11.

    Returns:
      float32 `[...]`.
    """
    height, width = predicted.shape[-3], predicted.shape[-2]
    if height is not None and width is not None and min(height, width) < SSIM_WINDOW:
        raise DataError(f"SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window needs frames of at "
                        f"least {SSIM_WINDOW}x{SSIM_WINDOW}; got {height}x{width}.")
    a, b = _pair(predicted, true)
    return tf.image.ssim(a, b, max_val=MAX_VALUE)


def reduce_decodes(values):
    """T2T's statistics over decodes (samples) of one metric (higher is better).

    Args:
      values: `[num_decodes, num_videos, num_frames]` (a metric per decode, video and
        frame).

    Returns:
      dict of float64 `[num_frames]` curves, each averaged over videos:
        `mean` / `std`: mean / standard deviation (ddof 0, as T2T's numpy) over decodes;
        `best` / `worst`: per video the whole curve of the decode whose frame-averaged
          metric is highest / lowest (best-of-N; ties go to the first decode).
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError(f"values must be [decodes, videos, frames], none empty; got "
                         f"{list(values.shape)}.")
    per_decode = values.mean(axis=2)                       # [D, V]
    videos = np.arange(values.shape[1])

    def curve_of(decode_per_video):                         # [V] -> [F]
        return values[decode_per_video, videos].mean(axis=0)

    return {
        "mean": values.mean(axis=(0, 1)),
        "std": values.std(axis=0).mean(axis=0),
        "best": curve_of(per_decode.argmax(axis=0)),
        "worst": curve_of(per_decode.argmin(axis=0)),
    }


# -- VGG cosine similarity --------------------------------------------------------------

VGG_INPUT_SIZE = 224      # T2T's: slim's VGG eval preprocessing crops 224x224


class VGGCosineSimilarity:
    r"""Per-frame VGG cosine similarity of predicted and true frames.

    Preprocessing (as T2T's early metric, which used slim's VGG eval preprocessing):
    each uint8 RGB frame is resized bilinearly (aspect ratio kept) so that its shorter
    side is round(S * 256 / 224), then the central S x S crop is taken (S =
    `input_size`, 224 by default: a 64x64 frame goes to 256x256 and loses 16 pixels
    on each side). The crop, as 0..255 RGB floats, goes through Keras'
    `vgg16.preprocess_input` (RGB -> BGR, ImageNet mean subtracted, the convention
    of Keras' VGG16 weights). S must be >= 32 (VGG16 halves the size five times).

    Features: the 18 post-ReLU maps phi_m of Keras' `VGG16(include_top=False)`: the 13
    conv layers (block1_conv1 ... block5_conv3) and the 5 max-pools (block1_pool ...
    block5_pool), no global pooling. The similarity of frames a, b is

        sim(a, b) = 1/18 sum_m  mean over positions p of  cos(phi_m(a)_p, phi_m(b)_p),

    the cosine taken across the channels at each position. Where both channel
    vectors are zero (ReLU), the cosine is 1 (equal features). Where only one is zero, it
    is 0. T2T's `l2_normalize` gave 0 in both cases, so identical frames could score
    below 1. Post-ReLU features are >= 0, so sim is in [0, 1].

    Args:
      weights_path: a local Keras VGG16 weights file without the classifier: Keras'
        `vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5` (legacy HDF5), or a
        `.weights.h5` saved from `VGG16(include_top=False)`. Never downloaded.
      input_size: S above.
      frames_per_pass: frames per VGG forward pass (memory: about 60 MB of feature
        maps per frame at S = 224).

    Raises:
      UsageError: the file is missing or does not hold VGG16 conv weights.
    """

    def __init__(self, weights_path, input_size=VGG_INPUT_SIZE, frames_per_pass=16):
        import keras  # pylint: disable=import-outside-toplevel  (only with --vgg_weights)
        if int(input_size) < 32:
            raise UsageError(f"The VGG input size must be >= 32; got {input_size}.")
        self.weights_path = weights_path
        self.input_size = int(input_size)
        self.resize_side = int(round(self.input_size * 256 / 224))
        self.frames_per_pass = max(1, int(frames_per_pass))
        if not tf.io.gfile.exists(weights_path) or tf.io.gfile.isdir(weights_path):
            raise UsageError(f"--vgg_weights {weights_path!r} is not a file.")
        net = keras.applications.VGG16(include_top=False, weights=None,
                                       input_shape=(self.input_size, self.input_size, 3))
        expected = ("expected Keras' vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 or a "
                    ".weights.h5 saved from VGG16(include_top=False)")
        fresh = {layer.name: layer.get_weights()[0] for layer in net.layers if layer.weights}
        try:
            with warnings.catch_warnings():   # Keras warns per skipped layer, then raises
                warnings.simplefilter("ignore")
                _load_local(net, weights_path)
        except Exception as e:  # pylint: disable=broad-except  (h5py/Keras raise many kinds)
            raise UsageError(
                f"--vgg_weights {weights_path!r} could not be loaded into VGG16("
                f"include_top=False): {' '.join(str(e).split())[:200]} ({expected}).") from None
        # A load that skipped layers silently would leave their random initial kernels.
        kept = [name for name, kernel in fresh.items()
                if np.array_equal(net.get_layer(name).get_weights()[0], kernel)]
        if kept:
            raise UsageError(f"--vgg_weights {weights_path!r} holds no weights for VGG16 "
                             f"layer(s) {', '.join(kept)} ({expected}).")
        self.layer_names = [layer.name for layer in net.layers
                            if "_conv" in layer.name or "_pool" in layer.name]
        self._preprocess_input = keras.applications.vgg16.preprocess_input
        self._net = keras.Model(net.input, [net.get_layer(n).output
                                            for n in self.layer_names])
        self._unit_features = tf.function(self._unit_features_of, reduce_retracing=True)
        self._compare = tf.function(self._compare_to, reduce_retracing=True)

    def prepare(self, frames):
        """uint8 `[n, H, W, 3]` -> the network's input `[n, S, S, 3]` (see class doc)."""
        x = tf.cast(frames, tf.float32)
        height, width = tf.shape(x)[1], tf.shape(x)[2]
        scale = self.resize_side / tf.cast(tf.minimum(height, width), tf.float32)
        new_h = tf.maximum(self.input_size, tf.cast(
            tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
        new_w = tf.maximum(self.input_size, tf.cast(
            tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
        x = tf.image.resize(x, tf.stack([new_h, new_w]), method="bilinear")
        top, left = (new_h - self.input_size) // 2, (new_w - self.input_size) // 2
        x = x[:, top:top + self.input_size, left:left + self.input_size]
        return self._preprocess_input(x)

    def features(self, frames):
        """The 18 feature maps `[n, h_m, w_m, c_m]` of uint8 frames `[n, H, W, 3]`."""
        return self._net(self.prepare(frames), training=False)

    def _unit_features_of(self, frames):
        """Per map: (channel vectors scaled to unit length, 0 where zero; and a [n, h, w]
        float mask of the zero vectors)."""
        out = []
        for phi in self.features(frames):
            norm = tf.norm(phi, axis=-1, keepdims=True)
            zero = tf.equal(norm, 0.0)
            unit = tf.where(zero, 0.0, phi / tf.where(zero, 1.0, norm))
            out.append((unit, tf.cast(zero[..., 0], tf.float32)))
        return out

    def _compare_to(self, predicted, true_units):
        """sim of predicted `[r, K, H, W, 3]` against the truth's unit features
        (`[K, ...]` per map) -> `[r, K]`."""
        shape = tf.shape(predicted)
        rows, frames = shape[0], shape[1]
        flat = tf.reshape(predicted, tf.concat([[rows * frames], shape[2:]], 0))
        sims = []
        for (unit, zero), (true_unit, true_zero) in zip(self._unit_features(flat),
                                                         true_units):
            unit = tf.reshape(unit, tf.concat([[rows, frames], tf.shape(unit)[1:]], 0))
            zero = tf.reshape(zero, tf.concat([[rows, frames], tf.shape(zero)[1:]], 0))
            cosine = tf.reduce_sum(unit * true_unit, axis=-1) + zero * true_zero
            sims.append(tf.reduce_mean(cosine, axis=[2, 3]))
        return tf.add_n(sims) / len(sims)

    def similarity(self, predicted, true):
        """Per-frame similarity of samples against one truth.

        Args:
          predicted: uint8 `[S, K, H, W, 3]` (S samples of K frames).
          true: uint8 `[K, H, W, 3]`.

        Returns:
          float32 numpy `[S, K]`.
        """
        predicted, true = np.asarray(predicted), np.asarray(true)
        if predicted.ndim != 5 or predicted.shape[1:] != true.shape:
            raise ValueError(f"predicted [S, K, H, W, 3] and true [K, H, W, 3] must "
                             f"match; got {list(predicted.shape)}, {list(true.shape)}.")
        true_units = self._unit_features(tf.constant(true))
        rows = max(1, self.frames_per_pass // max(1, true.shape[0]))
        return np.concatenate([self._compare(tf.constant(predicted[i:i + rows]),
                                             true_units).numpy()
                               for i in range(0, len(predicted), rows)])

    def __call__(self, predicted, true):
        """Similarity of frame pairs: uint8 `[n, H, W, 3]` each -> float32 numpy `[n]`
        (`frames_per_pass` pairs at a time)."""
        predicted, true = np.asarray(predicted), np.asarray(true)
        step = self.frames_per_pass
        return np.concatenate([np.zeros([0], np.float32)] + [
            self.similarity(predicted[None, i:i + step], true[i:i + step])[0]
            for i in range(0, len(predicted), step)])


def _load_local(net, path):
    """`net.load_weights(path)`; a non-local path (gs://, ram://, ...) is read through a
    temporary local copy (h5py reads local files only)."""
    if os.path.isfile(path):
        net.load_weights(path)
        return
    import tempfile  # pylint: disable=import-outside-toplevel
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    with tempfile.TemporaryDirectory(prefix="vgg_weights_") as tmp:
        local = os.path.join(tmp, "vgg16" + suffix)
        tf.io.gfile.copy(path, local, overwrite=True)
        net.load_weights(local)
