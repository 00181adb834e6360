"""Predict checks requests the way upstream does and answers with typed fields."""

import sys
import threading

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.batching.batching_session import BatchingOptions, BatchingServable
from tensorflow_serving.batching.shared_batch_scheduler import SharedBatchScheduler
from tensorflow_serving.servables.tensorflow import predict_util
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status, tensor_codec

X = np.array([[1.0], [2.0]], np.float32)


def test_default_signature_and_all_outputs(model):
    signature, out = predict_util.predict(model, "", {"x": X})
    assert signature.key == "serving_default"
    np.testing.assert_allclose(out["y"].ravel(), [2.5, 3.0])


def test_missing_and_extra_inputs_are_named(model):
    with pytest.raises(status.ServingError) as raised:
        predict_util.predict(model, "", {"z": X})
    assert raised.value.http_status() == 400
    assert "Send extra: {z}. Missing but required: {x}." in raised.value.message


def test_wrong_dtype_is_invalid_argument(model):
    with pytest.raises(status.ServingError, match="to be float but double is provided"):
        predict_util.predict(model, "", {"x": X.astype(np.float64)})


def test_output_filter(model):
    with pytest.raises(status.ServingError, match="output tensor alias not found"):
        predict_util.predict(model, "", {"x": X}, ["nope"])
    with pytest.raises(status.ServingError, match="duplicate output tensor alias"):
        predict_util.predict(model, "", {"x": X}, ["y", "y"])


def test_run_predict_fills_model_spec_and_float_val(model):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(X, request.inputs["x"])
    response = predict_util.run_predict(model, request)
    assert response.model_spec.name == "hp"
    assert response.model_spec.version.value == model.version
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs["y"].float_val) == [2.5, 3.0]


class CountingHandle:
    """A one-model core whose handle counts how many holds are open."""

    def __init__(self, handle, servable=None):
        self.name, self.version = handle.name, handle.version
        self.servable = servable or handle.servable
        self.open = 0

    def servable_handle(self, model_spec):
        return self

    def __enter__(self):
        self.open += 1
        return self

    def __exit__(self, *exc):
        self.open -= 1


def predict_request(values) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.asarray(values, np.float32), request.inputs["x"])
    return request


class Answer:
    def __init__(self) -> None:
        self.came = threading.Event()
        self.response = self.error = None

    def __call__(self, response, error) -> None:
        self.response, self.error = response, error
        self.came.set()


def test_run_predict_then_on_a_plain_servable_answers_before_returning(model):
    core = CountingHandle(model)
    answer = Answer()
    predict_util.run_predict_then(core, predict_request(X), answer)
    assert answer.came.is_set() and answer.error is None
    assert answer.response == predict_util.run_predict(model, predict_request(X))
    assert core.open == 0, "the version is released once the answer is built"


def test_run_predict_then_with_batching_answers_from_the_batch_and_releases(model):
    scheduler = SharedBatchScheduler(1)
    try:
        batching = BatchingServable(model.servable, scheduler, BatchingOptions())
        core = CountingHandle(model, batching)
        answers = [Answer() for _ in range(3)]
        for i, answer in enumerate(answers):
            predict_util.run_predict_then(core, predict_request([[float(i)]]), answer)
        for i, answer in enumerate(answers):
            assert answer.came.wait(10) and answer.error is None
            assert list(answer.response.outputs["y"].float_val) == [i / 2 + 2]
            assert answer.response.model_spec.version.value == model.version
        assert core.open == 0
    finally:
        scheduler.stop()


def test_run_predict_then_raises_bad_requests_before_queueing(model):
    scheduler = SharedBatchScheduler(1)
    try:
        batching = BatchingServable(model.servable, scheduler, BatchingOptions())
        core = CountingHandle(model, batching)
        request = predict_request(X)
        request.inputs["z"].CopyFrom(request.inputs["x"])
        answer = Answer()
        with pytest.raises(status.ServingError, match="Send extra: {z}"):
            predict_util.run_predict_then(core, request, answer)
        assert not answer.came.is_set()
        assert core.open == 0
    finally:
        scheduler.stop()


def test_run_predict_then_passes_a_failed_batch_to_the_caller(model):
    class Failing:
        signatures = model.servable.signatures
        meta_graph_def = model.servable.meta_graph_def
        export_dir = model.servable.export_dir

        def signature(self, key):
            return model.servable.signature(key)

        def run(self, signature, inputs, output_aliases):
            raise status.internal("the model broke")

    scheduler = SharedBatchScheduler(1)
    try:
        core = CountingHandle(model, BatchingServable(Failing(), scheduler, BatchingOptions()))
        answer = Answer()
        predict_util.run_predict_then(core, predict_request(X), answer)
        assert answer.came.wait(10)
        assert answer.response is None and answer.error.message == "the model broke"
        assert core.open == 0
    finally:
        scheduler.stop()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
