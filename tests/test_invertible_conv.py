"""LU 1x1 convolution: initial structure, T2T's numbers, inverse, log-det."""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import assign_t2t, brute_force_log_det, load_oracle, perturb
from t2t_videoflow.flow.invertible_conv import InvertibleConv1x1, lu_initial_values


def test_initial_weight_is_orthogonal_with_fixed_permutation():
    p, l, u, sign_s, log_s = lu_initial_values(6, seed=3)
    np.testing.assert_array_equal(np.sort(p, axis=0), np.sort(np.eye(6), axis=0))
    np.testing.assert_array_equal(p.sum(0), 1)
    np.testing.assert_allclose(np.diag(l), 1.0)
    np.testing.assert_array_equal(np.triu(l, 1), 0)
    np.testing.assert_array_equal(np.tril(u), 0)
    layer = InvertibleConv1x1(6, seed=3)
    w = layer.weight().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-5)
    # A reflection is allowed (T2T's init), so only |det| = 1 is required.
    np.testing.assert_allclose(abs(np.linalg.det(w)), 1.0, atol=1e-5)
    assert {v.name.split("/")[-1].split(":")[0] for v in layer.trainable_variables} == {
        "L", "U", "log_S"}


def test_seed_makes_init_reproducible():
    a = InvertibleConv1x1(5, seed=11).weight().numpy()
    b = InvertibleConv1x1(5, seed=11).weight().numpy()
    c = InvertibleConv1x1(5, seed=12).weight().numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_matches_t2t():
    oracle = load_oracle("op_invertible_1x1_conv")
    layer = InvertibleConv1x1(12)
    for var, out in (("var/", "out/"), ("var_pert/", "out_pert/")):
        assign_t2t(layer.t2t_variables(), oracle, var)
        y, log_det = layer.forward_and_log_det(tf.constant(oracle["in/x"]))
        np.testing.assert_allclose(y, oracle[out + "y"], atol=1e-5)
        np.testing.assert_allclose(log_det, oracle[out + "logdet"], atol=1e-5)
        x, inv_log_det = layer.inverse_and_log_det(tf.constant(oracle[out + "y"]))
        np.testing.assert_allclose(x, oracle[out + "x_reconstructed"], atol=1e-5)
        np.testing.assert_allclose(inv_log_det, oracle[out + "logdet_reverse"], atol=1e-5)


def test_invertibility_and_log_det_against_jacobian():
    layer = InvertibleConv1x1(4, seed=0)
    perturb(layer.trainable_variables, 0.1, seed=1)
    x = tf.random.normal([1, 3, 3, 4])
    y, log_det = layer.forward_and_log_det(x)
    assert abs(float(log_det[0])) > 1e-2  # the perturbation made it non-trivial
    np.testing.assert_allclose(layer.inverse(tf.identity(y)), x, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy()[0], brute_force_log_det(layer.forward, x),
                               rtol=1e-4)


def test_wrong_channels_is_a_clear_error():
    with pytest.raises(ValueError, match="6 channels"):
        InvertibleConv1x1(6).forward(tf.zeros([1, 2, 2, 4]))
