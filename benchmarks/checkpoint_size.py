"""Benchmark: what a checkpoint stores for a model of an hparams set (each weight
once, not also through its Keras wrapper; see `t2t_videoflow/layers/keras_tracking.py`).

Builds the set's model, saves `tf.train.Checkpoint(model=model)` (what inference and
`t2t-videoflow-import` write) and the trainer's `model + Adam` checkpoint, and reports
the model's float count, the floats stored under `model/` and the bytes on disk. The
floats stored equal the model's floats exactly when every weight is stored once.

    python benchmarks/checkpoint_size.py --hparams_set=videoflow_shapes_cpu
"""

import argparse
import os
import tempfile

import numpy as np
import tensorflow as tf
import tf_keras

try:
    import common
except ImportError:  # run as `python -m benchmarks.checkpoint_size`
    from benchmarks import common
from t2t_videoflow.config import registry
from t2t_videoflow.model.videoflow import build_model


def stored_floats(path, prefix="model/"):
    """Floats stored under `prefix` (optimizer slots excluded)."""
    total = 0
    for name, shape in tf.train.list_variables(path):
        if (name.startswith(prefix) and "OPTIMIZER_SLOT" not in name
                and tf.train.load_variable(path, name).dtype.kind == "f"):
            total += int(np.prod(shape))
    return total


def bytes_of(prefix):
    folder = os.path.dirname(prefix)
    base = os.path.basename(prefix)
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
               if f.startswith(base + "."))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams_set", default="videoflow_shapes_cpu")
    parser.add_argument("--output", default="", help="results json (default: "
                        "benchmarks/results/checkpoint_size.json; '-' for none)")
    args = parser.parse_args()
    hparams = registry.create_hparams(args.hparams_set)
    frame_shape = (hparams.frame_height, hparams.frame_width, hparams.frame_channels)
    model = build_model(hparams, frame_shape, seed=0)
    floats = sum(int(np.prod(v.shape)) for v in model.variables if v.dtype.is_floating)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    with tempfile.TemporaryDirectory() as tmp:
        model_only = tf.train.Checkpoint(model=model).save(os.path.join(tmp, "m", "ckpt"))
        optimizer = tf_keras.optimizers.legacy.Adam()
        optimizer._create_all_weights(model.trainable_variables)  # pylint: disable=protected-access
        with_adam = tf.train.Checkpoint(model=model, optimizer=optimizer).save(
            os.path.join(tmp, "t", "ckpt"))
        result = {
            "hparams_set": args.hparams_set, "model_floats": floats,
            "trainable_parameters": trainable,
            "stored_model_floats": stored_floats(model_only),
            "model_checkpoint_bytes": bytes_of(model_only),
            "model_and_adam_checkpoint_bytes": bytes_of(with_adam),
        }
    result["stored_once"] = result["stored_model_floats"] == floats
    common.print_table(["quantity", "value"], [[k, str(v)] for k, v in result.items()])
    if args.output != "-":
        common.write_results("checkpoint_size", result, args.output or None)


if __name__ == "__main__":
    main()
