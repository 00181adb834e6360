"""json_predict_request: the tensors of a :predict body, in row or columnar format."""

import base64
import sys

import numpy as np
import orjson
import pytest
from tensorflow.core.framework.types_pb2 import (
    DT_BOOL,
    DT_DOUBLE,
    DT_FLOAT,
    DT_HALF,
    DT_INT32,
    DT_INT64,
    DT_STRING,
)

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_body, json_predict_request

ROW = json_predict_request.RequestFormat.ROW
COLUMNAR = json_predict_request.RequestFormat.COLUMNAR


def decode(body: str, dtypes: dict[str, int]):
    """What the REST handler does with a :predict body."""
    raw = body.encode()
    doc = json_body.loads_object(raw)
    json_body.signature_name(doc)
    return json_predict_request.predict_inputs_from_json(doc, dtypes, raw)


def test_row_format_single_input_uses_the_signature_dtype():
    inputs, fmt = decode('{"instances": [1, 2.5, 3]}', {"x": DT_FLOAT})
    assert fmt is ROW
    assert inputs["x"].dtype == np.float32
    assert inputs["x"].tolist() == [1.0, 2.5, 3.0]


def test_columnar_format_named_inputs_with_different_batch_sizes():
    inputs, fmt = decode(
        '{"inputs": {"a": [[1, 2], [3, 4]], "b": ["x", "y", "z"], "extra": 1}}',
        {"a": DT_INT64, "b": DT_STRING},
    )
    assert fmt is COLUMNAR
    assert inputs["a"].dtype == np.int64 and inputs["a"].shape == (2, 2)
    assert inputs["b"].tolist() == [b"x", b"y", b"z"]


def test_row_format_list_of_objects_batches_each_input():
    inputs, _ = decode(
        '{"instances": [{"tag": "foo", "signal": [1, 2], "sensor": [[1, 2], [3, 4]]},'
        ' {"tag": "bar", "signal": [3, 4], "sensor": [[4, 5], [6, 8]]}]}',
        {"tag": DT_STRING, "signal": DT_INT32, "sensor": DT_FLOAT},
    )
    assert inputs["tag"].tolist() == [b"foo", b"bar"]
    assert inputs["signal"].dtype == np.int32 and inputs["signal"].shape == (2, 2)
    assert inputs["sensor"].shape == (2, 2, 2)


def test_scalar_columnar_input():
    inputs, _ = decode('{"inputs": 7}', {"x": DT_INT32})
    assert inputs["x"].shape == () and inputs["x"] == 7


def test_nan_and_infinity_tokens_are_accepted_for_floats():
    inputs, _ = decode('{"instances": [NaN, Infinity, -Infinity, 1]}', {"x": DT_FLOAT})
    x = inputs["x"]
    assert np.isnan(x[0]) and x[1] == np.inf and x[2] == -np.inf and x[3] == 1.0


def test_b64_instances_feed_raw_bytes():
    payload = bytes(range(256))
    encoded = base64.b64encode(payload).decode()
    inputs, _ = decode(f'{{"instances": [{{"b64": "{encoded}"}}]}}', {"x": DT_STRING})
    assert inputs["x"].tolist() == [payload]


def test_bools_feed_bool_inputs():
    inputs, _ = decode('{"instances": [true, false]}', {"x": DT_BOOL})
    assert inputs["x"].dtype == np.bool_ and inputs["x"].tolist() == [True, False]


def test_big_integers_beyond_64_bits_feed_doubles():
    inputs, _ = decode('{"instances": [NaN, 123456789012345678901234567890]}', {"x": DT_DOUBLE})
    assert inputs["x"][1] == 1.2345678901234568e29


def test_body_without_bools_skips_the_walker_and_still_agrees():
    body = orjson.dumps({"instances": [[0.5, 1, 2], [3, 4.25, 5]]})
    inputs, _ = json_predict_request.predict_inputs_from_json(
        orjson.loads(body), {"x": DT_FLOAT}, body
    )
    assert inputs["x"].tolist() == [[0.5, 1.0, 2.0], [3.0, 4.25, 5.0]]


@pytest.mark.parametrize(
    "body, dtypes, expected",
    [
        ('{"instances": [1], "inputs": [1]}', {"x": DT_FLOAT}, "expecting only one of 'inputs'"),
        ('{"instances": 1}', {"x": DT_FLOAT}, "Excepting 'instances' to be an list/array"),
        ('{"instances": []}', {"x": DT_FLOAT}, "No values in 'instances' array"),
        ('{"foo": 1}', {"x": DT_FLOAT}, "Missing 'inputs' or 'instances' key"),
        (
            '{"instances": ["a"]}',
            {"x": DT_FLOAT},
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        ('{"inputs": [1.5]}', {"x": DT_INT32}, "Type: Number is not of expected type: int32"),
        ('{"inputs": [true, 1]}', {"x": DT_INT32}, "Type: True is not of expected type: int32"),
        ('{"inputs": [1, true]}', {"x": DT_FLOAT}, "Type: True is not of expected type: float"),
        ('{"inputs": [16777217]}', {"x": DT_FLOAT}, "to float without loss of precision"),
        ('{"inputs": [[1, 2], [3]]}', {"x": DT_FLOAT}, "Encountered list at unexpected size: 1"),
        ('{"inputs": {"a": 1}}', {"a": DT_FLOAT, "b": DT_FLOAT}, "Missing named input: b"),
        ('{"inputs": [1]}', {"a": DT_FLOAT, "b": DT_FLOAT}, "inputs is a plain value/list"),
        ('{"instances": [1]}', {"a": DT_FLOAT, "b": DT_FLOAT}, "instances is a plain list"),
        ('{"inputs": [{"b64": "!!"}]}', {"x": DT_STRING}, "Unable to base64 decode"),
        ('{"inputs": [{"b64": 1}]}', {"x": DT_STRING}, "not formatted correctly for base64 data"),
        ('{"inputs": [1.0]}', {"x": DT_HALF}, "Conversion of JSON Value: 1.0 to type: half"),
        (
            '{"instances": [[1, 2], [3]]}',
            {"x": DT_FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 2 but got: 1",
        ),
        (
            '{"instances": [[[1, 2]], [[3], [4]]]}',
            {"x": DT_FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting shape [1,2] but got: [2,1]",
        ),
        (
            '{"instances": [{"a": 1, "b": 2}, {"a": 1}]}',
            {"a": DT_FLOAT, "b": DT_FLOAT},
            "Failed to process element: 1 of 'instances' list. JSON object:",
        ),
        (
            '{"instances": [{"a": 1, "c": 2}]}',
            {"a": DT_FLOAT, "b": DT_FLOAT},
            "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON object: does not have named input: c",
        ),
        (
            '{"instances": [{"a": 1}, [1]]}',
            {"a": DT_FLOAT},
            "Expecting object but got list at item 1 of input list",
        ),
        (
            '{"instances": [1, {"a": 1}]}',
            {"a": DT_FLOAT},
            "Expecting value/list but got object at item 1 of input list",
        ),
        (
            '{"inputs": ' + "[" * 100 + "1" + "]" * 100 + "}",
            {"x": DT_FLOAT},
            "nested 100 levels deep",
        ),
        (
            '{"instances": ' + "[" * 65 + "1" + "]" * 65 + "}",
            {"x": DT_FLOAT},
            "nested 65 levels deep",
        ),
        ('{"inputs": ' + "[" * 900 + '"a"' + "]" * 900 + "}", {"x": DT_FLOAT}, "nested 900 levels"),
    ],
)
def test_bad_requests_fail_with_upstreams_message(body, dtypes, expected):
    error = testing.serving_error(decode, body, dtypes)
    assert expected in error.message
    assert error.http_status() in (400, 501)


def test_signature_input_dtypes_maps_aliases_to_dtypes():
    class Spec:
        def __init__(self, dtype):
            self.dtype = dtype

    class Signature:
        inputs = {"a": Spec(DT_FLOAT), "b": Spec(DT_STRING)}

    assert json_predict_request.signature_input_dtypes(Signature()) == {
        "a": DT_FLOAT,
        "b": DT_STRING,
    }


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
