"""A serialized PredictRequest, parsed only after its size once decoded is known.

Protobuf's parser turns every value on the wire into memory in one call that
holds the interpreter: 120 MB of empty `string_val` entries become about
1 GB of string views (16 bytes per 2-byte entry), whatever the tensor's
shape or dtype. So a message larger than DIRECT_PARSE_BYTES is first walked
field by field (proto_wire), and parsed only if every input passes:

- each input's dtype and shape come before its values (as every protobuf
  encoder writes them, in field-number order), so the walk knows an input's
  size before it reads a single value;
- the input's element count times its element size fits the request's
  DecodeBudget (--max_decoded_request_bytes);
- its values sit in tensor_content or in the one field its dtype reads, and
  there are no more of them than its shape holds; the walk stops at the
  first value or field too many;
- the request has at most MAX_REQUEST_FIELDS fields (inputs, output_filter
  entries, ...), a map entry at most MAX_ENTRY_FIELDS, a shape at most
  MAX_SHAPE_BYTES.

Whatever passes is parsed in pieces of about PIECE_BYTES (each input's
fields in wire order, a long packed run of varints split into shorter
runs), merged into one PredictRequest: the same message protobuf would have
made of the whole, but no single parse call is larger than a piece, or than
one field that protobuf copies at memory speed (tensor_content, a string, a
packed run of floats or doubles).

A smaller message is parsed whole: its decoded size is a bounded multiple of
DIRECT_PARSE_BYTES, and the same checks are made on the parsed tensors
before they are decoded (predict_util.check_input_tensors).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.util import proto_wire, status, tensor_codec
from tensorflow_serving.util.decode_budget import DecodeBudget
from tensorflow_serving.util.proto_wire import LENGTH_DELIMITED, VARINT

DIRECT_PARSE_BYTES = 1 << 20
PIECE_BYTES = 1 << 20
MAX_REQUEST_FIELDS = 1 << 16
MAX_ENTRY_FIELDS = 16
MAX_SHAPE_BYTES = 1 << 16
# Fields an input may carry beyond one per element: its header, repeated.
_SPARE_FIELDS = 16

_REQUEST = predict_pb2.PredictRequest.DESCRIPTOR.fields_by_name
_MODEL_SPEC = _REQUEST["model_spec"].number
_INPUTS = _REQUEST["inputs"].number
_OUTPUT_FILTER = _REQUEST["output_filter"].number
_TENSOR = tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name
_HEADER_NUMBERS = frozenset(_TENSOR[name].number for name in tensor_codec.HEADER_FIELDS)
_DTYPE = _TENSOR["dtype"].number
_SHAPE = _TENSOR["tensor_shape"].number
_CONTENT = _TENSOR["tensor_content"].number
_FIELD_NAMES = {field.number: field.name for field in tensor_pb2.TensorProto.DESCRIPTOR.fields}
# Packed fixed-width value fields: bytes per value.
_FIXED_WIDTH = {"float_val": 4, "double_val": 8}
_VARINT_END = re.compile(rb"[\x00-\x7f]")
# The one-byte tag of a string_val entry.
_STRING_TAG = (_TENSOR["string_val"].number << 3) | LENGTH_DELIMITED


def parse(data: bytes, max_decoded_bytes: int) -> predict_pb2.PredictRequest:
    """The PredictRequest in `data`; INVALID_ARGUMENT if it would decode past the budget
    or breaks a rule of the walk (see the module's docstring).

    `max_decoded_bytes` 0 means no budget; the walk's other rules still hold.
    """
    if len(data) <= DIRECT_PARSE_BYTES:
        return predict_pb2.PredictRequest.FromString(data)
    try:
        return _parse_walked(memoryview(data), DecodeBudget(max_decoded_bytes))
    except proto_wire.WireError as error:
        raise status.invalid_argument(f"Request is not a valid PredictRequest: {error}") from None


def _parse_walked(view: memoryview, budget: DecodeBudget) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    inputs: dict[str, list[proto_wire.Field]] = {}
    for index, field in enumerate(proto_wire.fields(view)):
        if index >= MAX_REQUEST_FIELDS:
            raise status.invalid_argument(
                f"PredictRequest has more than {MAX_REQUEST_FIELDS} fields (inputs, "
                "output_filter entries, ...)"
            )
        if field.wire_type != LENGTH_DELIMITED:
            continue  # not one of ours: protobuf would keep it as an unknown field
        if field.number == _MODEL_SPEC:
            request.model_spec.MergeFromString(view[field.start : field.end])
        elif field.number == _INPUTS:
            alias, values = _map_entry(view, field)
            inputs[alias] = values  # a repeated key: the last entry wins, as in protobuf
        elif field.number == _OUTPUT_FILTER:
            request.output_filter.append(_utf8(view, field, "output_filter"))
    for alias, values in inputs.items():
        tensor = request.inputs[alias]
        for piece in _TensorWalk(view, alias, budget).pieces(values):
            tensor.MergeFromString(piece)
    return request


def _map_entry(view: memoryview, entry: proto_wire.Field) -> tuple[str, list[proto_wire.Field]]:
    """An `inputs` entry: its key, and its TensorProto's occurrences (merged in order)."""
    key = ""
    values = []
    for index, field in enumerate(proto_wire.fields(view, entry.start, entry.end)):
        if index >= MAX_ENTRY_FIELDS:
            raise status.invalid_argument(
                f"An inputs entry has more than {MAX_ENTRY_FIELDS} fields"
            )
        if field.wire_type != LENGTH_DELIMITED:
            continue
        if field.number == 1:
            key = _utf8(view, field, "an inputs key")
        elif field.number == 2:
            values.append(field)
    return key, values


def _utf8(view: memoryview, field: proto_wire.Field, what: str) -> str:
    try:
        return str(view[field.start : field.end], "utf-8")
    except UnicodeDecodeError:
        raise proto_wire.WireError(f"{what} is not valid UTF-8") from None


class _TensorWalk:
    """One input's fields, checked as they come, and the pieces to parse them in."""

    def __init__(self, view: memoryview, alias: str, budget: DecodeBudget):
        self._view = view
        self._alias = alias
        self._budget = budget
        self._dtype = types_pb2.DT_INVALID
        self._shape_bytes = bytearray()
        self._field = ""  # the value field of the dtype, once the header is done
        self._elements = -1  # the shape's element count, once the header is done
        self._values = 0
        self._fields = 0

    def pieces(self, occurrences: list[proto_wire.Field]) -> Iterator[bytes | memoryview]:
        """The input's wire bytes in parseable pieces, each checked before it is handed out."""
        view = self._view
        for occurrence in occurrences:
            piece_start = pos = occurrence.start
            end = occurrence.end
            while pos < end:
                if self._field == "string_val" and view[pos] == _STRING_TAG:
                    pos = self._skip_strings(pos, end, piece_start + PIECE_BYTES)
                else:
                    field = proto_wire.read_field(view, pos, end)
                    self._check(field)
                    if field.end - field.tag_start >= PIECE_BYTES:
                        if field.tag_start > piece_start:
                            yield view[piece_start : field.tag_start]
                        yield from self._split(field)
                        piece_start = field.end
                    pos = field.end
                if pos - piece_start >= PIECE_BYTES:
                    yield view[piece_start:pos]
                    piece_start = pos
            if piece_start < end:
                yield view[piece_start:end]
        if self._elements < 0:
            self._end_header()  # an input with no values: zeros, or an empty tensor

    def _skip_strings(self, pos: int, end: int, stop_at: int) -> int:
        """Counts a run of string_val entries (the shape's worth, plus one to notice more)."""
        room = self._elements - self._values + 1
        pos, count = proto_wire.skip_run(self._view, pos, end, _STRING_TAG, room, stop_at)
        self._fields += count
        self._values += count
        if self._values > self._elements:
            raise self._too_many(f"more than {self._elements} values in string_val")
        return pos

    def _check(self, field: proto_wire.Field) -> None:
        self._fields += 1
        if field.number in _HEADER_NUMBERS:
            self._header_field(field)
            return
        if self._elements < 0:
            self._end_header()
        if self._fields > self._elements + _SPARE_FIELDS:
            raise self._too_many(f"more than {self._elements + _SPARE_FIELDS} fields")
        if field.number == _CONTENT and field.wire_type == LENGTH_DELIMITED:
            return  # its length is checked against the shape once parsed
        name = _FIELD_NAMES.get(field.number, f"field {field.number}")
        if name != self._field:
            raise status.invalid_argument(
                f"Input tensor {self._alias} of dtype {tensor_codec.dtype_name(self._dtype)} "
                f"carries values in {name}; its values go in {self._field}"
            )
        self._values += self._count(field)
        if self._values > self._elements:
            raise self._too_many(f"more than {self._elements} values in {self._field}")

    def _header_field(self, field: proto_wire.Field) -> None:
        if self._elements >= 0:
            raise status.invalid_argument(
                f"Input tensor {self._alias}: its dtype and shape must come before its values "
                f"in a request larger than {DIRECT_PARSE_BYTES} bytes"
            )
        if field.number == _DTYPE and field.wire_type == VARINT:
            self._dtype = field.value
        elif field.number == _SHAPE and field.wire_type == LENGTH_DELIMITED:
            self._shape_bytes += self._view[field.start : field.end]
            if len(self._shape_bytes) > MAX_SHAPE_BYTES:
                raise status.invalid_argument(
                    f"Input tensor {self._alias}: its shape takes more than {MAX_SHAPE_BYTES} bytes"
                )

    def _end_header(self) -> None:
        """The dtype and shape are final: check them and charge the budget."""
        self._field = tensor_codec.value_field(self._dtype)
        shape = tensor_codec.checked_shape(
            tensor_shape_pb2.TensorShapeProto.FromString(bytes(self._shape_bytes))
        )
        self._budget.charge_tensor(self._alias, self._dtype, shape)
        self._elements = math.prod(shape)

    def _too_many(self, what: str) -> status.ServingError:
        return status.invalid_argument(
            f"Input tensor {self._alias} has {what}, but its shape holds {self._elements} elements"
        )

    def _count(self, field: proto_wire.Field) -> int:
        """How many values the field holds: one, or a packed run's worth (counted up to
        one past what the shape still holds)."""
        if field.wire_type != LENGTH_DELIMITED or self._field == "string_val":
            return 1
        size = field.end - field.start
        width = _FIXED_WIDTH.get(self._field)
        if width is not None:
            if size % width:
                raise proto_wire.WireError(f"packed {self._field} of {size} bytes")
            return size // width
        limit = self._elements - self._values + 1
        count = 0
        for start in range(field.start, field.end, PIECE_BYTES):
            run = np.frombuffer(self._view, np.uint8, min(PIECE_BYTES, field.end - start), start)
            count += int(np.count_nonzero(run < 0x80))  # each value's last byte
            if count >= limit:
                break
        return count

    def _split(self, field: proto_wire.Field) -> Iterator[bytes | memoryview]:
        """One large field as pieces: a packed run of varints cut into shorter runs; anything
        else (tensor_content, a string, fixed-width numbers) whole, parsed at memory speed."""
        view = self._view
        if not self._is_varint_run(field):
            yield view[field.tag_start : field.end]
            return
        prefix = proto_wire.tag(field.number, LENGTH_DELIMITED)
        start = field.start
        while start < field.end:
            cut = self._cut(start, field.end)
            yield prefix + proto_wire.varint(cut - start) + view[start:cut]
            start = cut

    def _is_varint_run(self, field: proto_wire.Field) -> bool:
        """A packed run of the dtype's numbers, each a varint."""
        return (
            field.wire_type == LENGTH_DELIMITED
            and self._field not in ("", "string_val", *_FIXED_WIDTH)
            and _FIELD_NAMES.get(field.number) == self._field
        )

    def _cut(self, start: int, end: int) -> int:
        """Where a run piece that begins at `start` ends: after a whole varint near PIECE_BYTES."""
        if end - start <= PIECE_BYTES:
            return end
        match = _VARINT_END.search(self._view, start + PIECE_BYTES - 1, end)
        return end if match is None else match.start() + 1


__all__ = [
    "DIRECT_PARSE_BYTES",
    "MAX_ENTRY_FIELDS",
    "MAX_REQUEST_FIELDS",
    "MAX_SHAPE_BYTES",
    "PIECE_BYTES",
    "parse",
]
