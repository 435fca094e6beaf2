"""Squeeze: T2T's channel order 4c + 2i + j, its inverse, and T2T's own outputs."""

import numpy as np
import pytest
import tensorflow as tf

from flow_testing import load_oracle
from t2t_videoflow.flow.squeeze import Squeeze, squeeze2, unsqueeze2


def test_channel_order_hand_computed():
    x = tf.reshape(tf.range(48, dtype=tf.float32), [1, 4, 4, 3])
    y = squeeze2(x)
    assert y.shape == (1, 2, 2, 12)
    # Pixel (0, 0): channel 4c + 2i + j holds x[i, j, c].
    np.testing.assert_array_equal(y[0, 0, 0], [0, 3, 12, 15, 1, 4, 13, 16, 2, 5, 14, 17])
    # ...which is not space_to_depth's (2i + j) C + c order.
    s2d = tf.nn.space_to_depth(x, 2)
    np.testing.assert_array_equal(s2d[0, 0, 0], [0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17])


@pytest.mark.parametrize("factor", [2, 4])
def test_matches_t2t(factor):
    oracle = load_oracle("op_squeeze")
    y = squeeze2(tf.constant(oracle["in/x"]), factor)
    np.testing.assert_array_equal(y, oracle[f"out/y_factor{factor}"])
    np.testing.assert_array_equal(unsqueeze2(y, factor), oracle["in/x"])


def test_bijector_round_trip_shapes_and_log_det():
    bij = Squeeze()
    x = tf.random.normal([3, 6, 8, 5])
    y = bij.forward(x)
    assert y.shape == (3, 3, 4, 20)
    np.testing.assert_array_equal(bij.inverse(tf.identity(y)), x)
    np.testing.assert_array_equal(bij.forward_log_det_jacobian(x, event_ndims=3), 0.0)
    assert bij.forward_event_shape([6, 8, 5]) == [3, 4, 20]
    assert bij.inverse_event_shape([3, 4, 20]) == [6, 8, 5]


def test_odd_size_is_a_clear_error():
    with pytest.raises(ValueError, match="even height"):
        Squeeze().forward(tf.zeros([1, 5, 4, 3]))
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        Squeeze().forward(tf.zeros([4, 3]))
    with pytest.raises(ValueError, match="even width"):
        Squeeze().forward_event_shape([4, 5, 3])
