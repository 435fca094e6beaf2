"""Checkpoints of the per-time-step 3-D actnorm layout (before the stacks) still restore:
weights, Adam moments and weight averages land in today's stacked variables exactly.

The old layout is written here as the old code wrote it: the same model object graph,
with `prior_variables` holding `.../actnorm/bias_{t}` and `.../actnorm/logs_{t}` of
shape `[1, 1, 1, C]` instead of `.../actnorm/bias` and `.../actnorm/logs` of shape
`[1, T, 1, 1, C]`, and the optimizer's slots and the `ema` list over those variables.
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from flow_testing import perturb
from t2t_videoflow.training import checkpoint_compat
from t2t_videoflow.training import weight_ema
from t2t_videoflow.errors import CheckpointError
from t2t_videoflow.model.videoflow import VideoFlow

TINY = dict(n_levels=2, depth=1, coupling_width=8, latent_encoder_depth=1,
            latent_encoder_width=8, latent_pre_output_channels=8, num_cond_latents=2,
            latent_dist_encoder="conv3d_net")


def _model(seed):
    model = VideoFlow((8, 8, 3), seed=seed, **TINY)
    perturb(model.trainable_variables, 0.05, seed=seed)
    return model


def _is_stack(key, variable):
    return key.endswith(("actnorm/bias", "actnorm/logs")) and len(variable.shape) == 5


def _old_layout(model, drop=()):
    """A stand-in for `model` whose `prior_variables` have the old layout (copies of
    each stack's entries, less the keys in `drop`), and `old_of`: stack key -> its T
    old variables."""
    stand_in = tf.Module(name="model")
    old_of = {}
    for name, child in tf.train.TrackableView(model).children(model).items():
        if name == "prior_variables":
            old = {}
            for key, variable in child.items():
                if not _is_stack(key, variable):
                    old[key] = variable
                    continue
                value = variable.numpy()
                old_of[key] = [tf.Variable(value[:, t]) for t in range(value.shape[1])]
                old.update({f"{key}_{t}": v for t, v in enumerate(old_of[key])
                            if f"{key}_{t}" not in drop})
            child = old
        setattr(stand_in, name, child)
    return stand_in, old_of


@pytest.fixture(name="old_run")
def _old_run(tmp_path):
    """An old-layout checkpoint with model, Adam moments and weight averages, all
    distinct values; returns (path, model, its old variables, per-variable values)."""
    model = _model(seed=0)
    stand_in, old_of = _old_layout(model)
    old_trainable = list(stand_in.trainable_variables)
    optimizer = tf_keras.optimizers.legacy.Adam()
    optimizer._create_all_weights(old_trainable)  # pylint: disable=protected-access
    rng = np.random.default_rng(5)
    for variable in old_trainable:
        for slot in ("m", "v"):
            optimizer.get_slot(variable, slot).assign(
                rng.normal(size=variable.shape).astype(np.float32))
    averages = [tf.Variable(rng.normal(size=v.shape).astype(np.float32))
                for v in old_trainable]
    path = tf.train.Checkpoint(model=stand_in, optimizer=optimizer,
                               **{weight_ema.CHECKPOINT_NODE: averages}).write(
                                   str(tmp_path / "old"))
    expected = {"value": {}, "m": {}, "v": {}, "average": {}}
    by_id = {id(v): i for i, v in enumerate(old_trainable)}
    for key, variable in model.prior_variables.items():
        if key not in old_of:
            continue
        parts = old_of[key]
        expected["value"][key] = np.stack([p.numpy() for p in parts], axis=1)
        for slot in ("m", "v"):
            expected[slot][key] = np.stack(
                [optimizer.get_slot(p, slot).numpy() for p in parts], axis=1)
        expected["average"][key] = np.stack(
            [averages[by_id[id(p)]].numpy() for p in parts], axis=1)
    plain = {id(v): (optimizer.get_slot(v, "m").numpy(), averages[by_id[id(v)]].numpy())
             for v in old_trainable}
    return path, model, expected, plain


def test_old_layout_restores_weights_moments_and_averages(old_run):
    path, model, expected, plain = old_run
    fresh = _model(seed=7)
    stacks = checkpoint_compat.legacy_stacks(fresh, path)
    # Both priors' blocks: 1_1, 1_2 with actnorms (bias and logs each), one per level
    # and the top.
    assert len(stacks) >= 8 and {s.key for s in stacks} == set(expected["value"])
    assert all(s.variable.shape[1] == 2 for s in stacks)   # T = num_cond_latents
    optimizer = tf_keras.optimizers.legacy.Adam()
    optimizer._create_all_weights(fresh.trainable_variables)  # pylint: disable=protected-access
    averages = [tf.Variable(tf.zeros_like(v)) for v in fresh.trainable_variables]
    checkpoint_compat.restore(
        path, fresh, {"optimizer": optimizer, weight_ema.CHECKPOINT_NODE: averages},
        read=True, optimizer=optimizer, averages=(weight_ema.CHECKPOINT_NODE, averages))
    for before, after in zip(model.variables, fresh.variables):
        np.testing.assert_array_equal(after.numpy(), before.numpy(), err_msg=after.name)
    average_of = dict(zip(map(id, fresh.trainable_variables), averages))
    old_ids = dict(zip(map(id, fresh.trainable_variables),
                       map(id, model.trainable_variables)))
    for key, variable in fresh.prior_variables.items():
        if key in expected["value"]:
            for slot in ("m", "v"):
                np.testing.assert_array_equal(optimizer.get_slot(variable, slot).numpy(),
                                              expected[slot][key], err_msg=key)
            np.testing.assert_array_equal(average_of[id(variable)].numpy(),
                                          expected["average"][key], err_msg=key)
    # Every other variable's moment and average came through the object graph / list.
    for variable in fresh.trainable_variables:
        if any(variable is s.variable for s in stacks):
            continue
        m, average = plain[old_ids[id(variable)]]
        np.testing.assert_array_equal(optimizer.get_slot(variable, "m").numpy(), m)
        np.testing.assert_array_equal(average_of[id(variable)].numpy(), average)


def test_old_layout_averages_read_into_a_model(old_run):
    path, _, expected, _ = old_run
    fresh = _model(seed=7)
    weight_ema.read_averages(fresh.trainable_variables, path, fresh)
    for key, value in expected["average"].items():
        np.testing.assert_array_equal(fresh.prior_variables[key].numpy(), value)


def test_new_layout_has_no_legacy_stacks_and_partial_old_layout_is_an_error(tmp_path):
    model = _model(seed=0)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "new"))
    assert checkpoint_compat.legacy_stacks(model, path) == []
    key = next(k for k, v in model.prior_variables.items() if _is_stack(k, v))
    stand_in, _ = _old_layout(model, drop=[f"{key}_1"])
    broken = tf.train.Checkpoint(model=stand_in).write(str(tmp_path / "broken"))
    with pytest.raises(CheckpointError, match="1 of the 2 time steps"):
        checkpoint_compat.legacy_stacks(model, broken)
