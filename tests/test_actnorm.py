"""Actnorm: T2T's numbers, data-dependent init (once, survives restore), log-det."""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import assign_t2t, brute_force_log_det, load_oracle, perturb
from t2t_videoflow.flow.actnorm import Actnorm


def test_data_dependent_init_normalises_the_init_batch():
    x = tf.random.stateless_normal([16, 8, 8, 3], seed=[1, 2], mean=50.0, stddev=2.0)
    layer = Actnorm(3)
    y = layer.data_init(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    assert bool(layer.initialized.numpy())


def test_second_data_init_does_not_reinitialise():
    layer = Actnorm(3)
    layer.data_init(tf.random.normal([8, 4, 4, 3], mean=5.0))
    before = layer.bias.numpy().copy(), layer.logs.numpy().copy()
    layer.data_init(tf.random.normal([8, 4, 4, 3], mean=-7.0, stddev=9.0))
    np.testing.assert_array_equal(layer.bias.numpy(), before[0])
    np.testing.assert_array_equal(layer.logs.numpy(), before[1])


def test_restored_checkpoint_is_not_reinitialised(tmp_path):
    layer = Actnorm(3)
    layer.data_init(tf.random.normal([8, 4, 4, 3], mean=5.0))
    path = tf.train.Checkpoint(layer=layer).write(str(tmp_path / "ckpt"))
    restored = Actnorm(3)
    tf.train.Checkpoint(layer=restored).read(path).assert_consumed()
    restored.data_init(tf.random.normal([8, 4, 4, 3], mean=-3.0))
    np.testing.assert_array_equal(restored.bias.numpy(), layer.bias.numpy())
    np.testing.assert_array_equal(restored.logs.numpy(), layer.logs.numpy())


def test_data_init_inside_tf_function():
    layer = Actnorm(2)
    x = tf.random.normal([8, 4, 4, 2], mean=3.0, stddev=4.0)
    y = tf.function(layer.data_init)(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
    assert bool(layer.initialized.numpy())


def test_matches_t2t():
    oracle = load_oracle("op_actnorm")
    layer = Actnorm(6)
    y = layer.data_init(tf.constant(oracle["in/x_init"]))
    np.testing.assert_allclose(y, oracle["ddi/y"], atol=1e-5)
    np.testing.assert_allclose(layer.bias, oracle["var/actnorm/actnorm_center/b"], atol=1e-6)
    np.testing.assert_allclose(layer.logs, oracle["var/actnorm/actnorm_scale/logs"],
                               atol=1e-6)
    for var, out in (("var/", "out/"), ("var_pert/", "out_pert/")):
        assign_t2t(layer.t2t_variables(), oracle, var)
        y, log_det = layer.forward_and_log_det(tf.constant(oracle["in/x"]))
        np.testing.assert_allclose(y, oracle[out + "y"], atol=1e-5)
        np.testing.assert_allclose(log_det, oracle[out + "logdet"], rtol=1e-5)
        x, inv_log_det = layer.inverse_and_log_det(tf.constant(oracle[out + "y"]))
        np.testing.assert_allclose(x, oracle[out + "x_reconstructed"], atol=1e-5)
        np.testing.assert_allclose(inv_log_det, oracle[out + "logdet_reverse"], rtol=1e-5)


def test_invertibility_and_log_det_against_jacobian():
    layer = Actnorm(4)
    layer.data_init(tf.random.normal([8, 3, 3, 4], mean=2.0, stddev=3.0))
    perturb(layer.trainable_variables, 0.1)
    x = tf.random.normal([1, 3, 3, 4])
    y, log_det = layer.forward_and_log_det(x)
    np.testing.assert_allclose(layer.inverse(tf.identity(y)), x, atol=1e-5)
    expected = brute_force_log_det(layer.forward, x)
    np.testing.assert_allclose(log_det.numpy()[0], expected, rtol=1e-4)
    # TFP's API gives the same value, and the inverse log-det is its negation.
    np.testing.assert_allclose(layer.forward_log_det_jacobian(x, 3), log_det, rtol=1e-6)
    np.testing.assert_allclose(layer.inverse_log_det_jacobian(tf.identity(y), 3), -log_det,
                               rtol=1e-6)


def test_wrong_channels_is_a_clear_error():
    with pytest.raises(ValueError, match="4 channels"):
        Actnorm(4).forward(tf.zeros([1, 2, 2, 3]))
    with pytest.raises(ValueError, match="float"):
        Actnorm(3).forward(tf.zeros([1, 2, 2, 3], tf.int32))
