r"""`t2t-videoflow-exporter`: a trained run as a SavedModel with serving signatures.

    t2t-videoflow-exporter --output_dir=RUN            # newest checkpoint
    t2t-videoflow-exporter --output_dir=RUN --checkpoint_path=RUN/model.ckpt-2000

writes `RUN/export/<unix time>/` (or `--export_dir/<unix time>/`): `saved_model.pb`,
`variables/`, and `assets.extra/videoflow.json` (frame shape, context frames, default
temperature, checkpoint). The version dir appears complete or not at all (written
under a hidden temporary name, then renamed), so `RUN/export` can be TF Serving's
model base path directly. Signatures (see `export_lib`): `sample` (also
`serving_default`), `bits_per_pixel`, `bits_per_pixel_monte_carlo`, `encode`,
`decode`; the last line printed lists those the SavedModel holds. Loading needs
TensorFlow only.

User errors (missing run dir or checkpoint, unknown names, hparams that do not fit
the checkpoint or the problem) print one `t2t-videoflow-exporter: error: ...` line
and exit with status 1.
"""

import os

from t2t_videoflow.cli import tool as cli

# TensorFlow and the model load on first use, after the flags are checked.
tf = cli.lazy_import("tensorflow")
export_lib = cli.lazy_import("t2t_videoflow.serving.saved_model")
restore = cli.lazy_import("t2t_videoflow.training.restore")

NAME = "t2t-videoflow-exporter"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "output_dir", None, "The training output dir (hparams.json, "
            "checkpoints).", required=True)
TOOL.define("string", "checkpoint_path", None, "Checkpoint prefix to export (default: the "
            "newest in --output_dir).")
TOOL.define("string", "export_dir", None, "Base dir of the exports (default: "
            "OUTPUT_DIR/export).")
TOOL.define("string", "problem", None, "Problem to check the hparams against (default: "
            "the run's, from run.json).")
TOOL.define("string", "hparams_set", None, "Hparams set (default: the run's hparams.json).")
TOOL.define("string", "hparams", "", "Overrides, 'name=value,name=value'.")
TOOL.define("string", "t2t_usr_dir", None, "Python package or file registering more "
            "problems and hparams sets (default: the run's).")
TOOL.define("boolean", "ema_weights", True, cli.EMA_WEIGHTS_HELP)


def export(output_dir, checkpoint_path=None, export_dir=None, problem_name=None,
           hparams_set=None, overrides="", t2t_usr_dir=None, log=print, ema_weights=True):
    """Exports the run in `output_dir`; returns the export path."""
    run = restore.restore_for_inference(
        output_dir, problem_name, hparams_set, overrides, checkpoint_path, t2t_usr_dir,
        need_problem=False, use_ema=ema_weights)
    problem = run.problem
    log(f"{NAME}: exporting {run.checkpoint} (step {run.step}, hparams set "
        f"{run.hparams_set}, {run.weights} weights) ...")
    metadata = {"problem": problem.name if problem else None,
                "hparams_set": run.hparams_set, "checkpoint": run.checkpoint,
                "step": run.step, "weights": run.weights}
    path = export_lib.export_saved_model(
        run.model, run.hparams, export_dir or os.path.join(output_dir, "export"),
        metadata=metadata)
    size = export_lib.export_size_bytes(path)
    log(f"{NAME}: SavedModel written to {path} ({size / 2**20:.1f} MiB); signatures "
        + ", ".join(saved_signatures(path)))
    return path


def saved_signatures(path):
    """Sorted names of the serving signatures in the SavedModel at `path`, read from
    its `saved_model.pb` (without loading the model); TF's internal entries such as
    `__saved_model_init_op` are left out, as in `tf.saved_model.load(path).signatures`."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=C0415
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return sorted(name for graph in proto.meta_graphs for name in graph.signature_def
                  if not name.startswith("__"))


def main(argv):
    """Checks the flags (no TensorFlow yet), then exports."""
    def body():
        v = TOOL.value
        export(v("output_dir"), v("checkpoint_path"), v("export_dir"), v("problem"),
               v("hparams_set"), v("hparams"), v("t2t_usr_dir"),
               log=lambda message: print(message, flush=True), ema_weights=v("ema_weights"))
    return TOOL.main(argv, body)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
