r"""t2t-videoflow-import: a T2T-trained VideoFlow checkpoint as a run directory.

    t2t-videoflow-import --t2t_checkpoint=$T2T_RUN/model.ckpt-300000 \
        --problem=bair_action_free --hparams_set=videoflow_bpp --output_dir=$RUN

reads the weights of T2T's `next_frame_glow` (TF1 checkpoint, variables under
`next_frame_glow/body/`) into a model built from the given problem and hparams set
(they must be the ones T2T trained with: every T2T variable is matched by name and
shape) and writes `$RUN` in the trainer's layout (`hparams.json`, `run.json`,
`model.ckpt-N`, `t2t_import.json`), so the decoder, the exporter and the trainer
(fine-tuning) use it as if this port had trained it.

* Every actnorm is marked initialised: fine-tuning never re-runs data-dependent init
  over the imported weights.
* The checkpoint holds the model only. T2T's Adam slots are not imported (fine-tuning
  starts with fresh Adam moments); `global_step` is imported with
  `--import_global_step` (N in `model.ckpt-N`, and the step the trainer continues
  from), else N = 0.
* Nothing is written unless every weight was found and checked; an existing run in
  `--output_dir` is never overwritten.
"""

from t2t_videoflow.cli import tool as cli

# TensorFlow and the model load on first use, after the flags are checked.
t2t_import_lib = cli.lazy_import("t2t_videoflow.t2t.import_checkpoint")

NAME = "t2t-videoflow-import"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "t2t_checkpoint", None, "T2T checkpoint prefix (model.ckpt-N) or a "
            "T2T output dir (its newest checkpoint).", required=True)
TOOL.define("string", "problem", None, "The problem T2T trained on, e.g. bair_action_free.",
            required=True)
TOOL.define("string", "hparams_set", None, "The hparams set T2T trained with, e.g. "
            "videoflow_bpp.", required=True)
TOOL.define("string", "hparams", "", "Overrides, 'name=value,name=value'.")
TOOL.define("string", "output_dir", None, "The run dir to write (must hold no run yet).",
            required=True)
TOOL.define("boolean", "import_global_step", False, "Take the step number from T2T's "
            "global_step (default: 0).")
TOOL.define("string", "t2t_usr_dir", None, "Python package or file registering more "
            "problems and hparams sets.")


def main(argv):
    """Checks the flags (no TensorFlow yet), then imports."""
    def body():
        v = TOOL.value
        t2t_import_lib.import_t2t_checkpoint(
            v("t2t_checkpoint"), v("problem"), v("hparams_set"), v("output_dir"),
            v("hparams"), v("import_global_step"), v("t2t_usr_dir"),
            log=lambda m: print(m, flush=True))
    return TOOL.main(argv, body)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
