"""Memory-efficient invertible backprop (`flow/recompute.py`): same loss and gradients as
plain backprop for the flow and the whole model, eagerly, under tf.function, XLA and
MirroredStrategy; no missing gradients; no stale inverses; dropout is refused."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import perturb
from t2t_videoflow.config import registry
from t2t_videoflow.flow.multiscale import MultiScaleFlow
from t2t_videoflow.flow.recompute import reversible_forward_and_log_det
from t2t_videoflow.layers.recompute_block import recompute_with_weights
from t2t_videoflow.layers.variable_binding import read
from t2t_videoflow.model.videoflow import build_model

RTOL = 1e-4
SHAPE = (16, 16, 3)


def flow_pair(coupling, activation="gatu"):
    """A plain and a recomputing flow with identical variables, DDI done, perturbed."""
    flows = [MultiScaleFlow(SHAPE, n_levels=2, depth=2, coupling=coupling,
                            coupling_width=8, activation=activation, seed=0,
                            memory_efficient_backprop=mem)
             for mem in (False, True)]
    plain, recompute = flows
    for a, b in zip(plain.variables, recompute.variables):
        b.assign(a)
    init = tf.random.stateless_uniform([8, *SHAPE], [0, 1], -0.5, 0.5)
    for flow in flows:
        flow.data_init(init)
    perturb(plain.trainable_variables, 0.05, seed=7)
    for a, b in zip(plain.variables, recompute.variables):
        b.assign(a)
    return plain, recompute


def nll_and_grads(flow, x):
    """Standard-normal NLL of all latents minus the log-det, and its gradients."""
    with tf.GradientTape() as tape:
        enc = flow.encode(x, training=True)
        log_prob = sum(tf.reduce_sum(-0.5 * z ** 2, axis=[1, 2, 3])
                       for z in [*enc.latents, enc.top])
        loss = -tf.reduce_mean(log_prob + enc.log_det)
    return loss, tape.gradient(loss, flow.trainable_variables)


def relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30)


def assert_same(loss_a, grads_a, loss_b, grads_b, variables, nonzero=None):
    """Equal loss and gradients (relative difference <= RTOL), none missing, and the
    gradients of `nonzero` (indices; default all) not identically zero."""
    assert len(grads_b) == len(variables) == len(grads_a)
    missing = [v.name for v, g in zip(variables, grads_b) if g is None]
    assert not missing, missing
    assert relative_difference(loss_a, loss_b) <= RTOL
    worst = max(relative_difference(ga, gb) for ga, gb in zip(grads_a, grads_b))
    assert worst <= RTOL, worst
    nonzero = range(len(grads_a)) if nonzero is None else nonzero
    assert all(np.abs(np.asarray(grads_a[i])).max() > 0 for i in nonzero)


@pytest.mark.parametrize("coupling,compiled", [("affine", False), ("additive", True)])
def test_flow_gradients_equal_plain_backprop(coupling, compiled):
    plain, recompute = flow_pair(coupling)
    x = tf.random.stateless_uniform([4, *SHAPE], [3, 4], -0.5, 0.5)
    fn_a = tf.function(nll_and_grads) if compiled else nll_and_grads
    fn_b = tf.function(nll_and_grads) if compiled else nll_and_grads
    loss_a, grads_a = fn_a(plain, x)
    loss_b, grads_b = fn_b(recompute, x)
    # 4 steps x (actnorm 2 + 1x1 conv 3 + gatu net: 3 conv+actnorm x 3, zero conv 3).
    assert len(grads_b) == 4 * (2 + 3 + 3 * 3 + 3)
    assert_same(loss_a, grads_a, loss_b, grads_b, recompute.trainable_variables)


def test_flow_gradients_under_xla():
    plain, recompute = flow_pair("affine")
    x = tf.random.stateless_uniform([2, *SHAPE], [5, 6], -0.5, 0.5)
    loss_a, grads_a = nll_and_grads(plain, x)
    loss_b, grads_b = tf.function(nll_and_grads, jit_compile=True)(recompute, x)
    assert_same(loss_a, grads_a, loss_b, grads_b, recompute.trainable_variables)


def test_log_det_upstream_gradient_flows():
    """A loss of the log-det alone: its gradient reaches the input and the variables."""
    plain, recompute = flow_pair("affine")
    x = tf.random.stateless_uniform([2, *SHAPE], [7, 8], -0.5, 0.5)
    results = []
    for flow in (plain, recompute):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(flow.encode(x).log_det)
        results.append(tape.gradient(loss, [x, *flow.trainable_variables]))
    assert np.abs(results[0][0].numpy()).max() > 0
    for ga, gb in zip(*results):
        assert relative_difference(ga, gb) <= RTOL


def test_inverse_uses_current_variables_after_an_update():
    """Two optimiser steps: the reconstruction must see the updated weights (no cache)."""
    plain, recompute = flow_pair("affine")
    x = tf.random.stateless_uniform([2, *SHAPE], [9, 10], -0.5, 0.5)
    step = tf.function(nll_and_grads)
    step_b = tf.function(nll_and_grads)
    for _ in range(2):
        loss_a, grads_a = step(plain, x)
        loss_b, grads_b = step_b(recompute, x)
        assert_same(loss_a, grads_a, loss_b, grads_b, recompute.trainable_variables)
        for flow, grads in ((plain, grads_a), (recompute, grads_a)):
            for var, g in zip(flow.trainable_variables, grads):
                var.assign_sub(0.05 * g / (tf.norm(g) + 1e-6))


def test_values_equal_without_a_tape():
    plain, recompute = flow_pair("additive")
    x = tf.random.stateless_uniform([2, *SHAPE], [11, 12], -0.5, 0.5)
    a, b = plain.encode(x), recompute.encode(x)
    np.testing.assert_allclose(b.top, a.top, atol=1e-6)
    np.testing.assert_allclose(b.log_det, a.log_det, rtol=1e-6)


def test_dropout_is_refused():
    with pytest.raises(ValueError, match="coupling_dropout"):
        MultiScaleFlow(SHAPE, 2, 1, coupling_width=8, coupling_dropout=0.1,
                       memory_efficient_backprop=True)
    flow = MultiScaleFlow(SHAPE, 2, 1, coupling_width=8, coupling_dropout=0.1)
    x = tf.zeros([1, 8, 8, 12])
    with pytest.raises(ValueError, match="dropout"):
        reversible_forward_and_log_det(flow.levels[0].steps, x, training=True)
    # Without training dropout is off, so recomputation is exact and allowed.
    y, _ = reversible_forward_and_log_det(flow.levels[0].steps, x, training=False)
    np.testing.assert_allclose(y, flow.levels[0].forward_and_log_det(x)[0], atol=1e-6)


def tiny_hparams(coupling, memory_efficient_backprop):
    hp = registry.hparams("videoflow_tiny")
    hp.depth = 2
    hp.coupling = coupling
    hp.memory_efficient_backprop = memory_efficient_backprop
    return hp


def model_pair(coupling):
    """Plain and recomputing models with identical variables and DDI done."""
    models = [build_model(tiny_hparams(coupling, mem), (16, 16, 3), seed=0)
              for mem in (False, True)]
    plain, recompute = models
    assert not plain.flow.memory_efficient_backprop
    assert recompute.flow.memory_efficient_backprop
    for a, b in zip(plain.variables, recompute.variables):
        b.assign(a)
    frames = tf.constant(np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16, 3)),
                         tf.uint8)
    for model in models:
        model.data_init(frames, seed=(0, 1))
    # DDI ran on the plain path in both: identical initial values.
    for a, b in zip(plain.variables, recompute.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    perturb(plain.trainable_variables, 0.02, seed=3)
    for a, b in zip(plain.variables, recompute.variables):
        b.assign(a)
    return plain, recompute, frames


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_model_loss_and_gradients_equal_plain_backprop(coupling):
    plain, recompute, frames = model_pair(coupling)
    noise = tf.random.stateless_uniform(frames.shape, [1, 2], 0.0, 1.0 / 256.0)

    def loss_and_grads(model):
        with tf.GradientTape() as tape:
            loss = model.loss(frames, 1, noise=noise, training=True)
        return loss, tape.gradient(loss, model.trainable_variables)

    loss_a, grads_a = tf.function(loss_and_grads)(plain)
    loss_b, grads_b = tf.function(loss_and_grads)(recompute)
    variables = recompute.trainable_variables
    assert len(variables) == len(plain.trainable_variables)
    flow_refs = {v.ref() for v in recompute.flow.trainable_variables}
    flow_indices = [i for i, v in enumerate(variables) if v.ref() in flow_refs]
    assert len(flow_indices) == 4 * (2 + 3 + 3 * 3 + 3)  # 2 levels x 2 steps, gatu
    assert_same(loss_a, grads_a, loss_b, grads_b, variables, nonzero=flow_indices)


def test_hparam_defaults_off():
    assert registry.hparams("next_frame_glow_hparams").memory_efficient_backprop is False
    assert build_model(registry.hparams("videoflow_tiny"),
                       (16, 16, 3)).flow.memory_efficient_backprop is False


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, "tests")
    from test_recompute import flow_pair, relative_difference

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        plain, recompute = flow_pair("affine")
    x = tf.random.stateless_uniform([4, 16, 16, 3], [3, 4], -0.5, 0.5)
    dataset = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(x).unbatch().batch(4))
    batch = next(iter(dataset))

    def make_step(flow):
        @tf.function
        def step(batch):
            def replica(xs):
                with tf.GradientTape() as tape:
                    enc = flow.encode(xs, training=True)
                    log_prob = sum(tf.reduce_sum(-0.5 * z ** 2, axis=[1, 2, 3])
                                   for z in [*enc.latents, enc.top])
                    loss = -tf.reduce_sum(log_prob + enc.log_det) / 4.0
                grads = tape.gradient(loss, flow.trainable_variables)
                ctx = tf.distribute.get_replica_context()
                return ctx.all_reduce("sum", [loss, *grads])
            out = strategy.run(replica, args=(batch,))
            return [strategy.experimental_local_results(t)[0] for t in out]
        return step

    a = make_step(plain)(batch)
    b = make_step(recompute)(batch)
    print("RESULT " + json.dumps(dict(
        replicas=strategy.num_replicas_in_sync,
        n_grads=len(b) - 1, n_vars=len(recompute.trainable_variables),
        none=sum(g is None for g in b),
        loss_rel=float(relative_difference(a[0], b[0])),
        worst=max(float(relative_difference(p, q)) for p, q in zip(a[1:], b[1:])))))
""")


def test_mirrored_strategy_two_replicas():
    """Logical devices must be set before TF initialises them: a fresh process."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["replicas"] == 2
    assert result["n_grads"] == result["n_vars"] == 68
    assert result["none"] == 0
    assert result["loss_rel"] <= RTOL
    assert result["worst"] <= RTOL


def conv3d_forward_ops(model, frames):
    """Conv3D (forward) ops in the traced loss-and-gradients graph, nested functions
    included."""
    def loss_and_grads(frames):
        with tf.GradientTape() as tape:
            loss = model.loss(frames, 1, training=True)
        return tape.gradient(loss, model.trainable_variables)
    graph = tf.function(loss_and_grads).get_concrete_function(frames).graph
    pending, count = [graph], 0
    while pending:
        g = pending.pop()
        count += sum(op.type == "Conv3D" for op in g.get_operations())
        pending += [f.graph for f in g._functions.values() if hasattr(f, "graph")]
    return count


def test_prior_blocks_are_recomputed_under_memory_efficient_backprop():
    plain, recompute, frames = model_pair("affine")
    priors = lambda m: [*m.level_cond_priors, m.top_cond_prior]
    assert not any(p.net.recompute_blocks for p in priors(plain))
    assert all(p.net.recompute_blocks for p in priors(recompute))
    # The backward pass runs every block's convs once more. (Equal gradients:
    # test_model_loss_and_gradients_equal_plain_backprop.)
    assert conv3d_forward_ops(recompute, frames) > conv3d_forward_ops(plain, frames)


def test_prior_blocks_with_dropout_are_stored():
    hp = tiny_hparams("affine", True)
    hp.latent_dropout = 0.5
    model = build_model(hp, (16, 16, 3), seed=0)
    frames = tf.constant(np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16, 3)),
                         tf.uint8)
    model.data_init(frames, seed=(0, 1))
    stored = build_model(tiny_hparams("affine", True), (16, 16, 3), seed=0)
    stored.data_init(frames, seed=(0, 1))
    # A recomputation would draw other dropout masks, so blocks that draw them are
    # stored: exactly plain backprop's Conv3D ops, fewer than without dropout.
    plain = build_model(tiny_hparams("affine", False), (16, 16, 3), seed=0)
    plain.data_init(frames, seed=(0, 1))
    assert conv3d_forward_ops(model, frames) == conv3d_forward_ops(plain, frames)
    assert conv3d_forward_ops(stored, frames) > conv3d_forward_ops(plain, frames)


def _block_and_weights(read_all=True):
    """`f(x) = tanh(x W1 + b) W2` with weights read through `read()` (all, or W2 read
    directly when `read_all` is False), and its variables."""
    w1 = tf.Variable(tf.random.stateless_normal([6, 5], [1, 2]))
    b = tf.Variable(tf.random.stateless_normal([5], [1, 3]))
    w2 = tf.Variable(tf.random.stateless_normal([5, 6], [1, 4]))
    flag = tf.Variable(True)  # non-float variables are ignored

    def f(x):
        h = tf.tanh(x @ read(w1) + read(b))
        return h @ (read(w2) if read_all else w2)
    return f, [w1, b, w2, flag]


@pytest.mark.parametrize("compiled", [False, True])
def test_recompute_with_weights_gives_plain_backprop(compiled):
    """`recompute_with_weights` (the prior's recomputed residual blocks): same output
    and gradients w.r.t. the input and every weight as plain backprop, eagerly and in
    a graph; in the graph the weights pass through the custom gradient as explicit
    inputs (one identity op with y, x and the three float weights, each variable read
    once forward and once backward, as tf.recompute_grad does not)."""
    f, variables = _block_and_weights()
    x = tf.random.stateless_normal([4, 6], [1, 5])
    trainable = variables[:3]

    def run(fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(fn(x)))
        return loss, tape.gradient(loss, [x] + trainable)

    recomputed = recompute_with_weights(f, variables)
    if compiled:
        plain_loss, plain_grads = tf.function(lambda: run(f))()
        loss, grads = tf.function(lambda: run(recomputed))()
    else:
        plain_loss, plain_grads = run(f)
        loss, grads = run(recomputed)
    assert_same(plain_loss, plain_grads, loss, grads, [x] + trainable)
    graph = tf.function(lambda: run(recomputed)).get_concrete_function().graph
    ops = graph.get_operations()
    assert [len(op.inputs) for op in ops if op.type == "IdentityN"] == [5]
    assert sum(op.type == "ReadVariableOp" for op in ops) == 2 * len(trainable)


def test_recompute_with_weights_refuses_a_direct_variable_read():
    f, variables = _block_and_weights(read_all=False)
    x = tf.random.stateless_normal([4, 6], [1, 5])
    with pytest.raises(ValueError, match="not bound through read"):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(recompute_with_weights(f, variables)(x))
        tape.gradient(loss, variables[:3])
