"""The chapter's CNN as a class that keeps its variables in a `parameters` list.

Two 5x5 convolution + 2x2 max-pool layers (32 and 64 maps), a 1024-unit
fully connected layer with dropout, and a 10-way output, as in the book's
MNIST CNN. Keeping every weight and bias in `self.parameters`, in build
order, is what lets the .npz workflow save them with one `sess.run` and
assign loaded arrays back by index with `load_weights(weights, sess)`.

The class keeps the book's lower-case name so a reader can follow the text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import weights_npz
from tensorflow_serving.example.classifier_graph import ClassifierGraph

logger = logging.getLogger(__name__)

LEARNING_RATE = 1e-4
TRAIN_KEEP_PROB = 0.5
MINIBATCH_SIZE = 50


class simple_cnn:  # noqa: N801 - the book's name
    """The CNN's layers; `y_conv` are the logits, `parameters` the variables in order."""

    def __init__(
        self,
        x_image: tf.Tensor,
        keep_prob: tf.Tensor,
        weights: Sequence[np.ndarray] | None = None,
        sess: tf.Session | None = None,
        conv1_depth: int = 32,
        conv2_depth: int = 64,
        fc_units: int = 1024,
    ):
        """Builds the layers on x_image [N, 28, 28, 1]; assigns `weights` if given with sess.

        The layer sizes are parameters only so tests and quick server tests can
        train a tiny CNN in seconds; the chapter uses the defaults.
        """
        self.parameters: list[tf.Variable] = []
        self.x_image = x_image
        self.keep_prob = keep_prob
        self._sizes = (conv1_depth, conv2_depth, fc_units)
        self.build_layers()
        if weights is not None:
            if sess is None:
                raise ValueError("simple_cnn got weights but no sess to assign them in")
            self.load_weights(weights, sess)

    def _weight(self, shape: list[int]) -> tf.Variable:
        var = tf.Variable(tf.truncated_normal(shape, stddev=0.1))
        self.parameters.append(var)
        return var

    def _bias(self, size: int) -> tf.Variable:
        var = tf.Variable(tf.constant(0.1, shape=[size]))
        self.parameters.append(var)
        return var

    def _conv_layer(self, inputs: tf.Tensor, shape: list[int]) -> tf.Tensor:
        w = self._weight(shape)
        b = self._bias(shape[3])
        conv = tf.nn.conv2d(inputs, w, strides=[1, 1, 1, 1], padding="SAME")
        return tf.nn.relu(conv + b)

    def _full_layer(self, inputs: tf.Tensor, size: int) -> tf.Tensor:
        in_size = int(inputs.get_shape()[1])
        w = self._weight([in_size, size])
        b = self._bias(size)
        return tf.matmul(inputs, w) + b

    @staticmethod
    def _max_pool_2x2(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")

    def build_layers(self) -> None:
        conv1_depth, conv2_depth, fc_units = self._sizes
        conv1 = self._conv_layer(self.x_image, [5, 5, 1, conv1_depth])
        conv1_pool = self._max_pool_2x2(conv1)
        conv2 = self._conv_layer(conv1_pool, [5, 5, conv1_depth, conv2_depth])
        conv2_pool = self._max_pool_2x2(conv2)
        conv2_flat = tf.reshape(conv2_pool, [-1, 7 * 7 * conv2_depth])
        full_1 = tf.nn.relu(self._full_layer(conv2_flat, fc_units))
        full1_drop = tf.nn.dropout(full_1, rate=1.0 - self.keep_prob)
        self.y_conv = self._full_layer(full1_drop, 10)

    def load_weights(self, weights: Sequence[np.ndarray], sess: tf.Session) -> None:
        """Assigns weights[i] to parameters[i]; a wrong count or shape names the index."""
        for i, w in enumerate(weights):
            logger.info("weight index %d, weight shape %s", i, np.shape(w))
        weights_npz.assign_weights(sess, self.parameters, weights)


def build_cnn(
    x: tf.Tensor | None = None,
    weights: Sequence[np.ndarray] | None = None,
    sess: tf.Session | None = None,
    learning_rate: float = LEARNING_RATE,
    conv1_depth: int = 32,
    conv2_depth: int = 64,
    fc_units: int = 1024,
) -> tuple[ClassifierGraph, simple_cnn]:
    """Builds the CNN with its loss, Adam step and accuracy in the current default graph.

    `keep_prob` is a placeholder defaulting to 1.0, so evaluation and a
    served export run without dropout and without feeding it; training feeds
    0.5 through `ClassifierGraph.train_feed`.
    """
    if x is None:
        x = tf.placeholder(tf.float32, [None, 784])
    keep_prob = tf.placeholder_with_default(1.0, shape=[], name="keep_prob")
    x_image = tf.reshape(x, [-1, 28, 28, 1])
    cnn = simple_cnn(x_image, keep_prob, None, None, conv1_depth, conv2_depth, fc_units)
    y_true = tf.placeholder(tf.float32, [None, 10])
    cross_entropy = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits_v2(logits=cnn.y_conv, labels=y_true)
    )
    # Adam's slot variables are created here, after the model's; initialise
    # everything first, then assign loaded weights over the model's part.
    train_step = tf.train.AdamOptimizer(learning_rate).minimize(cross_entropy)
    correct_prediction = tf.equal(tf.argmax(cnn.y_conv, 1), tf.argmax(y_true, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))
    model = ClassifierGraph(
        x=x,
        y_true=y_true,
        logits=cnn.y_conv,
        scores=tf.nn.softmax(cnn.y_conv, name="y"),
        accuracy=accuracy,
        train_step=train_step,
        parameters=cnn.parameters,
        train_feed={keep_prob: TRAIN_KEEP_PROB},
        loss=cross_entropy,
    )
    if weights is not None:
        if sess is None:
            raise ValueError("build_cnn got weights but no sess to assign them in")
        sess.run(tf.global_variables_initializer())
        cnn.load_weights(weights, sess)
    return model, cnn
