"""json_body: request bodies parse as upstream's parser parses them, errors in its words."""

import math
import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_body, json_pieces


def test_nan_and_infinity_tokens_are_accepted():
    doc = json_body.loads_object(b'{"instances": [NaN, Infinity, -Infinity, 1]}')
    nan, inf, minus_inf, one = doc["instances"]
    assert math.isnan(nan) and inf == math.inf and minus_inf == -math.inf and one == 1


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"instances = [1]", "JSON Parse error"),
        (b"[1, 2]", "Is not object"),
        (b'{"instances": [1e400]}', "Number too big to be stored in double: 1e400"),
        (b'{"instances": [NaN, -1e999]}', "Number too big to be stored in double: -1e999"),
        (b'{"instances": [1' + b"0" * 5000 + b"]}", "Number too big to be stored in double"),
        (b'{"instances": ["\\ud800"]}', "surrogate pair in string is invalid"),
        (b'{"instances": [NaN], "\\udfff": 1}', "surrogate pair in string is invalid"),
        (b'{"a": NaN, "b": "\xff"}', "Invalid encoding in string. at offset: 17"),
        (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    ],
)
def test_bad_bodies_are_invalid_argument_naming_the_problem(body, words):
    error = testing.serving_error(json_body.loads_object, body)
    assert error.code.name == "INVALID_ARGUMENT"
    assert words in error.message


def test_big_integers_beyond_64_bits_are_doubles_as_in_rapidjson():
    doc = json_body.loads(b"[NaN, 123456789012345678901234567890, 18446744073709551615]")
    assert doc[1] == 1.2345678901234568e29 and isinstance(doc[1], float)
    assert doc[2] == 18446744073709551615 and isinstance(doc[2], int)


def test_a_valid_surrogate_pair_still_decodes_with_nan_in_the_body():
    doc = json_body.loads_object(b'{"instances": ["\\ud83d\\ude00"], "n": NaN}')
    assert doc["instances"] == ["\U0001f600"]


def test_signature_name_is_optional_and_must_be_a_string():
    assert json_body.signature_name({"inputs": 1}) == ""
    assert json_body.signature_name({"signature_name": "s", "inputs": 1}) == "s"
    error = testing.serving_error(json_body.signature_name, {"signature_name": 1, "inputs": 1})
    assert "'signature_name' key must be a string value." in error.message


def test_a_body_that_would_parse_past_the_budget_is_refused_before_parsing():
    body = b'{"instances": [' + b",".join([b"[]"] * 1000) + b"]}"
    estimate = json_body.parsed_size_estimate(body)
    assert estimate >= 1000 * (json_body.VALUE_BYTES + json_body.CONTAINER_BYTES)
    assert json_body.loads_object(body, estimate)["instances"] == [[]] * 1000
    error = testing.serving_error(json_body.loads_object, body, estimate - 1)
    assert error.code.name == "INVALID_ARGUMENT"
    assert error.message == (
        f"JSON body of {len(body)} bytes takes {estimate} bytes once decoded; a request may "
        f"decode to at most {estimate - 1} bytes (--max_decoded_request_bytes)"
    )


def test_a_large_body_is_parsed_in_pieces_with_the_same_value_and_errors(monkeypatch):
    monkeypatch.setattr(json_body, "WHOLE_PARSE_BYTES", 16)
    monkeypatch.setattr(json_pieces, "PIECE_BYTES", 16)
    body = b'{"signature_name": "s", "instances": [[1, 2], [3, 4], [5, 6], [NaN, 7]]}'
    doc = json_body.loads_object(body)
    assert doc["instances"][:3] == [[1, 2], [3, 4], [5, 6]] and math.isnan(doc["instances"][3][0])
    error = testing.serving_error(json_body.loads_object, body.replace(b"[5", b"[x"))
    assert error.message == "JSON Parse error: Expecting value at offset: 55"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
