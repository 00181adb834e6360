"""The chapter's softmax model: one weight matrix, named as the book's restores expect."""

import sys

import tensorflow.compat.v1 as tf

from tensorflow_serving.example import classifier_graph, mnist_input_data, mnist_softmax
from tensorflow_serving.test_util import testing


def test_builds_the_books_graph_with_one_weight_matrix():
    with tf.Graph().as_default():
        model = mnist_softmax.build_softmax()
        assert [v.op.name for v in model.parameters] == ["Variable"]
        assert model.parameters[0].shape.as_list() == [784, 10]
        assert model.x.shape.as_list() == [None, 784]
        assert model.scores.op.name == "y"


def test_with_bias_adds_upstreams_bias():
    with tf.Graph().as_default():
        model = mnist_softmax.build_softmax(with_bias=True)
        assert [v.shape.as_list() for v in model.parameters] == [[784, 10], [10]]


def test_learns_synthetic_digits(tmp_path):
    mnist_input_data.write_synthetic_data_sets(str(tmp_path), num_train=300, num_test=100)
    data = mnist_input_data.read_data_sets(
        str(tmp_path), one_hot=True, validation_size=0, source_url=None
    )
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        sess.run(tf.global_variables_initializer())
        classifier_graph.train(sess, model, data.train, 50, 50)
        assert classifier_graph.evaluate(sess, model, data.test.images, data.test.labels) > 0.9


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
