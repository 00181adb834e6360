"""The signatures of a TensorFlow Lite model, named as upstream's TfLiteSession names them.

Three sources, the first one a model has wins:

1. the flatbuffer's own SignatureDefs (what TFLiteConverter writes for a
   SavedModel or a concrete function; `Interpreter.get_signature_list()`):
   keys and aliases as exported;
2. the `signature_defs_metadata` metadata entry (upstream's source: TFLite's
   signature_def_util writes it as a flexbuffer map from signature key to
   serialized SignatureDef). A tensor name the legacy converter stripped of
   its `:0` is matched without it, as upstream does;
3. none: one `serving_default` predict signature whose aliases are the
   tensor names of the model's inputs and outputs without a `:N` suffix.

Why here and not in the servable: the signatures are what GetModelMetadata
reports and what requests are checked against, so they are read once, at
load, from the file itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.lite.python import schema_py_generated as schema

from tensorflow_serving.util import status, tensor_codec

DEFAULT_KEY = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
METADATA_NAME = b"signature_defs_metadata"


@dataclasses.dataclass(frozen=True)
class TfLiteSignature:
    """A signature as GetModelMetadata reports it, and where its tensors are.

    `subgraph` is the interpreter subgraph that runs it; `inputs` and
    `outputs` map each alias to its tensor index in that subgraph.
    """

    signature_def: meta_graph_pb2.SignatureDef
    subgraph: int
    inputs: Mapping[str, int]
    outputs: Mapping[str, int]


def data_type(dtype: np.dtype) -> int:
    """The TensorFlow DataType of a TFLite tensor's numpy dtype (bytes: DT_STRING)."""
    if np.dtype(dtype).kind in ("S", "U", "O"):
        return types_pb2.DT_STRING
    return tensor_codec.data_type_of(np.empty(0, dtype=dtype))


def _tensor_info(detail: dict) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=detail["name"], dtype=data_type(detail["dtype"]))
    for size in detail.get("shape_signature", detail["shape"]):
        info.tensor_shape.dim.add().size = int(size)
    return info


def legacy_name(tensor_name: str) -> str:
    """A TF tensor name as early TFLite converters wrote it: without its ':N'."""
    return tensor_name.split(":", 1)[0]


def read_signatures(model: bytes, interpreter) -> dict[str, TfLiteSignature]:
    """Every signature of `model`, whose `interpreter` is built but need not be allocated.

    Raises INVALID_ARGUMENT when the model's signatures name tensors it does
    not have (the model is unusable as exported).
    """
    root = schema.Model.GetRootAsModel(model, 0)
    if root.SignatureDefsLength():
        return _flatbuffer_signatures(root, interpreter)
    legacy = _metadata_signature_defs(root)
    if legacy:
        return _legacy_signatures(legacy, interpreter)
    return {DEFAULT_KEY: _default_signature(interpreter)}


def _flatbuffer_signatures(root, interpreter) -> dict[str, TfLiteSignature]:
    subgraph_of = {}
    for i in range(root.SignatureDefsLength()):
        entry = root.SignatureDefs(i)
        subgraph_of[entry.SignatureKey().decode()] = entry.SubgraphIndex()
    result = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        signature_def = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
        for alias, detail in inputs.items():
            signature_def.inputs[alias].CopyFrom(_tensor_info(detail))
        for alias, detail in outputs.items():
            signature_def.outputs[alias].CopyFrom(_tensor_info(detail))
        result[key] = TfLiteSignature(
            signature_def=signature_def,
            subgraph=subgraph_of.get(key, 0),
            inputs={alias: d["index"] for alias, d in inputs.items()},
            outputs={alias: d["index"] for alias, d in outputs.items()},
        )
    return result


def _metadata_signature_defs(root) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The `signature_defs_metadata` entry's SignatureDefs; empty when there is none."""
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() != METADATA_NAME:
            continue
        data = root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
        try:
            by_key = flexbuffers.GetRoot(data).AsMap
            return {
                key.AsKey: meta_graph_pb2.SignatureDef.FromString(
                    value.AsBlob if value.IsBlob else value.AsStringBytes
                )
                for key, value in zip(by_key.Keys, by_key.Values, strict=True)
            }
        except Exception as error:
            raise status.invalid_argument(
                f"Invalid SignatureDefs found in TfLite model: {type(error).__name__}: {error}"
            ) from None
    return {}


def _legacy_signatures(
    defs: dict[str, meta_graph_pb2.SignatureDef], interpreter
) -> dict[str, TfLiteSignature]:
    input_index = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    output_index = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    result = {}
    for key, given in defs.items():
        signature_def = meta_graph_pb2.SignatureDef()
        signature_def.CopyFrom(given)
        inputs = _fix_names(key, "input", signature_def.inputs, input_index)
        outputs = _fix_names(key, "output", signature_def.outputs, output_index)
        result[key] = TfLiteSignature(signature_def, 0, inputs, outputs)
    return result


def _fix_names(key: str, kind: str, infos, index_of: dict[str, int]) -> dict[str, int]:
    """Points each TensorInfo at an existing tensor (trying its legacy name); alias -> index."""
    indices = {}
    for alias, info in infos.items():
        name = info.name if info.name in index_of else legacy_name(info.name)
        if name not in index_of:
            raise status.invalid_argument(
                f"Signature {key} {kind} {alias} references an unknown tensor '{info.name}'; "
                f"the model's {kind}s are {sorted(index_of)}"
            )
        info.name = name
        indices[alias] = index_of[name]
    return indices


def _default_signature(interpreter) -> TfLiteSignature:
    signature_def = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    inputs, outputs = {}, {}
    for details, infos, indices in (
        (interpreter.get_input_details(), signature_def.inputs, inputs),
        (interpreter.get_output_details(), signature_def.outputs, outputs),
    ):
        for detail in details:
            alias = legacy_name(detail["name"])
            if alias in indices:
                raise status.invalid_argument(
                    f"TfLite model has two tensors named '{alias}' among its inputs or outputs"
                )
            infos[alias].CopyFrom(_tensor_info(detail))
            indices[alias] = detail["index"]
    return TfLiteSignature(signature_def, 0, inputs, outputs)
