"""`--t2t_usr_dir` for `experiments/background_floor.py`: problem `black_32`.

The `stochastic_shapes_32` layout (10,000 videos of 5 frames, same shards and splits)
with every frame all black, so every sub-pixel is the value 0 and the bits per pixel
measure only how the flow models the dequantisation noise inside one 1/256 bin.
"""

import numpy as np

from t2t_videoflow.config import registry
from t2t_videoflow.problems import stochastic_shapes


@registry.register_problem("black_32")
class Black32(stochastic_shapes.StochasticShapes32):
    """`stochastic_shapes_32` with the shape left out: black frames only."""

    file_prefix = "black_32"

    def generate_data(self, data_dir, raw_data_dir=None, log=print, **kwargs):
        render = stochastic_shapes.render_video
        stochastic_shapes.render_video = (
            lambda size, num_frames, *_: np.zeros([num_frames, size, size, 3], np.uint8))
        try:
            return super().generate_data(data_dir, raw_data_dir, log=log, **kwargs)
        finally:
            stochastic_shapes.render_video = render
