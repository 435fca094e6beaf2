r"""`t2t-videoflow-eval`: the paper's experiments on a trained run, one command each.

    t2t-videoflow-eval --output_dir=RUN --data_dir=DATA --experiment=bpp --num_draws=5
    t2t-videoflow-eval --output_dir=RUN --data_dir=DATA --experiment=bpp --split=test

Each experiment restores the run's newest checkpoint (or --checkpoint_path), works on
the whole --split of the run's problem (or its first --max_clips clips), prints a table
and progress lines, and writes `<experiment>.json` (plus its plots) to --results_dir
(default OUTPUT_DIR/eval). Experiments (see `t2t_videoflow/evaluation/`):

  bpp                bits per pixel of every target frame given its conditioning
                     window (paper 5.2), per target index, with the Monte-Carlo
                     spread over --num_draws dequantisation draws; draw 0 is exactly
                     the trainer's dev bpp for the same checkpoint and --random_seed.
  out_of_sequence    frame t = n+1 .. --num_frames of each clip scored AS IF it came
                     right after the n context frames (paper 5.4, Fig. 4): mean bpp
                     and standard error over clips per t, whether the curve rises
                     monotonically (and the first t where it falls), a plot; t = n+1
                     is the ordinary bpp of the first target.
  interpolate        latent interpolation between each clip's first input frame and
                     its last target frame (paper 5.7, T2T nfg_interpolate): both
                     encoded alone with noise, the standardised level latents and the
                     top interpolated (--interp_levels all|top|bottom) over
                     --num_interp coefficients and decoded; a GIF and a PNG strip per
                     clip, per-coefficient pixel statistics and endpoint errors.
  long_rollout       --num_samples samples of --num_frames frames (default 100) at
                     --temperature (default 0.5) after the first clip's context (paper
                     5.6; --max_clips=0 means one clip here), sampled in chunks with a
                     progress line each; a GIF per sample, a strip of every k-th frame,
                     per-frame pixel statistics (mean per channel, contrast,
                     near-black fraction, frame-to-frame change) against the
                     context's, and their plot.
  fvd                Frechet Video Distance between the split's real videos
                     (--num_frames, default 16) and videos of their context plus
                     --num_samples sampled futures, from the I3D features of a LOCAL
                     SavedModel (--i3d_model; never downloaded): pooled over all
                     samples and per draw (T2T has no FVD).
  temperature_sweep  PSNR, SSIM and (with --vgg_weights, a local VGG16 file) VGG
                     cosine similarity of --num_samples futures per test context
                     against the truth, per frame, at each of --temperatures (paper
                     5.5, appendix C): best-of-N (T2T's reduce_to_best_decode) and
                     mean over samples, and the best temperature per metric; plots
                     of each metric per frame and against the temperature.

User errors (missing run dir, checkpoint or data, bad flag values, missing weights
files) print one `t2t-videoflow-eval: error: ...` line and exit with status 1.
"""

import os

from t2t_videoflow.cli import tool as cli
from t2t_videoflow import evaluation
from t2t_videoflow.errors import UsageError

# TensorFlow and the model load on first use, after the flags are checked.
context_lib = cli.lazy_import("t2t_videoflow.evaluation.context")

NAME = "t2t-videoflow-eval"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "output_dir", None, "The training output dir (hparams.json, "
            "checkpoints).", required=True)
TOOL.define("string", "experiment", None, "One of: " + ", ".join(evaluation.EXPERIMENTS)
            + ".", required=True)
TOOL.define("string", "data_dir", None, "Directory of the problem's shards.")
TOOL.define("enum", "split", "dev", "Split to evaluate on.", enum_values=["dev", "test"])
TOOL.define("string", "results_dir", None, "Where the JSON table and plots go (default: "
            "OUTPUT_DIR/eval).")
TOOL.define("string", "checkpoint_path", None, "Checkpoint prefix (default: the newest in "
            "--output_dir).")
TOOL.define("string", "problem", None, "Problem of the clips (default: the run's).")
TOOL.define("string", "t2t_usr_dir", None, "Python package or file registering more "
            "problems and hparams sets (default: the run's).")
TOOL.define("integer", "random_seed", 0, "Seed of the dequantisation noise and of the "
            "samples.", minimum=0, maximum=cli.MAX_SEED)
TOOL.define("integer", "batch_size", 8, "Clips per batch.", minimum=1)
TOOL.define("integer", "max_clips", 0, "Use only the first this many clips of the split "
            "(0: all).", minimum=0)
TOOL.define("integer", "num_draws", 1, "bpp: dequantisation-noise draws (their spread "
            "is the Monte-Carlo error).", minimum=1)
TOOL.define("string", "temperatures", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0",
            "temperature_sweep: comma-separated temperatures.")
TOOL.define("integer", "num_samples", 10, "Samples per test context (the paper uses "
            "100).", minimum=1)
TOOL.define("float", "temperature", None, "Sampling temperature (default: the "
            "experiment's).", minimum=0)
TOOL.define("integer", "num_frames", None, "Frames per clip or rollout (default: the "
            "experiment's).", minimum=1)
TOOL.define("string", "vgg_weights", None, "A local VGG16 weights file (Keras .h5 / "
            ".weights.h5) for the VGG cosine similarity; never downloaded.")
TOOL.define("string", "i3d_model", None, "A local I3D SavedModel directory for FVD; never "
            "downloaded.")
TOOL.define("integer", "num_interp", 11, "interpolate: interpolation coefficients.",
            minimum=2)
TOOL.define("enum", "interp_levels", "all", "interpolate: the latents interpolated.",
            enum_values=["all", "top", "bottom"])
TOOL.define("integer", "interp_rank", 0, "interpolate: T2T's channel_interp=ranked: move "
            "only the k-th most different channel of each latent (0: every channel).",
            minimum=0)
TOOL.define("boolean", "jit_compile", False, "Compile the model's passes with XLA.")
TOOL.define("boolean", "plots", True, "Also write PNG plots (needs matplotlib, the "
            "`plots` extra; without it they are skipped, with a note).")
TOOL.define("boolean", "ema_weights", True, cli.EMA_WEIGHTS_HELP)


def evaluate(output_dir, experiment, data_dir=None, split="dev", results_dir=None,
             checkpoint_path=None, problem_name=None, t2t_usr_dir=None, log=print,
             ema_weights=True, **flag_values):
    """Runs `experiment` on the run in `output_dir`; returns its result dict.

    `flag_values` holds the experiment's options by flag name (`random_seed`,
    `num_draws`, ...); `max_clips=0` means all.
    """
    module = evaluation.experiment(experiment)
    options = {}
    for keyword, flag in module.OPTIONS.items():
        if flag in flag_values:
            value = flag_values[flag]
            # 0 means "all" (clips, channels) for these two.
            none_at_zero = flag in ("max_clips", "interp_rank") and value == 0
            options[keyword] = None if none_at_zero else value
    if hasattr(module, "check_options"):     # before the (slow) restore
        module.check_options(**options)
    context = context_lib.load_run(output_dir, data_dir, split, checkpoint_path,
                                   problem_name, t2t_usr_dir, log=log, use_ema=ema_weights)
    results_dir = results_dir or os.path.join(output_dir, "eval")
    log(f"{NAME}: {experiment} on {context.checkpoint} (step {context.step}, "
        f"{context.weights} weights), "
        f"{context.problem.name} {split} split")
    result = module.run(context, results_dir=results_dir, **options)
    log(module.format_result(result))
    for path in result.get("files", []):
        log(f"  wrote {path}")
    return result


def main(argv):
    """Checks the flags (no TensorFlow yet), then runs the experiment."""
    def precheck():
        if TOOL.value("experiment") not in evaluation.EXPERIMENTS:
            raise UsageError(f"Unknown --experiment {TOOL.value('experiment')!r}; choose "
                             f"one of {', '.join(evaluation.EXPERIMENTS)}.")

    def body():
        v = TOOL.value
        common = ("output_dir", "experiment", "data_dir", "split", "results_dir",
                  "checkpoint_path", "problem", "t2t_usr_dir", "ema_weights")
        rest = {name: v(name) for name in TOOL.flag_names if name not in common}
        evaluate(v("output_dir"), v("experiment"), v("data_dir"), v("split"),
                 v("results_dir"), v("checkpoint_path"), v("problem"), v("t2t_usr_dir"),
                 log=lambda message: print(message, flush=True),
                 ema_weights=v("ema_weights"), **rest)
    return TOOL.main(argv, body, precheck=precheck)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
