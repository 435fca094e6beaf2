r"""`fvd`: Frechet Video Distance between real clips and sampled futures, with a LOCAL
I3D SavedModel (--i3d_model; nothing is downloaded). T2T has no FVD (its
`metrics/video_conditional_fvd.py` is an empty stub).

Protocol. Each clip of the split gives a real video of --num_frames frames (default
min(16, frames per video): I3D FVD is defined on 16-frame videos, and benchmark
listings quote VideoFlow's BAIR FVD, 131 +- 5, with 3 conditioning frames and 16-frame
videos; T2T gives no FVD protocol to follow). Its first `video_num_input_frames` frames
condition --num_samples samples of the remaining frames at --temperature (default:
the set's `temperature`), seeds `sampling.clip_seed(random_seed, clip index)` as
every tool; each
generated video is the real context followed by the sampled frames. FVD is the
Frechet distance between Gaussians fitted to the I3D features of the real videos
and of ALL generated videos (`fvd`); `fvd_per_draw` repeats it with only sample s of
each clip (N real against N generated, as most papers report), with its mean and
standard deviation over s.

The I3D model. `tf.saved_model.load(DIR)`; its "serving_default" signature (or the
loaded object itself when it has none) is called on ONE input, float32 videos
`[B, T, H, W, 3]` with values in [-1, 1] (`v / 127.5 - 1`, after a bilinear resize
of every frame to the H x W of the signature's input spec, 224 x 224 when not
fixed there), and must return `[B, F]` features (a single output, or the output
named "default"; the Kinetics-400 I3D gives its 400 logits there). TF-Hub's
`deepmind/i3d-kinetics-400/1` is a TF1 Hub module, not such a SavedModel: it has to be
re-exported (a `tf.Module` whose signature wraps it) before use.

The Frechet distance of `N(mu1, C1)` and `N(mu2, C2)`,

    d^2 = |mu1 - mu2|^2 + tr C1 + tr C2 - 2 tr (C1^{1/2} C2 C1^{1/2})^{1/2},

is computed with numpy's symmetric eigen-decomposition (`eigh`), without scipy
(not a dependency, and not installed with this package): `C1^{1/2} = V sqrt(L) V^T`,
and `tr (C1^{1/2} C2 C1^{1/2})^{1/2}` is the sum of the square roots of the
eigenvalues of that symmetric PSD matrix (equal to `tr (C1 C2)^{1/2}`, which
`scipy.linalg.sqrtm` computes from the non-symmetric product); eigenvalues are
clipped at 0, and so is d^2 (round-off). The reported FVD is d^2 (as in
Unterthiner et al.), covariances with ddof 1.
"""

import time

import numpy as np

from t2t_videoflow.model.sampling import Sampler
from t2t_videoflow.errors import UsageError
from t2t_videoflow.evaluation import report

NAME = "fvd"
OPTIONS = {"i3d_model": "i3d_model", "seed": "random_seed", "num_frames": "num_frames",
           "temperature": "temperature", "num_samples": "num_samples",
           "batch_size": "batch_size", "max_clips": "max_clips",
           "jit_compile": "jit_compile"}
FVD_FRAMES = 16
DEFAULT_SIZE = 224
HOW_CALLED = ("it is loaded with tf.saved_model.load and its serving_default signature "
              "is called on float32 videos [batch, time, height, width, 3] in [-1, 1] "
              "(frames resized to the signature's height x width, else 224 x 224) and "
              "must return features [batch, features]")


# -- the Frechet distance --------------------------------------------------------------

def _sqrt_psd(matrix):
    """Symmetric square root of a symmetric PSD matrix (negative eigenvalues from
    round-off clipped to 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """`d^2` between `N(mu1, cov1)` and `N(mu2, cov2)` (module docstring), float >= 0.

    Args:
      mu1, mu2: means `[F]`.
      cov1, cov2: symmetric PSD covariances `[F, F]`.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(
        np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(
        np.asarray(cov2, np.float64))
    f = mu1.shape[0]
    if mu1.shape != (f,) or mu2.shape != (f,) or cov1.shape != (f, f) \
            or cov2.shape != (f, f):
        raise ValueError(f"means [F] and covariances [F, F] must agree; got "
                         f"{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}.")
    root1 = _sqrt_psd((cov1 + cov1.T) / 2)
    middle = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    d2 = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * cross
    return max(float(d2), 0.0)


def feature_statistics(features):
    """`(mean [F], covariance [F, F])` of features `[N, F]` (N >= 2, ddof 1)."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be [N >= 2, F]; got {list(features.shape)}.")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(
        features.shape[1], features.shape[1])


def frechet_distance_of_features(a, b):
    """The Frechet distance between Gaussians fitted to features `a [N, F]` and
    `b [M, F]`."""
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


# -- the I3D model ---------------------------------------------------------------------

def check_options(i3d_model=None, **_):
    """UsageError unless `i3d_model` names a local SavedModel directory (cheap: the CLI
    calls it before restoring the run)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if not i3d_model:
        raise UsageError(f"FVD needs a local I3D SavedModel: pass --i3d_model=DIR "
                         f"(nothing is downloaded); {HOW_CALLED}.")
    if not tf.io.gfile.isdir(i3d_model):
        raise UsageError(f"--i3d_model {i3d_model!r} does not exist (or is not a "
                         "directory).")
    if not tf.saved_model.contains_saved_model(i3d_model):
        raise UsageError(f"--i3d_model {i3d_model!r} holds no SavedModel "
                         "(saved_model.pb).")


class I3D:
    """A local I3D SavedModel as a function: uint8 videos `[B, T, H, W, 3]` -> numpy
    features `[B, F]` (see the module docstring for how it is called).

    Raises:
      UsageError when `path` is None, missing or not a SavedModel, or the model's
      input or output does not fit.
    """

    def __init__(self, path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        self._tf = tf
        check_options(path)
        self.path = path
        loaded = tf.saved_model.load(path)
        self._loaded = loaded   # keeps the variables alive
        signatures = getattr(loaded, "signatures", {})
        if "serving_default" in signatures:
            fn = signatures["serving_default"]
            specs = fn.structured_input_signature[1]
            if len(specs) != 1:
                raise UsageError(f"--i3d_model {path!r}: the serving_default signature "
                                 f"takes {len(specs)} inputs ({', '.join(specs)}); "
                                 "FVD needs one (the videos).")
            (name, spec), = specs.items()
            self._call = lambda x: fn(**{name: x})
            shape = spec.shape
        elif callable(loaded):
            self._call = loaded
            shape = None
        else:
            raise UsageError(f"--i3d_model {path!r} has no serving_default signature "
                             "and is not callable.")
        dims = list(shape) if shape is not None and shape.rank == 5 else [None] * 5
        self.frames = dims[1]
        self.size = (dims[2] or DEFAULT_SIZE, dims[3] or DEFAULT_SIZE)

    def __call__(self, videos):
        tf = self._tf
        videos = np.asarray(videos)
        b, t, h, w, c = videos.shape
        if self.frames is not None and t != self.frames:
            raise UsageError(f"--i3d_model {self.path!r} takes {self.frames} frames per "
                             f"video; got {t} (set --num_frames={self.frames}).")
        x = tf.reshape(tf.cast(videos, tf.float32), [b * t, h, w, c])
        if (h, w) != tuple(self.size):
            x = tf.image.resize(x, self.size, method="bilinear")
        x = tf.reshape(x, [b, t, *self.size, c]) / 127.5 - 1.0
        out = self._call(x)
        if isinstance(out, dict):
            if len(out) == 1:
                out = next(iter(out.values()))
            elif "default" in out:
                out = out["default"]
            else:
                raise UsageError(f"--i3d_model {self.path!r} returns {len(out)} outputs "
                                 f"({', '.join(sorted(out))}); FVD needs one, or one "
                                 "named 'default'.")
        features = np.asarray(out, np.float64)
        if features.ndim < 2 or features.shape[0] != b:
            raise UsageError(f"--i3d_model {self.path!r} returned features of shape "
                             f"{list(features.shape)} for {b} videos; expected [{b}, F].")
        return features.reshape(b, -1)


def features_of(i3d, videos, batch_size):
    """I3D features `[N, F]` of uint8 videos `[N, T, H, W, 3]`, `batch_size` at a time."""
    return np.concatenate([i3d(videos[i:i + batch_size])
                           for i in range(0, len(videos), batch_size)])


# -- the experiment --------------------------------------------------------------------

def run(context, i3d_model=None, seed=0, num_frames=None, temperature=None,
        num_samples=10, batch_size=8, max_clips=None, jit_compile=False,
        results_dir=None):
    """The `fvd` experiment on a `RunContext`; writes `fvd.json` (module docstring).

    Args:
      i3d_model: a local I3D SavedModel directory (or an object with the `I3D` call).
      num_frames: frames per video, real context included (default min(16, frames
        per video)).
      temperature: default the set's.
      num_samples: samples per clip.
    """
    i3d = i3d_model if callable(i3d_model) else I3D(i3d_model)
    hp, model = context.hparams, context.model
    n = max(hp.video_num_input_frames, model.min_context_frames)
    if num_frames is None:
        available = context.frames_per_video()
        num_frames = min(FVD_FRAMES, available) if available else FVD_FRAMES
    if num_frames <= n:
        raise UsageError(f"--num_frames={num_frames} leaves no frame to sample after "
                         f"the {n} context frame(s).")
    if num_samples < 1:
        raise UsageError(f"--num_samples must be >= 1; got {num_samples}.")
    tau = hp.temperature if temperature is None else float(temperature)
    if not tau >= 0.0:
        raise UsageError(f"--temperature must be >= 0; got {tau}.")
    began = time.time()
    sampler = Sampler.of(model, jit_compile=jit_compile)
    context.log(f"{NAME}: {num_samples} sample(s) of {num_frames - n} frames after {n} "
                f"context frame(s) per {context.split} clip, temperature {tau:g}")
    # Features as we go: only the features of the N real and N S generated videos
    # are kept (BAIR test, 10 samples: 2,560 videos of 16 x 64 x 64 x 3 would be 0.5 GB).
    real_features, generated_features, count = [], [], 0
    for video in context.clips(num_frames, batch_size, max_clips):
        real_features.append(features_of(i3d, video, batch_size))
        for clip in video:
            batch = np.repeat(clip[np.newaxis, :n], num_samples, axis=0)
            samples = sampler.sample_clip(clip[:n], count, num_samples, num_frames - n, tau,
                                          seed)
            generated = np.concatenate([batch, samples], axis=1)         # [S, T, ...]
            generated_features.append(features_of(i3d, generated, batch_size))
            count += 1
            if count % 10 == 0:
                context.log(f"{NAME}: {count} clips sampled and featurised "
                            f"({time.time() - began:.0f} s)")
    if count < 2:
        raise UsageError(f"FVD needs at least 2 clips (a covariance); got {count}.")
    real_features = np.concatenate(real_features)                        # [N, F]
    generated_features = np.stack(generated_features)                    # [N, S, F]
    per_draw = [frechet_distance_of_features(real_features, generated_features[:, s])
                for s in range(num_samples)]
    result = {"experiment": NAME, **context.provenance(),
              "clips": count,
              "samples_per_clip": int(num_samples), "context_frames": n,
              "num_frames": int(num_frames), "temperature": tau, "seed": seed,
              "i3d_model": getattr(i3d, "path", None),
              "i3d_input_size": list(getattr(i3d, "size", [])) or None,
              "feature_dim": int(real_features.shape[1]),
              "fvd": frechet_distance_of_features(
                  real_features, generated_features.reshape(-1, real_features.shape[1])),
              "fvd_per_draw": per_draw,
              "fvd_per_draw_mean": float(np.mean(per_draw)),
              "fvd_per_draw_std": (float(np.std(per_draw, ddof=1)) if num_samples > 1
                                   else None),
              "seconds": time.time() - began}
    if results_dir:
        result["files"] = [report.write_json(results_dir, NAME, result)]
    return result


def format_result(result):
    """FVD pooled, then per draw (mean, std)."""
    spread = (f", std {result['fvd_per_draw_std']:.4g}"
              if result["fvd_per_draw_std"] is not None else "")
    return "\n".join([
        report.format_table(["videos", "frames", "context", "samples/clip", "FVD"],
                            [[result["clips"], result["num_frames"],
                              result["context_frames"], result["samples_per_clip"],
                              result["fvd"]]]),
        f"FVD of the {result['clips']} real videos against all "
        f"{result['clips'] * result['samples_per_clip']} generated: {result['fvd']:.4g}; "
        f"per draw (one sample per clip): mean {result['fvd_per_draw_mean']:.4g}{spread} "
        f"over {result['samples_per_clip']} draw(s); {result['feature_dim']} I3D "
        f"features, temperature {result['temperature']:g}"])
