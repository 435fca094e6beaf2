r"""`t2t-videoflow-decoder`: sample future frames from a trained run, as GIFs and a grid.

    t2t-videoflow-decoder --output_dir=RUN --data_dir=DATA --num_samples=3 \
        --num_target_frames=100 --temperature=0.5 --decode_to_file=/tmp/samples
    t2t-videoflow-decoder --output_dir=RUN --input_frames=my_frames/ ...   # PNG folder
    t2t-videoflow-decoder --output_dir=RUN --input_frames=clip.npy ...     # uint8 array

Conditions on the first `video_num_input_frames` frames of `--num_clips` dev clips
(`--eval_use_test_set`: test), or on ALL the user-given frames (a folder of PNGs in
file-name order, or a `.npy` of uint8 `[T, H, W, 3]` / `[N, T, H, W, 3]`), draws
`--num_samples` samples of `--num_target_frames` frames each, and writes per clip:

    clipNNN_sampleMM.gif   context then sampled frames, one animated GIF per sample
    clipNNN_grid.png       one row per sample: context | ground truth | samples
    clipNNN_samples.npy    the sampled frames, uint8 [num_samples, K, H, W, 3]

The problem and hparams default to the run's (`run.json`, `hparams.json`), the
temperature to the set's, the checkpoint to the newest. Sampling runs as a graph
`tf.while_loop` (`VideoFlow.generate`, the same frames as `VideoFlow.sample` for a
seed) in chunks of `--progress_every` frames, with a progress line per chunk.

User errors (missing run dir, checkpoint or data, unknown names, a problem that does
not fit the run, bad flag values or input frames) print one
`t2t-videoflow-decoder: error: ...` line and exit with status 1.
"""

import os

import numpy as np

from t2t_videoflow.cli import tool as cli
from t2t_videoflow.errors import UsageError

# TensorFlow and the model load on first use, after the flags are checked.
tf = cli.lazy_import("tensorflow")
restore = cli.lazy_import("t2t_videoflow.training.restore")
media = cli.lazy_import("t2t_videoflow.data.media")
sampling = cli.lazy_import("t2t_videoflow.model.sampling")
clips_lib = cli.lazy_import("t2t_videoflow.data.clips")

NAME = "t2t-videoflow-decoder"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "output_dir", None, "The training output dir (hparams.json, "
            "checkpoints).", required=True)
TOOL.define("string", "problem", None, "Problem of the dev clips (default: the run's).")
TOOL.define("string", "hparams_set", None, "Hparams set (default: the run's hparams.json).")
TOOL.define("string", "hparams", "", "Overrides, 'name=value,name=value'.")
TOOL.define("string", "data_dir", None, "Directory of the problem's shards (not needed "
            "with --input_frames).")
TOOL.define("string", "decode_to_file", None, "Directory for the GIFs, grids and .npy "
            "files (default: OUTPUT_DIR/decode).")
TOOL.define("integer", "num_samples", 3, "Samples per conditioning clip.", minimum=1)
TOOL.define("float", "temperature", None, "Sampling temperature tau >= 0 (default: the "
            "hparams set's temperature).", minimum=0)
TOOL.define("integer", "num_target_frames", None, "Frames to sample per sample (default: "
            "the set's video_num_target_frames); 100+ works (progress lines).", minimum=1)
TOOL.define("integer", "random_seed", 0, "Seed of the sampling noise (the samples "
            "of clip i: model/sampling.clip_seed(random_seed, i)).", minimum=0,
            maximum=cli.MAX_SEED)
TOOL.define("string", "checkpoint_path", None, "Checkpoint prefix (default: the newest in "
            "--output_dir).")
TOOL.define("string", "input_frames", None, "Condition on these frames instead of dev "
            "clips: a folder of PNGs or a .npy file.")
TOOL.define("integer", "num_clips", 1, "Dev clips to condition on (or the first clips "
            "of a [N, T, H, W, 3] .npy).", minimum=1)
TOOL.define("boolean", "eval_use_test_set", False, "Take clips from the test split.")
TOOL.define("integer", "progress_every", 10, "Frames per sampling chunk / progress line.",
            minimum=1)
TOOL.define("float", "gif_fps", 4.0, "Frames per second of the GIFs.", above=0)
TOOL.define("boolean", "jit_compile", False, "Compile the sampling loop with XLA.")
TOOL.define("boolean", "ema_weights", True, cli.EMA_WEIGHTS_HELP)
TOOL.define("string", "t2t_usr_dir", None, "Python package or file registering more "
            "problems and hparams sets (default: the run's).")


def write_clip(out_dir, index, context, ground_truth, samples, fps=4.0):
    """Writes one clip's GIFs, grid and samples; returns the written paths."""
    prefix = os.path.join(out_dir, f"clip{index:03d}")
    paths = []
    for j, sample in enumerate(samples):
        paths.append(media.write_gif(f"{prefix}_sample{j:02d}.gif",
                                     np.concatenate([context, sample]), fps=fps))
    paths.append(media.write_png(f"{prefix}_grid.png",
                                 media.make_grid(context, ground_truth, samples)))
    paths.append(media.write_npy(f"{prefix}_samples.npy", samples))
    return paths


def decode(output_dir, decode_to_file=None, problem_name=None, hparams_set=None,
           overrides="", data_dir=None, num_samples=3, temperature=None,
           num_target_frames=None, random_seed=0, checkpoint_path=None,
           input_frames=None, num_clips=1, use_test_set=False, progress_every=10,
           gif_fps=4.0, jit_compile=False, t2t_usr_dir=None, log=print, ema_weights=True):
    """Samples from the run in `output_dir` and writes the files; returns their paths.

    See the module docstring for the arguments (the flags of the same names).
    """
    for name, value in (("num_samples", num_samples), ("num_clips", num_clips),
                        ("progress_every", progress_every)):
        if value < 1:
            raise UsageError(f"--{name} must be >= 1; got {value}.")
    if num_target_frames is not None and num_target_frames < 1:
        raise UsageError(f"--num_target_frames must be >= 1; got {num_target_frames}.")
    if temperature is not None and not temperature >= 0.0:
        raise UsageError(f"--temperature must be >= 0; got {temperature}.")
    if gif_fps <= 0:
        raise UsageError(f"--gif_fps must be > 0; got {gif_fps}.")
    if (decode_to_file and tf.io.gfile.exists(decode_to_file)
            and not tf.io.gfile.isdir(decode_to_file)):
        raise UsageError(f"--decode_to_file {decode_to_file!r} is an existing file, not "
                         "a directory; give a directory (created if missing).")
    run = restore.restore_for_inference(
        output_dir, problem_name, hparams_set, overrides, checkpoint_path, t2t_usr_dir,
        need_problem=input_frames is None, use_ema=ema_weights)
    model, hparams = run.model, run.hparams
    sampler = sampling.Sampler(model, jit_compile=jit_compile)
    needed = model.min_context_frames
    if input_frames:
        contexts = media.read_frames(input_frames, model.frame_shape, min_frames=needed)
        contexts = contexts[:num_clips]
        truths = [None] * len(contexts)
        source = input_frames
    else:
        if not data_dir:
            raise UsageError("--data_dir is required (or give --input_frames).")
        contexts, truths = clips_lib.dev_clips(run.problem, hparams, data_dir,
                                               num_clips, use_test_set)
        source = f"{run.problem.name} {'test' if use_test_set else 'dev'} clips"
    tau = hparams.temperature if temperature is None else float(temperature)
    k = hparams.video_num_target_frames if num_target_frames is None else num_target_frames
    out_dir = decode_to_file or os.path.join(output_dir, "decode")
    tf.io.gfile.makedirs(out_dir)
    log(f"{NAME}: {run.checkpoint} (step {run.step}, {run.weights} weights); "
        f"{len(contexts)} clip(s) from "
        f"{source}, {contexts.shape[1]} context frame(s); {num_samples} sample(s) of {k} "
        f"frame(s) at temperature {tau:g}")
    paths = []
    for i, (context, truth) in enumerate(zip(contexts, truths)):
        def progress(done, total, seconds, i=i):
            log(f"{NAME}: clip {i + 1}/{len(contexts)}: {done}/{total} frames "
                f"({seconds:.1f} s)")

        samples = sampler.sample_clip(context, i, num_samples, k, tau, random_seed,
                                      chunk=progress_every, log=progress)
        paths += write_clip(out_dir, i, context, truth, samples, fps=gif_fps)
    log(f"{NAME}: wrote {len(paths)} files to {out_dir}:")
    for path in paths:
        log(f"  {path}")
    return paths


def main(argv):
    """Checks the flags (no TensorFlow yet), then samples."""
    def body():
        v = TOOL.value
        decode(v("output_dir"), v("decode_to_file"), v("problem"), v("hparams_set"),
               v("hparams"), v("data_dir"), v("num_samples"), v("temperature"),
               v("num_target_frames"), v("random_seed"), v("checkpoint_path"),
               v("input_frames"), v("num_clips"), v("eval_use_test_set"),
               v("progress_every"), v("gif_fps"), v("jit_compile"), v("t2t_usr_dir"),
               log=lambda message: print(message, flush=True), ema_weights=v("ema_weights"))
    return TOOL.main(argv, body)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
