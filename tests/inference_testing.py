"""Helpers for the decoder / exporter tests: a trained-looking run dir without the trainer."""

import numpy as np
import tensorflow as tf

from t2t_videoflow.cli import tool as cli
from t2t_videoflow.config import registry
from t2t_videoflow.training import run_dir
from t2t_videoflow.model.videoflow import build_model

PROBLEM = "stochastic_shapes_tiny"
HPARAMS_SET = "videoflow_tiny"
FRAME_SHAPE = (16, 16, 3)


def random_clips(shape, seed=0):
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def make_model(overrides="", seed=0):
    """A tiny `VideoFlow` after data init, its prior heads moved off their zero init
    (so the conditional priors matter, as after training)."""
    hparams = registry.create_hparams(HPARAMS_SET, overrides, PROBLEM)
    model = build_model(hparams, FRAME_SHAPE, seed=seed)
    model.data_init(random_clips((2, 3, *FRAME_SHAPE), seed))
    for i, var in enumerate(v for v in model.prior_variables.values() if v.dtype.is_floating):
        var.assign_add(0.05 * tf.random.stateless_normal(var.shape, [seed, i]))
    return model, hparams


def save_checkpoint(model, output_dir, step):
    """Saves `model` as checkpoint `model.ckpt-<step>` in the trainer's layout."""
    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step, dtype=tf.int64))
    manager = tf.train.CheckpointManager(checkpoint, output_dir, max_to_keep=3,
                                         checkpoint_name=run_dir.CHECKPOINT_NAME)
    return manager.save(checkpoint_number=step)


def make_run_dir(output_dir, overrides="", steps=(7,)):
    """A run dir with hparams.json, run.json and a checkpoint per step (the newest
    holds the returned model's weights; earlier ones differ)."""
    model, hparams = make_model(overrides)
    run_dir.save_run(output_dir, hparams, PROBLEM, HPARAMS_SET)
    first = model.flow.trainable_variables[0]
    for i, step in enumerate(steps):
        if i < len(steps) - 1:
            first.assign_add(tf.ones_like(first))
            save_checkpoint(model, output_dir, step)
            first.assign_sub(tf.ones_like(first))
        else:
            save_checkpoint(model, output_dir, step)
    return model, hparams


def eval_run(output_dir, data_dir, step=5):
    """The eval tests' run: a run dir with one checkpoint at `step`, and the tiny
    problem's data. Returns a dict of output_dir, data_dir, model, hparams."""
    model, hparams = make_run_dir(output_dir, steps=(step,))
    return dict(output_dir=output_dir, data_dir=data_dir, model=model, hparams=hparams)


def quiet_context(run, clips, model=None, hparams=None):
    """A `RunContext` over in-memory `clips` for an `eval_run` (its model and hparams
    unless given), without progress output."""
    from t2t_videoflow.evaluation import context  # pylint: disable=import-outside-toplevel
    return context.RunContext.from_arrays(model or run["model"], hparams or run["hparams"],
                                          clips, log=lambda _: None)


def run_cli(module, argv):
    """Runs a CLI's `main` in this process with `argv` flags; returns its exit code."""
    flags = cli.FLAGS
    flags.unparse_flags()
    try:
        flags(["prog", *argv])
        return module.main(["prog"])
    finally:
        flags.unparse_flags()


def write_tf1_checkpoint(path, arrays):
    """A real TF1 checkpoint (graph-mode Saver, plain variable names), as T2T writes."""
    with tf.Graph().as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(value))
                     for name, value in arrays.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return saver.save(sess, path)


def assert_quantised(frames, x, edge=1e-3):
    """uint8 `frames` are T2T's `postprocess` of the float frames `x`, except within
    `edge` of a bin edge, where float rounding (graph rewrites, XLA) may land on either
    side: there they may differ by one level."""
    x = np.where(np.isfinite(x), x, 1.0)
    v = (np.clip(x, -0.5, 0.5) + 0.5) * 256.0
    expected = np.clip(v, 0, 255).astype(np.uint8)
    # (Clipped values sit exactly on the outer edges 0 and 256: not counted.)
    near = (np.abs(v - np.round(v)) < edge) & (np.round(v) > 0) & (np.round(v) < 256)
    diff = np.abs(frames.astype(int) - expected.astype(int))
    assert np.all(diff[~near] == 0), np.argwhere((diff > 0) & ~near)[:5]
    assert np.all(diff <= 1) and near.mean() < 0.01, (diff.max(), near.mean())
