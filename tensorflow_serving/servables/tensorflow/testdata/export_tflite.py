"""TensorFlow Lite test models, converted at test time with tf.lite.TFLiteConverter.

Each writes `<base>/<version>/model.tflite` and returns the version directory:

- half_plus_two in three forms, as upstream's test models come: with
  flatbuffer signatures (today's converter), with none (the v1 converter's
  tensor names `x` and `y`), and with upstream's `signature_defs_metadata`
  (alias `x` for the tensor the v1 converter named `tflite_input`);
- a matmul over [N, 4] inputs, which other shapes fail;
- two signatures in two subgraphs (`serving_default`: y = 0.5x + 2,
  `times_three`: y = 3x);
- an examples model that parses tf.Examples with ParseExampleV2 (float
  feature `x`, string feature `label` defaulting to "missing") and answers
  `outputs` and `scores` (0.5x + 2) and `classes` (the label): Classify and
  Regress both run on it.
"""

from __future__ import annotations

import os

import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils


def _write(base: str, version: int, model: bytes) -> str:
    path = os.path.join(base, str(version))
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "model.tflite"), "wb") as handle:
        handle.write(model)
    return path


def half_plus_two_with_signature() -> bytes:
    """y = 0.5x + 2 over a [N, 1] float input, signature `serving_default` (x -> y)."""

    class HalfPlusTwo(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x):
            return {"y": x * 0.5 + 2.0}

    module = HalfPlusTwo()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function()], module
    )
    return converter.convert()


def _v1_half_plus_two(input_name: str) -> bytes:
    """The v1 converter's half_plus_two: no signatures, tensors `<input_name>` and `y`."""
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        x = tf.compat.v1.placeholder(tf.float32, [1, 1], name=input_name)
        y = tf.add(tf.multiply(x, 0.5), 2.0, name="y")
        return tf.compat.v1.lite.TFLiteConverter.from_session(session, [x], [y]).convert()


def half_plus_two_without_signature() -> bytes:
    return _v1_half_plus_two("x")


def half_plus_two_with_legacy_signature() -> bytes:
    """Upstream's `..._with_sigdef` model: alias `x` names `tflite_input:0`, which the
    legacy converter wrote as `tflite_input`."""
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for infos, alias, name in (
        (signature.inputs, "x", "tflite_input:0"),
        (signature.outputs, "y", "y:0"),
    ):
        infos[alias].name = name
        infos[alias].dtype = 1  # DT_FLOAT
        for _ in range(2):
            infos[alias].tensor_shape.dim.add().size = 1
    return with_signature_defs_metadata(
        _v1_half_plus_two("tflite_input"), {"serving_default": signature}
    )


def with_signature_defs_metadata(
    model: bytes, defs: dict[str, meta_graph_pb2.SignatureDef]
) -> bytes:
    """`model` with TFLite's legacy `signature_defs_metadata` entry, as its signature_def_util
    writes it: a flexbuffer map from key to the serialized SignatureDef as a string."""
    builder = flexbuffers.Builder()
    with builder.Map():
        for key, signature in defs.items():
            data = signature.SerializeToString()
            # A flexbuffer string from Python must be text; these small protos are ASCII.
            builder.Key(key)
            builder.String(data.decode("ascii"))
    editable = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = list(builder.Finish())
    editable.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = "signature_defs_metadata"
    entry.buffer = len(editable.buffers) - 1
    editable.metadata = list(editable.metadata or []) + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(editable))


def matmul_model() -> bytes:
    """y = x @ ones([4, 2]) over a [N, 4] input: a [N, 3] input cannot run."""

    class MatMul(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.matmul(x, tf.ones([4, 2]))}

    module = MatMul()
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function()], module
    ).convert()


def two_signatures(work_dir: str, parse_in_second: bool = False) -> bytes:
    """`serving_default` (y = 0.5x + 2) and `times_three` (y = 3x), from a SavedModel;
    with `parse_in_second`, `times_three` parses tf.Examples (feature `x`) first."""

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def half_plus_two(self, x):
            return {"y": x * 0.5 + 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def times_three(self, x):
            return {"y": x * 3.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="x")])
        def parse_times_three(self, x):
            feature = tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])
            return {"y": tf.io.parse_example(x, {"x": feature})["x"] * 3.0}

    module = Two()
    saved = os.path.join(work_dir, f"two_signatures_saved_model_{parse_in_second}")
    tf.saved_model.save(
        module,
        saved,
        signatures={
            "serving_default": module.half_plus_two.get_concrete_function(),
            "times_three": (
                module.parse_times_three if parse_in_second else module.times_three
            ).get_concrete_function(),
        },
    )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved, signature_keys=["serving_default", "times_three"]
    )
    converter.allow_custom_ops = parse_in_second
    return converter.convert()


def examples_model() -> bytes:
    """Parses tf.Examples (ParseExampleV2, a TFLite custom op) into outputs/scores/classes."""

    class Examples(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def serve(self, inputs):
            features = tf.io.parse_example(
                inputs,
                {
                    "x": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
                    "label": tf.io.FixedLenFeature([1], tf.string, default_value=["missing"]),
                },
            )
            y = features["x"] * 0.5 + 2.0
            return {"outputs": y, "scores": y * 1.0, "classes": features["label"]}

    module = Examples()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function()], module
    )
    converter.allow_custom_ops = True
    return converter.convert()


def export(base: str, version: int, model: bytes) -> str:
    """Writes `model` as `<base>/<version>/model.tflite`; returns the version directory."""
    return _write(base, version, model)
