"""What one request may become in memory once decoded (--max_decoded_request_bytes).

--max_request_bytes bounds the bytes on the wire; this bounds what they turn
into, which can be far larger: an empty string costs two bytes in a
TensorProto and about fifty as a Python object, and a shape with one value
fills the whole tensor. Every input is charged before it is decoded:

- a tensor: its element count (from its own shape) times the size of one
  element in memory: the dtype's item size, or STRING_ELEMENT_BYTES for a
  string (the bytes object's header and its slot in the array; the string's
  own bytes were counted on the wire);
- a JSON body: an estimate of the parsed document, from its length and its
  count of values and containers (json_body.parsed_size_estimate).

A request over the budget is refused INVALID_ARGUMENT (upstream's code for a
tensor it cannot decode), naming the input, its size and the flag.
"""

from __future__ import annotations

import math

from tensorflow.core.framework import types_pb2

from tensorflow_serving.util import status, tensor_codec

# A string element in memory: a bytes object's header (33 bytes, rounded up by
# the allocator) and the 8-byte pointer the object array holds.
STRING_ELEMENT_BYTES = 48
FLAG = "--max_decoded_request_bytes"


def element_bytes(dtype: int) -> int:
    """Bytes one element of `dtype` takes once decoded."""
    if dtype == types_pb2.DT_STRING:
        return STRING_ELEMENT_BYTES
    return tensor_codec.numpy_dtype(dtype).itemsize


def tensor_bytes(dtype: int, shape: tuple[int, ...] | list[int]) -> int:
    """Bytes a tensor of `dtype` and `shape` takes once decoded (exact, never wraps)."""
    return math.prod(shape) * element_bytes(dtype)


class DecodeBudget:
    """The decoded bytes one request has left; `max_bytes` 0 means no limit.

    Charge each input before decoding it; a charge that passes the limit
    raises INVALID_ARGUMENT. One budget per request, used by one thread.
    """

    __slots__ = ("max_bytes", "charged")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.charged = 0

    def charge(self, what: str, size: int) -> None:
        """Adds `size` decoded bytes for `what` (e.g. "Tensor x of shape [3] and dtype float")."""
        self.charged += size
        if self.max_bytes and self.charged > self.max_bytes:
            raise status.invalid_argument(
                f"{what} takes {size} bytes once decoded; a request may decode to at most "
                f"{self.max_bytes} bytes ({FLAG})"
            )

    def charge_tensor(self, alias: str, dtype: int, shape: tuple[int, ...] | list[int]) -> None:
        """Charges input `alias`, a tensor of `dtype` and `shape`."""
        self.charge(
            f"Input tensor {alias} of shape {list(shape)} and dtype "
            f"{tensor_codec.dtype_name(dtype)}",
            tensor_bytes(dtype, shape),
        )


__all__ = [
    "FLAG",
    "STRING_ELEMENT_BYTES",
    "DecodeBudget",
    "element_bytes",
    "tensor_bytes",
]
