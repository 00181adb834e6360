"""Workflow 1 of the chapter: save trained weights to .npz and assign them back.

Trains the softmax model (or the CNN), measures test accuracy, fetches the
weights with one `sess.run(model.parameters)` and `np.savez`es them; then, in
a brand-new graph, builds the same model, loads the file and assigns the
arrays by index, and measures accuracy again. Both numbers must be equal.

    bazel run //tensorflow_serving/example:save_restore_npz -- --model=softmax
    bazel run //tensorflow_serving/example:save_restore_npz -- --model=cnn --steps=1500
"""

from __future__ import annotations

# Before anything imports tensorflow: its start-up logs off unless asked for.
from tensorflow_serving.example import quiet_tensorflow  # isort: skip

import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import (
    classifier_graph,
    mnist_input_data,
    mnist_softmax,
    simple_cnn,
    weights_npz,
)
from tensorflow_serving.example.training_progress import StepReport, TrainingProgress


@dataclasses.dataclass
class RoundTrip:
    """Accuracy and class probabilities before saving and after restoring."""

    path: str
    accuracy_before: float
    accuracy_after: float
    scores_before: np.ndarray
    scores_after: np.ndarray


def softmax_round_trip(
    data: mnist_input_data.DataSets,
    output_dir: str,
    steps: int = mnist_softmax.NUM_STEPS,
    batch_size: int = mnist_softmax.MINIBATCH_SIZE,
    progress: StepReport | None = None,
) -> RoundTrip:
    """Trains the softmax model, saves W to weight_storage.npz, restores it in a new graph.

    `progress(step, loss)` follows the training.
    """
    images, labels = data.test.images, data.test.labels
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        sess.run(tf.global_variables_initializer())
        classifier_graph.train(sess, model, data.train, steps, batch_size, progress=progress)
        before = classifier_graph.evaluate(sess, model, images, labels)
        scores_before = classifier_graph.predict(sess, model, images)
        path = weights_npz.save_weights(
            os.path.join(output_dir, "weight_storage"), sess.run(model.parameters)
        )

    loaded = weights_npz.load_weights(path)
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        sess.run(tf.global_variables_initializer())
        weights_npz.assign_weights(sess, model.parameters, loaded)
        after = classifier_graph.evaluate(sess, model, images, labels)
        scores_after = classifier_graph.predict(sess, model, images)
    return RoundTrip(path, before, after, scores_before, scores_after)


def cnn_round_trip(
    data: mnist_input_data.DataSets,
    output_dir: str,
    steps: int = 1000,
    batch_size: int = simple_cnn.MINIBATCH_SIZE,
    progress: StepReport | None = None,
    **cnn_sizes: int,
) -> RoundTrip:
    """Trains simple_cnn, saves its parameters to cnn_weight_storage.npz, reloads them.

    The restore builds the CNN as the book does, `simple_cnn(x_image,
    keep_prob, weights, sess)`, which assigns the loaded arrays by index.
    `cnn_sizes` (conv1_depth, conv2_depth, fc_units) shrink it for tests;
    `progress(step, loss)` follows the training.
    """
    images, labels = data.test.images, data.test.labels
    with tf.Graph().as_default(), tf.Session() as sess:
        model, _ = simple_cnn.build_cnn(**cnn_sizes)
        sess.run(tf.global_variables_initializer())
        classifier_graph.train(sess, model, data.train, steps, batch_size, progress=progress)
        before = classifier_graph.evaluate(sess, model, images, labels)
        scores_before = classifier_graph.predict(sess, model, images)
        path = weights_npz.save_weights(
            os.path.join(output_dir, "cnn_weight_storage"), sess.run(model.parameters)
        )

    loaded = weights_npz.load_weights(path)
    with tf.Graph().as_default(), tf.Session() as sess:
        x = tf.placeholder(tf.float32, [None, 784])
        keep_prob = tf.placeholder_with_default(1.0, shape=[])
        x_image = tf.reshape(x, [-1, 28, 28, 1])
        cnn = simple_cnn.simple_cnn(x_image, keep_prob, loaded, sess, **cnn_sizes)
        y_true = tf.placeholder(tf.float32, [None, 10])
        correct = tf.equal(tf.argmax(cnn.y_conv, 1), tf.argmax(y_true, 1))
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
        after = float(sess.run(accuracy, feed_dict={x: images, y_true: labels}))
        scores_after = sess.run(tf.nn.softmax(cnn.y_conv), feed_dict={x: images})
    return RoundTrip(path, before, after, scores_before, scores_after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["softmax", "cnn"], default="softmax")
    parser.add_argument("--work_dir", default="/tmp", help="MNIST data directory.")
    parser.add_argument("--output_dir", default="/tmp/npz_weights", help="Where the .npz goes.")
    parser.add_argument("--steps", type=int, default=1000, help="Training steps.")
    parser.add_argument("--batch_size", type=int, default=0, help="0: the model's default.")
    quiet_tensorflow.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.steps <= 0:
        print(f"--steps must be positive, got {args.steps}")
        return 2

    data = mnist_input_data.read_data_sets(args.work_dir, one_hot=True)
    start = time.time()
    round_trip, batch_size = {
        "softmax": (softmax_round_trip, mnist_softmax.MINIBATCH_SIZE),
        "cnn": (cnn_round_trip, simple_cnn.MINIBATCH_SIZE),
    }[args.model]
    with TrainingProgress(args.steps) as progress:
        result = round_trip(
            data, args.output_dir, args.steps, args.batch_size or batch_size, progress=progress
        )
    print(f"Accuracy before saving: {result.accuracy_before:.4f}")
    print(f"Weights saved to {result.path}")
    print(f"Accuracy after restoring from .npz: {result.accuracy_after:.4f}")
    print(f"({args.model}, {args.steps} steps, {time.time() - start:.1f} s)")
    return 0 if result.accuracy_before == result.accuracy_after else 1


if __name__ == "__main__":
    tf.disable_v2_behavior()
    sys.exit(main())
