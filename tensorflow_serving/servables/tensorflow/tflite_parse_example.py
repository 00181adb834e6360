"""ParseExampleV2 in a TensorFlow Lite model, run by TensorFlow (upstream: parse_example_tflite).

A model converted from a graph that parses serialized tf.Examples carries
TFLite's custom op `ParseExampleV2`. Upstream links that kernel into its
interpreters; neither `tf.lite.Interpreter` nor `ai-edge-litert` registers
it. So at load the op is cut out of the model: the tensors it produced
become the model's inputs, and each run first parses the request's
examples with TensorFlow's own ParseExampleV2 kernel, configured from the
op's constant inputs (feature keys and default values) and its outputs'
shapes and types, then feeds the parsed tensors to the rest of the model.

Supported: one such op, in a model with one signature (subgraph 0), reading
a string input of the model, with dense features only (what a Classify/Regress model parses); a model with sparse or
ragged features fails to load with a message that says so.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from tensorflow_serving.util import status

OP_NAMES = (b"ParseExampleV2", b"ParseExample")

# ParseExampleV2's inputs, in order (then one dense default per dense key).
_SERIALIZED, _NAMES, _SPARSE_KEYS, _DENSE_KEYS, _RAGGED_KEYS, _FIRST_DEFAULT = range(6)


@dataclasses.dataclass(frozen=True)
class ParseStep:
    """Parses a [N] batch of serialized tf.Examples into the model's new inputs.

    `input_index` is the tensor the examples were fed to; `output_indices`
    are the tensors the op produced, in its output order (now model inputs).
    Thread-safe: each call runs TensorFlow's kernel through one Session
    callable.
    """

    input_index: int
    output_indices: tuple[int, ...]
    dense_keys: tuple[bytes, ...]
    _callable: object
    _session: object

    def parse(self, examples: np.ndarray) -> dict[int, np.ndarray]:
        """Tensor index -> parsed array; INVALID_ARGUMENT for examples that do not parse."""
        try:
            values = self._callable(examples)
        except tf.errors.OpError as error:
            message = error.message.split("\n\t [[")[0]
            raise status.invalid_argument(f"Could not parse example input: {message}") from None
        except UnicodeDecodeError:  # TensorFlow quoted request bytes that are not UTF-8
            raise status.invalid_argument(
                "Could not parse example input: it holds no serialized tf.Example protos"
            ) from None
        return dict(zip(self.output_indices, values, strict=True))

    def close(self) -> None:
        self._session.close()


def _op_name(root: schema.Model, op) -> bytes | None:
    code = root.OperatorCodes(op.OpcodeIndex())
    return code.CustomCode()


def find_parse_op(model: bytes) -> int | None:
    """The index (in subgraph 0) of the model's ParseExample op, or None.

    Raises UNIMPLEMENTED for more than one, or for one in another subgraph
    (a model converted with several signatures): the interpreter would only
    find out when that signature first runs.
    """
    root = schema.Model.GetRootAsModel(model, 0)
    found = [
        (s, i)
        for s in range(root.SubgraphsLength())
        for i in range(root.Subgraphs(s).OperatorsLength())
        if _op_name(root, root.Subgraphs(s).Operators(i)) in OP_NAMES
    ]
    if len(found) > 1 or (found and found[0][0] != 0):
        raise status.unimplemented(
            f"TfLite model has ParseExample ops in subgraphs {[s for s, _ in found]}; one, in a "
            "model with a single signature (subgraph 0), is supported: convert the signature "
            "that parses tf.Examples into a model of its own"
        )
    return found[0][1] if found else None


def split_off(model: bytes, op_index: int, interpreter) -> tuple[bytes, ParseStep]:
    """The model without its ParseExample op, and the step that replaces it.

    `interpreter` is built on the original `model` (not allocated: its
    constants are readable). Raises UNIMPLEMENTED for what is not supported.
    """
    root = schema.Model.GetRootAsModel(model, 0)
    graph = root.Subgraphs(0)
    op = graph.Operators(op_index)
    name = _op_name(root, op)
    if name != b"ParseExampleV2":
        raise status.unimplemented(
            f"TfLite model uses the custom op {name.decode()}; only ParseExampleV2 is supported"
        )
    inputs = [op.Inputs(i) for i in range(op.InputsLength())]
    outputs = tuple(op.Outputs(i) for i in range(op.OutputsLength()))
    model_inputs = [graph.Inputs(i) for i in range(graph.InputsLength())]
    if inputs[_SERIALIZED] not in model_inputs:
        raise status.unimplemented(
            "TfLite model's ParseExampleV2 does not read one of the model's inputs"
        )
    options = (
        flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes()) if op.CustomOptionsLength() else {}
    )
    sparse_keys = interpreter.get_tensor(inputs[_SPARSE_KEYS])
    ragged_keys = interpreter.get_tensor(inputs[_RAGGED_KEYS])
    if options.get("num_sparse", 0) or len(sparse_keys) or len(ragged_keys):
        raise status.unimplemented(
            "TfLite model's ParseExampleV2 has sparse or ragged features; only dense "
            "features are supported"
        )
    dense_keys = tuple(bytes(k) for k in interpreter.get_tensor(inputs[_DENSE_KEYS]))
    defaults = [interpreter.get_tensor(i) for i in inputs[_FIRST_DEFAULT:]]
    shapes = [_row_shape(graph.Tensors(i)) for i in outputs]
    step = _build_step(inputs[_SERIALIZED], outputs, dense_keys, defaults, shapes)
    return _without_op(model, op_index, inputs[_SERIALIZED], outputs), step


def _row_shape(tensor) -> list[int]:
    """A dense output's shape without its batch dimension."""
    if tensor.ShapeSignatureLength():
        dims = tensor.ShapeSignatureAsNumpy()
    else:
        dims = tensor.ShapeAsNumpy()
    return [int(d) for d in dims[1:]]


def _build_step(serialized_index, outputs, dense_keys, defaults, shapes) -> ParseStep:
    graph = tf.Graph()
    with graph.as_default():
        serialized = tf.compat.v1.placeholder(tf.string, shape=[None], name="serialized")
        empty = tf.constant([], dtype=tf.string)
        parsed = tf.raw_ops.ParseExampleV2(
            serialized=serialized,
            names=empty,
            sparse_keys=empty,
            dense_keys=tf.constant(list(dense_keys), dtype=tf.string),
            ragged_keys=empty,
            dense_defaults=[tf.constant(d) for d in defaults],
            num_sparse=0,
            sparse_types=[],
            ragged_value_types=[],
            ragged_split_types=[],
            dense_shapes=shapes,
        )
        fetches = list(parsed.dense_values)
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
    )
    session = tf.compat.v1.Session(graph=graph, config=config)
    run = session.make_callable(fetches, feed_list=[serialized])
    return ParseStep(serialized_index, tuple(outputs), dense_keys, run, session)


def _without_op(model: bytes, op_index: int, serialized: int, produced: tuple[int, ...]) -> bytes:
    """`model` with op `op_index` of subgraph 0 removed and its outputs made model inputs."""
    editable = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    graph = editable.subgraphs[0]
    del graph.operators[op_index]
    kept = [int(i) for i in graph.inputs if int(i) != serialized]
    graph.inputs = kept + list(produced)
    # Signature tables would still name the examples' tensor: the servable reads
    # signatures from the original model and feeds this one by tensor index.
    editable.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(editable))
