"""MultiInference runs several signatures of one model on one input."""

import sys

import pytest

from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.servables.tensorflow import multi_inference
from tensorflow_serving.servables.tensorflow.classifier_test import examples
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def run_multi_inference(handle, request):
    """As the servers do: the tasks are checked, then run on the version."""
    multi_inference.check_tasks(request)
    return multi_inference.multi_inference_response(handle, request)


def request(*tasks, names=None):
    req = inference_pb2.MultiInferenceRequest(input=examples(2.0))
    for i, (signature, method) in enumerate(tasks):
        task = req.tasks.add(method_name=method)
        task.model_spec.name = names[i] if names else "hp"
        task.model_spec.signature_name = signature
    return req


def test_classify_and_regress_in_one_request(model):
    response = run_multi_inference(
        model, request(("classify_x_to_y", CLASSIFY), ("regress_x_to_y2", REGRESS))
    )
    first, second = response.results
    assert first.classification_result.classifications[0].classes[0].score == 3.0
    assert second.regression_result.regressions[0].value == 4.0
    assert second.model_spec.signature_name == "regress_x_to_y2"


def test_rejects_mixed_models_duplicates_and_unknown_methods(model):
    with pytest.raises(status.ServingError, match="same model name"):
        run_multi_inference(
            model,
            request(("classify_x_to_y", CLASSIFY), ("regress_x_to_y", REGRESS), names=["a", "b"]),
        )
    with pytest.raises(status.ServingError, match="Duplicate evaluation of signature"):
        run_multi_inference(
            model, request(("regress_x_to_y", REGRESS), ("regress_x_to_y", REGRESS))
        )
    with pytest.raises(status.ServingError, match="Unsupported signature method_name"):
        run_multi_inference(model, request(("serving_default", "predict")))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
