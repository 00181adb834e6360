"""The TF2-native way to the same served model: a tf.Module and tf.saved_model.save.

Most users today train eagerly and export with `tf.saved_model.save`. This
exporter trains a softmax regression eagerly (a `tf.Module` holding `W` and
`b`, GradientTape, plain SGD) and exports it with the two signature names the
TF1 exporters use, so the same server and client serve either:

- `predict_images`: input `images` float [-1, 784] -> `scores` float [-1, 10].
- `serving_default`: input `inputs`, serialized tf.Example protos (string
  [-1]) with a float feature `x` of 784 values -> `classes` (string labels,
  best first) and `scores`, both [-1, 10].

Note that `tf.saved_model.save` records every signature with the Predict
method name (`tensorflow/serving/predict`), even the classify-shaped one;
the server has to recognise a classify signature by its inputs and outputs.

Needs eager execution (TF2's default): do not call it in a process that has
run `tf.compat.v1.disable_v2_behavior()`.

    bazel-bin/tensorflow_serving/example/mnist_saved_model_tf2 \
        --training_iteration=1000 --model_version=1 /tmp/mnist_tf2
"""

from __future__ import annotations

# Before anything imports tensorflow: its start-up logs off unless asked for.
from tensorflow_serving.example import quiet_tensorflow  # isort: skip  # noqa: F401

import logging
import sys
import time

import numpy as np
import tensorflow as tf

from tensorflow_serving.example import atomic_export, exporter_cli, mnist_input_data
from tensorflow_serving.example.mnist_signatures import (
    CLASSIFY_SIGNATURE,
    FEATURE,
    NUM_CLASSES,
    PREDICT_SIGNATURE,
    ExportResult,
)
from tensorflow_serving.example.training_progress import StepReport

logger = logging.getLogger(__name__)

LEARNING_RATE = 0.5
MINIBATCH_SIZE = 50


class MnistModule(tf.Module):
    """Softmax regression whose tf.functions become the exported signatures."""

    def __init__(self, name: str | None = None):
        super().__init__(name=name)
        self.W = tf.Variable(tf.zeros([784, NUM_CLASSES]), name="W")
        self.b = tf.Variable(tf.zeros([NUM_CLASSES]), name="b")
        self.class_names = tf.constant([str(i) for i in range(NUM_CLASSES)])

    def logits(self, images: tf.Tensor) -> tf.Tensor:
        return tf.matmul(images, self.W) + self.b

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="images")])
    def predict_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"scores": tf.nn.softmax(self.logits(images))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.io.parse_example(inputs, {FEATURE: tf.io.FixedLenFeature([784], tf.float32)})
        scores = tf.nn.softmax(self.logits(features[FEATURE]))
        values, indices = tf.math.top_k(scores, NUM_CLASSES)
        return {"classes": tf.gather(self.class_names, indices), "scores": values}


def train(
    module: MnistModule,
    data_set: mnist_input_data.DataSet,
    steps: int,
    batch_size: int = MINIBATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
    progress: StepReport | None = None,
) -> None:
    """Eager minibatch SGD on the softmax cross entropy; `progress(step, loss)` after each step."""
    optimizer = tf.keras.optimizers.SGD(learning_rate)

    @tf.function
    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=module.logits(images))
            )
        grads = tape.gradient(loss, [module.W, module.b])
        optimizer.apply_gradients(zip(grads, [module.W, module.b], strict=True))
        return loss

    for number in range(1, steps + 1):
        images, labels = data_set.next_batch(batch_size)
        loss = step(tf.constant(images), tf.constant(labels, dtype=tf.float32))
        if progress is not None:
            progress(number, float(loss))


def accuracy(module: MnistModule, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of images whose top class matches the one-hot label."""
    scores = module.predict_images(tf.constant(images))["scores"].numpy()
    return float(np.mean(scores.argmax(axis=1) == np.asarray(labels).argmax(axis=1)))


def save(module: MnistModule, export_base: str, model_version: int, overwrite: bool = False) -> str:
    """tf.saved_model.save with the two signatures, into `<base>/<version>` atomically."""
    target = atomic_export.version_path(export_base, model_version)
    signatures = {
        PREDICT_SIGNATURE: module.predict_images.get_concrete_function(),
        CLASSIFY_SIGNATURE: module.classify.get_concrete_function(),
    }
    with atomic_export.atomic_export(export_base, model_version, overwrite) as export_dir:
        tf.saved_model.save(module, export_dir, signatures=signatures)
    return target


def train_and_export(
    export_base: str,
    model_version: int = 1,
    training_iteration: int = 1000,
    work_dir: str = "/tmp",
    *,
    overwrite: bool = False,
    data: mnist_input_data.DataSets | None = None,
    batch_size: int = MINIBATCH_SIZE,
    seed: int | None = None,
    progress: StepReport | None = None,
) -> ExportResult:
    """Trains MnistModule eagerly and exports it; same contract as the TF1 exporters."""
    if training_iteration <= 0:
        raise ValueError(f"training_iteration must be positive, got {training_iteration}")
    if not tf.executing_eagerly():
        raise RuntimeError(
            "mnist_saved_model_tf2 needs eager execution, but this process disabled it "
            "(tf.compat.v1.disable_v2_behavior / disable_eager_execution)"
        )
    atomic_export.check_can_export(export_base, model_version, overwrite)
    if data is None:
        data = mnist_input_data.read_data_sets(work_dir, one_hot=True)
    if seed is not None:
        tf.random.set_seed(seed)
    module = MnistModule()
    start = time.time()
    train(module, data.train, training_iteration, batch_size, progress=progress)
    seconds = time.time() - start
    test_scores = module.predict_images(tf.constant(data.test.images))["scores"].numpy()
    test_accuracy = float(np.mean(test_scores.argmax(axis=1) == data.test.labels.argmax(axis=1)))
    logger.info(
        "trained %d iterations in %.1f s; test accuracy %.4f",
        training_iteration,
        seconds,
        test_accuracy,
    )
    path = save(module, export_base, model_version, overwrite)
    return ExportResult(path, test_accuracy, seconds, test_scores)


def main(argv: list[str] | None = None) -> int:
    return exporter_cli.main("mnist_saved_model_tf2.py", train_and_export, argv)


if __name__ == "__main__":
    sys.exit(main())
