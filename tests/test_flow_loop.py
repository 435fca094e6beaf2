"""`loop_flow_steps`: each flow level's K steps as one `tf.while_loop` in graphs.

The looped level must compute exactly what the unrolled one does (values, log-dets,
gradients, inverse, sampling, T2T's bits per pixel), with a graph whose size does not
grow with K; `variable_binding` must refuse mismatched bindings.
"""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import perturb
from t2t_videoflow.flow.multiscale import MultiScaleFlow
from t2t_videoflow.layers.variable_binding import bind, read
from t2t_videoflow.model.videoflow import load_t2t_weights
from test_model import perturbed_model, shapes_clips
from test_model_oracle import oracle_inputs, oracle_model, pert_weights


def flow_pair(coupling, activation, depth=3, memory_efficient_backprop=False):
    """Two flows with identical weights: unrolled and looped (the looped one with
    `memory_efficient_backprop` as given)."""
    flows = []
    for loop in (False, True):
        flow = MultiScaleFlow((8, 8, 3), n_levels=2, depth=depth, coupling=coupling,
                              coupling_width=8, activation=activation, seed=1,
                              loop_steps=loop,
                              memory_efficient_backprop=loop and memory_efficient_backprop)
        flow.data_init(tf.random.stateless_uniform([8, 8, 8, 3], [0, 1], -0.5, 0.5))
        flows.append(flow)
    # Different weights in every step, so a loop that reused step 0's would show.
    perturb(flows[0].variables, 0.05, seed=3)
    for a, b in zip(flows[0].variables, flows[1].variables):
        b.assign(a)
    return flows


def encode_with_grads(flow, x):
    @tf.function(autograph=False)
    def run(x):
        with tf.GradientTape() as tape:
            enc = flow.encode(x)
            loss = tf.reduce_sum(enc.log_det) + tf.reduce_sum(tf.square(enc.top))
        return enc.top, enc.latents, enc.log_det, tape.gradient(loss,
                                                                flow.trainable_variables)
    return run(x)


@pytest.mark.parametrize("coupling,activation", [("affine", "gatu"), ("additive", "relu")])
def test_looped_levels_match_unrolled_values_and_gradients(coupling, activation):
    unrolled, looped = flow_pair(coupling, activation)
    x = tf.random.stateless_uniform([2, 8, 8, 3], [4, 5], -0.5, 0.5)
    top_u, lat_u, ld_u, grads_u = encode_with_grads(unrolled, x)
    top_l, lat_l, ld_l, grads_l = encode_with_grads(looped, x)
    np.testing.assert_allclose(top_l, top_u, atol=1e-6)
    np.testing.assert_allclose(lat_l[0], lat_u[0], atol=1e-6)
    np.testing.assert_allclose(ld_l, ld_u, rtol=1e-6)
    assert len(grads_l) == len(grads_u)
    for g_l, g_u, v in zip(grads_l, grads_u, looped.trainable_variables):
        assert g_l is not None, v.name
        scale = np.abs(g_u).max() + 1e-6
        np.testing.assert_allclose(g_l / scale, g_u / scale, atol=1e-5, err_msg=v.name)


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_looped_recomputation_matches_plain_backprop(coupling):
    # memory_efficient_backprop with looped levels: both passes are while loops.
    unrolled, looped = flow_pair(coupling, "gatu", memory_efficient_backprop=True)
    x = tf.random.stateless_uniform([2, 8, 8, 3], [4, 5], -0.5, 0.5)
    top_u, lat_u, ld_u, grads_u = encode_with_grads(unrolled, x)
    top_l, lat_l, ld_l, grads_l = encode_with_grads(looped, x)
    np.testing.assert_allclose(top_l, top_u, atol=1e-6)
    np.testing.assert_allclose(ld_l, ld_u, rtol=1e-6)
    for g_l, g_u, v in zip(grads_l, grads_u, looped.trainable_variables):
        assert g_l is not None, v.name
        scale = np.abs(g_u).max() + 1e-6
        np.testing.assert_allclose(g_l / scale, g_u / scale, atol=1e-4, err_msg=v.name)


def test_looped_inverse_inverts_and_matches_unrolled():
    unrolled, looped = flow_pair("affine", "gatu")
    x = tf.random.stateless_uniform([2, 8, 8, 3], [6, 7], -0.5, 0.5)
    enc = unrolled.encode(x)

    def decode(flow):
        fn = tf.function(lambda top, z: flow.decode(top, z)[::2], autograph=False)
        return fn(enc.top, enc.latents)

    (x_u, ld_u), (x_l, ld_l) = decode(unrolled), decode(looped)
    assert np.abs(x_l.numpy() - x.numpy()).max() < 1e-5
    np.testing.assert_allclose(x_l, x_u, atol=1e-6)
    np.testing.assert_allclose(ld_l, -enc.log_det, rtol=1e-5)
    np.testing.assert_allclose(ld_l, ld_u, rtol=1e-6)


def conv_ops(flow):
    """Conv2D ops in the traced encoder, counting those inside while-loop functions."""
    fn = tf.function(lambda x: flow.encode(x).log_det, autograph=False)
    graph = fn.get_concrete_function(tf.TensorSpec([2, 8, 8, 3])).graph
    ops = list(graph.get_operations())
    for op in graph.get_operations():
        if op.type in ("While", "StatelessWhile"):
            for attr in ("body", "cond"):
                ops += graph._functions[op.get_attr(attr).name].graph.get_operations()
    return sum(op.type == "Conv2D" for op in ops)


def encoder_gradient_graph(flow):
    """The traced graph of the encoder's log-det gradient w.r.t. the flow's weights."""
    def grads(x):
        with tf.GradientTape() as tape:
            log_det = tf.reduce_sum(flow.encode(x).log_det)
        return tape.gradient(log_det, flow.trainable_variables)
    return tf.function(grads, autograph=False).get_concrete_function(
        tf.TensorSpec([2, 8, 8, 3])).graph


def gradient_conv_ops(flow):
    """Conv ops (forward and backward kinds) in the traced gradient of the encoder,
    counting those inside (nested) while-loop functions."""
    graph = encoder_gradient_graph(flow)
    pending, ops = [graph], []
    while pending:
        g = pending.pop()
        for op in g.get_operations():
            ops.append(op)
            if op.type in ("While", "StatelessWhile"):
                pending += [graph._functions[op.get_attr(a).name].graph
                            for a in ("body", "cond")]
    return sum(op.type.startswith("Conv2D") for op in ops)


def test_looped_recomputation_graph_does_not_grow_with_depth():
    counts = {}
    for depth in (2, 5):
        flow = MultiScaleFlow((8, 8, 3), n_levels=2, depth=depth, coupling_width=8,
                              seed=0, loop_steps=True, memory_efficient_backprop=True)
        counts[depth] = gradient_conv_ops(flow)
    assert counts[2] == counts[5] > 0


def test_looped_recomputation_reads_each_weight_once_per_pass():
    """The looped, recomputed level's weights enter its custom gradient as stacks read
    outside it: each variable is read once for the forward loop and once for the
    backward one, and no op passes the variables through (`tf.custom_gradient` would
    add an identity of every variable, read each again and fill zeros for them).
    These per-variable ops are most of the paper model's graph (and graph size costs
    start-up time and memory)."""
    flow = MultiScaleFlow((8, 8, 3), n_levels=2, depth=3, coupling_width=8, seed=0,
                          loop_steps=True, memory_efficient_backprop=True)
    ops = encoder_gradient_graph(flow).get_operations()
    float_variables = [v for v in flow.variables if v.dtype.is_floating]  # no flags
    assert sum(op.type == "ReadVariableOp" for op in ops) == 2 * len(float_variables)
    # The custom gradient's own identity: y, log_det, x and one stack per step weight.
    assert max((len(op.inputs) for op in ops if op.type == "IdentityN"), default=0) \
        == 3 + len(flow.levels[0]._step_variables()[0])


def test_looped_graph_does_not_grow_with_depth():
    counts = {}
    for loop in (False, True):
        for depth in (2, 5):
            flow = MultiScaleFlow((8, 8, 3), n_levels=2, depth=depth, coupling_width=8,
                                  seed=0, loop_steps=loop)
            counts[loop, depth] = conv_ops(flow)
    assert counts[True, 2] == counts[True, 5] > 0
    assert counts[False, 5] > counts[False, 2] >= counts[True, 2]


def test_eager_calls_run_the_steps_unrolled_with_the_same_result():
    unrolled, looped = flow_pair("affine", "relu")
    x = tf.random.stateless_uniform([2, 8, 8, 3], [8, 9], -0.5, 0.5)
    np.testing.assert_array_equal(looped.encode(x).top, unrolled.encode(x).top)


@pytest.mark.parametrize("name", ["model_affine_relu_16", "model_additive_gatu_8"])
def test_looped_model_reproduces_t2t_bits_per_pixel_in_a_graph(name):
    oracle, model = oracle_model(name, loop_flow_steps=True)
    load_t2t_weights(model, pert_weights(oracle))
    video, noise = oracle_inputs(oracle)
    n_in = int(oracle["meta/video_num_input_frames"])
    loss = tf.function(lambda: model.loss(video, n_in, noise=noise, training=False),
                       autograph=False)
    np.testing.assert_allclose(loss(), oracle["out_pert/bpp"], atol=1e-4, rtol=1e-5)


def test_looped_model_samples_as_the_unrolled_one():
    video = shapes_clips(batch=2, frames=3)
    model = perturbed_model(video, scale=0.02, depth=3, loop_flow_steps=True)
    sample = tf.function(lambda: model.sample_with_log_density(video[:, :2], 2, 0.7, 3),
                         autograph=False)
    frames_l, density_l = sample()
    for level in model.flow.levels:
        level.loop_steps = False
    frames_u, density_u = sample.python_function()
    assert np.isfinite(frames_u.numpy()).all() and np.isfinite(density_u.numpy()).all()
    np.testing.assert_allclose(frames_l, frames_u, atol=1e-5)
    np.testing.assert_allclose(density_l, density_u, rtol=1e-4)


def test_bind_reads_bound_values_and_nests():
    a, b = tf.Variable([1.0, 2.0]), tf.Variable(3.0)
    assert read(a) is a
    with bind([a, b], [tf.constant([5.0, 6.0]), tf.constant(7.0)]):
        np.testing.assert_array_equal(read(a), [5.0, 6.0])
        with bind([b], [tf.constant(8.0)]):
            assert float(read(b)) == 8.0
            np.testing.assert_array_equal(read(a), [5.0, 6.0])
        assert float(read(b)) == 7.0
    assert read(a) is a and read(b) is b


def test_bind_refuses_mismatched_values():
    a = tf.Variable([1.0, 2.0])
    with pytest.raises(ValueError, match="one value per variable"):
        with bind([a], []):
            pass
    with pytest.raises(ValueError, match="shape"):
        with bind([a], [tf.constant([1.0, 2.0, 3.0])]):
            pass
    with pytest.raises(ValueError, match="int32"):
        with bind([a], [tf.constant([1, 2])]):
            pass
    assert read(a) is a
