"""Writes well-formed SavedModels whose *load* misbehaves, for the fault tests.

The files are a valid half_plus_two-shaped export (x float [-1,1] -> y =
0.5x + 2, serving_default), but the main op, which a SavedModel loader runs
once after restoring the variables, either fails or never returns:

  export_failing_init  the main op is a failed assertion: the load raises
                       INVALID_ARGUMENT, as a model whose init table is bad;
  export_hanging_init  the main op dequeues from an empty queue: the load
                       blocks forever without using CPU, as a model on a
                       stuck network file system.

Both go through `atomic_export`, like the good exporters, so a test can fix a
version in place with `export_half_plus_two_tf1(..., overwrite=True)`.
"""

from __future__ import annotations

import logging

import tensorflow.compat.v1 as tf

from tensorflow_serving.example import atomic_export
from tensorflow_serving.servables.tensorflow.testdata import saved_model_writer

logger = logging.getLogger(__name__)

FAILING_INIT_MESSAGE = "the main op of this model fails on purpose"


def _export(base_path: str, version: int, overwrite: bool, make_main_op) -> str:
    with tf.Graph().as_default(), tf.Session() as session:
        x = tf.placeholder(tf.float32, [None, 1], name="x")
        a = tf.Variable(0.5, name="a")
        b = tf.Variable(2.0, name="b")
        y = tf.identity(a * x + b, name="y")
        session.run(tf.global_variables_initializer())
        main_op = make_main_op()
        with atomic_export.atomic_export(base_path, version, overwrite) as out:
            saved_model_writer.save_predict_model(session, out, {"x": x}, {"y": y}, main_op=main_op)
    return atomic_export.version_path(base_path, version)


def export_failing_init(base_path: str, version: int, *, overwrite: bool = False) -> str:
    """A version whose load raises (its main op is a failed assertion)."""

    def main_op():
        return tf.group(tf.debugging.Assert(tf.constant(False), [FAILING_INIT_MESSAGE]))

    path = _export(base_path, version, overwrite, main_op)
    logger.info("wrote a version whose load fails to %s", path)
    return path


def export_hanging_init(base_path: str, version: int, *, overwrite: bool = False) -> str:
    """A version whose load never returns (its main op waits on an empty queue)."""

    def main_op():
        queue = tf.queue.FIFOQueue(1, tf.float32, shapes=[[]], name="never_filled")
        return tf.group(queue.dequeue())

    path = _export(base_path, version, overwrite, main_op)
    logger.info("wrote a version whose load hangs to %s", path)
    return path
