"""Runs TFP's own bijector test utility and TFP's documented idioms against the flow.

Outside the test suite: the installed `tensorflow_probability` wheel does not
ship `bijectors/bijector_test_util.py`, so this script loads it from a TFP source
checkout given on the command line, and applies, to every flow piece and to the whole
multi-scale flow, the checks of

  * `bijector_test_util.assert_bijective_and_finite` (round trips and
    `-ildj(f(x)) == fldj(x)`, all finite), and `bijector_test_util.get_fldj_theoretical`
    (log-det from a brute-force `batch_jacobian`, as TFP's `glow_test` does for the
    inverse), in both directions;
  * the properties of TFP's `bijector_properties_test` that apply to bijectors with
    internally created variables: gradients reach the input and every trainable
    variable, `experimental_batch_shape`, `tf.vectorized_map` (graph mode, no
    while-loop fallback), hash/equality consistency;
  * the shape idioms of TFP's `glow_test` (`sample()`, `sample(1)`, `sample([1, 1])`,
    inputs with no, one and two batch dimensions) through `tfd.TransformedDistribution`;
  * TFP's usage idioms (as in `tests/test_tfp_idioms.py`): no stale cached values after
    a variable update, twin instances kept apart (TFP cache and `tf.function` trace
    cache), an eager Adam fit that agrees with the same fit under `tf.function`, the
    log-det reduction for `event_ndims` above the minimum, event-shape methods with
    leading batch dims, `is_constant_jacobian` where the Jacobian is constant, XLA and
    checkpoints.

Each check prints PASS, FAIL (with the first line of the error) or n/a.

    python scripts/tfp_bijector_checks.py /path/to/tfp/checkout [--json out.json]

The path may be a checkout root, its `tensorflow_probability` package directory, the
`bijectors` directory, or the `bijector_test_util.py` file itself. scipy (needed by
TFP's `internal/test_util`, which `bijector_test_util` imports only for
`assert_scalar_congruency`) is replaced by a stand-in module when it is not installed;
the functions used here do not touch it.
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import traceback
import types

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from t2t_videoflow import flow as flowlib

tfb, tfd = tfp.bijectors, tfp.distributions
UTIL = "bijector_test_util.py"


def find_test_util(path):
    """The path of `bijector_test_util.py` under `path` (see module docstring)."""
    candidates = [path,
                  os.path.join(path, UTIL),
                  os.path.join(path, "bijectors", UTIL),
                  os.path.join(path, "python", "bijectors", UTIL),
                  os.path.join(path, "tensorflow_probability", "python", "bijectors", UTIL)]
    for candidate in candidates:
        if os.path.isfile(candidate) and candidate.endswith(UTIL):
            return candidate
    raise SystemExit(f"No {UTIL} under {path!r}. The installed TFP wheel does not ship "
                     "it; pass a TFP source checkout (github.com/tensorflow/probability).")


def load_test_util(path):
    """Imports TFP's `bijector_test_util` from `path`, against the installed TFP."""
    try:
        import scipy  # noqa: F401  (TFP's internal test_util imports it)
    except ImportError:
        stub = types.ModuleType("tensorflow_probability.python.internal.test_util")

        def test_seed_stream(*args, **kwargs):
            raise RuntimeError("scipy-free stand-in: seeds are not available")

        stub.test_seed_stream = test_seed_stream
        sys.modules[stub.__name__] = stub
    spec = importlib.util.spec_from_file_location("tfp_bijector_test_util", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- subjects


def _perturb(bijector, seed):
    """Adds N(0, 0.05^2) to every float variable (zero-initialised layers do work)."""
    rng = np.random.default_rng(seed)
    for var in bijector.trainable_variables:
        var.assign_add(rng.normal(0.0, 0.05, var.shape).astype(var.dtype.as_numpy_dtype))


def _frames(shape, seed):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _init(bijector, event_shape, seed=0):
    """Data-dependent init on a random batch, then a perturbation of every variable."""
    x = _frames([4, *event_shape], 100 + seed)
    bijector.data_init(x)
    _perturb(bijector, seed)
    return bijector


SUBJECTS = {
    # name: (constructor, x event shape, the Jacobian is constant in x)
    "Squeeze": (lambda: flowlib.Squeeze(), (8, 8, 2), True),
    "Actnorm": (lambda: flowlib.Actnorm(4), (4, 4, 4), True),
    "InvertibleConv1x1": (lambda: flowlib.InvertibleConv1x1(4, seed=1), (4, 4, 4), True),
    "AffineCoupling": (lambda: flowlib.AffineCoupling(4, 8), (4, 4, 4), False),
    "AdditiveCoupling": (lambda: flowlib.AdditiveCoupling(4, 8), (4, 4, 4), False),
    "FlowStep": (lambda: flowlib.FlowStep(4, coupling_width=8, seed=1), (4, 4, 4), False),
    "FlowLevel": (lambda: flowlib.FlowLevel(4, 2, coupling_width=8, seed=1), (4, 4, 4),
                  False),
    "FlowChain": (lambda: flowlib.FlowChain([flowlib.Squeeze(),
                                             flowlib.FlowStep(8, coupling_width=8, seed=1)]),
                  (4, 4, 2), False),
    "MultiScaleFlow": (lambda: flowlib.MultiScaleFlow((8, 8, 2), 2, 1, coupling_width=8,
                                                      seed=1), (8, 8, 2), False),
}


def make(name, seed=0):
    build, shape, _ = SUBJECTS[name]
    keras.utils.set_random_seed(1000 + seed)  # the coupling networks' initial weights
    return _init(build(), shape, seed)


def _is_bijector(b):
    if not isinstance(b, tfb.Bijector):
        raise AssertionError(f"{type(b).__name__} is not a tfb.Bijector")


def _y_ndims(b):
    return b.inverse_min_event_ndims


def _y_of(b, x):
    """A codomain point: the forward image of a different random input."""
    return b.forward(tf.identity(x) * 0.9 + 0.1)


# ---------------------------------------------------------------------------- checks


def check_bijective_and_finite(util, name):
    b = make(name)
    _is_bijector(b)
    shape = SUBJECTS[name][1]
    x = _frames([3, *shape], 1).numpy()
    # Far from the data too: a 3-sigma row (at 10 sigma, as TFP's glow_test uses for
    # its latents, a two-step level's float32 inverse can lose the input).
    x[-1] *= 3.0
    y = _y_of(b, _frames([3, *shape], 2)).numpy()
    util.assert_bijective_and_finite(
        b, x, y, event_ndims=3, inverse_event_ndims=_y_ndims(b),
        eval_func=lambda ts: [np.asarray(t) for t in ts], atol=1e-4, rtol=1e-4)


def _theoretical(util, b, x, event_ndims, inverse_event_ndims):
    return np.asarray(util.get_fldj_theoretical(
        b, x, event_ndims=event_ndims, inverse_event_ndims=inverse_event_ndims))


def check_fldj_vs_jacobian(util, name):
    b = make(name)
    _is_bijector(b)
    x = _frames([2, *SUBJECTS[name][1]], 3)
    expected = _theoretical(util, b, x, 3, _y_ndims(b))
    actual = np.asarray(b.forward_log_det_jacobian(x, event_ndims=3))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-3)


def check_ildj_vs_jacobian(util, name):
    b = make(name)
    _is_bijector(b)
    y = _y_of(b, _frames([2, *SUBJECTS[name][1]], 4))
    expected = _theoretical(util, tfb.Invert(b), y, _y_ndims(b), 3)
    actual = np.asarray(b.inverse_log_det_jacobian(y, event_ndims=_y_ndims(b)))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-3)


def check_ldj_event_ndims(util, name):
    """fldj with event_ndims = min + 1 sums the minimal-event log-dets over that axis."""
    b = make(name)
    _is_bijector(b)
    x = _frames([2, 3, *SUBJECTS[name][1]], 5)
    per_frame = np.asarray(b.forward_log_det_jacobian(x, event_ndims=3))
    summed = np.asarray(b.forward_log_det_jacobian(x, event_ndims=4))
    assert per_frame.shape == (2, 3), per_frame.shape
    np.testing.assert_allclose(summed, per_frame.sum(-1), rtol=1e-5, atol=1e-4)


def check_no_batch(util, name):
    b = make(name)
    _is_bijector(b)
    x = _frames([1, *SUBJECTS[name][1]], 6)
    y = b.forward(x[0])
    np.testing.assert_allclose(y, b.forward(tf.identity(x))[0], atol=1e-6)
    assert b.forward_log_det_jacobian(x[0], event_ndims=3).shape == ()
    np.testing.assert_allclose(b.inverse(tf.identity(y)), x[0], atol=1e-4)
    assert b.inverse_log_det_jacobian(tf.identity(y), event_ndims=_y_ndims(b)).shape == ()


def check_two_batch_dims(util, name):
    b = make(name)
    _is_bijector(b)
    shape = SUBJECTS[name][1]
    x = _frames([2, 3, *shape], 7)
    y = b.forward(x)
    flat = b.forward(tf.reshape(x, [6, *shape]))
    np.testing.assert_allclose(tf.reshape(y, flat.shape), flat, atol=1e-6)
    assert b.forward_log_det_jacobian(x, event_ndims=3).shape == (2, 3)
    np.testing.assert_allclose(b.inverse(tf.identity(y)), x, atol=1e-4)
    assert b.inverse_log_det_jacobian(tf.identity(y), event_ndims=_y_ndims(b)).shape == (2, 3)


def check_event_shape(util, name):
    b = make(name)
    _is_bijector(b)
    shape = SUBJECTS[name][1]
    for batch in ([], [2], [2, 3]):
        x = _frames([*batch, *shape], 8)
        y = b.forward(x)
        assert b.forward_event_shape(x.shape) == y.shape, (b.forward_event_shape(x.shape), y.shape)
        assert b.inverse_event_shape(y.shape) == x.shape
        assert list(b.forward_event_shape_tensor(tf.shape(x)).numpy()) == y.shape.as_list()
        assert list(b.inverse_event_shape_tensor(tf.shape(y)).numpy()) == x.shape.as_list()


def check_batch_shape(util, name):
    b = make(name)
    _is_bijector(b)
    assert b.experimental_batch_shape() == [], b.experimental_batch_shape()
    assert list(b.experimental_batch_shape_tensor().numpy()) == []


def check_constant_jacobian(util, name):
    b = make(name)
    _is_bijector(b)
    expected = SUBJECTS[name][2]
    assert b.is_constant_jacobian == expected, \
        f"is_constant_jacobian={b.is_constant_jacobian}, Jacobian constant: {expected}"
    if expected:
        shape = SUBJECTS[name][1]
        l1 = b.forward_log_det_jacobian(_frames([2, *shape], 9), event_ndims=3)
        l2 = b.forward_log_det_jacobian(_frames([2, *shape], 10), event_ndims=3)
        np.testing.assert_allclose(l1, l2, rtol=1e-6)


def _base(b, shape):
    """A standard-normal base on the latent event `b.forward_event_shape(shape)`."""
    event = b.forward_event_shape(shape)
    return tfd.Sample(tfd.Normal(0.0, 1.0), sample_shape=event.as_list())


def check_transformed_distribution(util, name):
    b = make(name)
    _is_bijector(b)
    shape = SUBJECTS[name][1]
    dist = tfd.TransformedDistribution(_base(b, shape), tfb.Invert(b))
    assert dist.event_shape == shape, dist.event_shape
    assert dist.sample(seed=1).shape == shape
    assert dist.sample(1, seed=1).shape == (1, *shape)
    assert dist.sample([1, 1], seed=1).shape == (1, 1, *shape)
    x = _frames([2, 3, *shape], 11)
    lp = dist.log_prob(x)
    assert lp.shape == (2, 3), lp.shape
    assert dist.log_prob(x[0, 0]).shape == ()
    np.testing.assert_allclose(dist.log_prob(x[0, 0]), lp[0, 0], rtol=1e-5)
    # By hand: base log-prob of the latent plus the forward log-det.
    z = b.forward(tf.identity(x))
    by_hand = (_base(b, shape).log_prob(z) + b.forward_log_det_jacobian(tf.identity(x), 3))
    np.testing.assert_allclose(lp, by_hand, rtol=1e-5)


def check_vectorized_map(util, name):
    b = make(name)
    _is_bijector(b)
    x = _frames([3, *SUBJECTS[name][1]], 12)
    y = b.forward(tf.identity(x))

    @tf.function
    def vectorized(x, y):
        return (tf.vectorized_map(b.forward, x, fallback_to_while_loop=False),
                tf.vectorized_map(lambda v: b.forward_log_det_jacobian(v, 3), x,
                                  fallback_to_while_loop=False),
                tf.vectorized_map(b.inverse, y, fallback_to_while_loop=False))

    vy, vl, vx = vectorized(x, y)
    np.testing.assert_allclose(vy, y, atol=1e-5)
    np.testing.assert_allclose(vl, b.forward_log_det_jacobian(tf.identity(x), 3), rtol=1e-5)
    np.testing.assert_allclose(vx, x, atol=1e-4)


def check_gradients(util, name):
    b = make(name)
    _is_bijector(b)
    variables = [v for v in b.trainable_variables if v.dtype.is_floating]
    assert variables or not SUBJECTS_HAVE_VARS[name], "no trainable variables found"
    x = _frames([2, *SUBJECTS[name][1]], 13)
    y = _y_of(b, x)
    for method, arg in (("forward", x), ("inverse", y)):
        arg = tf.identity(arg)
        with tf.GradientTape() as tape:
            tape.watch(arg)
            out = getattr(b, method)(arg + 0)
        grads = tape.gradient(out, [arg] + variables)
        missing = [v.name for v, g in zip([arg] + variables, grads) if g is None]
        assert not missing, f"{method}: no gradient for {missing}"


SUBJECTS_HAVE_VARS = {name: name != "Squeeze" for name in SUBJECTS}


def check_hash_eq(util, name):
    b, twin = make(name), make(name)
    _is_bijector(b)
    assert b == b and hash(b) == hash(b)
    if SUBJECTS_HAVE_VARS[name]:
        assert b != twin, "two instances with distinct variables compare equal"
    else:
        assert b == twin and hash(b) == hash(twin), "stateless twins should be equal"


def check_twin_instances(util, name):
    """Twins with different variable values: each gets its own results."""
    if not SUBJECTS_HAVE_VARS[name]:
        return "n/a"
    b, twin = make(name, seed=0), make(name, seed=1)
    _is_bijector(b)
    x = _frames([2, *SUBJECTS[name][1]], 14)
    fresh = twin.forward(tf.identity(x)).numpy()
    fresh_ldj = twin.forward_log_det_jacobian(tf.identity(x), 3).numpy()
    kept = b.forward(x)  # noqa: F841  (held, so TFP's cache keeps the entry)
    b.forward_log_det_jacobian(x, 3)
    np.testing.assert_allclose(twin.forward(x), fresh, atol=1e-6)
    np.testing.assert_allclose(twin.forward_log_det_jacobian(x, 3), fresh_ldj, atol=1e-5)
    traced = tf.function(lambda bij, v: bij.forward(v))
    traced(b, x)
    np.testing.assert_allclose(traced(twin, x), fresh, atol=1e-5)


def check_fresh_after_update(util, name):
    """After `assign`, forward / inverse / log-dets of the same tensors are recomputed."""
    if not SUBJECTS_HAVE_VARS[name]:
        return "n/a"
    b = make(name)
    _is_bijector(b)
    x = _frames([2, *SUBJECTS[name][1]], 15)
    y = b.forward(x)
    ldj = b.forward_log_det_jacobian(x, 3)  # noqa: F841
    ildj = b.inverse_log_det_jacobian(y, _y_ndims(b))  # noqa: F841
    _perturb(b, 7)
    want_y = b.forward(tf.identity(x)).numpy()
    want_ldj = b.forward_log_det_jacobian(tf.identity(x), 3).numpy()
    want_x = b.inverse(tf.identity(y)).numpy()
    want_ildj = b.inverse_log_det_jacobian(tf.identity(y), _y_ndims(b)).numpy()
    np.testing.assert_allclose(b.forward(x), want_y, atol=1e-6)
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, 3), want_ldj, atol=1e-5)
    np.testing.assert_allclose(b.inverse(y), want_x, atol=1e-6)
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y, _y_ndims(b)), want_ildj,
                               atol=1e-5)


def _fit(name, values, compiled, steps=5):
    """Adam on -mean log p(data) of TransformedDistribution(N(0, I), Invert(b)).

    Returns the losses the loop reported and the true NLL after the last step.
    """
    b = make(name)
    for var, value in zip(b.variables, values):
        var.assign(value)
    shape = SUBJECTS[name][1]
    dist = tfd.TransformedDistribution(_base(b, shape), tfb.Invert(b))
    data = _frames([8, *shape], 16) * 0.5 + 0.3
    variables = b.trainable_variables
    opt = tf.keras.optimizers.Adam(0.02)
    opt.build(variables)

    def step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(dist.log_prob(data))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step = tf.function(step) if compiled else step
    reported = [float(step()) for _ in range(steps)]
    # The true NLL with the final variables, from fresh tensors and a fresh distribution.
    fresh = tfd.TransformedDistribution(_base(b, shape), tfb.Invert(b))
    true = float(-tf.reduce_mean(fresh.log_prob(tf.identity(data) + 0)))
    return reported, true


def check_eager_vs_function_fit(util, name):
    if not SUBJECTS_HAVE_VARS[name]:
        return "n/a"
    template = make(name)
    _is_bijector(template)
    values = [v.numpy() for v in template.variables]  # the same start for both loops
    eager, eager_true = _fit(name, values, compiled=False)
    graph, graph_true = _fit(name, values, compiled=True)
    np.testing.assert_allclose(eager, graph, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(eager_true, graph_true, rtol=1e-4, atol=1e-4)


def check_xla(util, name):
    b = make(name)
    _is_bijector(b)
    x = _frames([2, *SUBJECTS[name][1]], 17)
    f = tf.function(lambda v: (b.forward(v), b.forward_log_det_jacobian(v, 3)),
                    jit_compile=True)
    y, ldj = f(x)
    np.testing.assert_allclose(y, b.forward(tf.identity(x)), atol=1e-5)
    np.testing.assert_allclose(ldj, b.forward_log_det_jacobian(tf.identity(x), 3), rtol=1e-5,
                               atol=1e-4)


def check_checkpoint(util, name):
    if not SUBJECTS_HAVE_VARS[name]:
        return "n/a"
    b, other = make(name, seed=0), make(name, seed=1)
    _is_bijector(b)
    x = _frames([2, *SUBJECTS[name][1]], 18)
    with tempfile.TemporaryDirectory() as d:
        path = tf.train.Checkpoint(b=b).save(os.path.join(d, "ckpt"))
        tf.train.Checkpoint(b=other).restore(path).assert_consumed()
    np.testing.assert_allclose(other.forward(tf.identity(x)), b.forward(tf.identity(x)),
                               atol=1e-6)


CHECKS = [
    ("bijective_and_finite", check_bijective_and_finite),
    ("fldj_vs_jacobian", check_fldj_vs_jacobian),
    ("ildj_vs_jacobian", check_ildj_vs_jacobian),
    ("ldj_event_ndims", check_ldj_event_ndims),
    ("no_batch", check_no_batch),
    ("two_batch_dims", check_two_batch_dims),
    ("event_shape", check_event_shape),
    ("batch_shape", check_batch_shape),
    ("constant_jacobian", check_constant_jacobian),
    ("transformed_dist", check_transformed_distribution),
    ("vectorized_map", check_vectorized_map),
    ("gradients", check_gradients),
    ("hash_eq", check_hash_eq),
    ("twin_instances", check_twin_instances),
    ("fresh_after_update", check_fresh_after_update),
    ("eager_vs_function_fit", check_eager_vs_function_fit),
    ("xla", check_xla),
    ("checkpoint", check_checkpoint),
]


def run(util, names, checks, verbose=False):
    results = {}
    for name in names:
        results[name] = {}
        for label, check in checks:
            try:
                outcome = check(util, name) or "PASS"
            except Exception as e:  # noqa: BLE001  (a table of outcomes)
                first = (str(e).strip().splitlines() or [""])[0][:160]
                outcome = f"FAIL: {type(e).__name__}: {first}"
                if verbose:
                    traceback.print_exc()
            results[name][label] = outcome
            print(f"{name:18s} {label:22s} {outcome}", flush=True)
    return results


def markdown(results, checks):
    labels = [label for label, _ in checks]
    lines = ["| bijector | " + " | ".join(labels) + " |",
             "|---|" + "---|" * len(labels)]
    for name, row in results.items():
        cells = ["PASS" if row[l] == "PASS" else "n/a" if row[l] == "n/a" else "FAIL"
                 for l in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tfp_source", help="TFP checkout, package dir, or bijector_test_util.py")
    parser.add_argument("--bijectors", default=",".join(SUBJECTS))
    parser.add_argument("--checks", default=",".join(label for label, _ in CHECKS))
    parser.add_argument("--json", help="write the outcomes here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    util = load_test_util(find_test_util(args.tfp_source))
    wanted = set(args.checks.split(","))
    checks = [(label, fn) for label, fn in CHECKS if label in wanted]
    results = run(util, args.bijectors.split(","), checks, args.verbose)
    print(markdown(results, checks))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    failed = sum(v.startswith("FAIL") for row in results.values() for v in row.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
