"""Helpers shared by the flow tests: oracle loading, perturbation, brute-force Jacobians."""

import collections
import os

import numpy as np
import tensorflow as tf

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def load_oracle(name):
    """The T2T oracle file `tests/fixtures/<name>.npz` as a dict of numpy arrays."""
    with np.load(os.path.join(FIXTURES, name + ".npz"), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assign_t2t(variables, oracle, prefix):
    """Assigns `oracle[prefix + name]` to every `variables[name]`; names must match."""
    stored = {k[len(prefix):] for k in oracle if k.startswith(prefix)}
    assert stored == set(variables), sorted(stored ^ set(variables))
    for name, var in variables.items():
        var.assign(oracle[prefix + name])


def perturb(variables, stddev=0.05, seed=0):
    """Adds N(0, stddev^2) to each variable so zero-initialised layers are non-trivial."""
    rng = np.random.default_rng(seed)
    for var in variables:
        if var.dtype.is_floating:
            var.assign_add(rng.normal(0.0, stddev, var.shape).astype(np.float32))


def brute_force_log_det(fn, x):
    """ln |det J| of `fn` at the single example `x` ([1, ...]), from the full Jacobian.

    `fn` maps `[1, ...]` to a tensor or a list of tensors with as many elements in
    total as `x`; outputs are flattened and concatenated.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out = fn(x)
        if isinstance(out, (list, tuple)):
            out = tf.concat([tf.reshape(o, [-1]) for o in out], axis=0)
        out = tf.reshape(out, [-1])
    jac = tape.jacobian(out, x, experimental_use_pfor=False)
    n = int(np.prod(x.shape))
    jac = np.asarray(jac, np.float64).reshape(out.shape[0], n)
    assert jac.shape == (n, n), jac.shape
    sign, log_det = np.linalg.slogdet(jac)
    assert sign != 0
    return log_det


def brute_force_flow_log_det(flow, x):
    """`brute_force_log_det` of a `MultiScaleFlow`'s encoding (every level latent and the
    top) at frames `x` `[1, H, W, C]`."""
    def to_latents(frames):
        enc = flow.encode(frames)
        return [*enc.latents, enc.top]

    return brute_force_log_det(to_latents, x)


def assert_t2t_names_cover(variables, targets):
    """Each of `variables` is named exactly once by `targets` (`t2t_variables()`): as a
    whole, or, when stacked, every entry of its stacking axis by its own T2T name."""
    from t2t_videoflow.layers.stacked_slice import StackedSlice
    from t2t_videoflow.layers.variable_binding import variable_key

    named = collections.Counter()
    stack_sizes = {}
    for target in targets.values():
        if isinstance(target, StackedSlice):
            key = variable_key(target.variable)
            named[(key, target.index)] += 1
            stack_sizes[key] = int(target.variable.shape[target.axis])
        else:
            named[(variable_key(target), None)] += 1
    expected = collections.Counter()
    for variable in variables:
        key = variable_key(variable)
        if key in stack_sizes:
            expected.update((key, t) for t in range(stack_sizes[key]))
        else:
            expected[(key, None)] += 1
    assert named == expected, (named - expected, expected - named)
