"""proto_wire reads what protobuf writes, field by field, and refuses malformed bytes."""

import sys

import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import proto_wire


def test_fields_are_read_in_wire_order_with_their_payload_spans():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"ab", b""])
    proto.tensor_shape.dim.add(size=2)
    data = proto.SerializeToString()
    fields = list(proto_wire.fields(data))
    assert [(f.number, f.wire_type) for f in fields] == [(1, 0), (2, 2), (8, 2), (8, 2)]
    assert fields[0].value == types_pb2.DT_STRING
    assert [data[f.start : f.end] for f in fields[2:]] == [b"ab", b""]
    assert fields[2].tag_start == fields[1].end


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**64 - 1])
def test_varints_round_trip(value):
    encoded = proto_wire.varint(value)
    assert proto_wire.read_varint(encoded, 0, len(encoded)) == (value, len(encoded))


@pytest.mark.parametrize(
    "data",
    [
        b"\x08",  # a varint field without its value
        b"\x08" + b"\xff" * 11,  # a varint longer than ten bytes
        b"\x12\x05abc",  # a payload longer than the message
        b"\x0b",  # a group (wire type 3)
        b"\x00\x01",  # field number 0
    ],
)
def test_malformed_bytes_raise_wire_error(data):
    with pytest.raises(proto_wire.WireError):
        list(proto_wire.fields(data))


def test_skip_run_counts_one_tags_fields_and_stops_where_asked():
    entries = b"".join(proto_wire.tag(8, 2) + proto_wire.varint(n) + b"x" * n for n in (0, 3, 200))
    data = entries + proto_wire.tag(1, 0) + b"\x01"
    assert proto_wire.skip_run(data, 0, len(data), 0x42, 10, len(data)) == (len(entries), 3)
    assert proto_wire.skip_run(data, 0, len(data), 0x42, 2, len(data)) == (7, 2)
    assert proto_wire.skip_run(data, 0, len(data), 0x42, 10, 1) == (2, 1)
    with pytest.raises(proto_wire.WireError):
        proto_wire.skip_run(entries[:-1], 0, len(entries) - 1, 0x42, 10, len(entries))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
