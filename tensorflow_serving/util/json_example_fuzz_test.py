"""Fuzzes the :classify / :regress body decoder (atheris): any bytes.

What `one_input` holds for every input, beyond "only ServingError escapes"
from json_body and json_example: the Input made from a body serializes, and
parses back to an equal Input.
Runs FUZZ_SECONDS (default 25) seconds; see test_util/fuzzing.py.
"""

import sys

from tensorflow_serving.test_util import fuzzing, testing

# What the fuzzer instruments for coverage (with what they import from util/).
MODULES = ("tensorflow_serving.util.json_body", "tensorflow_serving.util.json_example")

SEEDS = [
    b'{"examples": [{"x": 1.0, "y": [1, 2], "z": {"b64": "AA=="}}], "context": {"c": "s"}}',
    b'{"signature_name": "classify_x", "examples": [{"x": [1.5, NaN]}, {"x": true}]}',
    b'{"examples": [{"s": ["a", "b"], "n": 9223372036854775807, "f": 3.4e38}]}',
    b'{"examples": [{}], "context": {"big": 18446744073709551615}}',
]

DICTIONARY = [b'"examples"', b'"context"', *fuzzing.JSON_TOKENS]


def one_input(data: bytes) -> None:
    from tensorflow_serving.apis import input_pb2
    from tensorflow_serving.util import json_body, json_example, status

    try:
        doc = json_body.loads_object(data)
        json_body.signature_name(doc)
        request_input = json_example.input_from_json(doc)
    except status.ServingError:
        return
    again = input_pb2.Input.FromString(request_input.SerializeToString())
    assert again == request_input, (request_input, again)


def test_fuzz_examples_body_decoder(tmp_path, record_property):
    fuzzing.assert_finds_nothing(__file__, tmp_path, SEEDS, DICTIONARY, record_property)


if __name__ == "__main__":
    if fuzzing.is_child():
        fuzzing.fuzz(one_input, MODULES)
    sys.exit(testing.main(__file__))
