"""Trains the softmax regression on MNIST and exports it as a versioned SavedModel.

Upstream's example of the same name, with the chapter's flags:

    bazel-bin/tensorflow_serving/example/mnist_saved_model \
        --training_iteration=1000 --model_version=1 /tmp/mnist_softmax

It exports the same two signatures as serving_model_ch4 (`predict_images`,
`serving_default`), so the same server and client work with either model.
"""

from __future__ import annotations

# Before anything imports tensorflow: its start-up logs off unless asked for.
from tensorflow_serving.example import quiet_tensorflow  # isort: skip  # noqa: F401

import sys

import tensorflow.compat.v1 as tf

from tensorflow_serving.example import (
    exporter_cli,
    mnist_input_data,
    mnist_signatures,
    mnist_softmax,
)
from tensorflow_serving.example.mnist_signatures import ExportResult
from tensorflow_serving.example.training_progress import StepReport

# Upstream's mnist_saved_model trains with batches of 50.
MINIBATCH_SIZE = 50


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
    """Trains the softmax model (with a bias, as upstream's) and exports it."""
    if data is None:
        data = mnist_input_data.read_data_sets(work_dir, one_hot=True)

    def build(x: tf.Tensor) -> mnist_softmax.ClassifierGraph:
        return mnist_softmax.build_softmax(x, with_bias=True)

    return mnist_signatures.train_and_export_graph(
        build,
        export_base,
        model_version,
        training_iteration,
        data,
        batch_size,
        overwrite,
        seed,
        progress,
    )


def main(argv: list[str] | None = None) -> int:
    return exporter_cli.main("mnist_saved_model.py", train_and_export, argv)


if __name__ == "__main__":
    tf.disable_v2_behavior()
    sys.exit(main())
