"""simple_cnn keeps its variables in order and assigns loaded weights by index."""

import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import classifier_graph, mnist_input_data, simple_cnn, weights_npz
from tensorflow_serving.test_util import testing

TINY = {"conv1_depth": 4, "conv2_depth": 8, "fc_units": 32}


def _inputs():
    x = tf.placeholder(tf.float32, [None, 784])
    keep_prob = tf.placeholder_with_default(1.0, shape=[])
    return x, keep_prob, tf.reshape(x, [-1, 28, 28, 1])


def test_parameters_are_the_books_layers_in_order():
    with tf.Graph().as_default():
        _, keep_prob, x_image = _inputs()
        cnn = simple_cnn.simple_cnn(x_image, keep_prob)
        shapes = [p.shape.as_list() for p in cnn.parameters]
    assert shapes == [
        [5, 5, 1, 32],
        [32],
        [5, 5, 32, 64],
        [64],
        [7 * 7 * 64, 1024],
        [1024],
        [1024, 10],
        [10],
    ]


def _random_weights(cnn, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(*p.shape.as_list()).astype(np.float32) for p in cnn.parameters]


def test_constructor_with_weights_and_sess_assigns_them():
    with tf.Graph().as_default(), tf.Session() as sess:
        _, keep_prob, x_image = _inputs()
        template = simple_cnn.simple_cnn(x_image, keep_prob, **TINY)
        weights = _random_weights(template)
        cnn = simple_cnn.simple_cnn(x_image, keep_prob, weights, sess, **TINY)
        for want, got in zip(weights, sess.run(cnn.parameters), strict=True):
            np.testing.assert_array_equal(got, want)


def test_load_weights_with_a_wrong_shape_names_the_index():
    with tf.Graph().as_default(), tf.Session() as sess:
        _, keep_prob, x_image = _inputs()
        cnn = simple_cnn.simple_cnn(x_image, keep_prob, **TINY)
        weights = _random_weights(cnn)
        weights[2] = np.zeros((5, 5, 4, 16), np.float32)
        with pytest.raises(
            weights_npz.WeightMismatchError,
            match=r"weight 2 has shape \(5, 5, 4, 16\) but parameter 2 .* has shape \(5, 5, 4, 8\)",
        ):
            cnn.load_weights(weights, sess)


def test_weights_without_sess_is_an_error():
    with tf.Graph().as_default():
        _, keep_prob, x_image = _inputs()
        with pytest.raises(ValueError, match="no sess"):
            simple_cnn.simple_cnn(x_image, keep_prob, [np.zeros(1)], None, **TINY)


def test_tiny_cnn_learns_synthetic_digits(tmp_path):
    mnist_input_data.write_synthetic_data_sets(str(tmp_path), num_train=300, num_test=100)
    data = mnist_input_data.read_data_sets(
        str(tmp_path), one_hot=True, validation_size=0, source_url=None
    )
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(1)
        model, cnn = simple_cnn.build_cnn(learning_rate=3e-3, **TINY)
        assert model.parameters is cnn.parameters
        sess.run(tf.global_variables_initializer())
        classifier_graph.train(sess, model, data.train, 60, 50)
        # keep_prob defaults to 1.0: evaluation is deterministic.
        first = classifier_graph.predict(sess, model, data.test.images)
        np.testing.assert_array_equal(
            first, classifier_graph.predict(sess, model, data.test.images)
        )
        assert classifier_graph.evaluate(sess, model, data.test.images, data.test.labels) > 0.8


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
