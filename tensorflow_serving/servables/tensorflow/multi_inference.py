"""MultiInference: several classify/regress signatures of one model on one Input."""

from __future__ import annotations

from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow import classifier, regressor
from tensorflow_serving.servables.tensorflow.predict_util import fill_model_spec
from tensorflow_serving.util import status

_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"


def check_tasks(request: inference_pb2.MultiInferenceRequest) -> None:
    """Upstream's checks of the tasks, made before the model is looked up."""
    if not request.tasks:
        raise status.invalid_argument("Expected at least one task in MultiInferenceRequest.")
    names = {task.model_spec.name for task in request.tasks}
    if len(names) != 1:
        raise status.invalid_argument(
            "All ModelSpecs in a MultiInferenceRequest must access the same model name."
        )
    seen: set[str] = set()
    for task in request.tasks:
        key = task.model_spec.signature_name or "serving_default"
        if key in seen:
            raise status.invalid_argument(f"Duplicate evaluation of signature: {key}")
        seen.add(key)
        if task.method_name not in (_CLASSIFY, _REGRESS):
            raise status.unimplemented(f"Unsupported signature method_name: {task.method_name}")


def multi_inference_response(
    handle: ServableHandle, request: inference_pb2.MultiInferenceRequest
) -> inference_pb2.MultiInferenceResponse:
    """Runs every task (checked by check_tasks) on `handle`'s version and the same input."""
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        result = response.results.add()
        signature_name = task.model_spec.signature_name
        if task.method_name == _CLASSIFY:
            answer, key = classifier.classify(handle, signature_name, request.input)
            result.classification_result.CopyFrom(answer)
        else:
            answer, key = regressor.regress(handle, signature_name, request.input)
            result.regression_result.CopyFrom(answer)
        fill_model_spec(result.model_spec, handle.name, handle.version, key)
    return response
