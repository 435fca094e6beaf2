"""Affine and additive couplings: T2T's numbers, inverse, log-det, dropout, variables."""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import assign_t2t, brute_force_log_det, load_oracle, perturb
from t2t_videoflow.flow.coupling import AdditiveCoupling, AffineCoupling, make_coupling

CASES = [(kind, act) for kind in ("affine", "additive") for act in ("relu", "gatu")]


@pytest.mark.parametrize("kind,activation", CASES)
def test_matches_t2t(kind, activation):
    oracle = load_oracle(f"op_{kind}_coupling_{activation}")
    layer = make_coupling(kind, 12, 8, activation)
    y = layer.data_init(tf.constant(oracle["in/x_init"]))
    np.testing.assert_allclose(y, oracle["ddi/y"], atol=1e-5)
    for var, out in (("var/", "out/"), ("var_pert/", "out_pert/")):
        assign_t2t(layer.t2t_variables(), oracle, var)
        y, log_det = layer.forward_and_log_det(tf.constant(oracle["in/x"]))
        np.testing.assert_allclose(y, oracle[out + "y"], atol=1e-5)
        np.testing.assert_allclose(log_det, oracle[out + "logdet"], rtol=1e-5, atol=1e-5)
        x, inv_log_det = layer.inverse_and_log_det(tf.constant(oracle[out + "y"]))
        np.testing.assert_allclose(x, oracle[out + "x_reconstructed"], atol=1e-5)
        np.testing.assert_allclose(inv_log_det, oracle[out + "logdet_reverse"], rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("kind,activation", CASES)
def test_invertibility_and_log_det_against_jacobian(kind, activation):
    layer = make_coupling(kind, 4, 8, activation)
    layer.data_init(tf.random.normal([8, 4, 4, 4], seed=1))
    perturb(layer.trainable_variables, 0.1, seed=2)
    x = tf.random.normal([1, 4, 4, 4], seed=3)
    y, log_det = layer.forward_and_log_det(x)
    assert np.abs(y.numpy() - x.numpy()).max() > 1e-3  # non-trivial after perturbation
    np.testing.assert_allclose(layer.inverse(tf.identity(y)), x, atol=1e-5)
    expected = brute_force_log_det(layer.forward, x)
    np.testing.assert_allclose(log_det.numpy()[0], expected, rtol=1e-4, atol=1e-5)


def test_affine_log_det_at_init_is_log_sigmoid_2_per_transformed_element():
    layer = AffineCoupling(6, 8)
    x = tf.random.normal([2, 4, 4, 6])
    _, log_det = layer.forward_and_log_det(x)
    np.testing.assert_allclose(log_det, 4 * 4 * 3 * np.log(1 / (1 + np.exp(-2.0))),
                               rtol=1e-6)
    np.testing.assert_allclose(np.log(1 / (1 + np.exp(-2.0))), -0.12693, atol=1e-5)


def test_dropout_only_in_training():
    layer = AdditiveCoupling(4, 16, dropout_rate=0.5)
    perturb(layer.trainable_variables, 0.2, seed=4)
    x = tf.random.normal([2, 4, 4, 4])
    a = layer.forward_and_log_det(x)[0]
    np.testing.assert_array_equal(a, layer.forward_and_log_det(x)[0])
    train = layer.forward_and_log_det(x, training=True)[0]
    assert np.abs(train.numpy() - a.numpy()).max() > 1e-4


def test_network_variables_are_tracked_and_get_gradients():
    layer = AffineCoupling(4, 8, activation="gatu")
    # conv 1_1 (W + actnorm 2) + 1_tanh (3) + 1_sigm (3) + zeros (W, b, logs)
    assert len(layer.trainable_variables) == 12
    perturb(layer.trainable_variables, 0.05)
    x = tf.random.normal([2, 4, 4, 4])
    with tf.GradientTape() as tape:
        y, log_det = layer.forward_and_log_det(x)
        loss = tf.reduce_sum(y ** 2) - tf.reduce_sum(log_det)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(g is not None for g in grads)


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown coupling 'affinee'"):
        make_coupling("affinee", 4, 8)
    with pytest.raises(ValueError, match="even channel count"):
        AffineCoupling(5, 8)
    with pytest.raises(ValueError, match="Unknown activation"):
        AffineCoupling(4, 8, activation="elu")


@pytest.mark.parametrize("kind,network_dtype,atol", [
    ("affine", "float32", 1e-6), ("additive", "float32", 1e-6),
    ("affine", "bfloat16", 3e-2)])
def test_data_init_output_is_the_initialised_forward(kind, network_dtype, atol):
    """The init call's network output serves as the forward pass (no second network
    run): it equals `forward` after init, up to rounding (bfloat16: the init pass
    computes in float32, the forward in bfloat16)."""
    layer = make_coupling(kind, 6, 16, "gatu", network_dtype=network_dtype)
    perturb([v for k, v in layer.net_variables.items() if "zeros" in k], 0.1, seed=4)
    x = tf.random.stateless_normal([4, 8, 8, 6], [7, 8], mean=0.2, stddev=0.5)
    out = layer.data_init(x)
    assert np.abs(out.numpy() - x.numpy()).max() > 1e-2      # the network acts
    np.testing.assert_allclose(out, layer.forward(x), atol=atol)
