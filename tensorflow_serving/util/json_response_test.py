"""json_response: answers read as the stock server's do, batched or not."""

import base64
import json
import sys

import numpy as np
import pytest

from tensorflow_serving.apis import classification_pb2, regression_pb2
from tensorflow_serving.batching.batch_outputs import BatchOutputs
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import json_float, json_predict_request, json_response

ROW = json_predict_request.RequestFormat.ROW
COLUMNAR = json_predict_request.RequestFormat.COLUMNAR
answer = json_response.predict_response_json


# -- Predict answers -----------------------------------------------------------


def test_answers_parse_to_the_numbers_upstreams_text_parses_to():
    values = np.array([3.0, 0.1, 0.123456789, 1234567.0, 9e6, 1e-5, 1.0000005, 2.5e-40], np.float32)
    body = answer({"y": values}, COLUMNAR)
    ours = json.loads(body)["outputs"]
    upstream = [float(json_float.format_float(float(v))) for v in values]
    assert ours == upstream
    assert b"3.0" in body  # a whole float is not written as the integer 3


def test_non_finite_outputs_are_bare_tokens():
    values = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    body = answer({"y": values}, ROW)
    assert body.replace(b" ", b"") == b'{"predictions":[1.0,NaN,Infinity,-Infinity]}'


def test_double_outputs_keep_full_precision():
    value = 0.1234567890123
    assert json.loads(answer({"y": np.array([value])}, ROW))["predictions"] == [value]


def test_bytes_outputs_are_b64_and_text_outputs_are_plain_strings():
    payload = bytes(range(256))
    body = answer({"out_bytes": np.array([payload], dtype=object)}, ROW)
    assert json.loads(body) == {"predictions": [{"b64": base64.b64encode(payload).decode()}]}
    body = answer({"label": np.array([b"cat", b"dog"], dtype=object)}, COLUMNAR)
    assert json.loads(body) == {"outputs": ["cat", "dog"]}


def test_row_answer_with_several_outputs_is_a_list_of_objects():
    outputs = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([[1, 2], [3, 4]], np.int64)}
    row = json.loads(answer(outputs, ROW))
    col = json.loads(answer(outputs, COLUMNAR))
    assert row == {"predictions": [{"a": 1.0, "b": [1, 2]}, {"a": 2.0, "b": [3, 4]}]}
    assert col == {"outputs": {"a": [1.0, 2.0], "b": [[1, 2], [3, 4]]}}


def test_row_answer_needs_a_common_batch_size():
    outputs = {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)}
    error = testing.serving_error(answer, outputs, ROW)
    assert error.message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"
    error = testing.serving_error(answer, {"s": np.float32(1.0) * np.ones(())}, ROW)
    assert "has no shape information" in error.message
    assert "empty tensor map" in testing.serving_error(answer, {}, COLUMNAR).message


# -- Predict answers of a batch's rows (OutputRows) ----------------------------


def batch_of(**outputs: np.ndarray) -> BatchOutputs:
    return BatchOutputs(outputs)


def assert_each_slice_answers_as_if_alone(batch: BatchOutputs, ranges) -> None:
    """Each task's answer is the answer to a plain dict of copies of the same rows."""
    for start, stop in ranges:
        rows = batch.slice(start, stop)
        alone = {alias: array[start:stop].copy() for alias, array in batch.outputs.items()}
        for fmt in (ROW, COLUMNAR):
            assert answer(rows, fmt) == answer(alone, fmt), (start, stop, fmt)


def noisy(rng, shape) -> np.ndarray:
    return (rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 8, shape)).astype(np.float32)


RANGES = [(5, 6), (0, 1), (1, 4), (4, 5), (6, 20), (31, 32), (0, 32)]


def test_each_task_of_a_2d_float_batch_gets_the_answer_to_its_own_rows():
    rng = np.random.default_rng(2)
    for _ in range(3):
        assert_each_slice_answers_as_if_alone(batch_of(y=noisy(rng, (32, 10))), RANGES)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_batch_with_nan_or_infinity_answers_each_task_as_if_alone(bad):
    y = noisy(np.random.default_rng(3), (32, 10))
    y[5, :3] = [0.0, 16777216.0, bad]  # only row 5 is not finite
    batch = batch_of(y=y)
    assert_each_slice_answers_as_if_alone(batch, RANGES)
    body = answer(batch.slice(5, 6), ROW)
    assert b"NaN" in body or b"Infinity" in body  # bare tokens, as upstream writes them


@pytest.mark.parametrize(
    "shape",
    [(32,), (32, 1), (32, 2, 3), (32, 0), (32, 1, 1, 1)],
    ids=["1-D", "one column", "3-D", "no columns", "4-D"],
)
def test_batches_not_2d_answer_each_task_as_if_alone(shape):
    y = noisy(np.random.default_rng(5), shape)
    assert_each_slice_answers_as_if_alone(batch_of(y=y), RANGES)


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float64, np.int32, np.int64, np.uint8, np.bool_], ids=str
)
def test_batches_of_other_dtypes_answer_each_task_as_if_alone(dtype):
    y = (np.random.default_rng(6).standard_normal((32, 4)) * 100).astype(dtype)
    assert_each_slice_answers_as_if_alone(batch_of(y=y), RANGES)


def test_batches_of_several_outputs_answer_each_task_as_if_alone():
    rng = np.random.default_rng(7)
    scores = noisy(rng, (32, 10))
    scores[7, 1] = np.nan
    batch = batch_of(
        scores=scores,
        classes=np.arange(32 * 3, dtype=np.int64).reshape(32, 3),
        label=np.array([f"l{i}".encode() for i in range(32)], dtype=object),
        image_bytes=np.array([bytes([i, 255]) for i in range(32)], dtype=object),
        prob=noisy(rng, (32,)),
    )
    assert_each_slice_answers_as_if_alone(batch, RANGES)


def test_an_empty_slice_answers_as_empty_rows_do():
    batch = batch_of(y=noisy(np.random.default_rng(8), (4, 3)))
    assert_each_slice_answers_as_if_alone(batch, [(2, 2)])


def test_a_batch_is_converted_once_whatever_the_number_of_its_answers(monkeypatch):
    """The floats of a batch are converted for the whole batch, not once per task."""
    converted = []

    def counting(array):
        converted.append(np.shape(array))
        return json_float.float32_as_upstream_doubles(array)

    monkeypatch.setattr(json_response, "float32_as_upstream_doubles", counting)
    rng = np.random.default_rng(9)
    for y in (noisy(rng, (32, 10)), noisy(rng, (32,))):
        converted.clear()
        batch = batch_of(y=y)
        for start in range(32):
            answer(batch.slice(start, start + 1), ROW)
        assert converted == [y.shape]


# -- Classify, regress and errors ------------------------------------------------


def test_classification_and_regression_results():
    result = classification_pb2.ClassificationResult()
    classes = result.classifications.add().classes
    classes.add(label="a", score=0.1)
    classes.add(label="", score=3.0)
    assert json.loads(json_response.classification_response_json(result)) == {
        "results": [[["a", 0.1], ["", 3.0]]]
    }
    regression = regression_pb2.RegressionResult()
    regression.regressions.add(value=42.0)
    regression.regressions.add(value=0.123456789)
    body = json_response.regression_response_json(regression)
    assert body == b'{"results":[42.0,0.123456791]}'


def test_empty_results_are_invalid_argument():
    empty = classification_pb2.ClassificationResult()
    assert (
        "empty" in testing.serving_error(json_response.classification_response_json, empty).message
    )
    empty = regression_pb2.RegressionResult()
    assert "empty" in testing.serving_error(json_response.regression_response_json, empty).message


def test_error_json_survives_a_lone_surrogate_in_the_message():
    assert json.loads(json_response.error_json("bad name \ud800")) == {"error": "bad name \ud800"}


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
