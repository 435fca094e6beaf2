"""`loop_prior_blocks`: the conv3d_net prior's residual blocks as one `tf.while_loop`.

The looped network must compute exactly what the unrolled one does (values and
gradients, with every dilation branch, T2T's bits per pixel), with a graph whose size
does not grow with the number of blocks; eager calls and data-dependent init stay
unrolled.
"""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import perturb
from t2t_videoflow.model import load_t2t_weights
from t2t_videoflow.prior.temporal_network import TemporalLatentToDist
from test_model import perturbed_model, shapes_clips
from test_model_oracle import oracle_inputs, oracle_model, pert_weights

SHAPE = (2, 3, 9, 9, 4)  # [B, N, h, w, R]: h = 9 allows dilation factors 2 and 4


def network_pair(activation, depth=3, apply_dilations=True):
    """Two prior networks with identical, block-wise different weights: unrolled, looped."""
    x = tf.random.stateless_normal(SHAPE, [1, 2])
    nets = []
    for loop in (False, True):
        net = TemporalLatentToDist(encoder_depth=depth, encoder_width=6,
                                   activation=activation, apply_dilations=apply_dilations,
                                   loop_blocks=loop)
        net.build(SHAPE)
        net(x, init=True)
        nets.append(net)
    # The zero-initialised convs are 0 at init: perturb so every block contributes, and
    # differently, so a loop that reused block 0's weights would show.
    perturb([v.value for v in nets[0].trainable_variables], 0.1, seed=3)
    for a, b in zip(nets[0].variables, nets[1].variables):
        b.assign(a)
    return nets


def loc_scale_and_grads(net, x):
    @tf.function(autograph=False)
    def run(x):
        with tf.GradientTape() as tape:
            loc, scale = net(x, training=True)
            loss = tf.reduce_sum(tf.square(loc)) + tf.reduce_sum(tf.math.log(scale))
        return loc, scale, tape.gradient(loss, net.trainable_variables)
    return run(x)


@pytest.mark.parametrize("activation,apply_dilations",
                         [("gatu", True), ("relu", False)])
def test_looped_blocks_match_unrolled_values_and_gradients(activation, apply_dilations):
    unrolled, looped = network_pair(activation, apply_dilations=apply_dilations)
    assert len(unrolled.dilations) == (3 if apply_dilations else 1)
    x = tf.random.stateless_normal(SHAPE, [5, 6])
    loc_u, scale_u, grads_u = loc_scale_and_grads(unrolled, x)
    loc_l, scale_l, grads_l = loc_scale_and_grads(looped, x)
    assert np.abs(loc_u.numpy()).max() > 0.1  # the blocks do contribute
    np.testing.assert_allclose(loc_l, loc_u, atol=1e-5)
    np.testing.assert_allclose(scale_l, scale_u, rtol=1e-5)
    assert len(grads_l) == len(grads_u)
    for g_l, g_u, v in zip(grads_l, grads_u, looped.trainable_variables):
        assert g_l is not None, v.name
        scale = np.abs(g_u).max() + 1e-6
        # float32 sums in another order; a wrong block's weights would differ by O(1).
        np.testing.assert_allclose(g_l / scale, g_u / scale, atol=1e-4, err_msg=v.name)


def conv3d_ops(net):
    """Conv3D ops in the traced network, counting those inside while-loop functions."""
    fn = tf.function(lambda x: net(x)[0], autograph=False)
    graph = fn.get_concrete_function(tf.TensorSpec(SHAPE)).graph
    ops = list(graph.get_operations())
    for op in graph.get_operations():
        if op.type in ("While", "StatelessWhile"):
            for attr in ("body", "cond"):
                ops += graph._functions[op.get_attr(attr).name].graph.get_operations()
    return sum(op.type == "Conv3D" for op in ops)


def test_looped_graph_does_not_grow_with_depth():
    counts = {}
    for loop in (False, True):
        for depth in (2, 5):
            net = TemporalLatentToDist(encoder_depth=depth, encoder_width=6,
                                       apply_dilations=True, loop_blocks=loop)
            net.build(SHAPE)
            counts[loop, depth] = conv3d_ops(net)
    # 3 dilation branches x 3 convs per block.
    assert counts[True, 2] == counts[True, 5] == 9
    assert counts[False, 5] == 45 and counts[False, 2] == 18


def test_eager_calls_and_init_run_unrolled_with_the_same_result():
    unrolled, looped = network_pair("gatu")
    x = tf.random.stateless_normal(SHAPE, [7, 8])
    np.testing.assert_array_equal(looped(x)[0], unrolled(x)[0])
    # Data-dependent init inside a graph runs unrolled (its actnorms assign).
    fresh = TemporalLatentToDist(encoder_depth=2, encoder_width=6, loop_blocks=True)
    fresh.build(SHAPE)
    tf.function(lambda x: fresh(x, init=True), autograph=False)(x)
    flags = [v for v in fresh.variables if v.dtype == "bool"]
    assert len(flags) == 2 * 2 and all(bool(v.numpy()) for v in flags)  # 2 a relu block


def test_looped_model_reproduces_t2t_bits_per_pixel_in_a_graph():
    # This oracle's prior is conv3d_net with 2 residual blocks.
    oracle, model = oracle_model("model_additive_gatu_8", loop_prior_blocks=True)
    assert model.level_cond_priors[0].net.loop_blocks
    load_t2t_weights(model, pert_weights(oracle))
    video, noise = oracle_inputs(oracle)
    n_in = int(oracle["meta/video_num_input_frames"])
    loss = tf.function(lambda: model.loss(video, n_in, noise=noise, training=False),
                       autograph=False)
    np.testing.assert_allclose(loss(), oracle["out_pert/bpp"], atol=1e-4, rtol=1e-5)


def test_looped_model_samples_as_the_unrolled_one():
    video = shapes_clips(batch=2, frames=3)
    model = perturbed_model(video, scale=0.02, latent_encoder_depth=3,
                            loop_prior_blocks=True, loop_flow_steps=True)
    sample = tf.function(lambda: model.sample_with_log_density(video[:, :2], 2, 0.7, 3),
                         autograph=False)
    frames_l, density_l = sample()
    for prior in [*model.level_cond_priors, model.top_cond_prior]:
        prior.net.loop_blocks = False
    for level in model.flow.levels:
        level.loop_steps = False
    frames_u, density_u = sample.python_function()
    assert np.isfinite(frames_u.numpy()).all() and np.isfinite(density_u.numpy()).all()
    np.testing.assert_allclose(frames_l, frames_u, atol=1e-5)
    np.testing.assert_allclose(density_l, density_u, rtol=1e-4)
