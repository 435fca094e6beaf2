"""The flow pieces as a TFP user would use them.

On every piece and on the whole `MultiScaleFlow`, the properties TFP's own test
utilities check (`bijector_test_util.assert_bijective_and_finite`, the brute-force
log-det checks of `glow_test`, the applicable properties of `bijector_properties_test`:
gradients, batch shape, dtypes, `tf.vectorized_map`, hashing/equality), written here,
plus the idioms a TFP user relies on: any number of leading batch dimensions (none
included), `tfd.TransformedDistribution` sampling and scoring, no stale cached results
after a variable update, twin instances kept apart, and an eager Adam fit that matches
the same fit under `tf.function` step for step.

TFP's own utility is run against the port by `scripts/tfp_bijector_checks.py` (it is not
shipped in the TFP wheel, so that script needs a TFP source checkout).
"""

import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from t2t_videoflow.flow import (Actnorm, AdditiveCoupling, AffineCoupling, FlowChain, FlowLevel,
                                FlowStep, InvertibleConv1x1, MultiScaleFlow, Squeeze)
from t2t_videoflow.layers.keras_tracking import reseed_random_kernels

tfb, tfd = tfp.bijectors, tfp.distributions

# name: (constructor, event shape of x, Jacobian constant in x, owns variables)
SUBJECTS = {
    "squeeze": (Squeeze, (4, 4, 2), True, False),
    "actnorm": (lambda: Actnorm(4), (4, 4, 4), True, True),
    "invertible_conv": (lambda: InvertibleConv1x1(4, seed=1), (4, 4, 4), True, True),
    "affine_coupling": (lambda: AffineCoupling(4, 8), (4, 4, 4), False, True),
    "additive_coupling": (lambda: AdditiveCoupling(4, 8), (4, 4, 4), False, True),
    "flow_step": (lambda: FlowStep(4, coupling_width=8, seed=1), (4, 4, 4), False, True),
    "flow_level": (lambda: FlowLevel(4, 2, coupling_width=8, seed=1), (4, 4, 4), False, True),
    "flow_chain": (lambda: FlowChain([Squeeze(), FlowStep(8, coupling_width=8, seed=1)]),
                   (4, 4, 2), False, True),
    "multiscale_flow": (lambda: MultiScaleFlow((8, 8, 2), 2, 1, coupling_width=8, seed=1),
                        (8, 8, 2), False, True),
}
NAMES = list(SUBJECTS)
STATEFUL = [n for n in NAMES if SUBJECTS[n][3]]


def frames(shape, seed, dtype=tf.float32):
    return tf.constant(np.random.default_rng(seed).normal(size=shape), dtype)


def perturb(bijector, seed):
    """Adds N(0, 0.05^2) to every trainable variable (zero-initialised layers do work)."""
    rng = np.random.default_rng(seed)
    for var in bijector.trainable_variables:
        var.assign_add(rng.normal(0.0, 0.05, var.shape).astype(np.float32))


def couplings(bijector):
    """The coupling layers inside a piece, a flow step or level, or the whole flow."""
    if isinstance(bijector, (AffineCoupling, AdditiveCoupling)):
        return [bijector]
    children = list(getattr(bijector, "sequence", ())) + list(getattr(bijector, "levels", ()))
    return [c for child in children for c in couplings(child)]


def reseed_coupling_networks(bijector, seed):
    """Redraws the networks' random initial kernels from `seed` (Keras draws them from
    its global RNG; seeding that here would change the randomness of later tests)."""
    reseed_random_kernels([c.net for c in couplings(bijector)], 500 + seed)


def build(name, seed=0):
    """A fresh, data-initialised, perturbed instance of subject `name`."""
    make, shape, _, _ = SUBJECTS[name]
    bijector = make()
    reseed_coupling_networks(bijector, seed)
    bijector.data_init(frames([4, *shape], 100 + seed))
    perturb(bijector, seed)
    return bijector


@functools.lru_cache(maxsize=None)
def shared(name):
    """One instance per subject for the tests that do not change variables."""
    return build(name)


def event(name):
    return SUBJECTS[name][1]


def y_ndims(bijector):
    return bijector.inverse_min_event_ndims


def codomain(bijector, name, batch, seed):
    """Points in the range: images of random inputs (shifted, not the test's x)."""
    return bijector.forward(frames([*batch, *event(name)], seed) * 0.9 + 0.1)


def batch_jacobian_log_det(fn, x):
    """ln |det d fn(x)[n] / d x[n]| per example n, from the full Jacobian (float64)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    jac = tape.batch_jacobian(y, x)
    size = int(np.prod(x.shape[1:]))
    jac = np.asarray(jac, np.float64).reshape(x.shape[0], size, size)
    sign, log_det = np.linalg.slogdet(jac)
    assert np.all(sign != 0)
    return log_det


def standard_normal_base(bijector, name):
    latent = bijector.forward_event_shape(event(name))
    return tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=latent.as_list())


# ------------------------------------------------- bijector_test_util / glow_test maths


@pytest.mark.parametrize("name", NAMES)
def test_bijective_and_finite(name):
    """assert_bijective_and_finite: both round trips, -ildj(f(x)) = fldj(x), finite."""
    b = shared(name)
    x = frames([3, *event(name)], 1).numpy()
    # A 3-sigma example: far from the init data, still within float32's reach (at
    # 10 sigma a two-step level's affine couplings can contract so hard that the
    # float32 inverse loses the input, for some weights).
    x[-1] *= 3.0
    x = tf.constant(x)
    y = codomain(b, name, [3], 2)
    f_x, g_y = b.forward(x), b.inverse(y)
    x_back, y_back = b.inverse(tf.identity(f_x)), b.forward(tf.identity(g_y))
    fldj_x = b.forward_log_det_jacobian(x, event_ndims=3)
    ildj_f_x = b.inverse_log_det_jacobian(tf.identity(f_x), event_ndims=y_ndims(b))
    ildj_y = b.inverse_log_det_jacobian(y, event_ndims=y_ndims(b))
    fldj_g_y = b.forward_log_det_jacobian(tf.identity(g_y), event_ndims=3)
    for t in (f_x, g_y, x_back, y_back, fldj_x, ildj_f_x, ildj_y, fldj_g_y):
        assert np.all(np.isfinite(t))
    np.testing.assert_allclose(x_back, x, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(y_back, y, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(-ildj_f_x, fldj_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(-ildj_y, fldj_g_y, rtol=1e-5, atol=1e-5)
    assert fldj_x.shape == (3,)


@pytest.mark.parametrize("name", NAMES)
def test_log_dets_match_brute_force_jacobians(name):
    """glow_test's check: slogdet of the full Jacobian, forward and inverse."""
    b = shared(name)
    x = frames([2, *event(name)], 3)
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=3),
                               batch_jacobian_log_det(b.forward, x), rtol=1e-5, atol=2e-5)
    y = codomain(b, name, [2], 4)
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y, event_ndims=y_ndims(b)),
                               batch_jacobian_log_det(b.inverse, tf.identity(y)),
                               rtol=1e-5, atol=2e-5)


# ------------------------------------------------------------------ batch dimensions


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)], ids=["no_batch", "one", "two"])
def test_any_number_of_batch_dims(name, batch):
    """Results equal the rank-4 computation on the flattened batch; log-det `batch`."""
    b = shared(name)
    shape = event(name)
    x = frames([*batch, *shape], 5)
    flat = tf.reshape(x, [-1, *shape])
    y, ldj = b.forward(x), b.forward_log_det_jacobian(x, event_ndims=3)
    y_flat = b.forward(flat)
    assert y.shape == (*batch, *y_flat.shape[1:])
    assert ldj.shape == batch
    np.testing.assert_allclose(tf.reshape(y, y_flat.shape), y_flat, atol=1e-6)
    np.testing.assert_allclose(tf.reshape(ldj, [-1]),
                               b.forward_log_det_jacobian(flat, event_ndims=3), atol=1e-5)
    x_back = b.inverse(tf.identity(y))
    assert x_back.shape == x.shape
    np.testing.assert_allclose(x_back, x, atol=2e-5)
    ildj = b.inverse_log_det_jacobian(tf.identity(y), event_ndims=y_ndims(b))
    np.testing.assert_allclose(ildj, -ldj, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_log_det_reduction_over_extra_event_dims(name):
    """TFP's definition: event_ndims above the minimum sums the per-event log-dets."""
    b = shared(name)
    x = frames([2, 3, *event(name)], 6)
    per_frame = b.forward_log_det_jacobian(x, event_ndims=3).numpy()
    assert per_frame.shape == (2, 3)
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=4),
                               per_frame.sum(-1), rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=5),
                               per_frame.sum(), rtol=1e-6, atol=1e-4)
    y = b.forward(tf.identity(x))
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y, event_ndims=y_ndims(b) + 1),
                               -per_frame.sum(-1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_event_shape_methods_with_batch_dims(name):
    b = shared(name)
    for batch in ([], [2], [2, 3]):
        x = frames([*batch, *event(name)], 7)
        y = b.forward(x)
        assert b.forward_event_shape(x.shape) == y.shape
        assert b.inverse_event_shape(y.shape) == x.shape
        assert b.forward_event_shape_tensor(tf.shape(x)).numpy().tolist() == y.shape.as_list()
        assert b.inverse_event_shape_tensor(tf.shape(y)).numpy().tolist() == x.shape.as_list()


@pytest.mark.parametrize("name", NAMES)
def test_batch_shape_dtypes_and_constant_jacobian(name):
    """bijector_properties_test: batch shape, dtypes; is_constant_jacobian where true."""
    b = shared(name)
    assert b.experimental_batch_shape() == []
    assert b.experimental_batch_shape(x_event_ndims=4) == []
    assert b.experimental_batch_shape_tensor().numpy().tolist() == []
    assert b.forward_dtype(tf.float32) == tf.float32 == b.inverse_dtype(tf.float32)
    constant = SUBJECTS[name][2]
    assert b.is_constant_jacobian is constant
    assert tfb.Invert(b).is_constant_jacobian is constant
    if constant:
        ldj = [b.forward_log_det_jacobian(frames([2, *event(name)], s), 3) for s in (8, 9)]
        np.testing.assert_allclose(ldj[0], ldj[1], rtol=1e-6)
    else:
        ldj = b.forward_log_det_jacobian(frames([2, *event(name)], 8), 3).numpy()
        assert abs(ldj[0] - ldj[1]) > 1e-6 or name == "additive_coupling"


def test_constant_jacobian_enables_transformed_mean():
    """TFP computes mean/mode of affine transforms as f(mean); our affine pieces qualify."""
    b = shared("actnorm")
    dist = tfd.TransformedDistribution(standard_normal_base(b, "actnorm"), tfb.Invert(b))
    np.testing.assert_allclose(dist.mean(), b.inverse(tf.zeros([4, 4, 4])), atol=1e-6)
    with pytest.raises(NotImplementedError):
        tfd.TransformedDistribution(standard_normal_base(shared("flow_step"), "flow_step"),
                                    tfb.Invert(shared("flow_step"))).mean()


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("name", ["squeeze", "actnorm", "invertible_conv", "flow_step"])
def test_dtype_is_preserved(name, dtype):
    b = shared(name)
    x = frames([2, *event(name)], 10, dtype)
    y = b.forward(x)
    assert y.dtype == dtype == b.forward_log_det_jacobian(x, 3).dtype
    assert b.forward_dtype(dtype) == dtype
    np.testing.assert_allclose(b.inverse(tf.identity(y)), x, atol=2e-5)


# ---------------------------------------------------------- TransformedDistribution


@pytest.mark.parametrize("name", NAMES)
def test_transformed_distribution_sample_and_log_prob(name):
    """glow_test's shapes: sample(), sample(1), sample([1, 1]); log_prob of 0-2 batch dims."""
    b = shared(name)
    shape = event(name)
    base = standard_normal_base(b, name)
    dist = tfd.TransformedDistribution(base, tfb.Invert(b))
    assert dist.event_shape == shape
    assert dist.sample(seed=1).shape == shape
    assert dist.sample(1, seed=1).shape == (1, *shape)
    assert dist.sample([1, 1], seed=1).shape == (1, 1, *shape)
    x = frames([2, 3, *shape], 11)
    log_prob = dist.log_prob(x)
    assert log_prob.shape == (2, 3)
    assert dist.log_prob(x[0]).shape == (3,)
    np.testing.assert_allclose(dist.log_prob(x[0]), log_prob[0], rtol=1e-6)
    assert dist.log_prob(x[1, 2]).shape == ()
    np.testing.assert_allclose(dist.log_prob(x[1, 2]), log_prob[1, 2], rtol=1e-6)
    # By hand, with the one-pass rank-4 path: ln p(z) + ln |det dz/dx|.
    flat = tf.reshape(x, [6, *shape])
    if isinstance(b, MultiScaleFlow):
        enc = b.encode(flat)
        z = tf.concat([tf.reshape(t, [6, -1]) for t in enc.latents + [enc.top]], -1)
        log_det = enc.log_det
    else:
        z, log_det = b.forward_and_log_det(flat)
    by_hand = base.log_prob(z) + log_det
    np.testing.assert_allclose(tf.reshape(log_prob, [6]), by_hand, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_vectorized_map(name):
    """bijector_properties_test's auto-vectorisation check (no while-loop fallback)."""
    b = shared(name)
    x = frames([3, *event(name)], 12)
    y = b.forward(tf.identity(x))

    @tf.function
    def vectorized(x, y):
        return (tf.vectorized_map(b.forward, x, fallback_to_while_loop=False),
                tf.vectorized_map(lambda v: b.forward_log_det_jacobian(v, 3), x,
                                  fallback_to_while_loop=False),
                tf.vectorized_map(b.inverse, y, fallback_to_while_loop=False))

    vec_y, vec_ldj, vec_x = vectorized(x, y)
    np.testing.assert_allclose(vec_y, y, atol=1e-5)
    np.testing.assert_allclose(vec_ldj, b.forward_log_det_jacobian(tf.identity(x), 3),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vec_x, x, atol=2e-5)


@pytest.mark.parametrize("name", STATEFUL)
def test_gradients_reach_input_and_every_variable(name):
    """forward, inverse and log_prob: a gradient for the input and each variable."""
    b = shared(name)
    variables = b.trainable_variables
    assert variables
    x = frames([2, *event(name)], 13)
    y = codomain(b, name, [2], 14)
    dist = tfd.TransformedDistribution(standard_normal_base(b, name), tfb.Invert(b))
    for label, fn, arg in (("forward", b.forward, x), ("inverse", b.inverse, y),
                           ("log_prob", dist.log_prob, x)):
        arg = tf.identity(arg)
        with tf.GradientTape() as tape:
            tape.watch(arg)
            out = fn(arg)
        grads = tape.gradient(out, [arg, *variables])
        missing = [v.name for v, g in zip([arg, *variables], grads) if g is None]
        assert not missing, f"{label}: no gradient for {missing}"


# ------------------------------------------------------------ caching and identity


@pytest.mark.parametrize("name", STATEFUL)
def test_no_stale_results_after_a_variable_update(name):
    """The same tensors, after `assign`: every method recomputes (TFP's cache is off)."""
    b = build(name)
    x = frames([2, *event(name)], 15)
    y = b.forward(x)  # held: TFP's cache would map y <-> x and keep both log-dets
    before = b.forward_log_det_jacobian(x, 3).numpy()
    b.inverse_log_det_jacobian(y, y_ndims(b))
    perturb(b, 7)
    want_y = b.forward(tf.identity(x))
    want_ldj = b.forward_log_det_jacobian(tf.identity(x), 3)
    np.testing.assert_allclose(b.forward(x), want_y, atol=1e-6)
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, 3), want_ldj, atol=1e-6)
    np.testing.assert_allclose(b.inverse(y), b.inverse(tf.identity(y)), atol=1e-6)
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y, y_ndims(b)),
                               b.inverse_log_det_jacobian(tf.identity(y), y_ndims(b)),
                               atol=1e-6)
    assert not np.allclose(b.forward(x), y, atol=1e-4)  # the update did change f
    if name not in ("additive_coupling",):
        assert not np.allclose(want_ldj, before, atol=1e-4)


@pytest.mark.parametrize("name", STATEFUL)
def test_twin_instances_are_kept_apart(name):
    """Equal constructor arguments, own variables: never equal, never share results."""
    b, twin = build(name, seed=0), build(name, seed=1)
    assert b == b and hash(b) == hash(b)
    assert b != twin and not b == twin
    x = frames([2, *event(name)], 16)
    want = twin.forward(tf.identity(x)).numpy()
    want_ldj = twin.forward_log_det_jacobian(tf.identity(x), 3).numpy()
    held = b.forward(x)  # noqa: F841  (TFP's shared cache would key twin's call on it)
    b.forward_log_det_jacobian(x, 3)
    np.testing.assert_allclose(twin.forward(x), want, atol=1e-6)
    np.testing.assert_allclose(twin.forward_log_det_jacobian(x, 3), want_ldj, atol=1e-6)
    # tf.function's trace cache keys on the argument's equality/hash too.
    traced = tf.function(lambda bijector, v: bijector.forward(v))
    assert not np.allclose(traced(b, x), want, atol=1e-4)
    np.testing.assert_allclose(traced(twin, x), want, atol=1e-5)


def test_stateless_squeeze_keeps_tfp_equality_and_cache():
    a, b = Squeeze(), Squeeze()
    assert a == b and hash(a) == hash(b)
    x = frames([2, 4, 4, 2], 17)
    y = a.forward(x)
    assert b.inverse(y) is x  # TFP's cache: correct for a function without state


def _fit(name, values, compiled, steps=4):
    """Adam on -mean ln p(data) of TransformedDistribution(N(0, I), Invert(bijector)).

    Returns `(reported losses, true NLL before each step)`; the true NLL is computed
    from fresh tensors and a fresh distribution, so no cache can serve it.
    """
    b = build(name)
    for var, value in zip(b.variables, values):
        var.assign(value)
    base = standard_normal_base(b, name)
    dist = tfd.TransformedDistribution(base, tfb.Invert(b))
    data = frames([8, *event(name)], 18) * 0.5 + 0.3
    variables = b.trainable_variables
    opt = tf.keras.optimizers.Adam(0.05)
    opt.build(variables)

    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(data))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step = tf.function(step) if compiled else step
    reported, true = [], []
    for _ in range(steps):
        fresh = tfd.TransformedDistribution(base, tfb.Invert(b))
        true.append(float(-tf.reduce_mean(fresh.log_prob(tf.identity(data) + 0.0))))
        reported.append(float(step()))
    return np.array(reported), np.array(true)


@pytest.mark.parametrize("name", ["flow_step", "multiscale_flow"])
def test_eager_fit_matches_tf_function_fit(name):
    """An eager Adam loop on a fixed data tensor optimises the true NLL."""
    values = [v.numpy() for v in build(name).variables]
    eager, eager_true = _fit(name, values, compiled=False)
    graph, graph_true = _fit(name, values, compiled=True)
    np.testing.assert_allclose(eager, eager_true, rtol=1e-5)  # reports what it optimises
    np.testing.assert_allclose(graph, graph_true, rtol=1e-5)
    np.testing.assert_allclose(eager, graph, rtol=1e-5)
    assert eager[-1] < eager[0]


# --------------------------------------------------------- MultiScaleFlow as bijector


def test_multiscale_flow_bijector_is_encode_and_decode():
    flow = shared("multiscale_flow")
    x = frames([3, 8, 8, 2], 19)
    enc = flow.encode(x)
    z = flow.forward(x)
    assert z.shape == (3, 128) and flow.latent_size() == 128
    # Latents in level order, then the top, each flattened per example.
    levels, top = flow.latent_shapes()
    sizes = [int(np.prod(s)) for s in levels + [top]]
    for part, want in zip(tf.split(z, sizes, axis=-1), enc.latents + [enc.top]):
        np.testing.assert_array_equal(part, tf.reshape(want, [3, -1]))
    np.testing.assert_allclose(flow.forward_log_det_jacobian(x, 3), enc.log_det, rtol=1e-6)
    frames_back, _, inverse_log_det = flow.decode(enc.top, enc.latents)
    np.testing.assert_allclose(flow.inverse(tf.identity(z)), frames_back, atol=1e-6)
    np.testing.assert_allclose(flow.inverse_log_det_jacobian(tf.identity(z), 1),
                               inverse_log_det, rtol=1e-6)
    assert flow.forward_min_event_ndims == 3 and flow.inverse_min_event_ndims == 1
    assert isinstance(flow, tfb.Bijector)


def test_shape_errors_are_clear():
    flow = shared("multiscale_flow")
    with pytest.raises(ValueError, match=r"frames must have shape \[\.\.\., 8, 8, 2\]"):
        flow.forward_event_shape([4, 8, 3])
    with pytest.raises(ValueError, match=r"z must have shape \[\.\.\., 128\]"):
        flow.inverse(tf.zeros([2, 100]))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        shared("actnorm").forward(tf.zeros([4, 4]))
    with pytest.raises(ValueError, match="static rank"):
        tf.function(shared("actnorm").forward).get_concrete_function(
            tf.TensorSpec(None, tf.float32))
    with pytest.raises(ValueError, match="4 channels"):
        shared("actnorm").forward(tf.zeros([2, 4, 4, 3]))


def test_chain_and_invert_compose():
    """tfb.Chain over pieces = the hand-written composition; Invert swaps directions."""
    squeeze, step = Squeeze(), shared("flow_step")
    pieces = [step, squeeze]  # Chain applies right to left: squeeze, then the step
    chain = tfb.Chain(pieces)
    x = frames([2, 8, 8, 1], 20)
    y, ldj = step.forward_and_log_det(squeeze.forward(x))
    np.testing.assert_allclose(chain.forward(x), y, atol=1e-6)
    np.testing.assert_allclose(chain.forward_log_det_jacobian(x, 3), ldj, rtol=1e-6)
    np.testing.assert_allclose(tfb.Invert(chain).forward(tf.identity(y)), x, atol=2e-5)
    assert chain.forward_event_shape([8, 8, 1]) == [4, 4, 4]


def test_flow_chain_recomputes_where_tfb_chain_serves_its_cache():
    """README's caveat: tfb.Chain caches its own forward/inverse; FlowChain does not."""
    step = build("flow_step")
    ours, theirs = FlowChain([Squeeze(), step]), tfb.Chain([step, Squeeze()])
    x = frames([2, 8, 8, 1], 21)
    y_ours, y_theirs = ours.forward(x), theirs.forward(x)
    np.testing.assert_allclose(y_ours, y_theirs, atol=1e-6)
    perturb(step, 8)
    want = ours.forward(tf.identity(x))
    np.testing.assert_allclose(ours.forward(x), want, atol=1e-6)
    assert theirs.forward(x) is y_theirs  # TFP's composition cache: stale while y lives
    assert theirs.inverse(y_theirs) is x
    np.testing.assert_allclose(ours.inverse(y_ours), ours.inverse(tf.identity(y_ours)),
                               atol=1e-6)
    with pytest.raises(ValueError, match="non-empty list of flow pieces"):
        FlowChain([tfb.Exp()])
