"""Writes half_plus_two test models at test time, in TF1 and TF2 form.

Upstream's server tests run against `saved_model_half_plus_two_cpu` (written
by the TF1 SavedModelBuilder) and `saved_model_half_plus_two_tf2_cpu`
(written by `tf.saved_model.save`). Our tests make the same models in a temp
dir instead of checking binaries in, and can vary them: `a` and `b` change
the answer so a test can tell versions apart, and `export_corrupt_version`
writes a version that must fail to load.

Both compute y = a*x + b (a=0.5, b=2 by default), y2 = a*x + c and
y3 = a*x2 + c (c=3), with the signatures of upstream's models:

TF1 (`export_half_plus_two_tf1`), as saved_model_half_plus_two_cpu:
    serving_default   predict   x float [-1,1] -> y float [-1,1]
    classify_x_to_y   classify  inputs (serialized tf.Example, string of
                                unknown rank, as upstream's) -> scores (y)
    regress_x_to_y    regress   inputs (serialized tf.Example) -> outputs (y)
    regress_x_to_y2   regress   inputs (serialized tf.Example) -> outputs (y2)
    regress_x2_to_y3  regress   inputs: x2 float [-1,1] -> outputs (y3)
The tf.Examples carry a float feature `x` (and optionally `x2`, default 0).
The Predict signature's x is the tensor parsed from the examples; feeding it
cuts the parse out. Like upstream, the model has an asset `foo.txt` and a
main op.

TF2 (`export_half_plus_two_tf2`), as saved_model_half_plus_two_tf2_cpu:
the same five names plus classify_x2_to_y3, every one with the Predict
method name (that is what tf.saved_model.save writes); x, x2 are float
[None] by default (upstream's file has [1]: pass x_shape=(1,) for that), y's
from the examples are [-1, 1].

Every export goes through `atomic_export`, so a server polling the base path
never loads half a version. The TF2 exporter needs eager execution.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence

import tensorflow as tf2
import tensorflow.compat.v1 as tf

from tensorflow_serving.example import atomic_export

logger = logging.getLogger(__name__)

ASSET_FILENAME = "foo.txt"
ASSET_CONTENTS = "asset-file-contents"
CORRUPT_KINDS = ("garbage_saved_model", "missing_variables", "empty")


def version_dir_name(version: int, zero_pad: bool) -> str:
    """ "123", or upstream test data's 8-digit "00000123" when zero_pad."""
    return f"{version:08d}" if zero_pad else str(version)


def _regression_signature(inputs: tf.Tensor, outputs: tf.Tensor):
    info = tf.saved_model.utils.build_tensor_info
    constants = tf.saved_model.signature_constants
    return tf.saved_model.signature_def_utils.build_signature_def(
        {constants.REGRESS_INPUTS: info(inputs)},
        {constants.REGRESS_OUTPUTS: info(outputs)},
        constants.REGRESS_METHOD_NAME,
    )


def _classification_signature(inputs: tf.Tensor, scores: tf.Tensor):
    info = tf.saved_model.utils.build_tensor_info
    constants = tf.saved_model.signature_constants
    return tf.saved_model.signature_def_utils.build_signature_def(
        {constants.CLASSIFY_INPUTS: info(inputs)},
        {constants.CLASSIFY_OUTPUT_SCORES: info(scores)},
        constants.CLASSIFY_METHOD_NAME,
    )


def export_half_plus_two_tf1(
    base_path: str,
    version: int = 123,
    *,
    a: float = 0.5,
    b: float = 2.0,
    c: float = 3.0,
    zero_pad: bool = False,
    overwrite: bool = False,
    as_text: bool = False,
) -> str:
    """Writes the TF1 half_plus_two to `<base_path>/<version>`; returns that path.

    Works in eager and graph processes alike (it builds in its own tf.Graph).
    `as_text` writes saved_model.pbtxt instead of saved_model.pb.
    """
    dir_name = version_dir_name(version, zero_pad)
    with tempfile.TemporaryDirectory() as asset_dir:
        asset_path = os.path.join(asset_dir, ASSET_FILENAME)
        with open(asset_path, "w") as f:
            f.write(ASSET_CONTENTS)
        with tf.Graph().as_default(), tf.Session() as sess:
            var_a = tf.Variable(a, name="a")
            var_b = tf.Variable(b, name="b")
            var_c = tf.Variable(c, name="c")
            # Unknown rank, as in upstream's stored saved_model_half_plus_two_cpu.
            serialized_tf_example = tf.placeholder(tf.string, name="tf_example")
            feature_configs = {
                "x": tf.FixedLenFeature([1], dtype=tf.float32),
                "x2": tf.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0]),
            }
            tf_example = tf.parse_example(serialized_tf_example, feature_configs)
            x = tf.identity(tf_example["x"], name="x")
            x.set_shape([None, 1])  # parsing an unknown-rank input loses it
            y = tf.identity(tf.add(tf.multiply(var_a, x), var_b), name="y")
            y2 = tf.identity(tf.add(tf.multiply(var_a, x), var_c), name="y2")
            x2 = tf.identity(tf_example["x2"], name="x2")
            x2.set_shape([None, 1])
            # Separate variables for the x2 path, as upstream's model has.
            var_a2 = tf.Variable(a, name="a2")
            var_c2 = tf.Variable(c, name="c2")
            y3 = tf.identity(tf.add(tf.multiply(var_a2, x2), var_c2), name="y3")

            assets_filepath = tf.constant(asset_path)
            tf.add_to_collection(tf.GraphKeys.ASSET_FILEPATHS, assets_filepath)
            filename_tensor = tf.Variable(
                ASSET_FILENAME, name="filename_tensor", trainable=False, collections=[]
            )
            assign_filename_op = filename_tensor.assign(ASSET_FILENAME)

            info = tf.saved_model.utils.build_tensor_info
            predict_signature = tf.saved_model.signature_def_utils.build_signature_def(
                {"x": info(x)},
                {"y": info(y)},
                tf.saved_model.signature_constants.PREDICT_METHOD_NAME,
            )
            signature_def_map = {
                "regress_x_to_y": _regression_signature(serialized_tf_example, y),
                "regress_x_to_y2": _regression_signature(serialized_tf_example, y2),
                "regress_x2_to_y3": _regression_signature(x2, y3),
                "classify_x_to_y": _classification_signature(serialized_tf_example, y),
                tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: (
                    predict_signature
                ),
            }
            sess.run(tf.global_variables_initializer())
            with atomic_export.atomic_export(base_path, version, overwrite, dir_name) as out:
                builder = tf.saved_model.builder.SavedModelBuilder(out)
                builder.add_meta_graph_and_variables(
                    sess,
                    [tf.saved_model.tag_constants.SERVING],
                    signature_def_map=signature_def_map,
                    assets_collection=tf.get_collection(tf.GraphKeys.ASSET_FILEPATHS),
                    main_op=tf.group(assign_filename_op),
                )
                builder.save(as_text)
    path = atomic_export.version_path(base_path, version, dir_name)
    logger.info("wrote TF1 half_plus_two (a=%g, b=%g) to %s", a, b, path)
    return path


class _HalfPlusTwo(tf2.Module):
    """TF2 half_plus_two: variables a, b, c and one tf.function per signature."""

    def __init__(self, a: float, b: float, c: float, asset_path: str, x_shape: Sequence):
        super().__init__()
        self.a = tf2.Variable(a, name="a")
        self.b = tf2.Variable(b, name="b")
        self.c = tf2.Variable(c, name="c")
        self.asset = tf2.saved_model.Asset(asset_path)
        float_spec = tf2.TensorSpec(list(x_shape), tf2.float32)
        examples_spec = tf2.TensorSpec([None], tf2.string)

        def parse(serialized: tf2.Tensor) -> dict[str, tf2.Tensor]:
            return tf2.io.parse_example(
                serialized,
                {
                    "x": tf2.io.FixedLenFeature([1], tf2.float32),
                    "x2": tf2.io.FixedLenFeature([1], tf2.float32, default_value=[0.0]),
                },
            )

        @tf2.function(input_signature=[tf2.TensorSpec(list(x_shape), tf2.float32, name="x")])
        def predict(x):
            return {"y": self.a * x + self.b}

        @tf2.function(input_signature=[examples_spec])
        def classify_xy(inputs):
            return {"scores": self.a * parse(inputs)["x"] + self.b}

        @tf2.function(input_signature=[examples_spec])
        def regress_xy(inputs):
            return {"outputs": self.a * parse(inputs)["x"] + self.b}

        @tf2.function(input_signature=[examples_spec])
        def regress_xy2(inputs):
            return {"outputs": self.a * parse(inputs)["x"] + self.c}

        @tf2.function(input_signature=[float_spec])
        def regress_x2y3(inputs):
            return {"outputs": self.a * inputs + self.c}

        @tf2.function(input_signature=[float_spec])
        def classify_x2y3(inputs):
            return {"scores": self.a * inputs + self.c}

        self.predict = predict
        self.classify_xy = classify_xy
        self.regress_xy = regress_xy
        self.regress_xy2 = regress_xy2
        self.regress_x2y3 = regress_x2y3
        self.classify_x2y3 = classify_x2y3

    def signatures(self) -> dict[str, tf2.types.experimental.ConcreteFunction]:
        return {
            "serving_default": self.predict.get_concrete_function(),
            "classify_x_to_y": self.classify_xy.get_concrete_function(),
            "regress_x_to_y": self.regress_xy.get_concrete_function(),
            "regress_x_to_y2": self.regress_xy2.get_concrete_function(),
            "regress_x2_to_y3": self.regress_x2y3.get_concrete_function(),
            "classify_x2_to_y3": self.classify_x2y3.get_concrete_function(),
        }


def export_half_plus_two_tf2(
    base_path: str,
    version: int = 123,
    *,
    a: float = 0.5,
    b: float = 2.0,
    c: float = 3.0,
    zero_pad: bool = False,
    overwrite: bool = False,
    x_shape: Sequence[int | None] = (None,),
) -> str:
    """Writes the TF2 half_plus_two to `<base_path>/<version>` with tf.saved_model.save.

    Needs eager execution; raises RuntimeError in a process that disabled it.
    """
    if not tf2.executing_eagerly():
        raise RuntimeError(
            "export_half_plus_two_tf2 needs eager execution (TF2's default), but this "
            "process disabled it (tf.compat.v1.disable_v2_behavior/disable_eager_execution)"
        )
    dir_name = version_dir_name(version, zero_pad)
    with tempfile.TemporaryDirectory() as asset_dir:
        asset_path = os.path.join(asset_dir, ASSET_FILENAME)
        with open(asset_path, "w") as f:
            f.write(ASSET_CONTENTS)
        module = _HalfPlusTwo(a, b, c, asset_path, x_shape)
        with atomic_export.atomic_export(base_path, version, overwrite, dir_name) as out:
            tf2.saved_model.save(module, out, signatures=module.signatures())
    path = atomic_export.version_path(base_path, version, dir_name)
    logger.info("wrote TF2 half_plus_two (a=%g, b=%g) to %s", a, b, path)
    return path


def export_corrupt_version(
    base_path: str,
    version: int,
    kind: str = "garbage_saved_model",
    *,
    zero_pad: bool = False,
    overwrite: bool = False,
) -> str:
    """Writes a version directory that looks like a model but must fail to load.

    kind:
      "garbage_saved_model"  saved_model.pb holds bytes that are not a proto;
      "missing_variables"    a real TF1 half_plus_two without its variables/;
      "empty"                an empty version directory.
    """
    if kind not in CORRUPT_KINDS:
        raise ValueError(f"kind must be one of {CORRUPT_KINDS}, got {kind!r}")
    dir_name = version_dir_name(version, zero_pad)
    if kind == "missing_variables":
        with tempfile.TemporaryDirectory() as scratch:
            good = export_half_plus_two_tf1(scratch, version)
            for name in os.listdir(os.path.join(good, "variables")):
                os.unlink(os.path.join(good, "variables", name))
            os.rmdir(os.path.join(good, "variables"))
            with atomic_export.atomic_export(base_path, version, overwrite, dir_name) as out:
                shutil.move(good, out)
    else:
        with atomic_export.atomic_export(base_path, version, overwrite, dir_name) as out:
            os.makedirs(out)
            if kind == "garbage_saved_model":
                with open(os.path.join(out, "saved_model.pb"), "wb") as f:
                    f.write(b"\x00this is not a SavedModel proto\xff" * 8)
    path = atomic_export.version_path(base_path, version, dir_name)
    logger.info("wrote deliberately corrupt version (%s) to %s", kind, path)
    return path
