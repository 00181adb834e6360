"""json_example: the tf.Examples of a :classify / :regress body, with upstream's errors."""

import json
import sys

import pytest

from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_example, status


def test_examples_with_context_become_tf_examples():
    doc = json.loads(
        '{"context": {"c": "shared"}, "examples": [{"x": 1.5, "n": [1, 2], "flag": true,'
        ' "img": {"b64": "aGk="}}, {"x": [2.0, 3.0]}]}'
    )
    request_input = json_example.input_from_json(doc)
    with_context = request_input.example_list_with_context
    assert with_context.context.features.feature["c"].bytes_list.value == [b"shared"]
    first = with_context.examples[0].features.feature
    assert list(first["x"].float_list.value) == [1.5]
    assert list(first["n"].int64_list.value) == [1, 2]
    assert list(first["flag"].int64_list.value) == [1]
    assert list(first["img"].bytes_list.value) == [b"hi"]
    assert list(with_context.examples[1].features.feature["x"].float_list.value) == [2.0, 3.0]


def test_examples_without_context_are_an_example_list():
    request_input = json_example.input_from_json({"examples": [{"x": "a"}, {"x": -3}]})
    examples = request_input.example_list.examples
    assert [e.features.feature["x"].WhichOneof("kind") for e in examples] == [
        "bytes_list",
        "int64_list",
    ]
    assert not request_input.HasField("example_list_with_context")


@pytest.mark.parametrize(
    "doc, expected",
    [
        (
            {"examples": [{"x": [1, 2.5]}]},
            "Unexpected element type in feature: x expecting type: int64",
        ),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"examples": [{"x": [[1]]}]}, "unexpected JSON type: Array"),
        ({"examples": [{"x": {"a": 1}}]}, "unexpected JSON type: Object"),
        ({"examples": [{"x": 1e39}]}, "Cannot convert JSON value: 1e+39 to float without loss"),
        ({"examples": [1]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [{}], "context": "c"}, "Example must be JSON object but got JSON String"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": {}}, "Expecting 'examples' value to be an list/array"),
        ({"foo": 1}, "key 'examples' is expected and was not found"),
        ({"examples": [{"x": 2**63}]}, "Feature: x has uint64 element. Only int64 is supported."),
    ],
)
def test_bad_examples_fail_with_upstreams_message(doc, expected):
    with pytest.raises(status.ServingError) as caught:
        json_example.input_from_json(doc)
    assert expected in caught.value.message
    assert caught.value.code.name == "INVALID_ARGUMENT"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
