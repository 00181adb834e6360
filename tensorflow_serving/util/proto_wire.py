"""Reading the protobuf wire format field by field, without building a message.

For looking at a large message before protobuf parses it (predict_request_wire):
each field is a tag (field number and wire type), then a varint, 8 or 4 fixed
bytes, or a length and that many bytes. Nothing here copies a payload; a
field's payload is reported as a (start, end) span of the buffer.

Malformed input (a truncated varint or payload, a varint of more than ten
bytes, a wire type protobuf does not use, field number 0) raises WireError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = range(6)
_MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One field: its number and wire type, the span of its payload, and its varint value.

    For a length-delimited field the span is the payload after the length;
    for a varint it covers the varint's bytes and `value` is its value (0
    for the other wire types); fixed-width fields span their 4 or 8 bytes.
    `tag_start` is where the field's tag begins.
    """

    number: int
    wire_type: int
    start: int
    end: int
    value: int = 0
    tag_start: int = 0


def read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it; WireError if malformed or past `end`."""
    result = 0
    shift = 0
    for index in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        byte = data[index]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, index + 1
        shift += 7
    raise WireError(f"malformed varint at byte {pos}")


def fields(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message held in data[start:end], in wire order."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        field = read_field(data, pos, end)
        yield field
        pos = field.end


def read_field(data: bytes | memoryview, pos: int, end: int) -> Field:
    """The field whose tag starts at `pos` (the message ends at `end`)."""
    tag_start = pos
    tag, pos = read_varint(data, pos, end)
    number, wire_type = tag >> 3, tag & 7
    if number == 0:
        raise WireError(f"field number 0 at byte {tag_start}")
    value = 0
    if wire_type == VARINT:
        value, after = read_varint(data, pos, end)
    elif wire_type == LENGTH_DELIMITED:
        length, pos = read_varint(data, pos, end)
        after = pos + length
    elif wire_type == FIXED64:
        after = pos + 8
    elif wire_type == FIXED32:
        after = pos + 4
    else:
        raise WireError(f"unsupported wire type {wire_type} at byte {tag_start}")
    if after > end:
        raise WireError(f"field {number} at byte {tag_start} runs past the message's end")
    return Field(number, wire_type, pos, after, value, tag_start)


def skip_run(
    data: bytes | memoryview, pos: int, end: int, tag_byte: int, max_count: int, stop_at: int
) -> tuple[int, int]:
    """Skips the length-delimited fields with one-byte tag `tag_byte` that follow at `pos`.

    Stops before the first other field, after `max_count` fields, or at the
    first field boundary at or past `stop_at`. Returns the position reached
    and how many fields it skipped. The fast way over a repeated bytes field
    (a tensor's string_val): one short loop per entry, no Field objects.
    """
    count = 0
    while pos < end and pos < stop_at and count < max_count and data[pos] == tag_byte:
        if pos + 1 >= end:
            raise WireError(f"field at byte {pos} runs past the message's end")
        length = data[pos + 1]
        if length < 0x80:
            pos += 2 + length
        else:
            length, after_length = read_varint(data, pos + 1, end)
            pos = after_length + length
        count += 1
    if pos > end:
        raise WireError("a length-delimited field runs past the message's end")
    return pos, count


def tag(number: int, wire_type: int) -> bytes:
    """The encoded tag of field `number` with `wire_type`."""
    return varint((number << 3) | wire_type)


def varint(value: int) -> bytes:
    """`value` (>= 0) encoded as a varint."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


__all__ = [
    "FIXED32",
    "FIXED64",
    "LENGTH_DELIMITED",
    "VARINT",
    "Field",
    "WireError",
    "fields",
    "read_field",
    "read_varint",
    "skip_run",
    "tag",
    "varint",
]
