"""`network_dtype="bfloat16"`: the coupling networks and conv3d_net blocks in bfloat16.

What must hold (see `layers/coupling_network.py`): the convolutions really run in
bfloat16; weights, gradients, log-dets and losses stay float32; the flow still inverts
to float32 precision (the network is deterministic, so forward and inverse see the same
shift and scale); the model's bits per pixel stay within bfloat16 rounding of T2T's on
the oracle configs; float32 stays the default and matches T2T exactly (test_model_oracle).
"""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import brute_force_log_det, perturb
from t2t_videoflow.config import registry
from t2t_videoflow.errors import HParamsError
from t2t_videoflow.flow.coupling import make_coupling
from t2t_videoflow.layers.conv3d import ConvStack3D
from t2t_videoflow.layers.coupling_network import CouplingNetwork
from t2t_videoflow.model.videoflow import build_model, load_t2t_weights
from test_model_oracle import ORACLES, oracle_inputs, oracle_model, pert_weights


def _conv_dtypes(fn, *args):
    """Dtypes (`T` attribute) of every Conv2D/Conv3D op in the graph of `fn(*args)`."""
    graph = tf.function(fn).get_concrete_function(*args).graph
    return {tf.dtypes.as_dtype(op.get_attr("T")).name for op in graph.get_operations()
            if op.type in ("Conv2D", "Conv3D")}


@pytest.mark.parametrize("activation", ["relu", "gatu"])
def test_coupling_network_convolves_in_bfloat16_and_returns_float32(activation):
    x = tf.random.normal([2, 6, 6, 4], seed=0)
    net = CouplingNetwork(16, 8, activation, compute_dtype="bfloat16")
    net(x, init=True)
    perturb([w.value for w in net.weights if w.trainable], 0.1, seed=1)
    assert _conv_dtypes(lambda v: net(v), x) == {"bfloat16"}
    assert _conv_dtypes(lambda v: net(v, init=True), x) == {"float32"}  # init: float32
    reference = CouplingNetwork(16, 8, activation)
    reference(x, init=True)
    for mine, theirs in zip(reference.weights, net.weights):
        mine.assign(theirs)
    y, expected = net(x), reference(x)
    assert y.dtype == tf.float32
    assert all(w.dtype == "float32" for w in net.trainable_weights)
    # bfloat16 keeps 8 significant bits: relative rounding 2^-9 per operation.
    scale = np.abs(expected.numpy()).max()
    assert 0 < np.abs(y.numpy() - expected.numpy()).max() < 0.05 * scale


def test_conv_stack_3d_convolves_in_bfloat16():
    x = tf.random.normal([2, 3, 6, 6, 4], seed=0)
    stack = ConvStack3D(8, 4, "gatu", dilation=2, compute_dtype="bfloat16")
    stack(x, init=True)
    assert _conv_dtypes(lambda v: stack(v), x) == {"bfloat16"}
    assert stack(x).dtype == tf.float32


@pytest.mark.parametrize("kind", ["affine", "additive"])
def test_bfloat16_coupling_inverts_exactly_and_log_det_is_the_jacobian(kind):
    layer = make_coupling(kind, 4, 8, "gatu", network_dtype="bfloat16")
    layer.data_init(tf.random.normal([8, 4, 4, 4], seed=1))
    perturb(layer.trainable_variables, 0.1, seed=2)
    x = tf.random.normal([1, 4, 4, 4], seed=3)
    y, log_det = layer.forward_and_log_det(x)
    assert np.abs(y.numpy() - x.numpy()).max() > 1e-3
    np.testing.assert_allclose(layer.inverse(tf.identity(y)), x, atol=1e-5)
    np.testing.assert_allclose(log_det.numpy()[0], brute_force_log_det(layer.forward, x),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ORACLES)
def test_bfloat16_bits_per_pixel_stay_close_to_t2t(name):
    oracle, model = oracle_model(name, network_dtype="bfloat16")
    load_t2t_weights(model, pert_weights(oracle))
    video, noise = oracle_inputs(oracle)
    n_in = int(oracle["meta/video_num_input_frames"])
    bpp = model.bits_per_pixel(video, n_in, noise=noise).numpy()[:, 0]
    expected = oracle["out_pert/bpp_per_example"]
    # Measured: 3.0e-3 bpp (3.6e-4 relative) for affine/relu, 1.5e-4 for additive/gatu.
    np.testing.assert_allclose(bpp, expected, rtol=2e-3)
    assert not np.array_equal(bpp, expected)  # bfloat16 did change the arithmetic


def test_bfloat16_model_trains_with_float32_gradients():
    hp = registry.hparams("videoflow_tiny")
    hp.network_dtype = "bfloat16"
    model = build_model(hp, (hp.frame_height, hp.frame_width, 3), seed=0)
    video = tf.random.uniform([2, 2, hp.frame_height, hp.frame_width, 3], 0, 256,
                              tf.int32, seed=4)
    video = tf.cast(video, tf.uint8)
    model.data_init(video)
    with tf.GradientTape() as tape:
        loss = model.loss(video, 1, seed=tf.constant([1, 2]))
    grads = tape.gradient(loss, model.trainable_variables)
    assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
    assert all(g is not None and g.dtype == tf.float32 for g in grads)


def test_unknown_network_dtype_is_refused():
    with pytest.raises(HParamsError, match="network_dtype"):
        registry.create_hparams("videoflow_tiny", "network_dtype=float16")
    with pytest.raises(ValueError, match="compute_dtype"):
        CouplingNetwork(8, 4, compute_dtype="float16")
