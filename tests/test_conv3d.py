"""Tests for the 3-D conv blocks (`t2t_videoflow/layers/conv3d.py`)."""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import assert_t2t_names_cover
from t2t_videoflow.layers.conv3d import (
    ActNorm3D, ConvActNorm3D, ConvStack3D, ZeroConv3D, default_kernel_size, time_pad)


def _perturb(layer, seed=0, std=0.05):
    """Moves every weight off its init so zero convs stop being trivial."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(v + rng.normal(0.0, std, v.shape).astype(np.float32))


def _randn(*shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


# -- time_pad ------------------------------------------------------------------------

def test_time_pad_layout():
    x = _randn(2, 3, 4, 5, 2) + 10.0  # no real zeros
    y = time_pad(x, (2, 3, 3)).numpy()
    assert y.shape == (2, 4, 6, 7, 3)
    indicator, data = y[..., 0], y[..., 1:]
    # Whole padded (first) time frame is padding; only the LEFT of time is padded.
    np.testing.assert_array_equal(indicator[:, 0], 1.0)
    np.testing.assert_array_equal(data[:, 0], 0.0)
    # Inside: the data, and the indicator is 0; the spatial border is 1.
    np.testing.assert_array_equal(data[:, 1:, 1:-1, 1:-1], x.numpy())
    np.testing.assert_array_equal(indicator[:, 1:, 1:-1, 1:-1], 0.0)
    for border in (indicator[:, 1:, 0], indicator[:, 1:, -1],
                   indicator[:, 1:, :, 0], indicator[:, 1:, :, -1]):
        np.testing.assert_array_equal(border, 1.0)
    np.testing.assert_array_equal(data[:, 1:, 0], 0.0)


def test_time_pad_dilation_and_trivial_kernels():
    x = _randn(1, 2, 9, 9, 3)
    # eff = 3 + 2 * (d - 1): d = 2 -> 5 -> pad 2; d = 4 -> 9 -> pad 4.
    assert time_pad(x, (2, 3, 3), dilation=2).shape == (1, 3, 13, 13, 4)
    assert time_pad(x, (2, 3, 3), dilation=4).shape == (1, 3, 17, 17, 4)
    # [1, 3, 3]: no time padding, still the indicator channel.
    y = time_pad(x, (1, 3, 3)).numpy()
    assert y.shape == (1, 2, 11, 11, 4)
    np.testing.assert_array_equal(y[:, :, 1:-1, 1:-1, 0], 0.0)
    # [1, 1, 1]: untouched.
    assert time_pad(x, (1, 1, 1)) is x


def test_default_kernel_and_weight_shapes():
    assert default_kernel_size(1) == (1, 3, 3)
    assert default_kernel_size(4) == (2, 3, 3)
    conv = ConvActNorm3D(5)
    conv.build((2, 1, 6, 6, 3))
    assert tuple(conv.kernel.shape) == (1, 3, 3, 4, 5)
    zero = ZeroConv3D(5)
    zero.build((2, 3, 6, 6, 3))
    assert tuple(zero.kernel.shape) == (2, 3, 3, 4, 5)
    assert tuple(zero.bias.shape) == (1, 1, 1, 5)
    assert tuple(zero.logs.shape) == (1, 5)
    pointwise = ConvActNorm3D(5, (1, 1, 1))
    pointwise.build((2, 3, 6, 6, 3))
    assert tuple(pointwise.kernel.shape) == (1, 1, 1, 3, 5)  # no indicator channel


def test_errors():
    with pytest.raises(ValueError, match="odd"):
        ZeroConv3D(4, (2, 2, 3))
    with pytest.raises(ValueError, match="time steps"):
        ActNorm3D().build((2, None, 4, 4, 3))
    with pytest.raises(ValueError, match="relu"):
        ConvStack3D(4, 4, activation="tanh")


# -- actnorm -------------------------------------------------------------------------

def test_actnorm3d_ddi_per_time_step():
    rng = np.random.default_rng(1)
    # Each time step has its own mean and scale, so one shared actnorm would fail.
    x = np.stack([rng.normal(50.0 + 10 * t, 2.0 + t, (16, 8, 8, 3)) for t in range(4)],
                 axis=1).astype(np.float32)
    layer = ActNorm3D()
    y = layer(tf.constant(x), init=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-3)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, atol=1e-3)
    # Stored stacked: one [1, T, 1, 1, C] variable per kind, not one per time step.
    assert [tuple(v.shape) for v in layer.trainable_variables] == [(1, 4, 1, 1, 3)] * 2
    names = layer.t2t_variables()
    assert sorted(names) == sorted(
        [f"actnorm_{t}/actnorm_{t}_center/b" for t in range(4)]
        + [f"actnorm_{t}/actnorm_{t}_scale/logs" for t in range(4)])
    assert all(tuple(v.shape) == (1, 1, 1, 3) for v in names.values())
    assert_t2t_names_cover(layer.trainable_variables, names)
    # The stored values are T2T's: b = -mean, logs = ln(1/(std + 1e-6)) / 3.
    np.testing.assert_allclose(names["actnorm_2/actnorm_2_center/b"].numpy().ravel(),
                               -x[:, 2].mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(names["actnorm_2/actnorm_2_scale/logs"].numpy().ravel(),
                               np.log(1.0 / x[:, 2].std(axis=(0, 1, 2))) / 3.0, rtol=1e-4)
    # Without init the stored values are reused.
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), y, atol=1e-5)
    # Initialised once: a second init pass on other data (another conditioned frame,
    # a restored or T2T-imported layer) leaves the parameters alone.
    assert bool(layer.initialized.numpy())
    np.testing.assert_allclose(layer(tf.constant(2.0 * x + 7.0), init=True).numpy(),
                               layer(tf.constant(2.0 * x + 7.0)).numpy(), atol=1e-6)
    np.testing.assert_allclose(layer(tf.constant(x)).numpy(), y, atol=1e-5)


def test_conv_actnorm3d_ddi():
    x = 10.0 * tf.random.stateless_uniform((16, 3, 5, 5, 8), seed=(1, 2))
    conv = ConvActNorm3D(12)
    y = conv(x, init=True).numpy()
    assert y.shape == (16, 3, 5, 5, 12)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, atol=1e-3)
    assert sorted(conv.t2t_variables())[:2] == ["W", "actnorm/actnorm_0/actnorm_0_center/b"]


# -- zero conv and conv stack -----------------------------------------------------------

def test_zero_conv3d_is_zero_at_init_and_matches_formula():
    x = _randn(2, 3, 5, 5, 4)
    conv = ZeroConv3D(6)
    np.testing.assert_array_equal(conv(x).numpy(), 0.0)
    _perturb(conv)
    padded = time_pad(x, (2, 3, 3))
    expected = (tf.nn.conv3d(padded, conv.kernel, [1] * 5, "VALID")
                + tf.reshape(conv.bias, [-1])) * tf.exp(3.0 * tf.reshape(conv.logs, [-1]))
    np.testing.assert_allclose(conv(x).numpy(), expected.numpy(), atol=1e-5)


def test_dilated_conv_matches_explicitly_dilated_kernel():
    x = _randn(2, 3, 9, 9, 3, seed=3)
    conv = ZeroConv3D(4, dilation=2)
    conv.build(x.shape)
    _perturb(conv, std=0.3)
    kernel = conv.kernel.numpy()  # [2, 3, 3, 4, 4]
    wide = np.zeros((2, 5, 5) + kernel.shape[3:], np.float32)
    wide[:, ::2, ::2] = kernel  # holes between taps, time untouched
    # A 5x5 kernel pads by 2, the same as the dilated 3x3: same indicator layout.
    ref = tf.nn.conv3d(time_pad(x, (2, 5, 5)), wide, [1] * 5, "VALID")
    ref = (ref + tf.reshape(conv.bias, [-1])) * tf.exp(3.0 * tf.reshape(conv.logs, [-1]))
    out = conv(x)
    assert out.shape == (2, 3, 9, 9, 4)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "gatu"])
def test_conv_stack3d_zero_at_init_and_names(activation):
    x = _randn(4, 2, 5, 5, 6)
    stack = ConvStack3D(8, 10, activation=activation)
    y = stack(x, init=True)
    assert y.shape == (4, 2, 5, 5, 10)
    np.testing.assert_array_equal(y.numpy(), 0.0)
    names = stack.t2t_variables()
    second = ["1_2"] if activation == "relu" else ["1_tanh", "1_sigm"]
    expected = {"conv_block/1_1/W": (2, 3, 3, 7, 8), "zeros/W": (2, 3, 3, 9, 10),
                "zeros/b": (1, 1, 1, 10), "zeros/logs": (1, 10)}
    for layer in ["1_1"] + second:
        for t in range(2):
            for part in ("center/b", "scale/logs"):
                expected[f"conv_block/{layer}/actnorm/actnorm_{t}/actnorm_{t}_{part}"] = (
                    1, 1, 1, 8)
    for layer in second:
        expected[f"conv_block/{layer}/W"] = (1, 1, 1, 8, 8)
    assert {k: tuple(v.shape) for k, v in names.items()} == expected
    assert_t2t_names_cover(stack.trainable_variables, names)


@pytest.mark.parametrize("dilation", [1, 2])
def test_conv_stack3d_is_causal(dilation):
    x = _randn(2, 4, 6, 6, 3, seed=5)
    stack = ConvStack3D(8, 3, activation="gatu", dilation=dilation)
    stack(x, init=True)
    _perturb(stack, std=0.3)
    y = stack(x).numpy()
    assert np.abs(y).max() > 1e-3  # not trivially zero
    for t in range(4):
        changed = x.numpy().copy()
        changed[:, t:] += 5.0 * np.random.default_rng(t).normal(size=changed[:, t:].shape)
        y2 = stack(tf.constant(changed)).numpy()
        np.testing.assert_array_equal(y2[:, :t], y[:, :t])  # the past is untouched
        assert np.abs(y2[:, t] - y[:, t]).max() > 1e-4  # time t does see input t


def test_conv_stack3d_dropout_only_in_training():
    x = _randn(2, 2, 5, 5, 3)
    stack = ConvStack3D(16, 3, dropout_rate=0.5)
    stack(x, init=True)
    _perturb(stack, std=0.3)
    base = stack(x).numpy()
    np.testing.assert_array_equal(stack(x, training=False).numpy(), base)
    np.testing.assert_array_equal(stack(x, training=True, init=True).numpy(),
                                  stack(x, init=True).numpy())  # no dropout in DDI
    assert np.abs(stack(x, training=True).numpy() - base).max() > 1e-3


def test_conv_stack3d_compiles():
    x = _randn(2, 3, 8, 8, 4)
    stack = ConvStack3D(8, 4, activation="gatu", dilation=2)
    stack(x, init=True)
    _perturb(stack)
    eager = stack(x).numpy()
    graph = tf.function(lambda v: stack(v))(x).numpy()
    xla = tf.function(lambda v: stack(v), jit_compile=True)(x).numpy()
    np.testing.assert_allclose(graph, eager, atol=1e-5)
    np.testing.assert_allclose(xla, eager, atol=1e-4)


def test_get_config_round_trip():
    for layer in (ActNorm3D(), ConvActNorm3D(4, (1, 3, 3), dilation=2),
                  ZeroConv3D(4, dilation=4), ConvStack3D(8, 4, "gatu", 0.1, 2)):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config
