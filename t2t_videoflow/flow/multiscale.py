"""The per-frame multi-scale Glow flow (T2T `glow_ops.encoder_decoder`).

Direction: "encode" (forward) maps a frame to latents, "decode" (inverse) maps back.

    x [B, H, W, C]
      level 0:   squeeze -> K steps on 4C -> split -> z_0 [B, H/2, W/2, 2C]
      level 1:   squeeze -> K steps on 8C -> split -> z_1 [B, H/4, W/4, 4C]
      ...
      level L-1: squeeze -> K steps on 2^(L+1) C  -> z_top [B, H/2^L, W/2^L, 2^(L+1) C]

64x64x3 with L = 3: z_0 32x32x6, z_1 16x16x12, z_top 8x8x48 (6144 + 3072 + 3072 =
12288 dimensions, the same as the frame).

The flow is a bijection x <-> (z_0, ..., z_{L-2}, z_top) with
    ln |det d(z)/d(x)| = sum over levels and steps of the step log-dets.
The log-probabilities of the latents are NOT part of the flow: `encode` returns, for
each split, the kept half `x1_l` so that any prior (the marginal `ConvLevelPrior`, or
the video model's conditional priors) can score `z_l` given `x1_l`; `decode` takes
either the latents or a callable that produces `z_l` from `x1_l` (sampling), because
`x1_l` is only known once the coarser levels have been decoded.

As a TFP bijector (`forward_min_event_ndims = 3`, `inverse_min_event_ndims = 1`):

    forward (= encode):  x [*batch, H, W, C] -> z [*batch, D],   D = H W C,
                         z = concat(flatten(z_0), ..., flatten(z_{L-2}), flatten(z_top))
    inverse (= decode):  z -> x
    forward log-det:     [*batch], the same `log_det` as `encode`

so `tfd.TransformedDistribution(base, tfb.Invert(flow))` with a base over `[D]` (e.g.
`tfd.Sample(tfd.Normal(0, 1), [D])`) is a distribution over frames `[H, W, C]`. The
bijector view has no conditional level priors; the model uses `encode` / `decode`.
"""

import collections

import numpy as np
import tensorflow as tf

from t2t_videoflow.flow.base import StatefulBijector, check_frame_tensor, flatten_batch
from t2t_videoflow.flow.flow_step import FlowLevel, derive_seed
from t2t_videoflow.flow.recompute import level_forward_and_log_det
from t2t_videoflow.flow.split import merge_channels, split_channels
from t2t_videoflow.flow.squeeze import squeeze2, unsqueeze2

FlowEncoding = collections.namedtuple(
    "FlowEncoding", ["top", "latents", "conditions", "log_det", "level_log_dets"])
FlowEncoding.__doc__ = """Result of `MultiScaleFlow.encode`.

  top: z_top `[B, H/2^L, W/2^L, 2^(L+1) C]`.
  latents: list of L-1 split latents z_l `[B, H/2^(l+1), W/2^(l+1), 2^(l+1) C]`.
  conditions: list of L-1 kept halves x1_l (same shapes as z_l), the inputs of the
    level priors.
  log_det: `[B]`, total log |det Jacobian| of the flow.
  level_log_dets: list of L `[B]` log-dets, one per level.
"""


class MultiScaleFlow(StatefulBijector):
    """Glow's multi-scale architecture over `n_levels` levels of `depth` steps.

    Also a `tfb.Bijector` from frames `[*batch, H, W, C]` to flat latents
    `[*batch, H W C]` (see the module docstring); like the pieces, it never serves
    cached results and compares equal only to itself.

    Args:
      image_shape: `(H, W, C)` of one frame; H and W divisible by 2**n_levels.
      n_levels: L >= 1.
      depth: K, flow steps per level.
      coupling: "affine" | "additive".
      coupling_width: hidden width of every coupling network.
      activation: "relu" | "gatu".
      coupling_dropout: dropout inside coupling networks (training only).
      seed: seeds the 1x1 convs' initial rotations (reproducible across replicas).
      memory_efficient_backprop: `encode` runs each level under a custom gradient that
        rebuilds activations from the level's output on the backward pass instead of
        storing them (`flow/recompute.py`); same values and gradients, less memory,
        more time. Not combinable with `coupling_dropout > 0`.
      network_dtype: compute dtype of the coupling networks, "float32" | "bfloat16"
        (`layers/coupling_network.py`).
      loop_steps: inside a graph, run each level's K steps as one `tf.while_loop`
        (`FlowLevel`; same arithmetic, a K times smaller flow graph). With
        `memory_efficient_backprop` the recomputing backward pass is a loop as well
        (`flow/recompute.py`).

    Raises:
      ValueError: bad shapes, or `memory_efficient_backprop` with coupling dropout.
    """

    def __init__(self, image_shape, n_levels, depth, coupling="affine", coupling_width=512,
                 activation="relu", coupling_dropout=0.0, seed=None,
                 memory_efficient_backprop=False,
                 network_dtype="float32", loop_steps=False,
                 name="flow"):
        parameters = dict(locals())
        super().__init__(forward_min_event_ndims=3, inverse_min_event_ndims=1,
                         parameters=parameters, name=name)
        if memory_efficient_backprop and coupling_dropout > 0.0:
            raise ValueError(
                "memory_efficient_backprop does not support coupling_dropout > 0 (got "
                f"{coupling_dropout}): recomputing a step would need the forward pass's "
                "dropout mask. Use one or the other.")
        self.memory_efficient_backprop = bool(memory_efficient_backprop)
        height, width, channels = (int(v) for v in image_shape)
        if n_levels < 1:
            raise ValueError(f"n_levels must be >= 1; got {n_levels}.")
        if height % 2 ** n_levels or width % 2 ** n_levels:
            raise ValueError(
                f"Frame height and width must be divisible by 2**n_levels = "
                f"{2 ** n_levels}; got image_shape {tuple(image_shape)}.")
        self.image_shape = (height, width, channels)
        self.n_levels = int(n_levels)
        self.levels = [
            FlowLevel(4 * channels * 2 ** l, depth, coupling, coupling_width, activation,
                      coupling_dropout, seed=derive_seed(seed, l),
                      network_dtype=network_dtype, loop_steps=loop_steps,
                      name=f"level_{l}")
            for l in range(self.n_levels)]

    def latent_shapes(self):
        """Per-example shapes `[(h, w, c) of z_0, ..., z_{L-2}], (h, w, c) of z_top`."""
        height, width, channels = self.image_shape
        levels = [(height >> (l + 1), width >> (l + 1), 2 * channels * 2 ** l)
                  for l in range(self.n_levels - 1)]
        top = (height >> self.n_levels, width >> self.n_levels,
               4 * channels * 2 ** (self.n_levels - 1))
        return levels, top

    def check_frames(self, x, name="frames"):
        """ValueError unless `x` is float `[batch, H, W, C]` of this flow's frame shape."""
        height, width, channels = self.image_shape
        expected = f"[batch, {height}, {width}, {channels}]"
        if not x.dtype.is_floating:
            raise ValueError(f"{name} must be float {expected}; got dtype {x.dtype.name}.")
        check_frame_tensor(x, channels, name)
        if tuple(x.shape[1:3]) not in ((height, width), (None, None)):
            raise ValueError(f"{name} must have shape {expected}; got {x.shape}.")

    def encode(self, x, training=False):
        """Frames `[B, H, W, C]` -> `FlowEncoding` (latents and log-det)."""
        self.check_frames(x)
        latents, conditions, level_log_dets = [], [], []
        for l, level in enumerate(self.levels):
            if self.memory_efficient_backprop:
                x, log_det = level_forward_and_log_det(
                    level, squeeze2(x), training=training)
            else:
                x, log_det = level.forward_and_log_det(squeeze2(x), training=training)
            level_log_dets.append(log_det)
            if l < self.n_levels - 1:
                x, z = split_channels(x)
                latents.append(z)
                conditions.append(x)
        log_det = tf.add_n(level_log_dets)
        return FlowEncoding(x, latents, conditions, log_det, level_log_dets)

    def decode(self, top, latents=None, sample_latent=None):
        """Latents -> frames.

        Args:
          top: z_top `[B, ...]`.
          latents: list of the L-1 level latents, or None to produce them with
            `sample_latent`.
          sample_latent: `f(level, x1) -> z_level`, called from the coarsest split to
            the finest when `latents` is None (e.g. a prior sampler at temperature).

        Returns:
          `(frames [B, H, W, C], latents_used, inverse_log_det [B])`.
        """
        n_split = self.n_levels - 1
        if latents is None and sample_latent is None and n_split > 0:
            raise ValueError("decode needs `latents` or a `sample_latent` callable.")
        if latents is not None and len(latents) != n_split:
            raise ValueError(f"decode needs {n_split} level latents; got {len(latents)}.")
        used = [None] * n_split
        x, log_det = top, 0.0
        for l in reversed(range(self.n_levels)):
            if l < n_split:
                z = latents[l] if latents is not None else sample_latent(l, x)
                used[l] = z
                x = merge_channels(x, z)
            x, level_log_det = self.levels[l].inverse_and_log_det(x)
            log_det += level_log_det
            x = unsqueeze2(x)
        return x, used, log_det

    def data_init(self, x):
        """Data-dependent init of every actnorm, in one sequential pass over `x`.

        Each actnorm (flow and coupling networks) is set from the statistics of its own
        input; already-initialised flow actnorms are left alone (see `Actnorm`).
        Always the plain path: initialisation never runs inside a recomputation.
        Returns `forward(x)` after initialisation, the flat latents `[N, D]`, from the
        same pass (as every piece's `data_init` returns its forward output).
        """
        enc = self.data_init_encoding(x)
        return self._flatten_latents(enc.latents, enc.top)

    def data_init_encoding(self, x):
        """`data_init(x)`, returning the pass's `FlowEncoding` (as `encode(x)` after
        initialisation) without log-dets: `log_det` and `level_log_dets` are None,
        since initialisation computes none. The model's prior init reads the latents
        from here instead of encoding the batch again."""
        self.check_frames(x)
        h, latents, conditions = x, [], []
        for l, level in enumerate(self.levels):
            h = level.data_init(squeeze2(h))
            if l < self.n_levels - 1:
                h, z = split_channels(h)
                latents.append(z)
                conditions.append(h)
        return FlowEncoding(h, latents, conditions, None, None)

    def t2t_variables(self):
        """T2T names relative to `codec/` -> variables (flow steps only)."""
        return {f"revnet_{l}/{name}": var for l, level in enumerate(self.levels)
                for name, var in level.t2t_variables().items()}

    # ------------------------------------------------------------------ TFP bijector

    def latent_size(self):
        """D = H * W * C, the length of the flat latent vector."""
        height, width, channels = self.image_shape
        return height * width * channels

    def _flatten_latents(self, latents, top):
        """`[z_0, ..., z_{L-2}]`, z_top (each `[N, h, w, c]`) -> `[N, D]`."""
        parts = [tf.reshape(z, [-1, int(np.prod(z.shape[1:]))]) for z in latents + [top]]
        return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]

    def _unflatten_latents(self, z):
        """`[N, D]` -> (`[z_0, ..., z_{L-2}]`, z_top), inverse of `_flatten_latents`."""
        levels, top = self.latent_shapes()
        shapes = levels + [top]
        parts = tf.split(z, [int(np.prod(s)) for s in shapes], axis=-1)
        parts = [tf.reshape(p, [-1, *s]) for p, s in zip(parts, shapes)]
        return parts[:-1], parts[-1]

    def _check_latent_vector(self, z):
        size = self.latent_size()
        if z.shape.rank is not None and z.shape.rank >= 1 and z.shape[-1] not in (None, size):
            raise ValueError(f"z must have shape [..., {size}] (H * W * C latents); got "
                             f"{z.shape}.")

    def _forward(self, x):
        flat, unflatten = flatten_batch(x, 3)
        enc = self.encode(flat)
        return unflatten(self._flatten_latents(enc.latents, enc.top))

    def _forward_log_det_jacobian(self, x):
        flat, unflatten = flatten_batch(x, 3)
        return unflatten(self.encode(flat).log_det)

    def _inverse(self, z):
        self._check_latent_vector(z)
        flat, unflatten = flatten_batch(z, 1, name="z")
        latents, top = self._unflatten_latents(flat)
        return unflatten(self.decode(top, latents)[0])

    def _inverse_log_det_jacobian(self, z):
        self._check_latent_vector(z)
        flat, unflatten = flatten_batch(z, 1, name="z")
        latents, top = self._unflatten_latents(flat)
        return unflatten(self.decode(top, latents)[2])

    def _forward_event_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank is None:
            return tf.TensorShape(None)
        if input_shape.rank < 3 or not input_shape[-3:].is_compatible_with(self.image_shape):
            raise ValueError(f"{self.name}: frames must have shape [..., "
                             f"{', '.join(map(str, self.image_shape))}]; got {input_shape}.")
        return input_shape[:-3].concatenate([self.latent_size()])

    def _forward_event_shape_tensor(self, input_shape):
        return tf.concat([input_shape[:-3], [self.latent_size()]], axis=0)

    def _inverse_event_shape(self, output_shape):
        output_shape = tf.TensorShape(output_shape)
        if output_shape.rank is None:
            return tf.TensorShape(None)
        if output_shape.rank < 1 or not output_shape[-1:].is_compatible_with(
                [self.latent_size()]):
            raise ValueError(f"{self.name}: latents must have shape [..., "
                             f"{self.latent_size()}]; got {output_shape}.")
        return output_shape[:-1].concatenate(self.image_shape)

    def _inverse_event_shape_tensor(self, output_shape):
        return tf.concat([output_shape[:-1], self.image_shape], axis=0)
