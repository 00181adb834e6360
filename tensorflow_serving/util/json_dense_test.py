"""json_dense: takes only bodies whose tensor it reads exactly as the general decoder does."""

import json
import random
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import (
    json_body,
    json_dense,
    json_predict_request,
    json_to_tensor,
    status,
)

FLOAT = types_pb2.DT_FLOAT
DOUBLE = types_pb2.DT_DOUBLE
INT32 = types_pb2.DT_INT32


def general(body: bytes, dtype: int):
    """(signature name, tensor, format) from the general decoder, or its error."""
    try:
        doc = json_body.loads_object(body)
        name = json_body.signature_name(doc)
        inputs, fmt = json_predict_request.predict_inputs_from_json(doc, {"x": dtype}, body)
    except status.ServingError as error:
        return error
    return name, inputs["x"], fmt


def dense(body: bytes, dtype: int):
    """(signature name, tensor, format) from json_dense, or None where it declines."""
    decoded = json_dense.decode(body)
    if decoded is None:
        return None
    tensor = json_to_tensor.dense_tensor(decoded.values, dtype)
    if tensor is None:
        return None
    return decoded.signature_name, tensor, decoded.format


def assert_same_as_general(body: bytes, dtype: int) -> bool:
    """If json_dense takes the body, its tensor is the general decoder's, bit for bit."""
    mine = dense(body, dtype)
    if mine is None:
        return False
    theirs = general(body, dtype)
    assert not isinstance(theirs, status.ServingError), (body, theirs)
    assert mine[0] == theirs[0] and mine[2] is theirs[2], (body, mine, theirs)
    assert mine[1].dtype == theirs[1].dtype and mine[1].shape == theirs[1].shape, body
    assert mine[1].tobytes() == theirs[1].tobytes(), body
    return True


def body_of(document) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


MNIST_ROW = [round(random.Random(7).random(), 6) if i % 5 == 0 else 0.0 for i in range(784)]


@pytest.mark.parametrize(
    "document, shape",
    [
        ({"signature_name": "predict_images", "instances": [MNIST_ROW]}, (1, 784)),
        ({"instances": [MNIST_ROW, MNIST_ROW, MNIST_ROW]}, (3, 784)),
        ({"instances": [1.0, 2.5, -3]}, (3,)),
        ({"inputs": [[1, 2], [3, 4]], "signature_name": ""}, (2, 2)),
        ({"inputs": [0.5]}, (1,)),
    ],
)
def test_common_bodies_are_taken_and_read_as_the_general_decoder_reads_them(document, shape):
    body = body_of(document)
    for dtype in (FLOAT, DOUBLE):
        assert assert_same_as_general(body, dtype)
    assert json_dense.decode(body).values.shape == shape


def test_whole_numbers_and_minus_zero_become_what_numpy_makes_of_python_ints():
    body = b'{"instances": [[-0, 0, 16777215, -16777215, 1.5, -0.0]]}'
    assert assert_same_as_general(body, FLOAT)
    values = json_dense.decode(body).values[0]
    assert not np.signbit(values[0]) and np.signbit(values[5])  # "-0" is the integer 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [[1, 2]], "instances": [[3, 4]]}',  # repeated key: orjson keeps the last
        b'{"instances": [[1]], "extra": 1}',
        b'{"instances": [[1]], "inputs": [[1]]}',  # an error for the general decoder
        b'{"instances": [[1, [2]]]}',  # a list inside a row
        b'{"instances": [[1, 2], [3]]}',  # ragged
        b'{"instances": [[1], 2]}',
        b'{"instances": [[[1]]]}',  # rank 3: the general decoder is as fast there
        b'{"instances": []}',
        b'{"instances": [[]]}',
        b'{"instances": [[true, 1]]}',
        b'{"instances": [[null]]}',
        b'{"instances": [["1"]]}',
        b'{"instances": [{"x": [1]}]}',
        b'{"inputs": {"x": [1]}}',
        b'{"instances": 1}',
        b'{"signature_name": 1, "instances": [1]}',
        b'{"signature_name": "a[b", "instances": [1]}',
        b'{"signature_name": "\\u0061", "instances": [1]}',  # escapes: the general decoder
        b'\xef\xbb\xbf{"instances": [1]}',  # a byte-order mark: orjson refuses it
        b' {"instances": [1]}',
        b'{"instances": [1e400]}',
        b'{"instances": [1] x',
        b"[1]",
        b"",
    ],
)
def test_anything_unusual_is_left_to_the_general_decoder(body):
    assert json_dense.decode(body) is None


def test_values_beyond_what_the_dtype_holds_exactly_are_left_to_the_walker():
    values = json_dense.decode(b'{"instances": [[16777216, 1]]}').values
    assert json_to_tensor.dense_tensor(values, FLOAT) is None
    assert json_to_tensor.dense_tensor(values, DOUBLE) is not None
    assert json_to_tensor.dense_tensor(values, INT32) is None  # 1 and 1.0 are no longer told apart


def test_a_body_over_the_size_limit_is_left_to_the_general_decoder():
    row = [0.5] * (json_dense.MAX_BODY_BYTES // 4)
    assert json_dense.decode(body_of({"instances": [row]})) is None


def test_a_refused_body_does_not_spoil_the_next_one():
    assert json_dense.decode(b'{"instances": [[1, 2]]}') is not None
    parser = json_dense._parsers.parser
    assert json_dense.decode(b'{"instances": [[1, true]]}') is None
    assert json_dense.decode(b'{"instances": [["a"]]}') is None
    assert json_dense.decode(b'{"instances": [[1, 2]]}').values.tolist() == [[1.0, 2.0]]
    assert json_dense._parsers.parser is parser  # kept: refusals are common for string models


numbers = st.one_of(
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(-1e6, 1e6, width=32),
    st.sampled_from([0, -0.0, 0.0, 16777215, 16777216, 9007199254740993]),
)
leaves = st.one_of(numbers, st.booleans(), st.none(), st.just("s"))
tensors = st.recursive(
    st.lists(leaves, max_size=4), lambda inner: st.lists(inner, max_size=4), max_leaves=12
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "signature_name": st.one_of(st.text(max_size=3), st.integers(0, 2)),
        "instances": tensors,
        "inputs": st.one_of(tensors, numbers),
        "other": st.just(1),
    },
)


@settings(max_examples=600, deadline=None)
@given(documents, st.sampled_from([FLOAT, DOUBLE]))
def test_every_body_it_takes_reads_as_the_general_decoder_reads_it(document, dtype):
    assert_same_as_general(body_of(document), dtype)


def test_mutated_bodies_it_takes_read_as_the_general_decoder_reads_them():
    """Byte-level damage to a real body: json_dense never accepts what orjson would refuse."""
    base = body_of({"signature_name": "s", "instances": [[0.5, 1, 2.5e-3, -0.0], [3, 4, 5, 6]]})
    pieces = [b"\xef\xbb\xbf", b"\x00", b"\t", b"\\", b'"', b",", b"[", b"]", b"{", b"}", b":",
              b"-", b"+", b".", b"e", b"0", b"true", b"NaN", b"\xff", b"\\ud800", b" "]  # fmt: skip
    rng = random.Random(3)
    taken = 0
    for _ in range(20000):
        body = bytearray(base)
        for _ in range(rng.randint(1, 2)):
            at = rng.randint(0, len(body) - 1)
            if rng.random() < 0.6:
                body[at:at] = rng.choice(pieces)
            else:
                del body[at]
        taken += assert_same_as_general(bytes(body), FLOAT)
    assert taken > 100  # the harmless mutations (spaces, digits) were taken and compared


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
