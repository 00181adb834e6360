"""Writes a small model that reads the content of a string input, for bad-input tests.

Its one input `s` (string [-1]) feeds two outputs:

    number  tf.strings.to_number(s): float; fails on text that is no number,
            quoting that text (bytes that are not UTF-8 included) in its error;
    echo    s itself: never fails.

A request with an output filter runs only the ops of the outputs it asks for.
"""

from __future__ import annotations

import tensorflow.compat.v1 as tf

from tensorflow_serving.servables.tensorflow.testdata import saved_model_writer

OUTPUTS = ("echo", "number")


def export_string_parser(export_dir: str) -> str:
    """Writes the model to `export_dir` (a version directory); returns it."""
    with tf.Graph().as_default(), tf.Session() as session:
        s = tf.placeholder(tf.string, [None], name="s")
        outputs = {
            "number": tf.strings.to_number(s, name="number"),
            "echo": tf.identity(s, name="echo"),
        }
        saved_model_writer.save_predict_model(session, export_dir, {"s": s}, outputs)
    return export_dir
