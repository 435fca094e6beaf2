"""Restoring checkpoints written before the 3-D actnorm parameters were stacked.

Until 2026-12 the conv3d prior's per-time-step actnorm (`layers/conv3d.ActNorm3D`)
kept one variable per time step t, `.../actnorm/bias_{t}` and `.../actnorm/logs_{t}`
of shape `[1, 1, 1, C]`; it now keeps `.../actnorm/bias` and `.../actnorm/logs` of
shape `[1, T, 1, 1, C]`. A checkpoint of the old layout holds, per stacked variable,
T entries for its value, T for each Adam moment and, when the run averaged its
weights, T averages at the old positions of the `ema` list. `restore` reads such a
checkpoint into today's model exactly: it restores everything else through the
object graph (with the stacked variables left out of it), then fills each stack, its
Adam moments and its averages from the T old entries. A checkpoint of today's
layout restores as usual.

Old entry t of a stack, in the checkpoint (escaped as TF escapes dict keys):

    model/prior_variables/<key of the stack>_{t}/.ATTRIBUTES/VARIABLE_VALUE
    model/prior_variables/<key of the stack>_{t}/.OPTIMIZER_SLOT/optimizer/{m,v}/...
"""

import numpy as np
import tensorflow as tf

from t2t_videoflow.errors import CheckpointError

_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"
_PREFIX = "model/prior_variables/"
_STACK_AXIS = 1   # ActNorm3D's `[1, T, 1, 1, C]`


def _escape(name):
    """A dict key as TF's object graph spells it in checkpoint keys."""
    return name.replace(".", "..").replace("/", ".S")


class LegacyStack:
    """One stacked variable and the checkpoint entries of its T old variables."""

    def __init__(self, key, variable, old_names):
        self.key = key                  # its key in `model.prior_variables`
        self.variable = variable
        self.old_names = old_names      # checkpoint node names, entry t first

    def value_keys(self):
        return [name + _VALUE for name in self.old_names]

    def slot_keys(self, slot):
        return [f"{name}/.OPTIMIZER_SLOT/optimizer/{slot}{_VALUE}"
                for name in self.old_names]


def legacy_stacks(model, path):
    """The model's stacked variables that `path` holds in the old per-time-step layout
    (empty for a checkpoint of today's layout, or a model without stacks).

    Raises:
      CheckpointError: the checkpoint has neither layout for a stacked variable.
    """
    keys = {name for name, _ in tf.train.list_variables(path)}
    stacks = []
    for key, variable in getattr(model, "prior_variables", {}).items():
        leaf = key.rsplit("/", 1)[-1]
        if leaf not in ("bias", "logs") or not key.endswith("actnorm/" + leaf) \
                or len(variable.shape) != 5:
            continue
        name = _PREFIX + _escape(key)
        if name + _VALUE in keys:
            continue
        old = [_PREFIX + _escape(f"{key}_{t}")
               for t in range(int(variable.shape[_STACK_AXIS]))]
        missing = [n for n in old if n + _VALUE not in keys]
        if missing:
            # Neither layout: leave it to the object-graph restore's own error, unless
            # the checkpoint has part of the old layout (then it does not fit).
            if len(missing) < len(old):
                raise CheckpointError(
                    f"Checkpoint {path!r} holds {len(old) - len(missing)} of the "
                    f"{len(old)} time steps of {key!r}: it does not fit the model.")
            continue
        stacks.append(LegacyStack(key, variable, old))
    return stacks


def _model_without(model, stacks):
    """A stand-in for `model` in the object graph: the same children, but
    `prior_variables` without the stacks (so a restore neither expects nor restores
    them)."""
    if not stacks:
        return model
    hidden = {s.key for s in stacks}
    stand_in = tf.Module(name="model")
    for name, child in tf.train.TrackableView(model).children(model).items():
        if name == "prior_variables":
            child = {k: v for k, v in child.items() if k not in hidden}
        setattr(stand_in, name, child)
    return stand_in


def _stacked(reader, keys):
    """The T old `[1, 1, 1, C]` entries as one `[1, T, 1, 1, C]` array."""
    return np.stack([np.asarray(reader.get_tensor(k)) for k in keys], axis=_STACK_AXIS)


def _old_trainable_order(trainable, stacks):
    """The old layout's trainable variables, as (variable, entry t or None), in the
    order `tf.Module` lists them (its dict keys sorted): each stack expands in place
    into its T entries, ordered by their old names."""
    by_id = {id(s.variable): s for s in stacks}
    order = []
    for variable in trainable:
        stack = by_id.get(id(variable))
        if stack is None:
            order.append((variable, None))
            continue
        names = [f"{stack.key}_{t}" for t in range(len(stack.old_names))]
        order += [(variable, t) for t in sorted(range(len(names)), key=names.__getitem__)]
    return order


def fill_stacks(stacks, path, optimizer=None):
    """Writes each stack, and its Adam moments, from the old entries of `path`.

    Args:
      stacks: `legacy_stacks(model, path)`.
      optimizer: a legacy Keras Adam holding slots "m" and "v" of the stacks.
    """
    if not stacks:
        return
    reader = tf.train.load_checkpoint(path)
    for stack in stacks:
        stack.variable.assign(_stacked(reader, stack.value_keys()))
        if optimizer is not None:
            for slot in ("m", "v"):
                optimizer.get_slot(stack.variable, slot).assign(
                    _stacked(reader, stack.slot_keys(slot)))


def fill_averages(stacks, path, node, trainable, averages):
    """Writes the weight averages of the old layout's `ema` list into `averages`.

    Args:
      stacks: `legacy_stacks(model, path)` (not empty).
      node: the checkpoint node of the averages list (`weight_ema.CHECKPOINT_NODE`).
      trainable: the model's trainable variables.
      averages: where each variable's average goes, in `trainable`'s order.

    Raises:
      CheckpointError: the list has another length than the old layout's.
    """
    order = _old_trainable_order(trainable, stacks)
    keys = {name for name, _ in tf.train.list_variables(path)}
    if f"{node}/{len(order) - 1}{_VALUE}" not in keys \
            or f"{node}/{len(order)}{_VALUE}" in keys:
        raise CheckpointError(f"The weight averages in {path!r} do not fit the model.")
    reader = tf.train.load_checkpoint(path)
    average_of = dict(zip(map(id, trainable), averages))
    entries = {}
    for index, (variable, t) in enumerate(order):
        value = reader.get_tensor(f"{node}/{index}{_VALUE}")
        if t is None:
            average_of[id(variable)].assign(value)
        else:
            entries.setdefault(id(variable), {})[t] = np.asarray(value)
    for stack in stacks:
        parts = entries[id(stack.variable)]
        average_of[id(stack.variable)].assign(
            np.stack([parts[t] for t in range(len(parts))], axis=_STACK_AXIS))


def restore(path, model, nodes=None, read=False, partial=False, optimizer=None,
            averages=None):
    """Restores `tf.train.Checkpoint(model=model, **nodes)` from `path`, of either
    layout, and asserts that every object of the model (and of `nodes`) was matched.

    Args:
      path: checkpoint prefix.
      model: the `VideoFlow` (node `model`).
      nodes: other nodes (`optimizer`, `data`, `ema`: the averages list).
      read: `Checkpoint.read` (no save counter) instead of `restore`.
      partial: the checkpoint may hold more than is restored (`expect_partial`).
      optimizer: the node `optimizer`, whose slots of the stacks are filled.
      averages: `(node name, list)`: the weight averages node (in `nodes` too), a
        list in `model.trainable_variables`' order.

    Returns:
      The stacks read from the old layout (empty for today's).

    Raises:
      AssertionError: as `assert_existing_objects_matched`.
      CheckpointError: a checkpoint of the old layout that does not fit.
    """
    nodes = dict(nodes or {})
    stacks = legacy_stacks(model, path)
    if stacks and averages is not None:
        nodes.pop(averages[0], None)   # the old list is longer: filled by position below
    checkpoint = tf.train.Checkpoint(model=_model_without(model, stacks), **nodes)
    status = checkpoint.read(path) if read else checkpoint.restore(path)
    if partial or stacks:
        status.expect_partial()
    status.assert_existing_objects_matched()
    fill_stacks(stacks, path, optimizer)
    if stacks and averages is not None:
        fill_averages(stacks, path, averages[0], list(model.trainable_variables),
                      averages[1])
    return stacks
