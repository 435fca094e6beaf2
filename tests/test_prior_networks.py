"""Tests for the latent prior networks (`t2t_videoflow/prior/`)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import assert_t2t_names_cover
from t2t_videoflow.layers.conv import ZeroConv2D
from t2t_videoflow.prior import (
    ENCODERS, ConvLSTMCell, LatentToDist, MarginalTopPrior, MergeLevelAndLatent,
    ScaleGaussianPrior, TemporalLatentToDist, conditional_prior, dilation_factors)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY = dict(encoder_depth=1, encoder_width=8, pre_output_channels=8)


def _randn(*shape, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _perturb(layer, seed=0, std=0.05):
    rng = np.random.default_rng(seed)
    for v in layer.trainable_variables:
        v.assign(v + rng.normal(0.0, std, v.shape).astype(np.float32))


def _init(prior):
    """`init=True` for priors with data-dependent init (their `call` takes it)."""
    return {"init": True} if prior.has_data_init else {}


def _latents(encoder, n=2, shape=(3, 8, 8, 4)):
    all_latents = [_randn(*shape, seed=10 + i) for i in range(n)]
    return all_latents[-1:] if encoder in ("conv_lstm", "pointwise") else all_latents


# -- dilations -----------------------------------------------------------------------

def test_dilation_table_bair():
    # T2T `glow_ops.get_dilation_rates`: 64x64 BAIR, rates [1, 3] -> factors 2
    # (needs 5 <= h), 4 (9 <= h).
    assert dilation_factors(8, True) == [1, 2]
    assert dilation_factors(16, True) == [1, 2, 4]
    assert dilation_factors(32, True) == [1, 2, 4]
    assert dilation_factors(4, True) == [1]
    assert dilation_factors(32, False) == [1]
    assert dilation_factors(9, True, (1, 3)) == [1, 2, 4]


@pytest.mark.parametrize("size,factors", [(4, [1]), (8, [1, 2]), (16, [1, 2, 4])])
def test_temporal_network_builds_one_branch_per_dilation(size, factors):
    net = TemporalLatentToDist(encoder_depth=2, encoder_width=4, apply_dilations=True)
    net.build((1, 2, size, size, 3))
    assert [[s.dilation for s in branches] for branches in net.blocks] == [factors] * 2
    names = net.t2t_variables()
    for i in range(2):
        for j in range(len(factors)):
            assert f"dil_latent_3d_res_{i}/dil_{j}/zeros/W" in names
        assert f"dil_latent_3d_res_{i}/dil_{len(factors)}/zeros/W" not in names
    # Branches have separate weights: every variable named once (each time step of a
    # 3-D actnorm's stacks by its own name).
    assert_t2t_names_cover(net.trainable_variables, names)


# -- every prior starts as N(z_{t-1}, I) with the skip, N(0, I) without ----------------------

@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_net", "conv_lstm"])
def test_init_distribution(encoder, skip):
    latents = _latents(encoder)
    mu0 = _randn(3, 8, 8, 4, seed=99)  # non-zero: it must not leak into the mean
    kwargs = dict(TINY, latent_skip=skip, latent_noise=0.1, latent_dropout=0.1,
                  coupling_dropout=0.1)
    top = conditional_prior(encoder, "top", **kwargs)
    level = conditional_prior(encoder, "level", **kwargs)
    expected = latents[-1].numpy() if skip else 0.0
    for call in (lambda: top(latents, **_init(top)), lambda: top(latents, training=True),
                 lambda: level(latents, mu0, **_init(level)),
                 lambda: level(latents, mu0, training=True)):
        loc, scale, state = call()
        assert loc.shape == scale.shape == (3, 8, 8, 4)
        # Exact: the noise is on the network input only, the skip uses the clean z.
        np.testing.assert_array_equal(loc.numpy(), expected)
        np.testing.assert_array_equal(scale.numpy(), 1.0)
        assert (state == ()) == (encoder != "conv_lstm")


@pytest.mark.parametrize("skip", [True, False])
def test_pointwise_init(skip):
    z = _randn(3, 8, 8, 4)
    mu0, sigma0 = _randn(3, 8, 8, 4, seed=1), tf.exp(_randn(3, 8, 8, 4, seed=2))
    loc, scale, _ = conditional_prior("pointwise", "top", latent_skip=skip)(z)
    np.testing.assert_allclose(loc.numpy(), (2.0 if skip else 1.0) * z.numpy())
    np.testing.assert_array_equal(scale.numpy(), 1.0)
    # Level: mu0 + m z (+ z), the std chosen by level_scale.
    for level_scale, expected_scale in (("prev_level", sigma0.numpy()), ("prev_step", 1.0),
                                        ("normal", 1.0)):
        prior = conditional_prior("pointwise", "level", latent_skip=skip, level_scale=level_scale)
        loc, scale, _ = prior([z], mu0, sigma0)
        np.testing.assert_allclose(loc.numpy(), mu0.numpy() + (2 if skip else 1) * z.numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(scale.numpy(), expected_scale, rtol=1e-6)
    names = conditional_prior("pointwise", "level", level_scale="normal")
    names([z], mu0)
    assert {k: tuple(v.shape) for k, v in names.t2t_variables().items()} == {
        "latent_prior/latent_multiplier": (3, 8, 8, 4),
        "latent_prior/log_scale_latent": (3, 8, 8, 4), "merge_std": (3, 8, 8, 4)}
    assert len(names.trainable_variables) == 2  # merge_std is frozen


def test_scale_gaussian_prior_and_merge():
    z = _randn(2, 4, 4, 3)
    prior = ScaleGaussianPrior(learn_scale=False)
    loc, scale = prior(z)
    np.testing.assert_array_equal(loc.numpy(), z.numpy())
    np.testing.assert_array_equal(scale.numpy(), 1.0)
    assert [v.name for v in prior.trainable_variables] == ["latent_multiplier"]
    prior.log_scale.assign(tf.fill(z.shape, 0.1))
    np.testing.assert_allclose(prior(z)[1].numpy(), np.exp(0.3), rtol=1e-6)
    with pytest.raises(ValueError, match="static"):
        ScaleGaussianPrior().build((None, 4, 4, 3))
    with pytest.raises(ValueError, match="prev_level"):
        MergeLevelAndLatent("average")


def test_marginal_top_prior():
    z = _randn(2, 4, 4, 6)
    prior = MarginalTopPrior()
    loc, scale = prior(z)
    np.testing.assert_array_equal(loc.numpy(), 0.0)
    np.testing.assert_array_equal(scale.numpy(), 1.0)
    _perturb(prior, std=0.3)
    loc, scale = prior(z)
    loc2, _ = prior(z + 7.0)  # depends only on the shape of z
    np.testing.assert_array_equal(loc.numpy(), loc2.numpy())
    # Constant inside, different at the border (edge channel); same for every example.
    np.testing.assert_allclose(loc[:, 1:-1, 1:-1].numpy(), loc[:1, 1:2, 1:2].numpy()
                               * np.ones_like(loc[:, 1:-1, 1:-1].numpy()), atol=1e-6)
    assert np.abs(loc[:, 0, 0].numpy() - loc[:, 1, 1].numpy()).max() > 1e-4
    # Weights independent of the batch size.
    assert prior(_randn(5, 4, 4, 6))[0].shape == (5, 4, 4, 6)


# -- LatentToDist (conv_net) -----------------------------------------------------------

@pytest.mark.parametrize("architecture,expected", [
    ("single_conv", {"single_conv/conv2d/W": (3, 3, 7, 8)}),
    ("glow_nn", {"glow_nn_1/1_1/W": (3, 3, 7, 4), "glow_nn_1/1_2/W": (1, 1, 4, 4),
                 "glow_nn_2/1_1/W": (3, 3, 5, 8), "glow_nn_2/1_2/W": (1, 1, 8, 8),
                 "glow_nn_zeros/W": (3, 3, 9, 8)}),
    ("glow_resnet", {"latent_resnet_0/conv_block/1_1/W": (3, 3, 7, 16),
                     "latent_resnet_0/conv_block/1_2/W": (1, 1, 16, 16),
                     "latent_resnet_0/zeros/W": (3, 3, 17, 6),
                     "latent_resnet_1/conv_block/1_1/W": (3, 3, 7, 16),
                     "latent_resnet_1/conv_block/1_2/W": (1, 1, 16, 16),
                     "latent_resnet_1/zeros/W": (3, 3, 17, 6),
                     "glow_res_final/W": (3, 3, 7, 8)}),
])
def test_latent_to_dist_architectures(architecture, expected):
    x = _randn(4, 5, 5, 6)
    net = LatentToDist(4, architecture, encoder_depth=2, encoder_width=16,
                       pre_output_channels=8)
    loc, scale = net(x, init=True)
    assert loc.shape == scale.shape == (4, 5, 5, 4)
    np.testing.assert_array_equal(loc.numpy(), 0.0)
    np.testing.assert_array_equal(scale.numpy(), 1.0)
    shapes = {k: tuple(v.shape) for k, v in net.t2t_variables().items() if k.endswith("/W")}
    assert shapes == expected
    _perturb(net, std=0.2)
    loc, scale = net(x)
    assert np.abs(loc.numpy()).max() > 1e-3  # the head really depends on x


# -- ConvLSTM --------------------------------------------------------------------------

def test_conv_lstm_cell_matches_equations():
    x, h, c = _randn(2, 5, 5, 3), _randn(2, 5, 5, 4, seed=1), _randn(2, 5, 5, 4, seed=2)
    cell = ConvLSTMCell(4)
    out, (new_c, new_h) = cell(x, (c, h))
    assert tuple(cell.kernel.shape) == (3, 3, 7, 16)
    assert sorted(cell.t2t_variables()) == ["biases", "kernel"]
    cell.biases.assign(_randn(16, seed=3))
    out, (new_c, new_h) = cell(x, (c, h))
    z = tf.nn.conv2d(tf.concat([x, h], -1), cell.kernel, 1, "SAME") + cell.biases
    i, g, f, o = np.split(z.numpy(), 4, axis=-1)
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))
    expected_c = sig(f + 1.0) * c.numpy() + sig(i) * np.tanh(g)
    np.testing.assert_allclose(new_c.numpy(), expected_c, atol=1e-5)
    np.testing.assert_allclose(new_h.numpy(), np.tanh(expected_c) * sig(o), atol=1e-5)
    np.testing.assert_array_equal(out.numpy(), new_h.numpy())
    # None state means zeros.
    zeros = tf.zeros_like(h)
    np.testing.assert_allclose(cell(x)[0].numpy(), cell(x, (zeros, zeros))[0].numpy())


def test_conv_lstm_prior_state_in_state_out():
    z0, z1 = _randn(2, 4, 4, 3, seed=1), _randn(2, 4, 4, 3, seed=2)
    mu0 = _randn(2, 4, 4, 3, seed=3)
    prior = conditional_prior("conv_lstm", "level", encoder_width=5)
    _, _, state1 = prior(z0, mu0)
    assert state1[1].shape == (2, 4, 4, 5)
    _, _, state2 = prior(z1, mu0, state=state1)
    assert np.abs(state2[1].numpy() - state1[1].numpy()).max() > 1e-3  # h moves on
    _perturb(prior, std=0.2)
    loc_a, _, _ = prior(z1, mu0, state=state1)
    loc_b, _, _ = prior(z1, mu0, state=None)
    assert np.abs(loc_a.numpy() - loc_b.numpy()).max() > 1e-4  # the state matters
    # Calling is pure: the same state in gives the same result.
    np.testing.assert_array_equal(prior(z1, mu0, state=state1)[0].numpy(), loc_a.numpy())


# -- T2T layout and numbers --------------------------------------------------------------

def _varlist():
    out = {}
    with open(os.path.join(FIXTURES, "varlist_affine_relu_16.txt")) as f:
        for line in f:
            name, shape = line.split(None, 1)
            dims = shape.strip().strip("()").split(",")
            out[name] = tuple(int(s) for s in dims if s.strip())
    return out


def _t2t_subset(varlist, prefix, exclude=None):
    return {k[len(prefix):]: v for k, v in varlist.items()
            if k.startswith(prefix) and not (exclude and exclude in k)}


def test_t2t_variable_names_match_varlist():
    """model_affine_relu_16: 16x16x3, 2 levels, conv3d_net, depth 1, width 8, N = 2."""
    varlist = _varlist()
    body = "next_frame_glow/body/"
    level = conditional_prior("conv3d_net", "level", encoder_depth=1, encoder_width=8)
    level([tf.zeros([2, 8, 8, 6])] * 2, tf.zeros([2, 8, 8, 6]))
    got = {k: tuple(v.shape) for k, v in level.t2t_variables().items()}
    assert got == _t2t_subset(varlist, body + "codec/split_0/prior_on_z2/",
                              exclude="level_prior")
    top = conditional_prior("conv3d_net", "top", encoder_depth=1, encoder_width=8)
    top([tf.zeros([2, 4, 4, 24])] * 2)
    got = {k: tuple(v.shape) for k, v in top.t2t_variables().items()}
    assert got == _t2t_subset(varlist, body + "top/")
    marginal = MarginalTopPrior()
    marginal(tf.zeros([2, 4, 4, 24]))
    got = {k: tuple(v.shape) for k, v in marginal.t2t_variables().items()}
    assert got == _t2t_subset(varlist, body + "unconditional/")
    # Keras tracks exactly the variables that map to T2T names (the 3-D actnorms'
    # stacks: one T2T name per time step).
    for layer in (level, top, marginal):
        assert_t2t_names_cover(layer.trainable_variables, layer.t2t_variables())


def test_matches_t2t_oracle_numbers():
    """Frame 2's conditional level/top priors and frame 0's marginal top prior."""
    data = np.load(os.path.join(FIXTURES, "model_affine_relu_16.npz"), allow_pickle=True)
    pre = "var_pert/next_frame_glow/body/"
    out = lambda t, k: tf.constant(data[f"out_pert/frame{t}/{k}"])

    def load(layer, scope):
        for name, var in layer.t2t_variables().items():
            var.assign(data[pre + scope + name])

    assert bool(data["out_pert/frame2/split_0/prior_on_z2/conditional"])
    level_prior = ZeroConv2D(12, 3)
    level_prior.build((2, 8, 8, 6))
    load(level_prior, "codec/split_0/prior_on_z2/level_prior/conv2d/")
    mu0 = level_prior(out(2, "split_0/x1"))[..., 0::2]
    latents = [out(0, "z_level0"), out(1, "z_level0")]
    level = conditional_prior("conv3d_net", "level", encoder_depth=1, encoder_width=8)
    level(latents, mu0)
    load(level, "codec/split_0/prior_on_z2/")
    loc, scale, _ = level(latents, mu0, training=True)
    np.testing.assert_allclose(loc.numpy(), out(2, "split_0/prior_on_z2/loc"), atol=1e-5)
    np.testing.assert_allclose(scale.numpy(), out(2, "split_0/prior_on_z2/scale"), atol=1e-5)

    assert bool(data["out_pert/frame2/top_prior/conditional"])
    latents = [out(0, "z_top"), out(1, "z_top")]
    top = conditional_prior("conv3d_net", "top", encoder_depth=1, encoder_width=8)
    top(latents)
    load(top, "top/")
    loc, scale, _ = top(latents, training=True)
    np.testing.assert_allclose(loc.numpy(), out(2, "top_prior/loc"), atol=1e-5)
    np.testing.assert_allclose(scale.numpy(), out(2, "top_prior/scale"), atol=1e-5)

    assert not bool(data["out_pert/frame0/top_prior/conditional"])
    marginal = MarginalTopPrior()
    marginal(latents[0])
    load(marginal, "unconditional/")
    loc, scale = marginal(latents[0])
    np.testing.assert_allclose(loc.numpy(), out(0, "top_prior/loc"), atol=1e-5)
    np.testing.assert_allclose(scale.numpy(), out(0, "top_prior/scale"), atol=1e-5)


# -- variables, gradients, compilation ------------------------------------------------------

def _expected_count(encoder, n, depth):
    """Trainable variables of the level priors built in the test below."""
    if encoder == "conv3d_net":  # gatu, 2 dilation branches (h = 8): 1_1, 1_tanh, 1_sigm
        per_stack = 3 * (1 + 2) + 3   # W + actnorm bias and log-scale stacked over n steps
        return depth * 2 * per_stack + 3
    if encoder == "conv_net":  # glow_resnet relu: 1_1, 1_2 (W + 2 actnorm) + zeros (3)
        return depth * (2 * 3 + 3) + 3
    if encoder == "conv_lstm":
        return 2 + 3
    return 2  # pointwise level: multiplier + log-scale


@pytest.mark.parametrize("encoder", ENCODERS)
def test_variable_count_and_gradients(encoder):
    latents = _latents(encoder)
    mu0, sigma0 = _randn(3, 8, 8, 4, seed=7), tf.exp(_randn(3, 8, 8, 4, seed=8))
    # pointwise: "prev_step" uses the latent log-scale; with the default "prev_level"
    # it is a trainable variable that (as in T2T) never gets a gradient, see below.
    prior = conditional_prior(encoder, "level", encoder_depth=2, encoder_width=4,
                                  activation="gatu", apply_dilations=True,
                                  level_scale="prev_step")
    prior(latents, mu0, sigma0, **_init(prior))
    assert len(prior.trainable_variables) == _expected_count(encoder, n=2, depth=2)
    _perturb(prior)
    weights = [_randn(3, 8, 8, 4, seed=20), _randn(3, 8, 8, 4, seed=21)]
    with tf.GradientTape() as tape:
        loc, scale, _ = prior(latents, mu0, sigma0, training=True)
        loss = tf.reduce_sum(loc * weights[0]) + tf.reduce_sum(scale * weights[1])
    grads = tape.gradient(loss, prior.trainable_variables)
    for var, grad in zip(prior.trainable_variables, grads):
        assert grad is not None, var.path
        assert np.abs(grad.numpy()).max() > 0.0, var.path


def test_pointwise_prev_level_leaves_latent_scale_unused():
    z, mu0, sigma0 = _randn(2, 4, 4, 3), _randn(2, 4, 4, 3, seed=1), tf.ones([2, 4, 4, 3])
    prior = conditional_prior("pointwise", "level")
    with tf.GradientTape() as tape:
        loc, scale, _ = prior(z, mu0, sigma0)
        loss = tf.reduce_sum(loc) + tf.reduce_sum(scale)
    grads = dict(zip([v.name for v in prior.trainable_variables],
                     tape.gradient(loss, prior.trainable_variables)))
    assert grads["latent_multiplier"] is not None
    assert grads["log_scale_latent"] is None


@pytest.mark.parametrize("encoder", ENCODERS)
def test_top_prior_gradients(encoder):
    latents = _latents(encoder)
    prior = conditional_prior(encoder, "top", learn_top_scale=True, encoder_depth=1,
                                encoder_width=4, apply_dilations=True)
    prior(latents, **_init(prior))
    _perturb(prior)
    with tf.GradientTape() as tape:
        loc, scale, _ = prior(latents)
        loss = tf.reduce_sum(loc * _randn(3, 8, 8, 4, seed=5)) + tf.reduce_sum(scale)
    grads = tape.gradient(loss, prior.trainable_variables)
    assert len(grads) > 0 and all(g is not None for g in grads)


@pytest.mark.parametrize("encoder", ["conv3d_net", "conv_net", "conv_lstm"])
def test_runs_under_tf_function_and_xla(encoder):
    latents = _latents(encoder)
    mu0 = _randn(3, 8, 8, 4, seed=7)
    prior = conditional_prior(encoder, "level", encoder_depth=1, encoder_width=4,
                                  activation="gatu", apply_dilations=True)  # h=8: d in {1,2}
    prior(latents, mu0, **_init(prior))
    _perturb(prior)
    eager = prior(latents, mu0)[:2]

    def step(lat, m):
        return prior(lat, m)[:2]

    for fn in (tf.function(step), tf.function(step, jit_compile=True)):
        for got, want in zip(fn(latents, mu0), eager):
            np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)


def test_latent_noise_only_in_training():
    latents = _latents("conv3d_net")
    prior = conditional_prior("conv3d_net", "top", latent_noise=0.5, **TINY)
    prior(latents, **_init(prior))
    _perturb(prior, std=0.2)
    a, b = prior(latents)[0].numpy(), prior(latents)[0].numpy()
    np.testing.assert_array_equal(a, b)
    c = prior(latents, training=True)[0].numpy()
    assert np.abs(c - a).max() > 1e-3


# -- argument checks and config ----------------------------------------------------------

def test_errors_list_allowed_names():
    with pytest.raises(ValueError, match="conv3d_net.*conv_net.*conv_lstm.*pointwise"):
        conditional_prior("transformer", "top")
    with pytest.raises(ValueError, match="single_conv.*glow_nn.*glow_resnet"):
        conditional_prior("conv_net", "level", architecture="mlp")
    with pytest.raises(ValueError, match="prev_level.*prev_step.*normal"):
        conditional_prior("pointwise", "level", level_scale="other")
    with pytest.raises(ValueError, match="single_conv.*glow_nn.*glow_resnet"):
        LatentToDist(architecture="mlp")
    with pytest.raises(ValueError, match="relu.*gatu"):
        TemporalLatentToDist(activation="swish")
    with pytest.raises(ValueError, match="previous latent only"):
        conditional_prior("pointwise", "top")(_latents("conv3d_net"))
    prior = conditional_prior("conv3d_net", "top", **TINY)
    prior(_latents("conv3d_net"))
    with pytest.raises(ValueError, match="built for 2"):
        prior(_latents("conv3d_net", n=3))
    with pytest.raises(ValueError, match="sigma0"):
        conditional_prior("pointwise", "level")(_latents("pointwise"), tf.zeros([3, 8, 8, 4]))


def test_get_config_round_trip():
    layers = [
        conditional_prior("conv_net", "top", learn_top_scale=True, latent_noise=0.1,
                            architecture="glow_nn", dilation_rates=(2,), **TINY),
        conditional_prior("pointwise", "level", level_scale="normal", latent_skip=False),
        TemporalLatentToDist(6, 2, 8, "gatu", 0.1, True, (1,)),
        LatentToDist(4, "glow_nn", 3, 8, 16, 0.2),
        ConvLSTMCell(4, 5, 0.5), MarginalTopPrior(), ScaleGaussianPrior(False),
    ]
    for layer in layers:
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


def test_encoder_table_passes_each_class_only_its_own_options():
    options = dict(encoder_depth=1, encoder_width=4, latent_noise=0.1, activation="gatu",
                   architecture="glow_nn", level_scale="normal", learn_top_scale=True,
                   coupling_dropout=0.2, latent_skip=False)
    owned = {"conv3d_net": {"encoder_depth", "activation", "latent_noise"},
             "conv_net": {"encoder_depth", "architecture", "coupling_dropout",
                          "latent_noise"},
             "conv_lstm": {"encoder_width", "latent_noise"},
             "pointwise": {"level_scale", "learn_top_scale"}}
    for name, cls in ENCODERS.items():
        prior = conditional_prior(name, "level", **options)
        assert type(prior) is cls and prior.role == "level" and not prior.latent_skip
        config = prior.get_config()
        assert owned[name] <= set(config), name
        foreign = set().union(*owned.values()) - owned[name] - {"encoder_width"}
        assert not foreign & set(config), (name, foreign & set(config))
    # How many past latents each needs; which step through time; which take init=.
    assert [ENCODERS[n].past_latents(3) for n in ENCODERS] == [3, 3, 1, 1]
    assert [ENCODERS[n].steps_through_time for n in ENCODERS] == [False, False, True, True]
    assert [ENCODERS[n].has_data_init for n in ENCODERS] == [True, True, False, False]
    lstm = conditional_prior("conv_lstm", "top", encoder_width=4)
    with pytest.raises(TypeError, match="init"):
        lstm(_latents("conv_lstm"), init=True)
    with pytest.raises(ValueError, match="role"):
        conditional_prior("conv_net", "middle")
