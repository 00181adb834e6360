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

DICTIONARY = [
    b'"examples"',
    b'"context"',
    b'"signature_name"',
    b'{"b64": "',
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"16777217",
    b"9223372036854775808",
    b"\\ud800",
    b"true",
    b"null",
    b"[[",
]


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
    result = fuzzing.run(__file__, tmp_path, SEEDS, DICTIONARY)
    print(f"json_example fuzzing: {result.runs} inputs in {fuzzing.seconds()} s")
    record_property("fuzz_inputs", result.runs)  # in Bazel's test.xml
    assert result.returncode == 0 and not result.crashes, result.report()
    assert result.runs > 100, result.report()


def test_a_planted_bug_is_found_and_reported(tmp_path):
    """The harness can fail: an exception planted behind a marker is found and its input kept."""
    result = fuzzing.run(__file__, tmp_path, SEEDS, DICTIONARY, planted_bug=b'"b64"')
    assert result.returncode != 0, result.report()
    assert "planted bug" in result.output, result.report()
    assert any(b'"b64"' in crash.read_bytes() for crash in result.crashes), result.report()


if __name__ == "__main__":
    if fuzzing.is_child():
        fuzzing.fuzz(one_input, MODULES)
    sys.exit(testing.main(__file__))
