"""Keras 3 layers inside `tf.Module`s: every weight tracked once, seeded initial values.

A Keras 3 layer held as an attribute of a `tf.Module` is invisible to the module's
`variables` / `trainable_variables` (the count is silently 0: `tf.Module` does not
walk into Keras 3 layers), yet `tf.train.Checkpoint` and SavedModel do follow it,
saving each weight through its Keras wrapper. Keeping the
weights' `tf.Variable`s in a list next to the layer makes them visible but stores every
weight twice, and the optimizer's slots attach to the `tf.Variable`, not the wrapper.

The bridge used everywhere in this package: the layer is held `untracked` (no
checkpoint dependency) and its `tf.Variable`s are tracked in a dict keyed by the
weights' Keras paths, so

  * `module.variables` / `trainable_variables` list every weight once,
  * checkpoints and SavedModels store every weight once (under that dict), with the
    optimizer slots next to it, and restoring writes straight into the variables the
    Keras layers compute with.
"""

import contextlib
import threading

import keras
from tensorflow.python.trackable import data_structures

# Derived seeds: base * SEED_STRIDE + index, so runs with seeds s and s + 1 share none.
SEED_STRIDE = 100_003


def untracked(value):
    """`value` (a layer or a list of layers) assigned to a `tf.Module` attribute without
    a checkpoint dependency: `self.net = untracked(layer)`."""
    return data_structures.NoDependency(value)


def keras_variables(layers_by_name):
    """`{name/weight_path: tf.Variable}` of every weight of the given Keras layers.

    Args:
      layers_by_name: `{name: layer}`; names keep apart layers whose Keras names
        collide (e.g. one conditional prior per level, all named alike).

    Returns:
      A dict to assign to a `tf.Module` attribute (tracked: the one copy of each
      weight in checkpoints).

    Raises:
      ValueError if two weights end up with the same key.
    """
    out = {}
    for name, layer in layers_by_name.items():
        for weight in layer.weights:
            key = f"{name}/{weight.path}"
            if key in out:
                raise ValueError(f"Two Keras weights share the key {key!r}.")
            out[key] = weight.value
    return out


_DEFERRAL = threading.local()


@contextlib.contextmanager
def random_kernels_deferred(enabled=True):
    """Within the block (when `enabled`), layers being built create their seedable
    random kernels zero-filled instead of drawing them (`deferrable_initializer`).

    For a model whose kernels `reseed_random_kernels` redraws right after building:
    the first draw would be thrown away, and drawing the paper model's 67M weights
    costs over a second of start-up. Leave the block only after reseeding.
    """
    previous = getattr(_DEFERRAL, "active", False)
    _DEFERRAL.active = previous or bool(enabled)
    try:
        yield
    finally:
        _DEFERRAL.active = previous


def deferrable_initializer(initializer):
    """`initializer`, or "zeros" inside `random_kernels_deferred` when `initializer`
    takes a seed (so `reseed` will redraw it from the same kind of initializer)."""
    if (getattr(_DEFERRAL, "active", False)
            and "seed" in keras.initializers.get(initializer).get_config()):
        return "zeros"
    return initializer


def reseed_random_kernels(layers, seed):
    """Redraws every randomly initialised kernel inside `layers` from seeds derived
    from the integer `seed`, so a model's initial weights depend on `seed` alone.

    Keras 3 initialisers built without a seed draw one from Python's global `random`
    when they are created; layers here that own a random kernel define
    `reseed(seed)`. They are visited in a fixed order (each top-level layer's
    sub-layers depth-first, as Keras tracks them) and get `seed * SEED_STRIDE + i`.

    Returns:
      The number of kernels redrawn.
    """
    count = 0
    for top in layers:
        for layer in top._flatten_layers(include_self=True, recursive=True):
            if hasattr(layer, "reseed"):
                layer.reseed(int(seed) * SEED_STRIDE + count)
                count += 1
    return count


def keras_layers_in(module):
    """The Keras layers held (at any depth) by a `tf.Module`'s attributes, in the
    module's deterministic attribute order."""
    return list(module._flatten(predicate=lambda v: isinstance(v, keras.layers.Layer),
                                expand_composites=False))
