r"""`t2t-videoflow-motion`: do a shapes model's samples keep their shape and move like data?

    t2t-videoflow-motion --output_dir=RUN --data_dir=DATA \
        --num_clips=16 --num_samples=8 --temperatures=0.5,1.0

For the first `--num_clips` dev clips (`--eval_use_test_set`: test) of a stochastic
shapes run, draws `--num_samples` samples of `--num_target_frames` frames after each
clip's context at each temperature, and reports with `motion.analyze_samples`:

  * the shares of samples whose shape stays intact, that move coherently (a constant
    step in one of the 8 directions), that stand still, that move incoherently, or
    that lose the shape; the histogram over the 8 directions and its uniformity; the
    mean shape area per frame (fading);
  * with a context of 2 or more frames (sets with `video_num_input_frames >= 2`, such
    as the README demo), the share of samples that keep the shape and continue the
    context's direction, which the data always does;
  * the same for the real clips (context + ground truth), as a sanity row: the data
    comes out 100% intact and coherent, with its own direction histogram;
  * bits per pixel per target frame of the real clips and of the model's own samples
    (context + sample), scored by the model with `VideoFlow.bits_per_pixel` under the
    same seeded dequantisation noise. At temperature 1 the samples are exact draws
    from the density the model scores (`VideoFlow.sample_with_log_density`, tested),
    so their mean bpp is the model's entropy rate and the data's is the cross-entropy:
    samples scoring much worse than the data mean a model that spreads its mass over
    frames unlike the data (over-dispersed), not a sampler fault. Lower temperatures
    sample more probable frames and score lower.
  * the background's share of the bits: the bpp of an empty (all-black) clip of the
    same length, against `motion.BIN_AFFINE_FLOOR_BITS` (0.2546), what a flow that is
    affine inside each 1/256 dequantisation bin pays per constant sub-pixel, and the
    share of black sub-pixels in the real targets. A model at or above that floor on
    the empty clip cannot score the data much below `black share x floor`, so a bpp target
    below it (the paper's 0.05-0.09 on shapes) needs the background modelled past it.

It prints progress lines and the tables, and writes all figures as JSON to
`--results_file` (default OUTPUT_DIR/motion.json). Temperatures default to the set's
temperature plus 1.0; `--num_target_frames` to the set's `video_num_target_frames`.
The K samples of clip i are drawn in one batch under
`sampling.clip_seed(--random_seed, i)` and clip i's dequantisation noise is its noise
under `(--random_seed, 0)` (`model/noise.py`), so results do not depend on `--batch`,
which only sets how many clips are scored at a time. The problem and hparams are the
run's (`run.json`, `hparams.json`), the checkpoint the newest unless
`--checkpoint_path` is given.

User errors (missing run dir, checkpoint or data, a run that is not a shapes run, bad
flag values) print one `t2t-videoflow-motion: error: ...` line and exit with status 1.
"""

import json
import math
import os
import time

import numpy as np

from t2t_videoflow.cli import tool as cli
# Flags are process-wide (absl): `cli.define` keeps the first definition of a name
# another tool shares, and `TOOL.value` applies this tool's own defaults.
from t2t_videoflow.config.temperatures import parse_temperatures
from t2t_videoflow.errors import UsageError

# TensorFlow, the model and the problems load on first use, after the flags are checked.
tf = cli.lazy_import("tensorflow")
restore = cli.lazy_import("t2t_videoflow.training.restore")
noise_lib = cli.lazy_import("t2t_videoflow.model.noise")
sampling = cli.lazy_import("t2t_videoflow.model.sampling")
clips_lib = cli.lazy_import("t2t_videoflow.data.clips")
motion = cli.lazy_import("t2t_videoflow.evaluation.motion")
run_dir = cli.lazy_import("t2t_videoflow.training.run_dir")
stochastic_shapes = cli.lazy_import("t2t_videoflow.problems.stochastic_shapes")

NAME = "t2t-videoflow-motion"
DEFAULTS = {"num_clips": 16, "num_samples": 8}
RESULTS_FILE = "motion.json"

TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "output_dir", None, "The training output dir (hparams.json, "
            "checkpoints).", required=True)
TOOL.define("string", "data_dir", None, "Directory of the problem's shards.",
            required=True)
TOOL.define("integer", "num_clips", DEFAULTS["num_clips"], "Dev clips to condition on.",
            minimum=1)
TOOL.define("integer", "num_samples", DEFAULTS["num_samples"], "Samples per clip and "
            "temperature.", minimum=1)
TOOL.define("string", "temperatures", None, "Comma-separated sampling temperatures >= 0 "
            "(default: the set's temperature and 1.0). An entry 'a/b/...' gives one per "
            "flow level, finest first and the top last (e.g. 0/1 with 2 levels: noise "
            "only in the top latent).")
TOOL.define("integer", "num_target_frames", None, "Frames per sample (default: the set's "
            "video_num_target_frames).", minimum=1)
TOOL.define("string", "checkpoint_path", None, "Checkpoint prefix (default: the newest in "
            "--output_dir).")
TOOL.define("integer", "random_seed", 0, "Seed of the sampling and dequantisation noise.",
            minimum=0, maximum=cli.MAX_SEED)
TOOL.define("string", "results_file", None, "JSON file of the results (default: "
            "OUTPUT_DIR/motion.json).")
TOOL.define("boolean", "eval_use_test_set", False, "Take clips from the test split.")
TOOL.define("integer", "batch", 8, "Clips per scoring call (results do not depend on it).",
            minimum=1)
TOOL.define("string", "problem", None, "Problem of the clips (default: the run's).")
TOOL.define("string", "t2t_usr_dir", None, "Python package or file registering more "
            "problems and hparams sets (default: the run's).")
TOOL.define("boolean", "ema_weights", True, cli.EMA_WEIGHTS_HELP)


def temperature_text(tau):
    """`0.5` -> "0.5"; per-level `[0.0, 1.0]` -> "0/1"."""
    if isinstance(tau, (list, tuple)):
        return "/".join(f"{t:g}" for t in tau)
    return f"{tau:g}"


def sample_clips(model, contexts, num_samples, num_frames, temperature, seed, log=None,
                 log_every=8):
    """K samples after each context: uint8 `[N, K, T, H, W, 3]`; clip i's in one batch
    under `sampling.clip_seed(seed, i)`. `log(done_clips, seconds)` every `log_every`
    clips and at the end."""
    sampler = sampling.Sampler.of(model)
    began, out = time.time(), []
    for i, context in enumerate(contexts):
        out.append(sampler.sample_clip(context, i, num_samples, num_frames, temperature,
                                       seed, chunk=num_frames))
        if log is not None and ((i + 1) % log_every == 0 or i + 1 == len(contexts)):
            log(i + 1, time.time() - began)
    return np.stack(out)


def score_clips(model, frames, num_context, seed, batch):
    """Bits per pixel `[B, T - num_context]` of uint8 clips `[B, T, H, W, 3]`, `batch`
    rows at a time; clip i gets its dequantisation noise under the pair `(seed, 0)`
    (`model/noise.py`), whatever `batch` is."""
    out = []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        noise = noise_lib.batch_noise(tf.shape(chunk), tf.constant([seed, 0], tf.int64),
                                      first_clip=start)
        bpp = model.bits_per_pixel(chunk, num_context, noise=noise)
        out.append(bpp.numpy())
    return np.concatenate(out)


def _finite(values):
    """Floats, with NaN and infinities as None (JSON has neither)."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values).ravel()]


def _bpp_row(bpp):
    per_frame = bpp.mean(axis=0)
    return {"bpp_per_frame": _finite(per_frame), "bpp": _finite([per_frame.mean()])[0]}


def _format_bpp(name, row):
    mean = "-" if row["bpp"] is None else f"{row['bpp']:.3f}"
    frames = " ".join("-" if v is None else f"{v:.3f}" for v in row["bpp_per_frame"])
    line = f"  bits per pixel of the {name}: {mean} (per target frame: {frames})"
    if row.get("bpp_minus_data") is not None:
        line += f", {row['bpp_minus_data']:+.3f} vs the real clips"
    return line


def background_row(model, truths, n_ctx, random_seed, batch):
    """The empty-clip bpp and what it implies for the data (module docstring).

    Args:
      truths: uint8 real target frames `[N, K, H, W, C]` (their black share).

    Returns:
      dict: `bpp_per_frame`, `bpp` of N all-black clips of `n_ctx + K` frames,
      `gaussian_floor_bits`, `black_share` of the real targets' sub-pixels, and
      `data_floor_bpp` = black_share x floor.
    """
    n, k = truths.shape[:2]
    empty = np.zeros((n, n_ctx + k, *truths.shape[2:]), np.uint8)
    row = _bpp_row(score_clips(model, empty, n_ctx, random_seed, batch))
    black = float(np.mean(truths == 0))
    floor = motion.BIN_AFFINE_FLOOR_BITS
    row.update({"gaussian_floor_bits": floor, "black_share": black,
                "data_floor_bpp": black * floor})
    return row


def _format_background(row):
    mean = "-" if row["bpp"] is None else f"{row['bpp']:.3f}"
    return (f"  bits per pixel of an empty (all-black) clip: {mean} (a flow affine inside "
            f"each 1/256 bin pays {row['gaussian_floor_bits']:.4f}); "
            f"{100 * row['black_share']:.1f}% of the real targets' sub-pixels are black, "
            f"so with the background at that floor the data scores no lower than about "
            f"{row['data_floor_bpp']:.3f}")


def diagnose(output_dir, data_dir, num_clips=DEFAULTS["num_clips"],
             num_samples=DEFAULTS["num_samples"], temperatures=None,
             num_target_frames=None, checkpoint_path=None, random_seed=0,
             results_file=None, use_test_set=False, batch=8, problem_name=None,
             t2t_usr_dir=None, log=print, ema_weights=True):
    """Runs the motion diagnostic on a shapes run; writes and returns the results.

    Args are the flags of the same names (module docstring); `temperatures` is a list
    whose entries are floats or per-level lists of floats (finest level first, top
    last; None: the set's temperature and 1.0).

    Returns:
      dict (as written to the results file): `run` (output dir, checkpoint, step,
      problem, split), `settings` (clips, samples, frames, temperatures, seed, batch),
      `data` and one `samples` entry per temperature, each with `motion` (an
      `analyze_samples` report), `bpp_per_frame`, `bpp` and, for samples,
      `bpp_minus_data` (mean over the frames both have), and `background`
      (`background_row`).
    """
    for name, value in (("num_clips", num_clips), ("num_samples", num_samples),
                        ("batch", batch)):
        if value < 1:
            raise UsageError(f"--{name} must be >= 1; got {value}.")
    if num_target_frames is not None and num_target_frames < 1:
        raise UsageError(f"--num_target_frames must be >= 1; got {num_target_frames}.")
    for tau in temperatures or ():
        if not all(t >= 0.0 for t in np.atleast_1d(tau)):
            raise UsageError(f"--temperatures must be >= 0; got {temperature_text(tau)}.")
    if not data_dir:
        raise UsageError("--data_dir is required.")
    run = restore.restore_for_inference(output_dir, problem_name,
                                        checkpoint_path=checkpoint_path,
                                        t2t_usr_dir=t2t_usr_dir, use_ema=ema_weights)
    model, hparams, problem = run.model, run.hparams, run.problem
    if not isinstance(problem, stochastic_shapes.StochasticShapes):
        raise UsageError(f"{NAME} analyses stochastic shapes runs; problem "
                         f"{problem.name!r} is not one.")
    if temperatures is None:
        temperatures = sorted({float(hparams.temperature), 1.0})
    n_levels = model.flow.n_levels
    for tau in temperatures:
        if isinstance(tau, (list, tuple)) and len(tau) != n_levels:
            raise UsageError(
                f"--temperatures entry {temperature_text(tau)} has {len(tau)} values; "
                f"this model has {n_levels} flow levels (give one per level, finest "
                f"first, the top last).")
    k = hparams.video_num_target_frames if num_target_frames is None else num_target_frames
    split = "test" if use_test_set else "dev"
    contexts, truths = clips_lib.dev_clips(problem, hparams, data_dir, num_clips, use_test_set)
    n_ctx = contexts.shape[1]
    log(f"{NAME}: {run.checkpoint} (step {run.step}, {run.weights} weights); "
        f"{num_clips} {problem.name} "
        f"{split} clip(s), {n_ctx} context frame(s); {num_samples} sample(s) of {k} "
        f"frame(s) per clip at temperature(s) "
        f"{', '.join(temperature_text(t) for t in temperatures)}")

    data = {"temperature": None,
            "motion": motion.analyze_samples(contexts, truths[:, np.newaxis])}
    data.update(_bpp_row(score_clips(model, np.concatenate([contexts, truths], axis=1),
                                     n_ctx, random_seed, batch)))
    background = background_row(model, truths, n_ctx, random_seed, batch)
    rows = []
    for tau in temperatures:
        def progress(done, seconds, tau=tau):
            log(f"{NAME}: temperature {temperature_text(tau)}: {done}/{num_clips} clips sampled "
                f"({seconds:.1f} s)")

        samples = sample_clips(model, contexts, num_samples, k, tau, random_seed,
                               log=progress, log_every=batch)
        row = {"temperature": tau, "motion": motion.analyze_samples(contexts, samples)}
        clips = np.concatenate([np.repeat(contexts, num_samples, axis=0),
                                samples.reshape(-1, *samples.shape[2:])], axis=1)
        row.update(_bpp_row(score_clips(model, clips, n_ctx, random_seed,
                                        batch * num_samples)))
        common = min(len(row["bpp_per_frame"]), len(data["bpp_per_frame"]))
        pairs = [(s, d) for s, d in zip(row["bpp_per_frame"][:common],
                                        data["bpp_per_frame"][:common])
                 if s is not None and d is not None]
        row["bpp_minus_data"] = (float(np.mean([s - d for s, d in pairs]))
                                 if pairs else None)
        rows.append(row)

    results = {
        "run": {"output_dir": output_dir, "checkpoint": run.checkpoint,
                "step": run.step, "weights": run.weights, "problem": problem.name,
                "split": split},
        "settings": {"num_clips": num_clips, "num_samples": num_samples,
                     "num_target_frames": k, "temperatures": temperatures,
                     "random_seed": random_seed, "batch": batch},
        "data": data,
        "samples": rows,
        "background": background,
    }
    log(motion.format_report(data["motion"], title=f"real clips ({split}):"))
    log(_format_bpp("real clips", data))
    log(_format_background(background))
    for row in rows:
        log(motion.format_report(row["motion"],
                                 title=f"samples at temperature "
                                       f"{temperature_text(row['temperature'])}:"))
        log(_format_bpp("model's own samples", row))
    path = results_file or os.path.join(output_dir, RESULTS_FILE)
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    run_dir.write_json_atomic(path, json.dumps(results, indent=2))
    log(f"{NAME}: wrote {path}")
    return results


def main(argv):
    """Checks the flags (no TensorFlow yet), then runs the diagnostic."""
    try:
        text = TOOL.value("temperatures")
        temperatures = parse_temperatures(text) if text and text.strip() else None
    except ValueError as e:
        return TOOL.error(e)

    def body():
        v = TOOL.value
        diagnose(v("output_dir"), v("data_dir"), v("num_clips"), v("num_samples"),
                 temperatures, v("num_target_frames"), v("checkpoint_path"),
                 v("random_seed"), v("results_file"), v("eval_use_test_set"), v("batch"),
                 v("problem"), v("t2t_usr_dir"),
                 log=lambda message: print(message, flush=True), ema_weights=v("ema_weights"))
    return TOOL.main(argv, body)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
