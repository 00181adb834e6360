"""What a SavedModel signature takes, inputs that fit it, and requests that carry them.

The benchmark works on any user's model, so nothing here knows MNIST: input
shapes and dtypes come from the SignatureDef (the first dimension is the
batch; other unknown dimensions must be given with --input_shape), values
are synthesized or read from an .npz file, and the same arrays become the
in-process feed, the gRPC PredictRequest (tensor_content, as
`tf.make_tensor_proto` writes it) and the REST :predict JSON body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import orjson
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.util import tensor_codec

DATA_KINDS = ("random", "sparse", "zeros")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: alias, graph tensor, dtype and shape of one row."""

    alias: str
    tensor_name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    tf_dtype: int
    row_shape: tuple[int, ...] | None  # shape after the batch dimension; None: unknown

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_shape_overrides(items: list[str]) -> dict[str, tuple[int, ...]]:
    """['x=28,28,1', 'y='] -> {'x': (28, 28, 1), 'y': ()}: per-row shapes by input alias."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        alias, sep, dims = item.partition("=")
        if not sep or not alias:
            raise ValueError(f"--input_shape wants alias=d1,d2,... (row shape), got {item!r}")
        shapes[alias] = tuple(int(d) for d in dims.split(",") if d.strip())
    return shapes


GraphShape = Callable[[str], "tuple[int, ...] | None"]


def _spec(
    alias: str,
    info: meta_graph_pb2.TensorInfo,
    override: tuple[int, ...] | None,
    graph_shape: GraphShape | None,
) -> TensorSpec:
    dtype = tensor_codec.numpy_dtype(info.dtype)
    dims = None
    if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
        dims = tuple(d.size for d in info.tensor_shape.dim)
    elif graph_shape is not None:
        # Exporters often leave the SignatureDef's shape unknown; the graph may know it.
        dims = graph_shape(info.name)
    row_shape = override if override is not None else (dims[1:] if dims else None)
    return TensorSpec(alias, info.name, dtype.name, info.dtype, row_shape)


def signature_specs(
    signature: meta_graph_pb2.SignatureDef,
    overrides: dict[str, tuple[int, ...]],
    graph_shape: GraphShape | None = None,
) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """(inputs, outputs), each sorted by alias; raises ValueError for an unknown override.

    `graph_shape(tensor_name)` gives the graph's static shape (-1 for unknown
    dimensions, None for unknown rank) where the SignatureDef has none.
    """
    unknown = set(overrides) - set(signature.inputs)
    if unknown:
        raise ValueError(
            f"--input_shape names {sorted(unknown)}, not inputs of the signature "
            f"(inputs: {sorted(signature.inputs)})"
        )
    inputs = [
        _spec(a, signature.inputs[a], overrides.get(a), graph_shape)
        for a in sorted(signature.inputs)
    ]
    outputs = [_spec(a, signature.outputs[a], None, graph_shape) for a in sorted(signature.outputs)]
    return inputs, outputs


def make_inputs(
    inputs: list[TensorSpec],
    batch: int,
    kind: str = "random",
    seed: int = 0,
    data: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One batch for every input: rows from `data` (cycled), else synthesized by `kind`.

    random: uniform [0, 1) for floats, 0..9 for integers; sparse: like random
    with 80% zeros (as normalized images are); zeros: all zeros.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in inputs:
        if data is not None and spec.alias in data:
            rows = np.asarray(data[spec.alias])
            arrays[spec.alias] = np.resize(rows, (batch, *rows.shape[1:])).astype(spec.dtype)
            continue
        if spec.row_shape is None or any(d < 0 for d in spec.row_shape):
            raise ValueError(
                f"input {spec.alias!r} has an unknown shape after the batch dimension "
                f"({spec.row_shape}); give it with --input_shape={spec.alias}=d1,d2,..."
            )
        if spec.tf_dtype == types_pb2.DT_STRING:
            raise ValueError(
                f"input {spec.alias!r} is a string tensor: give its values with --input_data"
            )
        shape = (batch, *spec.row_shape)
        dtype = np.dtype(spec.dtype)
        if kind == "zeros":
            value = np.zeros(shape, dtype)
        elif dtype.kind == "f":
            value = rng.random(shape)
            if kind == "sparse":
                value *= rng.random(shape) < 0.2
        elif dtype.kind == "b":
            value = rng.random(shape) < 0.5
        else:
            value = rng.integers(0, 10, shape)
        arrays[spec.alias] = value.astype(dtype)
    return arrays


def load_input_data(path: str, inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Arrays by alias from an .npz; one array and one input match whatever its key."""
    with np.load(path, allow_pickle=False) as npz:
        data = {key: npz[key] for key in npz.files}
    if len(data) == 1 and len(inputs) == 1 and inputs[0].alias not in data:
        return {inputs[0].alias: next(iter(data.values()))}
    missing = [s.alias for s in inputs if s.alias not in data]
    if missing:
        raise ValueError(f"{path} has arrays {sorted(data)}, not the inputs {missing}")
    return data


def _content_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    if array.dtype.kind in ("S", "U", "O"):
        return tensor_codec.to_tensor_proto(array)
    return tensor_pb2.TensorProto(
        dtype=tensor_codec.data_type_of(array),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]
        ),
        tensor_content=np.ascontiguousarray(array).tobytes(),
    )


def grpc_request(model_name: str, signature_name: str, arrays: dict[str, np.ndarray]) -> bytes:
    """A serialized PredictRequest for these inputs."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for alias, array in arrays.items():
        request.inputs[alias].CopyFrom(_content_proto(array))
    return request.SerializeToString()


def rest_body(signature_name: str, arrays: dict[str, np.ndarray], fmt: str = "instances") -> bytes:
    """A REST :predict body: row format ("instances") or columnar ("inputs")."""
    arrays = {alias: np.ascontiguousarray(v) for alias, v in arrays.items()}
    if fmt == "instances":
        if len(arrays) == 1:
            instances = next(iter(arrays.values()))
        else:
            batch = len(next(iter(arrays.values())))
            instances = [{a: v[i] for a, v in arrays.items()} for i in range(batch)]
        body = {"signature_name": signature_name, "instances": instances}
    elif fmt == "inputs":
        body = {"signature_name": signature_name, "inputs": arrays}
    else:
        raise ValueError(f"REST format must be instances or inputs, got {fmt!r}")
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def rest_path(model_name: str) -> str:
    return f"/v1/models/{model_name}:predict"
