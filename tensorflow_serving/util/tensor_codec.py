"""TensorProto <-> numpy without TensorFlow on the hot path.

`tf.make_ndarray` / `tf.make_tensor_proto` are general but slow (tens of
microseconds per small tensor); a request pays this twice. Here decoding reads
`tensor_content` with `np.frombuffer` (no copy) or a typed repeated field with
one `np.array` call, and encoding writes the typed repeated fields
(`float_val`, ...) the way the stock server answers, because existing clients
read `outputs[...].float_val`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from tensorflow_serving.util import proto_wire, status

# DataType enum -> (numpy dtype, name of the TensorProto repeated field).
_CODECS: dict[int, tuple[np.dtype, str]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_HALF: (np.dtype(np.float16), "half_val"),
    types_pb2.DT_STRING: (np.dtype(object), "string_val"),
}

_DTYPE_OF_NUMPY = {
    np.dtype(np.float32): types_pb2.DT_FLOAT,
    np.dtype(np.float64): types_pb2.DT_DOUBLE,
    np.dtype(np.int32): types_pb2.DT_INT32,
    np.dtype(np.int16): types_pb2.DT_INT16,
    np.dtype(np.int8): types_pb2.DT_INT8,
    np.dtype(np.uint8): types_pb2.DT_UINT8,
    np.dtype(np.uint16): types_pb2.DT_UINT16,
    np.dtype(np.int64): types_pb2.DT_INT64,
    np.dtype(np.uint32): types_pb2.DT_UINT32,
    np.dtype(np.uint64): types_pb2.DT_UINT64,
    np.dtype(np.bool_): types_pb2.DT_BOOL,
    np.dtype(np.float16): types_pb2.DT_HALF,
    np.dtype(object): types_pb2.DT_STRING,
}


def dtype_name(dtype: int) -> str:
    """'DT_FLOAT' -> 'float', as TensorFlow's messages name types."""
    return _safe_name(dtype).removeprefix("DT_").lower()


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype that holds a TensorFlow DataType."""
    return _codec(dtype)[0]


def _codec(dtype: int) -> tuple[np.dtype, str]:
    try:
        return _CODECS[dtype]
    except KeyError:
        raise status.invalid_argument(f"Unsupported tensor dtype: {_safe_name(dtype)}") from None


def data_type_of(array: np.ndarray) -> int:
    """The TensorFlow DataType of a numpy array (bytes/str arrays are DT_STRING)."""
    if array.dtype.kind in ("S", "U", "O"):
        return types_pb2.DT_STRING
    try:
        return _DTYPE_OF_NUMPY[array.dtype]
    except KeyError:
        raise status.invalid_argument(f"Unsupported numpy dtype: {array.dtype}") from None


def _safe_name(dtype: int) -> str:
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return str(dtype)


# numpy holds at most 64 dimensions (TensorFlow 254).
MAX_RANK = 64
# A TensorProto with no value, or one, stands for its whole shape: a request of
# a few bytes could make the server fill terabytes. Beyond this many elements
# (256 MiB of float32, the default --max_decoded_request_bytes) the values must be sent.
MAX_FILL_ELEMENTS = 1 << 26
# Values converted from a repeated field per call: a large tensor is decoded in
# steps, so that no single call holds the interpreter for long.
DECODE_CHUNK = 1 << 18
# numpy's limit on the bytes an array spans, even an empty one.
_MAX_BYTES = (1 << 63) - 1
# The fields of a TensorProto that carry its values, besides tensor_content.
HEADER_FIELDS = ("dtype", "tensor_shape", "version_number")
VALUE_FIELDS = frozenset(
    field.name
    for field in tensor_pb2.TensorProto.DESCRIPTOR.fields
    if field.name not in (*HEADER_FIELDS, "tensor_content")
)


def value_field(dtype: int) -> str:
    """The name of the repeated TensorProto field that carries values of `dtype`."""
    return _codec(dtype)[1]


def proto_shape(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    """The proto's shape; INVALID_ARGUMENT for an unknown rank, too many or negative dims."""
    return checked_shape(proto.tensor_shape)


def checked_shape(shape: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...]:
    """A TensorShapeProto's dimensions; INVALID_ARGUMENT unless a numpy array can have them."""
    if shape.unknown_rank:
        raise status.invalid_argument("Tensor shape must have a known rank")
    if len(shape.dim) > MAX_RANK:
        raise status.invalid_argument(
            f"Tensor has {len(shape.dim)} dimensions; at most {MAX_RANK} are supported"
        )
    dims = tuple(d.size for d in shape.dim)
    if any(d < 0 for d in dims):
        raise status.invalid_argument(f"Tensor shape has a negative dimension: {list(dims)}")
    return dims


def check_tensor(proto: tensor_pb2.TensorProto) -> tuple[int, ...]:
    """The proto's shape, once its parts agree; INVALID_ARGUMENT when they do not.

    Reads only sizes, never values: dtype, shape, the count of values (or
    content bytes) against the shape, the cap on filled elements, and no
    values in a field the dtype does not read (TensorFlow would ignore them).
    """
    dtype, field = _codec(proto.dtype)
    shape = proto_shape(proto)
    count = math.prod(shape)  # exact: huge shapes must not wrap around
    if math.prod(d for d in shape if d) * dtype.itemsize > _MAX_BYTES:
        raise status.invalid_argument(f"Tensor shape {list(shape)} is too large")
    _check_no_foreign_values(proto, field)
    if proto.dtype != types_pb2.DT_STRING and proto.tensor_content:
        size = len(proto.tensor_content)
        if size != count * dtype.itemsize:
            raise status.invalid_argument(
                f"Tensor content of {size} bytes does not match shape {list(shape)} "
                f"of {dtype_name(proto.dtype)} ({count * dtype.itemsize} bytes)"
            )
        return shape
    n = len(getattr(proto, field))
    check_value_count(n, count, shape, field)
    return shape


def check_value_count(n: int, count: int, shape: tuple[int, ...], field: str) -> None:
    """`n` values in `field` for a shape of `count` elements: all, one (a fill) or none (zeros)."""
    if n != count and n > 1:
        raise status.invalid_argument(
            f"Tensor has {n} values in {field} but its shape {list(shape)} holds {count}"
        )
    if n < count and count > MAX_FILL_ELEMENTS:
        raise status.invalid_argument(
            f"Tensor of shape {list(shape)} ({count} elements) carries {n} value(s) in {field}; "
            f"filling more than {MAX_FILL_ELEMENTS} elements from fewer values is refused"
        )


def _check_no_foreign_values(proto: tensor_pb2.TensorProto, field: str) -> None:
    for descriptor, _ in proto.ListFields():
        if descriptor.name in VALUE_FIELDS and descriptor.name != field:
            raise status.invalid_argument(
                f"Tensor of dtype {dtype_name(proto.dtype)} carries values in "
                f"{descriptor.name}; its values go in {field}"
            )


def to_ndarray(
    proto: tensor_pb2.TensorProto, known_shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Decodes a TensorProto; raises INVALID_ARGUMENT when its parts disagree (check_tensor).

    As in TensorFlow, a typed field holding one value fills the whole shape,
    and an empty one means zeros. Values are converted DECODE_CHUNK at a time.
    `known_shape`: check_tensor(proto), when the caller already ran it.
    """
    shape = check_tensor(proto) if known_shape is None else known_shape
    dtype, field = _CODECS[proto.dtype]
    # Each read of a bytes field copies it out of the message: read it once.
    content = proto.tensor_content
    if content and proto.dtype != types_pb2.DT_STRING:
        return np.frombuffer(content, dtype=dtype).reshape(shape)
    values = getattr(proto, field)
    n = len(values)
    count = math.prod(shape)
    flat = values_to_array(values, proto.dtype)
    if n == count:
        return flat.reshape(shape)
    if n == 0:
        return (
            np.zeros(shape, dtype=dtype)
            if proto.dtype != types_pb2.DT_STRING
            else np.full(shape, b"", dtype=object)
        )
    return np.full(shape, flat[0], dtype=flat.dtype)  # n == 1


def values_to_array(values: Sequence, proto_dtype: int) -> np.ndarray:
    """Values as a TensorProto's field of `proto_dtype` holds them (a repeated field, or a
    list of the same Python values) as a flat array.

    numpy reads a repeated field of numbers as an array, in one call at memory
    speed; strings, and Python lists, take an object per value, so they are
    converted DECODE_CHUNK per call.
    """
    dtype = _CODECS[proto_dtype][0]
    n = len(values)
    at_memory_speed = proto_dtype != types_pb2.DT_STRING and hasattr(values, "__array__")
    if n <= DECODE_CHUNK or at_memory_speed:
        return _converted(values, proto_dtype, dtype)
    flat = np.empty(n, dtype=dtype)
    for start in range(0, n, DECODE_CHUNK):
        chunk = values[start : start + DECODE_CHUNK]
        flat[start : start + len(chunk)] = _converted(chunk, proto_dtype, dtype)
    return flat


def _converted(values, proto_dtype: int, dtype: np.dtype) -> np.ndarray:
    """Values of a repeated field (or a slice of one) as a flat array of `dtype`."""
    if proto_dtype == types_pb2.DT_STRING:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
        return flat
    if proto_dtype == types_pb2.DT_HALF:
        # half_val holds the bit patterns in int32s; keep the low 16 bits.
        return np.array(values, dtype=np.int32).astype(np.uint16).view(np.float16)
    if _CODECS[proto_dtype][1] == "int_val" and dtype != np.int32:
        # int8/16 and uint8/16 travel as int32: narrow like a C cast, as TensorFlow does.
        return np.array(values, dtype=np.int32).astype(dtype)
    return np.array(values, dtype=dtype)


# TensorProto's packed fixed-width value fields: tag bytes (field number << 3 | 2).
_PACKED_FIXED_WIDTH = {
    types_pb2.DT_FLOAT: bytes([5 << 3 | 2]),  # float_val = 5
    types_pb2.DT_DOUBLE: bytes([6 << 3 | 2]),  # double_val = 6
}
_LITTLE_ENDIAN = {types_pb2.DT_FLOAT: np.dtype("<f4"), types_pb2.DT_DOUBLE: np.dtype("<f8")}


def to_tensor_proto(
    array: np.ndarray,
    out: tensor_pb2.TensorProto | None = None,
    as_tensor_content: bool = False,
) -> tensor_pb2.TensorProto:
    """Encodes an array into the typed repeated field, as the stock server does.

    `as_tensor_content`: numbers and bools go into `tensor_content` instead,
    as raw little-endian bytes (the stock server's
    --enable_serialization_as_tensor_content); strings stay in `string_val`.
    """
    array = np.asarray(array)
    if out is None:
        proto = tensor_pb2.TensorProto()
    else:
        proto = out
        proto.Clear()
    dtype = data_type_of(array)
    proto.dtype = dtype
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add(size=size)
    field = _CODECS[dtype][1]
    flat = array.ravel()
    if as_tensor_content and dtype != types_pb2.DT_STRING:
        little_endian = _CODECS[dtype][0].newbyteorder("<")
        proto.tensor_content = flat.astype(little_endian, copy=False).tobytes()
        return proto
    packed_tag = _PACKED_FIXED_WIDTH.get(dtype)
    if packed_tag is not None and flat.size:
        # float_val / double_val travel packed: a tag, the byte length, then the
        # raw little-endian values. Handing protobuf those bytes fills the field
        # in one C call instead of one Python float per value, and yields the
        # same message, bit for bit.
        raw = flat.astype(_LITTLE_ENDIAN[dtype], copy=False).tobytes()
        proto.MergeFromString(packed_tag + proto_wire.varint(len(raw)) + raw)
    elif dtype == types_pb2.DT_STRING:
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif dtype == types_pb2.DT_HALF:
        proto.half_val.extend(flat.view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto
