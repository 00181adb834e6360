"""The chapter's softmax regression on MNIST, as a TF1 graph.

`y_pred = x W` with a single weight matrix and no bias, trained by gradient
descent on the softmax cross entropy, exactly the model the chapter saves as
.npz, checkpoints with a Saver and exports as a meta graph. Call
`build_softmax()` inside a `tf.Graph().as_default()` block: the workflows
build each model in its own graph so that variable names repeat
(`Variable`, not `Variable_1`) and restores line up.
"""

from __future__ import annotations

import tensorflow.compat.v1 as tf

from tensorflow_serving.example.classifier_graph import ClassifierGraph

LEARNING_RATE = 0.5
NUM_STEPS = 1000
MINIBATCH_SIZE = 100


def build_softmax(
    x: tf.Tensor | None = None, learning_rate: float = LEARNING_RATE, with_bias: bool = False
) -> ClassifierGraph:
    """Builds the softmax model in the current default graph.

    `x` may be given (the exporters pass the tensor parsed from tf.Example);
    otherwise a float placeholder [None, 784] is made. `with_bias` adds the
    bias upstream's mnist_saved_model has; the chapter's model has none.
    """
    if x is None:
        x = tf.placeholder(tf.float32, [None, 784])
    weights = tf.Variable(tf.zeros([784, 10]))
    parameters = [weights]
    logits = tf.matmul(x, weights)
    if with_bias:
        bias = tf.Variable(tf.zeros([10]))
        parameters.append(bias)
        logits = logits + bias
    y_true = tf.placeholder(tf.float32, [None, 10])
    cross_entropy = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits_v2(logits=logits, labels=y_true)
    )
    train_step = tf.train.GradientDescentOptimizer(learning_rate).minimize(cross_entropy)
    correct_mask = tf.equal(tf.argmax(logits, 1), tf.argmax(y_true, 1))
    accuracy = tf.reduce_mean(tf.cast(correct_mask, tf.float32))
    return ClassifierGraph(
        x=x,
        y_true=y_true,
        logits=logits,
        scores=tf.nn.softmax(logits, name="y"),
        accuracy=accuracy,
        train_step=train_step,
        parameters=parameters,
        loss=cross_entropy,
    )
