"""Hparams sets (installed as `t2t_videoflow.hparams`); importing registers them.

T2T's: `next_frame_glow_hparams`, `next_frame_glow_bair_quant`,
`next_frame_glow_bair_qual`, `next_frame_glow_shapes`, `frame_glow_hparams`.
The paper's tables: `videoflow_bpp` (E.1), `videoflow_qual` (E.2).
CPU: `videoflow_shapes_cpu` (32x32 shapes), `videoflow_shapes16_demo` (the README quick
start: 16x16 shapes, 4-bit pixels, 3,000 steps), `videoflow_tiny` (tests).
"""

from t2t_videoflow.hparams import videoflow  # noqa: F401  (registers)
