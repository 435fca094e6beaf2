"""`--t2t_usr_dir` for `benchmarks/cli_startup.py`: problem `shapes_64_small`.

The 64x64 stochastic shapes problem (the paper model's frame size) with 64 videos
instead of 10,000, so its data is generated in a fraction of a second and the
trainer's start-up can be timed on a fresh machine without a download.
"""

from t2t_videoflow.config import registry
from t2t_videoflow.problems import stochastic_shapes


@registry.register_problem("shapes_64_small")
class Shapes64Small(stochastic_shapes.StochasticShapes):
    """`stochastic_shapes` (64x64, 5 frames a video) with 64 videos."""

    file_prefix = "shapes_64_small"
    num_videos = 64
