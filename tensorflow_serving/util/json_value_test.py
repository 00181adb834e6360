"""json_value: JSON values named and quoted in upstream's words, and its shared checks."""

import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_value, status


@pytest.mark.parametrize(
    "value, name",
    [(None, "Null"), (True, "True"), (False, "False"), ({}, "Object"), ([], "Array")]
    + [("a", "String"), (1, "Number"), (1.5, "Number")],
)
def test_json_type_names_are_upstreams(value, name):
    assert json_value.json_type_name(value) == name


@pytest.mark.parametrize(
    "value, text",
    [
        (0.5, "0.5"),  # a float32: upstream's float text
        (0.1234567890123, "0.12345678901230001"),  # not a float32: a double
        ("a", '"a"'),
        ({"a": [1, "x"]}, '{\n    "a": [\n        1,\n        "x"\n    ]\n}'),
    ],
)
def test_values_are_quoted_as_upstream_quotes_them(value, text):
    assert json_value.value_to_string(value) == text


def test_error_messages_quote_at_most_a_few_kilobytes_of_the_request():
    doc = {"instances": "no", "pad": [1.5] * 200000}
    error = json_value.format_error(doc, "Excepting 'instances' to be an list/array")
    assert error.code.name == "INVALID_ARGUMENT"
    assert error.message.endswith("(truncated) Excepting 'instances' to be an list/array")
    assert len(error.message) < json_value.MAX_VALUE_TEXT + 200


def test_a_value_nested_too_deeply_to_encode_is_quoted_from_its_start():
    deep: list = []
    for _ in range(100000):
        deep = [deep]
    assert json_value.value_to_string(deep).endswith("... (truncated)")


def test_b64_objects_decode_with_or_without_padding():
    assert json_value.decode_base64_object({"b64": "aGk="}) == b"hi"
    assert json_value.decode_base64_object({"b64": "aGk"}) == b"hi"
    assert not json_value.is_base64_object({"b64": "aGk", "other": 1})
    with pytest.raises(status.ServingError, match="Unable to base64 decode"):
        json_value.decode_base64_object({"b64": "!!"})
    with pytest.raises(status.ServingError, match="not formatted correctly for base64 data"):
        json_value.decode_base64_object({"b64": 1})


@pytest.mark.parametrize(
    "value, lossless",
    [
        (16777215, True),  # the largest integer a float32 holds exactly
        (16777216, False),
        (1.5, True),
        (3.5e38, False),  # beyond FLT_MAX
        (float("nan"), True),
    ],
)
def test_lossless_float_check_is_upstreams(value, lossless):
    assert json_value.is_lossless(value, json_value.FLOAT_MAX_INT, json_value.FLT_MAX) is lossless


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
