"""The multi-scale flow: shapes, invertibility, log-det, DDI, gradients, T2T's numbers,
tf.function / XLA / tf.distribute, and input errors."""

import time

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import brute_force_flow_log_det, load_oracle, perturb
from t2t_videoflow.flow.multiscale import MultiScaleFlow


def tiny_flow(coupling="affine", activation="relu", shape=(8, 8, 3), seed=0):
    return MultiScaleFlow(shape, n_levels=2, depth=2, coupling=coupling,
                          coupling_width=8, activation=activation, seed=seed)


def initialised_tiny_flow(coupling="affine", activation="relu", shape=(8, 8, 3)):
    flow = tiny_flow(coupling, activation, shape)
    flow.data_init(tf.random.stateless_uniform([16, *shape], [0, 1], -0.5, 0.5))
    perturb(flow.trainable_variables, 0.05, seed=7)
    return flow


def test_latent_shapes():
    flow = tiny_flow(shape=(16, 8, 3))
    enc = flow.encode(tf.random.uniform([2, 16, 8, 3]))
    assert [z.shape for z in enc.latents] == [(2, 8, 4, 6)]
    assert [c.shape for c in enc.conditions] == [(2, 8, 4, 6)]
    assert enc.top.shape == (2, 4, 2, 24)
    assert enc.log_det.shape == (2,)
    assert flow.latent_shapes() == ([(8, 4, 6)], (4, 2, 24))


@pytest.mark.parametrize("coupling,activation",
                         [("affine", "relu"), ("additive", "gatu")])
def test_invertibility_after_ddi_with_random_weights(coupling, activation):
    flow = initialised_tiny_flow(coupling, activation)
    x = tf.random.stateless_uniform([4, 8, 8, 3], [3, 4], -0.5, 0.5)
    enc = flow.encode(x)
    x_back, latents, inv_log_det = flow.decode(enc.top, enc.latents)
    assert np.abs(x_back.numpy() - x.numpy()).max() <= 1e-5
    np.testing.assert_allclose(inv_log_det, -enc.log_det, rtol=1e-5)
    assert latents[0] is enc.latents[0]


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_log_det_of_two_level_flow_against_jacobian(coupling):
    flow = initialised_tiny_flow(coupling, shape=(4, 4, 3))
    x = tf.random.stateless_uniform([1, 4, 4, 3], [5, 6], -0.5, 0.5)
    expected = brute_force_flow_log_det(flow, x)
    np.testing.assert_allclose(flow.encode(x).log_det.numpy()[0], expected, rtol=1e-4)


def test_ddi_normalises_first_actnorm_and_runs_once():
    flow = tiny_flow()
    x = tf.random.stateless_normal([32, 8, 8, 3], [1, 1], mean=0.3, stddev=0.2)
    flow.data_init(x)
    first = flow.levels[0].steps[0]
    from t2t_videoflow.flow.squeeze import squeeze2
    y = first.actnorm.forward(squeeze2(x)).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    # Every actnorm in the flow and in the coupling networks was initialised.
    flags = [v for v in flow.variables if "initialized" in v.name]
    assert len(flags) == 4 * (1 + 2)  # 4 steps x (flow actnorm + 2 net actnorms)
    assert all(bool(v.numpy()) for v in flags)
    snapshot = [v.numpy().copy() for v in flow.trainable_variables]
    flow.data_init(x * 3.0 + 1.0)
    for before, var in zip(snapshot, flow.trainable_variables):
        np.testing.assert_array_equal(before, var.numpy())


def test_restore_then_data_init_keeps_restored_values(tmp_path):
    flow = initialised_tiny_flow()
    path = tf.train.Checkpoint(flow=flow).write(str(tmp_path / "ckpt"))
    restored = tiny_flow(seed=99)
    tf.train.Checkpoint(flow=restored).read(path).assert_consumed()
    restored.data_init(tf.random.uniform([8, 8, 8, 3]))
    for a, b in zip(flow.variables, restored.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_trainable_variable_count_and_gradients_reach_every_variable():
    flow = initialised_tiny_flow()
    # per step: actnorm 2 + 1x1 conv 3 (L, U, log_S) + coupling net 3 x 3.
    assert len(flow.trainable_variables) == 4 * 14
    x = tf.random.uniform([2, 8, 8, 3], -0.5, 0.5)
    with tf.GradientTape() as tape:
        enc = flow.encode(x)
        loss = sum(tf.reduce_sum(z ** 2) for z in [*enc.latents, enc.top])
        loss -= tf.reduce_sum(enc.log_det)
    grads = tape.gradient(loss, flow.trainable_variables)
    missing = [v.name for v, g in zip(flow.trainable_variables, grads) if g is None]
    assert not missing
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_tf_function_and_xla_match_eager(jit_compile):
    flow = initialised_tiny_flow()
    x = tf.random.uniform([2, 8, 8, 3], -0.5, 0.5)

    @tf.function(jit_compile=jit_compile)
    def round_trip(frames):
        enc = flow.encode(frames)
        back, _, _ = flow.decode(enc.top, enc.latents)
        return enc.top, enc.log_det, back

    top, log_det, back = round_trip(x)
    eager = flow.encode(x)
    np.testing.assert_allclose(top, eager.top, atol=1e-5)
    np.testing.assert_allclose(log_det, eager.log_det, rtol=1e-5)
    np.testing.assert_allclose(back, x, atol=1e-5)


def test_data_init_under_tf_function():
    flow = tiny_flow()
    x = tf.random.stateless_normal([16, 8, 8, 3], [2, 2], mean=0.1, stddev=0.3)
    tf.function(flow.data_init)(x)
    assert all(bool(v.numpy()) for v in flow.variables if "initialized" in v.name)


def test_created_under_distribution_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        flow = tiny_flow()
    assert all(isinstance(v, tf.distribute.DistributedValues)
               for v in flow.trainable_variables)
    x = tf.random.uniform([2, 8, 8, 3], -0.5, 0.5)

    @tf.function
    def step(frames):
        return strategy.run(lambda f: flow.encode(f).log_det, args=(frames,))

    np.testing.assert_allclose(step(x), flow.encode(x).log_det, rtol=1e-6)


def test_sampling_decode_uses_callable_per_level():
    flow = initialised_tiny_flow()
    calls = []

    def sample_latent(level, x1):
        calls.append((level, tuple(x1.shape)))
        return tf.zeros_like(x1)

    frames, latents, _ = flow.decode(tf.zeros([3, 2, 2, 24]), sample_latent=sample_latent)
    assert frames.shape == (3, 8, 8, 3)
    assert calls == [(0, (3, 4, 4, 6))]
    assert latents[0].shape == (3, 4, 4, 6)


def test_paper_size_shapes_and_invertibility():
    """videoflow_bpp's flow: 64x64x3, 3 levels x 24 steps, affine, width 512, gatu."""
    start = time.time()
    flow = MultiScaleFlow((64, 64, 3), n_levels=3, depth=24, coupling="affine",
                          coupling_width=512, activation="gatu", seed=0)
    n_params = sum(int(np.prod(v.shape)) for v in flow.trainable_variables)
    print(f"paper-size flow: {n_params} trainable parameters "
          f"({len(flow.trainable_variables)} variables)")
    x = tf.random.stateless_uniform([1, 64, 64, 3], [0, 0], -0.5, 0.5)
    flow.data_init(x)
    perturb(flow.trainable_variables, 0.01, seed=3)
    enc = flow.encode(x)
    assert [z.shape for z in enc.latents] == [(1, 32, 32, 6), (1, 16, 16, 12)]
    assert enc.top.shape == (1, 8, 8, 48)
    total = sum(int(np.prod(z.shape[1:])) for z in [*enc.latents, enc.top])
    assert total == 64 * 64 * 3
    back, _, _ = flow.decode(enc.top, enc.latents)
    assert np.abs(back.numpy() - x.numpy()).max() <= 1e-3
    print(f"paper-size flow: build + DDI + encode + decode {time.time() - start:.1f} s")


def test_matches_t2t_flow_intermediates():
    for name, size, coupling, width, activation in (
            ("model_affine_relu_16", 16, "affine", 16, "relu"),
            ("model_additive_gatu_8", 8, "additive", 8, "gatu")):
        oracle = load_oracle(name)
        flow = MultiScaleFlow((size, size, 3), 2, 2, coupling, width, activation)
        prefix = "var_pert/next_frame_glow/body/codec/"
        for t2t_name, var in flow.t2t_variables().items():
            var.assign(oracle[prefix + t2t_name])
        for t in range(3):
            out = f"out_pert/frame{t}/"
            enc = flow.encode(tf.constant(oracle[out + "x_dequantized"]))
            np.testing.assert_allclose(enc.latents[0], oracle[out + "z_level0"], atol=1e-4)
            np.testing.assert_allclose(enc.conditions[0], oracle[out + "split_0/x1"],
                                       atol=1e-4)
            np.testing.assert_allclose(enc.top, oracle[out + "z_top"], atol=1e-4)
            for l in range(2):
                np.testing.assert_allclose(enc.level_log_dets[l],
                                           oracle[out + f"revnet_{l}/logdet"], rtol=1e-5)


@pytest.mark.parametrize("frames,message", [
    (tf.zeros([8, 8, 3]), "rank 4"),
    (tf.zeros([1, 8, 8, 4]), r"3 channels \[batch, height, width, 3\]"),
    (tf.zeros([1, 8, 8, 3], tf.int32), r"float \[batch, 8, 8, 3\]; got dtype int32"),
    (tf.zeros([1, 12, 8, 3]), r"shape \[batch, 8, 8, 3\]; got \(1, 12, 8, 3\)"),
])
def test_bad_input_is_a_clear_error(frames, message):
    with pytest.raises(ValueError, match=message):
        tiny_flow().encode(frames)


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match=r"divisible by 2\*\*n_levels = 4"):
        MultiScaleFlow((6, 8, 3), n_levels=2, depth=1)
    with pytest.raises(ValueError, match="n_levels must be >= 1"):
        MultiScaleFlow((8, 8, 3), n_levels=0, depth=1)


@pytest.mark.parametrize("coupling", ["affine", "additive"])
def test_data_init_returns_the_initialised_forward_from_one_pass(coupling):
    """`data_init` gives `forward(x)` of the initialised flow without a second pass:
    each coupling reuses its network's init-call output."""
    flow = tiny_flow(coupling, activation="gatu")
    x = tf.random.stateless_normal([8, 8, 8, 3], [2, 3], mean=0.1, stddev=0.3)
    out = flow.data_init(x)
    assert out.shape == (8, 8 * 8 * 3)
    np.testing.assert_allclose(out, flow.forward(x), atol=1e-5)
