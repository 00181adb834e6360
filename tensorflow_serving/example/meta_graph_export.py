"""Workflow 3 of the chapter: export a meta graph with a collection, restore without code.

A checkpoint holds only variable values; to use it one must rebuild the exact
graph. A meta graph stores the graph itself, and a collection stores handles
into it: training puts `x`, `y_true` and `accuracy` into the collection
'train_var' and calls `saver.export_meta_graph(..., collection_list=
['train_var'])`. Restoring then needs no model code at all:
`tf.train.import_meta_graph` recreates the graph and its Saver,
`saver.restore` loads the values, and `tf.get_collection('train_var')` gives
back the three tensors to feed and fetch.

    bazel run //tensorflow_serving/example:meta_graph_export -- --output_dir=/tmp/meta
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
    saver_checkpoints,
)
from tensorflow_serving.example.training_progress import StepReport, TrainingProgress

COLLECTION = "train_var"
META_GRAPH_FILE = "model_ckpt.meta"


@dataclasses.dataclass
class MetaGraphExport:
    """The accuracy measured before export and the files written."""

    accuracy: float
    checkpoint_path: str
    meta_graph_path: str


def train_and_export_meta_graph(
    data: mnist_input_data.DataSets,
    output_dir: str,
    steps: int = mnist_softmax.NUM_STEPS,
    batch_size: int = mnist_softmax.MINIBATCH_SIZE,
    progress: StepReport | None = None,
) -> MetaGraphExport:
    """Trains the softmax model, saves a checkpoint and a meta graph with 'train_var'.

    `progress(step, loss)` follows the training.
    """
    os.makedirs(output_dir, exist_ok=True)
    with tf.Graph().as_default(), tf.Session() as sess:
        model = mnist_softmax.build_softmax()
        train_var = [model.x, model.y_true, model.accuracy]
        for tensor in train_var:
            tf.add_to_collection(COLLECTION, tensor)
        saver = tf.train.Saver(
            max_to_keep=saver_checkpoints.MAX_TO_KEEP,
            keep_checkpoint_every_n_hours=saver_checkpoints.KEEP_CHECKPOINT_EVERY_N_HOURS,
        )
        sess.run(tf.global_variables_initializer())
        classifier_graph.train(sess, model, data.train, steps, batch_size, progress=progress)
        accuracy = classifier_graph.evaluate(sess, model, data.test.images, data.test.labels)
        checkpoint_path = saver.save(
            sess,
            os.path.join(output_dir, saver_checkpoints.CHECKPOINT_PREFIX),
            global_step=steps,
            write_meta_graph=False,
        )
        meta_graph_path = os.path.join(output_dir, META_GRAPH_FILE)
        saver.export_meta_graph(meta_graph_path, collection_list=[COLLECTION])
    return MetaGraphExport(accuracy, checkpoint_path, meta_graph_path)


def restore_from_meta_graph(
    meta_graph_path: str, checkpoint_path: str, images: np.ndarray, labels: np.ndarray
) -> float:
    """Accuracy of the model imported from the meta graph, with no model-building code."""
    with tf.Graph().as_default() as graph, tf.Session() as sess:
        saver = tf.train.import_meta_graph(meta_graph_path)
        saver.restore(sess, checkpoint_path)
        train_var = graph.get_collection(COLLECTION)
        if len(train_var) != 3:
            raise ValueError(
                f"meta graph {meta_graph_path} has {len(train_var)} tensors in collection "
                f"{COLLECTION!r}; expected 3 (x, y_true, accuracy)"
            )
        x, y_true, accuracy = train_var
        return float(sess.run(accuracy, feed_dict={x: images, y_true: labels}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", default="/tmp", help="MNIST data directory.")
    parser.add_argument("--output_dir", default="/tmp/meta_graph")
    parser.add_argument("--steps", type=int, default=mnist_softmax.NUM_STEPS)
    quiet_tensorflow.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.steps <= 0:
        print(f"--steps must be positive, got {args.steps}")
        return 2

    data = mnist_input_data.read_data_sets(args.work_dir, one_hot=True)
    start = time.time()
    with TrainingProgress(args.steps) as progress:
        export = train_and_export_meta_graph(data, args.output_dir, args.steps, progress=progress)
    print(f"Accuracy before export: {export.accuracy:.4f} ({time.time() - start:.1f} s)")
    print(f"Meta graph: {export.meta_graph_path}, checkpoint: {export.checkpoint_path}")
    restored = restore_from_meta_graph(
        export.meta_graph_path, export.checkpoint_path, data.test.images, data.test.labels
    )
    print(f"Accuracy after import_meta_graph + restore: {restored:.4f}")
    return 0 if restored == export.accuracy else 1


if __name__ == "__main__":
    tf.disable_v2_behavior()
    sys.exit(main())
