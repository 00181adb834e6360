"""The tf.Examples of a :classify or :regress body (upstream: json_tensor.cc, api_rest.md).

    {"signature_name": "...", "context": {...}, "examples": [{...}, ...]}

Each example is an object of features; a feature is one value or a list of
values. A value's JSON type picks the feature's kind (integers and bools an
int64_list, other numbers a float_list, strings and `{"b64": "..."}` a
bytes_list), and a list keeps to the kind of its first value. With
"context", the examples and the shared context travel as an
ExampleListWithContext, else as an ExampleList. Errors carry upstream's
messages.
"""

from __future__ import annotations

from typing import Any

from tensorflow.core.example import example_pb2, feature_pb2

from tensorflow_serving.apis import input_pb2
from tensorflow_serving.util import status
from tensorflow_serving.util.json_value import (
    FLOAT_MAX_INT,
    FLT_MAX,
    INT64_RANGE,
    UINT64_RANGE,
    decode_base64_object,
    format_error,
    is_base64_object,
    is_lossless,
    json_type_name,
    lossy_error,
)

CONTEXT_KEY = "context"
EXAMPLES_KEY = "examples"

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}


def input_from_json(doc: dict) -> input_pb2.Input:
    """The tf.Examples (and context) of a classify or regress request's document.

    `doc` is the parsed body (json_body.loads_object). Raises INVALID_ARGUMENT
    with upstream's message for a missing, empty or non-list "examples", an
    example that is not an object, or a feature whose values do not make one
    list of one kind.
    """
    result = input_pb2.Input()
    has_context = CONTEXT_KEY in doc
    if has_context:
        _fill_example(doc[CONTEXT_KEY], result.example_list_with_context.context)
    if EXAMPLES_KEY not in doc:
        raise format_error(
            doc, "When method is classify, key 'examples' is expected and was not found"
        )
    examples = doc[EXAMPLES_KEY]
    if not isinstance(examples, list):
        raise format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise format_error(doc, "'examples' value is an empty array")
    target = (
        result.example_list_with_context.examples if has_context else result.example_list.examples
    )
    for value in examples:
        _fill_example(value, target.add())
    return result


def _fill_example(value: Any, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise status.invalid_argument(
            f"Example must be JSON object but got JSON {json_type_name(value)}"
        )
    features = example.features.feature
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else (content,):
            _add_to_feature(item, name, feature)
        features[name].CopyFrom(feature)


def _add_to_feature(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    def require(kind: str) -> None:
        current = feature.WhichOneof("kind")
        if current is not None and current != kind:
            raise status.invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[current]}"
            )

    if value is None or isinstance(value, list):
        raise status.invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_type_name(value)}"
        )
    if isinstance(value, bool):
        require("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        if not is_base64_object(value):
            raise status.invalid_argument(
                f"Feature: {name} has element with unexpected JSON type: Object"
            )
        require("bytes_list")
        feature.bytes_list.value.append(decode_base64_object(value))
    elif isinstance(value, str):
        require("bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, int) and INT64_RANGE[0] <= value <= UINT64_RANGE[1]:
        require("int64_list")
        if value > INT64_RANGE[1]:
            raise status.invalid_argument(
                f"Feature: {name} has uint64 element. Only int64 is supported."
            )
        feature.int64_list.value.append(value)
    else:
        require("float_list")
        if not is_lossless(value, FLOAT_MAX_INT, FLT_MAX):
            raise lossy_error(value, "float")
        feature.float_list.value.append(float(value))


__all__ = ["CONTEXT_KEY", "EXAMPLES_KEY", "input_from_json"]
