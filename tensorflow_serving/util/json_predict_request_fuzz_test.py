"""Fuzzes the :predict body decoder (atheris): any bytes, any signature dtypes.

What `one_input` holds for every input, beyond "only ServingError escapes"
from json_body, json_predict_request and json_to_tensor:
- a decoded tensor has the signature's dtype;
- the fast path and the exact walker agree (same array, or both refuse);
- the decoded tensors can be written back as a predict answer (json_response).
Runs FUZZ_SECONDS (default 25) seconds; see test_util/fuzzing.py.
"""

import sys

import numpy as np
from tensorflow.core.framework import types_pb2

from tensorflow_serving.test_util import fuzzing, testing

_T = types_pb2
# What the fuzzer instruments for coverage (with what they import from util/).
MODULES = (
    "tensorflow_serving.util.json_body",
    "tensorflow_serving.util.json_predict_request",
    "tensorflow_serving.util.json_response",
)
# Input dtypes of the signatures the fuzzer decodes against.
SIGNATURES = [
    {"x": _T.DT_FLOAT},
    {"x": _T.DT_STRING},
    {"f": _T.DT_FLOAT, "i": _T.DT_INT64, "s": _T.DT_STRING},
    {"b": _T.DT_BOOL, "d": _T.DT_DOUBLE, "u": _T.DT_UINT32, "q": _T.DT_UINT64},
    {"a": _T.DT_INT8, "c": _T.DT_UINT8, "e": _T.DT_INT16, "g": _T.DT_INT32},
    {"h": _T.DT_HALF},
]

SEEDS = [
    b'\x00{"instances": [1.0, 2.5, -3]}',
    b'\x00{"inputs": {"x": [[1.0], [NaN]]}, "signature_name": "serving_default"}',
    b'\x01{"instances": [{"b64": "aGVsbG8="}, "plain"]}',
    b'\x02{"instances": [{"f": 1.5, "i": 7, "s": "a"}, {"f": -2, "i": -1, "s": "b"}]}',
    b'\x02{"inputs": {"f": [1e38], "i": [9223372036854775807], "s": [{"b64": "AA"}]}}',
    b'\x03{"inputs": {"b": [true], "d": [1e308], "u": [4294967295], "q": [18446744073709551615]}}',
    b'\x04{"instances": [{"a": -128, "c": 255, "e": 32767, "g": -2147483648}]}',
    b'\x05{"instances": [1.0]}',
]

DICTIONARY = [b'"instances"', b'"inputs"', *fuzzing.JSON_TOKENS]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return a.tolist() == b.tolist()


def one_input(data: bytes) -> None:
    from tensorflow_serving.util import (
        json_body,
        json_predict_request,
        json_response,
        json_to_tensor,
        status,
        tensor_codec,
    )

    if not data:
        return
    dtypes = SIGNATURES[data[0] % len(SIGNATURES)]
    body = data[1:]
    try:
        doc = json_body.loads_object(body)
        json_body.signature_name(doc)
    except status.ServingError:
        return
    try:
        inputs, fmt = json_predict_request.predict_inputs_from_json(doc, dtypes, body)
    except status.ServingError:
        inputs, fmt = None, None
    if inputs is not None:
        for name, array in inputs.items():
            assert array.dtype == tensor_codec.numpy_dtype(dtypes[name]), (name, array.dtype)
        try:
            json_body.loads(json_response.predict_response_json(inputs, fmt))
        except status.ServingError:
            pass
    column = doc.get("inputs")
    if isinstance(column, dict):
        column = next(iter(column.values()), None)
    for dtype in dtypes.values():
        try:
            fast = json_to_tensor.tensor_from_json(column, dtype)
        except status.ServingError:
            fast = None
        try:
            exact = json_to_tensor.tensor_from_json_exact(column, dtype)
        except status.ServingError:
            exact = None
        if fast is not None:
            assert exact is not None and _same(fast, exact), (fast, exact)
        else:
            assert exact is None, exact


def test_fuzz_predict_body_decoder(tmp_path, record_property):
    fuzzing.assert_finds_nothing(__file__, tmp_path, SEEDS, DICTIONARY, record_property)


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
