"""json_tensor: what a REST client sends and reads, checked against upstream's rules."""

import base64
import json
import sys

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import types_pb2

from tensorflow_serving.apis import classification_pb2, regression_pb2
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_tensor, status

FLOAT = types_pb2.DT_FLOAT
DOUBLE = types_pb2.DT_DOUBLE
INT32 = types_pb2.DT_INT32
INT8 = types_pb2.DT_INT8
INT64 = types_pb2.DT_INT64
UINT32 = types_pb2.DT_UINT32
BOOL = types_pb2.DT_BOOL
STRING = types_pb2.DT_STRING
HALF = types_pb2.DT_HALF


def decode(body: str, dtypes: dict[str, int]):
    raw = body.encode()
    doc = json_tensor.loads_object(raw)
    json_tensor.signature_name(doc)
    return json_tensor.predict_inputs_from_json(doc, dtypes, raw)


def error_of(fn, *args) -> status.ServingError:
    with pytest.raises(status.ServingError) as caught:
        fn(*args)
    return caught.value


# -- Floats as upstream writes them -------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (3.0, "3.0"),  # whole floats keep ".0"
        (2.5, "2.5"),
        (0.1, "0.1"),  # six digits suffice for this float32
        (0.123456789, "0.123456791"),  # else nine, not the shortest repr
        (1234567.0, "1234567.0"),
        (9e6, "9e+06"),
        (1e-5, "1e-05"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_format_float_matches_upstream_text(value, text):
    assert json_tensor.format_float(value) == text


def test_answers_parse_to_the_numbers_upstreams_text_parses_to():
    values = np.array([3.0, 0.1, 0.123456789, 1234567.0, 9e6, 1e-5, 1.0000005, 2.5e-40], np.float32)
    body = json_tensor.predict_response_json({"y": values}, json_tensor.RequestFormat.COLUMNAR)
    ours = json.loads(body)["outputs"]
    upstream = [float(json_tensor.format_float(float(v))) for v in values]
    assert ours == upstream
    assert b"3.0" in body  # a whole float is not written as the integer 3


def test_large_outputs_use_the_same_digits_as_small_ones():
    rng = np.random.default_rng(1)
    values = (rng.standard_normal(5000) * 10.0 ** rng.integers(-20, 20, 5000)).astype(np.float32)
    values[:4] = [0.0, -0.0, 16777216.0, 32.00390625]
    big = json_tensor.float32_as_upstream_doubles(values)
    one_by_one = [float(json_tensor.format_float(float(v))) for v in values]
    assert big.tolist() == one_by_one


def test_each_slice_of_a_batch_is_answered_as_if_it_were_alone():
    """Answers of one batch are slices of one array, converted once for all."""
    rng = np.random.default_rng(2)
    for index in range(4):  # fresh batches: a stale conversion would show up
        batch = (rng.standard_normal((32, 10)) * 10.0 ** rng.integers(-8, 8, (32, 10))).astype(
            np.float32
        )
        if index % 2:  # a NaN after a finite batch: the cached finiteness must not carry over
            batch[5, :3] = [0.0, 16777216.0, np.nan]
        batch.flags.writeable = False  # as the batching layer hands them out
        for rows in ((5, 6), (0, 1), (1, 4), (4, 5), (31, 32)):  # the NaN row first
            view = batch[rows[0] : rows[1]]
            alone = view.copy()
            for fmt in json_tensor.RequestFormat:
                assert json_tensor.predict_response_json(
                    {"y": view}, fmt
                ) == json_tensor.predict_response_json({"y": alone}, fmt)


def test_an_answer_that_straddles_rows_of_a_batch_is_written_from_its_own_values():
    batch = np.arange(320, dtype=np.float32).reshape(32, 10) / 7
    batch.flags.writeable = False
    fmt = json_tensor.RequestFormat.ROW
    json_tensor.predict_response_json({"y": batch[0:1]}, fmt)  # the batch's rows are cached
    straddling = batch.reshape(-1)[5:15].reshape(1, 10)  # same batch, same width, not a row
    assert json_tensor.predict_response_json({"y": straddling}, fmt) == (
        json_tensor.predict_response_json({"y": straddling.copy()}, fmt)
    )


def test_non_finite_outputs_are_bare_tokens():
    values = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    body = json_tensor.predict_response_json({"y": values}, json_tensor.RequestFormat.ROW)
    assert body.replace(b" ", b"") == b'{"predictions":[1.0,NaN,Infinity,-Infinity]}'


def test_double_outputs_keep_full_precision():
    value = 0.1234567890123
    body = json_tensor.predict_response_json(
        {"y": np.array([value])}, json_tensor.RequestFormat.ROW
    )
    assert json.loads(body)["predictions"] == [value]


def test_a_slice_of_a_writable_array_is_converted_afresh_after_the_array_changes():
    batch = np.full((40, 1), 0.5, np.float32)
    fmt = json_tensor.RequestFormat.ROW
    assert json.loads(json_tensor.predict_response_json({"y": batch[3:4]}, fmt)) == {
        "predictions": [[0.5]]
    }
    batch[3, 0] = 2.25
    assert json.loads(json_tensor.predict_response_json({"y": batch[3:4]}, fmt)) == {
        "predictions": [[2.25]]
    }


# -- Requests: row and columnar formats, typed by the signature -----------------


def test_row_format_single_input_uses_the_signature_dtype():
    inputs, fmt = decode('{"instances": [1, 2.5, 3]}', {"x": FLOAT})
    assert fmt is json_tensor.RequestFormat.ROW
    assert inputs["x"].dtype == np.float32
    assert inputs["x"].tolist() == [1.0, 2.5, 3.0]


def test_columnar_format_named_inputs_with_different_batch_sizes():
    inputs, fmt = decode(
        '{"inputs": {"a": [[1, 2], [3, 4]], "b": ["x", "y", "z"], "extra": 1}}',
        {"a": INT64, "b": STRING},
    )
    assert fmt is json_tensor.RequestFormat.COLUMNAR
    assert inputs["a"].dtype == np.int64 and inputs["a"].shape == (2, 2)
    assert inputs["b"].tolist() == [b"x", b"y", b"z"]


def test_row_format_list_of_objects_batches_each_input():
    inputs, _ = decode(
        '{"instances": [{"tag": "foo", "signal": [1, 2], "sensor": [[1, 2], [3, 4]]},'
        ' {"tag": "bar", "signal": [3, 4], "sensor": [[4, 5], [6, 8]]}]}',
        {"tag": STRING, "signal": INT32, "sensor": FLOAT},
    )
    assert inputs["tag"].tolist() == [b"foo", b"bar"]
    assert inputs["signal"].dtype == np.int32 and inputs["signal"].shape == (2, 2)
    assert inputs["sensor"].shape == (2, 2, 2)


def test_scalar_columnar_input():
    inputs, _ = decode('{"inputs": 7}', {"x": INT32})
    assert inputs["x"].shape == () and inputs["x"] == 7


def test_nan_and_infinity_tokens_are_accepted_for_floats():
    inputs, _ = decode('{"instances": [NaN, Infinity, -Infinity, 1]}', {"x": FLOAT})
    x = inputs["x"]
    assert np.isnan(x[0]) and x[1] == np.inf and x[2] == -np.inf and x[3] == 1.0


def test_b64_strings_round_trip():
    payload = bytes(range(256))
    encoded = base64.b64encode(payload).decode()
    inputs, _ = decode(f'{{"instances": [{{"b64": "{encoded}"}}]}}', {"x": STRING})
    assert inputs["x"].tolist() == [payload]
    body = json_tensor.predict_response_json(
        {"out_bytes": inputs["x"]}, json_tensor.RequestFormat.ROW
    )
    assert json.loads(body) == {"predictions": [{"b64": encoded}]}


def test_text_outputs_are_plain_strings():
    body = json_tensor.predict_response_json(
        {"label": np.array([b"cat", b"dog"], dtype=object)},
        json_tensor.RequestFormat.COLUMNAR,
    )
    assert json.loads(body) == {"outputs": ["cat", "dog"]}


def test_row_answer_with_several_outputs_is_a_list_of_objects():
    outputs = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([[1, 2], [3, 4]], np.int64)}
    row = json.loads(json_tensor.predict_response_json(outputs, json_tensor.RequestFormat.ROW))
    col = json.loads(json_tensor.predict_response_json(outputs, json_tensor.RequestFormat.COLUMNAR))
    assert row == {"predictions": [{"a": 1.0, "b": [1, 2]}, {"a": 2.0, "b": [3, 4]}]}
    assert col == {"outputs": {"a": [1.0, 2.0], "b": [[1, 2], [3, 4]]}}


def test_row_answer_needs_a_common_batch_size():
    outputs = {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}
    error = error_of(json_tensor.predict_response_json, outputs, json_tensor.RequestFormat.ROW)
    assert error.message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"
    error = error_of(
        json_tensor.predict_response_json,
        {"s": np.float32(1.0) * np.ones(())},
        json_tensor.RequestFormat.ROW,
    )
    assert "has no shape information" in error.message


# -- Request errors, with upstream's words -------------------------------------


@pytest.mark.parametrize(
    "body, dtypes, expected",
    [
        ("", {"x": FLOAT}, "JSON Parse error: The document is empty"),
        ("instances = [1]", {"x": FLOAT}, "JSON Parse error"),
        ("[1, 2]", {"x": FLOAT}, "Is not object"),
        ('{"instances": [1], "inputs": [1]}', {"x": FLOAT}, "expecting only one of 'inputs'"),
        ('{"instances": 1}', {"x": FLOAT}, "Excepting 'instances' to be an list/array"),
        ('{"instances": []}', {"x": FLOAT}, "No values in 'instances' array"),
        ('{"signature_name": 1, "inputs": 1}', {"x": FLOAT}, "'signature_name' key must be"),
        ('{"foo": 1}', {"x": FLOAT}, "Missing 'inputs' or 'instances' key"),
        (
            '{"instances": ["a"]}',
            {"x": FLOAT},
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        ('{"inputs": [1.5]}', {"x": INT32}, "Type: Number is not of expected type: int32"),
        ('{"inputs": [true, 1]}', {"x": INT32}, "Type: True is not of expected type: int32"),
        ('{"inputs": [1, true]}', {"x": FLOAT}, "Type: True is not of expected type: float"),
        ('{"inputs": [16777217]}', {"x": FLOAT}, "to float without loss of precision"),
        ('{"inputs": [-1]}', {"x": UINT32}, "is not of expected type: uint32"),
        ('{"inputs": [[1, 2], [3]]}', {"x": FLOAT}, "Encountered list at unexpected size: 1"),
        ('{"inputs": [[1, 2], 3]}', {"x": FLOAT}, "found at incorrect level: 2"),
        ('{"inputs": [1, [2]]}', {"x": FLOAT}, "Encountered list at unexpected level: 1"),
        ('{"inputs": {"a": 1}}', {"a": FLOAT, "b": FLOAT}, "Missing named input: b"),
        ('{"inputs": [1]}', {"a": FLOAT, "b": FLOAT}, "inputs is a plain value/list"),
        ('{"instances": [1]}', {"a": FLOAT, "b": FLOAT}, "instances is a plain list"),
        ('{"inputs": [{"b64": "!!"}]}', {"x": STRING}, "Unable to base64 decode"),
        ('{"inputs": [{"b64": 1}]}', {"x": STRING}, "not formatted correctly for base64 data"),
        ('{"inputs": [1.0]}', {"x": HALF}, "Conversion of JSON Value: 1.0 to type: half"),
        (
            '{"instances": [[1, 2], [3]]}',
            {"x": FLOAT},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 2 but got: 1",
        ),
        (
            '{"instances": [{"a": 1, "b": 2}, {"a": 1}]}',
            {"a": FLOAT, "b": FLOAT},
            "Failed to process element: 1 of 'instances' list. JSON object:",
        ),
        (
            '{"instances": [{"a": 1, "c": 2}]}',
            {"a": FLOAT, "b": FLOAT},
            "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
            "JSON object: does not have named input: c",
        ),
        (
            '{"instances": [{"a": 1}, [1]]}',
            {"a": FLOAT},
            "Expecting object but got list at item 1 of input list",
        ),
    ],
)
def test_bad_requests_fail_with_upstreams_message(body, dtypes, expected):
    error = error_of(decode, body, dtypes)
    assert expected in error.message
    assert error.http_status() in (400, 501)


def test_narrow_ints_wrap_like_upstreams_cast():
    inputs, _ = decode('{"inputs": [300, -1]}', {"x": INT8})
    assert inputs["x"].dtype == np.int8 and inputs["x"].tolist() == [44, -1]


def test_bools_feed_bool_inputs():
    inputs, _ = decode('{"instances": [true, false]}', {"x": BOOL})
    assert inputs["x"].dtype == np.bool_ and inputs["x"].tolist() == [True, False]


def test_doubles_take_exact_big_integers():
    inputs, _ = decode('{"inputs": [9007199254740991]}', {"x": DOUBLE})
    assert inputs["x"].tolist() == [9007199254740991.0]
    error = error_of(decode, '{"inputs": [9007199254740993]}', {"x": DOUBLE})
    assert "to double without loss of precision" in error.message


# -- The fast path never disagrees with the exact walker ------------------------

_leaves = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
_nested = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(
    value=_nested,
    dtype=st.sampled_from([FLOAT, DOUBLE, INT32, INT8, INT64, UINT32, BOOL, STRING]),
)
def test_fast_path_agrees_with_exact_conversion(value, dtype):
    def run(fn):
        try:
            array = fn()
            return ("ok", array.dtype, array.shape, array.tolist())
        except status.ServingError as error:
            return ("error", error.code)

    fast = run(lambda: json_tensor.tensor_from_json(value, dtype, may_have_bools=True))
    exact = run(lambda: json_tensor.tensor_from_json_exact(value, dtype))
    if fast[0] == "ok" and exact[0] == "ok" and dtype in (FLOAT, DOUBLE):
        assert fast[:3] == exact[:3]
        np.testing.assert_array_equal(np.array(fast[3]), np.array(exact[3]))
    else:
        assert fast == exact


def test_body_without_bools_skips_the_walker_and_still_agrees():
    body = orjson.dumps({"instances": [[0.5, 1, 2], [3, 4.25, 5]]})
    inputs, _ = json_tensor.predict_inputs_from_json(orjson.loads(body), {"x": FLOAT}, body)
    assert inputs["x"].tolist() == [[0.5, 1.0, 2.0], [3.0, 4.25, 5.0]]


# -- Classify / Regress --------------------------------------------------------


def test_examples_with_context_become_tf_examples():
    doc = json.loads(
        '{"context": {"c": "shared"}, "examples": [{"x": 1.5, "n": [1, 2], "flag": true,'
        ' "img": {"b64": "aGk="}}, {"x": [2.0, 3.0]}]}'
    )
    request_input = json_tensor.input_from_json(doc)
    with_context = request_input.example_list_with_context
    assert with_context.context.features.feature["c"].bytes_list.value == [b"shared"]
    first = with_context.examples[0].features.feature
    assert list(first["x"].float_list.value) == [1.5]
    assert list(first["n"].int64_list.value) == [1, 2]
    assert list(first["flag"].int64_list.value) == [1]
    assert list(first["img"].bytes_list.value) == [b"hi"]
    assert list(with_context.examples[1].features.feature["x"].float_list.value) == [2.0, 3.0]


@pytest.mark.parametrize(
    "doc, expected",
    [
        (
            {"examples": [{"x": [1, 2.5]}]},
            "Unexpected element type in feature: x expecting type: int64",
        ),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"examples": [{"x": [[1]]}]}, "unexpected JSON type: Array"),
        ({"examples": [1]}, "Example must be JSON object but got JSON Number"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": {}}, "Expecting 'examples' value to be an list/array"),
        ({"foo": 1}, "key 'examples' is expected and was not found"),
        ({"examples": [{"x": 2**63}]}, "Feature: x has uint64 element. Only int64 is supported."),
    ],
)
def test_bad_examples_fail_with_upstreams_message(doc, expected):
    assert expected in error_of(json_tensor.input_from_json, doc).message


def test_classification_and_regression_results():
    result = classification_pb2.ClassificationResult()
    classes = result.classifications.add().classes
    classes.add(label="a", score=0.1)
    classes.add(label="", score=3.0)
    assert json.loads(json_tensor.classification_response_json(result)) == {
        "results": [[["a", 0.1], ["", 3.0]]]
    }
    regression = regression_pb2.RegressionResult()
    regression.regressions.add(value=42.0)
    regression.regressions.add(value=0.123456789)
    body = json_tensor.regression_response_json(regression)
    assert body == b'{"results":[42.0,0.123456791]}'


# -- Hostile bodies: a clear 400, never an exception the server did not expect ------


@pytest.mark.parametrize(
    "body,words",
    [
        ('{"instances": [1e400]}', "Number too big to be stored in double: 1e400"),
        ('{"instances": [NaN, -1e999]}', "Number too big to be stored in double: -1e999"),
        ('{"instances": [1' + "0" * 5000 + "]}", "Number too big to be stored in double"),
        ('{"instances": ["\\ud800"]}', "surrogate pair in string is invalid"),
        ('{"instances": [NaN], "\\udfff": 1}', "surrogate pair in string is invalid"),
        ('{"inputs": ' + "[" * 100 + "1" + "]" * 100 + "}", "nested 100 levels deep"),
        ('{"instances": ' + "[" * 65 + "1" + "]" * 65 + "}", "nested 65 levels deep"),
        ('{"inputs": ' + "[" * 900 + '"a"' + "]" * 900 + "}", "nested 900 levels deep"),
        ('{"inputs": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ],
)
def test_hostile_bodies_are_invalid_argument_naming_the_problem(body, words):
    error = error_of(decode, body, {"x": FLOAT})
    assert error.code.name == "INVALID_ARGUMENT"
    assert words in error.message


def test_big_integers_beyond_64_bits_are_doubles_as_in_rapidjson():
    inputs, _ = decode('{"instances": [NaN, 123456789012345678901234567890]}', {"x": DOUBLE})
    assert inputs["x"][1] == 1.2345678901234568e29


def test_a_valid_surrogate_pair_still_decodes_with_nan_in_the_body():
    inputs, _ = decode('{"instances": ["\\ud83d\\ude00"], "n": NaN}', {"x": STRING})
    assert inputs["x"].tolist() == ["\U0001f600".encode()]


def test_error_messages_quote_at_most_a_few_kilobytes_of_the_request():
    body = '{"instances": "no", "pad": [' + ",".join(["1.5"] * 200000) + "]}"
    error = error_of(decode, body, {"x": FLOAT})
    assert "Excepting 'instances' to be an list/array" in error.message
    assert len(error.message) < json_tensor.MAX_VALUE_TEXT + 200
    assert "(truncated)" in error.message


def test_error_json_survives_a_lone_surrogate_in_the_message():
    assert json.loads(json_tensor.error_json("bad name \ud800")) == {"error": "bad name \ud800"}


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
