"""classifier_graph trains any ClassifierGraph and measures it with its own ops."""

import dataclasses
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import classifier_graph, mnist_input_data, mnist_softmax
from tensorflow_serving.test_util import testing


def synthetic_data(tmp_path) -> mnist_input_data.DataSets:
    mnist_input_data.write_synthetic_data_sets(str(tmp_path), num_train=300, num_test=100)
    return mnist_input_data.read_data_sets(
        str(tmp_path), one_hot=True, validation_size=0, source_url=None
    )


def test_train_calls_on_step_after_every_step_and_learns(tmp_path):
    data = synthetic_data(tmp_path)
    steps = []
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        sess.run(tf.global_variables_initializer())
        chance = classifier_graph.evaluate(sess, model, data.test.images, data.test.labels)
        classifier_graph.train(sess, model, data.train, 30, 50, on_step=steps.append)
        accuracy = classifier_graph.evaluate(sess, model, data.test.images, data.test.labels)
        scores = classifier_graph.predict(sess, model, data.test.images)
    assert steps == list(range(1, 31))
    assert chance < 0.3 < 0.9 < accuracy
    assert scores.shape == (100, 10)
    np.testing.assert_allclose(scores.sum(axis=1), np.ones(100), rtol=1e-5)
    # evaluate() is the share of argmax hits.
    assert accuracy == np.mean(scores.argmax(1) == data.test.labels.argmax(1))


def test_progress_gets_each_step_with_its_falling_training_loss(tmp_path):
    data = synthetic_data(tmp_path)
    reports = []
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        sess.run(tf.global_variables_initializer())
        classifier_graph.train(
            sess, model, data.train, 30, 50, progress=lambda *report: reports.append(report)
        )
        without_loss = dataclasses.replace(model, loss=None)
        with pytest.raises(ValueError, match="progress reports need the model's loss"):
            classifier_graph.train(sess, without_loss, data.train, 1, 50, progress=print)
    assert [step for step, _ in reports] == list(range(1, 31))
    assert all(isinstance(loss, float) for _, loss in reports)
    assert reports[0][1] == pytest.approx(np.log(10), rel=1e-3), "zero weights: uniform scores"
    assert reports[-1][1] < reports[0][1] / 2


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
