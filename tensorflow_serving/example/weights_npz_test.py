"""weights_npz round-trips arrays bit-exactly and names the index on a mismatch."""

import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import weights_npz
from tensorflow_serving.test_util import testing


def test_save_and_load_round_trip_bit_exactly_in_order(tmp_path):
    rng = np.random.RandomState(0)
    shapes = [(3, 4), (4,), (2, 2, 2), ()]
    weights = [np.asarray(rng.randn(*shape), dtype=np.float32) for shape in shapes]
    weights += [np.arange(12, dtype=np.float32)]  # 5 arrays: arr_10 must not sort before arr_2
    weights += [rng.randn(2).astype(np.float64) for _ in range(7)]
    path = weights_npz.save_weights(str(tmp_path / "w"), weights)
    assert path.endswith("w.npz")
    loaded = weights_npz.load_weights(str(tmp_path / "w"))
    assert len(loaded) == len(weights)
    for want, got in zip(weights, loaded, strict=True):
        assert got.dtype == want.dtype
        assert got.tobytes() == want.tobytes()


def _graph_with_parameters():
    graph = tf.Graph()
    with graph.as_default():
        params = [tf.Variable(tf.zeros([784, 10])), tf.Variable(tf.zeros([10]))]
    return graph, params


def test_assign_weights_sets_each_variable():
    graph, params = _graph_with_parameters()
    weights = [np.full((784, 10), 0.25, np.float32), np.arange(10, dtype=np.float32)]
    with graph.as_default(), tf.Session() as sess:
        weights_npz.assign_weights(sess, params, weights)
        got = sess.run(params)
    for want, value in zip(weights, got, strict=True):
        np.testing.assert_array_equal(value, want)


def test_wrong_count_is_a_clear_error():
    graph, params = _graph_with_parameters()
    with graph.as_default(), tf.Session() as sess:
        with pytest.raises(
            weights_npz.WeightMismatchError,
            match=r"got 1 weight arrays but the model has 2 parameters",
        ):
            weights_npz.assign_weights(sess, params, [np.zeros((784, 10), np.float32)])


def test_wrong_shape_names_index_and_both_shapes():
    graph, params = _graph_with_parameters()
    weights = [np.zeros((784, 10), np.float32), np.zeros((5,), np.float32)]
    with graph.as_default(), tf.Session() as sess:
        with pytest.raises(
            weights_npz.WeightMismatchError,
            match=r"weight 1 has shape \(5,\) but parameter 1 \(Variable_1:0\) has shape \(10,\)",
        ):
            weights_npz.assign_weights(sess, params, weights)


def test_foreign_npz_keys_are_rejected(tmp_path):
    np.savez(str(tmp_path / "named.npz"), W=np.zeros(3))
    with pytest.raises(weights_npz.WeightMismatchError, match=r"array named 'W'"):
        weights_npz.load_weights(str(tmp_path / "named.npz"))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
