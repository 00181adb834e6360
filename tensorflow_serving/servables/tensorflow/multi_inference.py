"""MultiInference: several classify/regress signatures of one model on one Input."""

from __future__ import annotations

from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.servables.tensorflow import classifier, regressor
from tensorflow_serving.servables.tensorflow.predict_util import fill_model_spec
from tensorflow_serving.util import status

_CLASSIFY = "tensorflow/serving/classify"
_REGRESS = "tensorflow/serving/regress"


def _check_tasks(request: inference_pb2.MultiInferenceRequest) -> None:
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


def run_multi_inference(core, request: inference_pb2.MultiInferenceRequest):
    """Runs every task on the same servable version and input."""
    _check_tasks(request)
    response = inference_pb2.MultiInferenceResponse()
    with core.servable_handle(request.tasks[0].model_spec) as handle:
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
