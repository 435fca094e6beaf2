"""Video problems (installed as `t2t_videoflow.problems`); importing registers them.

Registered: `stochastic_shapes` (alias `video_stochastic_shapes10k`),
`stochastic_shapes_32` (32x32), `stochastic_shapes_16` (16x16, the README quick start),
`stochastic_shapes_tiny` (64 videos at 16x16, tests), `bair_action_free` (alias
`video_bair_robot_pushing`).
"""

from t2t_videoflow.problems import bair, stochastic_shapes  # noqa: F401  (registers)
from t2t_videoflow.problems.base import VideoProblem  # noqa: F401
