"""`t2t-videoflow-datagen`: write a problem's T2T-format TFRecord shards.

    t2t-videoflow-datagen --problem=stochastic_shapes --data_dir=DIR
    t2t-videoflow-datagen --problem=bair_action_free --data_dir=DIR \
        --raw_data_dir=/path/to/bair_robot_pushing_dataset_v0   # or TFDS if omitted

    t2t-videoflow-datagen --problem=stochastic_shapes --data_dir=DIR --check

Idempotent: finished shards are kept; each shard is written under a temporary name
and renamed when complete, so an interrupted run leaves no truncated shard and a
rerun finishes the rest. On bad input the CLI prints one line and exits 1.

`--check` writes nothing: it reads every record of every shard of the problem in
`--data_dir` (checksums, framing) and decodes every frame, prints one line per shard,
and exits 1 naming each bad shard and its first bad record (delete those shards and
rerun without `--check` to regenerate them).
"""

from t2t_videoflow.cli import tool as cli

# TensorFlow loads with the data code, after the flags are checked.
generate = cli.lazy_import("t2t_videoflow.data.generate")

NAME = "t2t-videoflow-datagen"
TOOL = cli.Tool(NAME, __doc__)
FLAGS = cli.FLAGS
TOOL.define("string", "problem", None, "Registered problem name (or alias).", required=True)
TOOL.define("string", "data_dir", None, "Output directory for the shards (created if "
            "missing).", required=True)
TOOL.define("string", "raw_data_dir", None,
            "Source data, where the problem needs it (BAIR: the unpacked original "
            "TFRecords; without it BAIR is read from a prepared TFDS dataset).")
TOOL.define("string", "tfds_data_dir", None, "TFDS data dir (default: TFDS's default).")
TOOL.define("string", "t2t_usr_dir", None,
            "Python package (or .py file) to import; its decorators register "
            "more problems and hparams sets.")
TOOL.define("integer", "seed", None, "Random seed of generated problems (default: the "
            "problem's, 429459 as t2t-datagen).", minimum=0, maximum=2**32 - 1)
TOOL.define("boolean", "check", False, "Write nothing: read every record of every "
            "shard in --data_dir, decode every frame and name each bad shard.")


def main(argv):
    """Checks the flags (no TensorFlow yet), then writes (or checks) the shards."""
    def body():
        if FLAGS.check:
            generate.check_data(FLAGS.problem, FLAGS.data_dir,
                                t2t_usr_dir=FLAGS.t2t_usr_dir,
                                log=lambda msg: print(msg, flush=True))
            return
        generate.generate_data(FLAGS.problem, FLAGS.data_dir,
                               raw_data_dir=FLAGS.raw_data_dir,
                               tfds_data_dir=FLAGS.tfds_data_dir,
                               t2t_usr_dir=FLAGS.t2t_usr_dir, seed=FLAGS.seed,
                               log=lambda msg: print(msg, flush=True))
    return TOOL.main(argv, body)


def run_main():
    """Console-script entry point."""
    TOOL.run(main)


if __name__ == "__main__":
    run_main()
