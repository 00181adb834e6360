"""The gRPC PredictionService: a thin transport over the handlers."""

from __future__ import annotations

from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.model_servers.grpc_status_util import answer_later, grpc_method
from tensorflow_serving.servables.tensorflow import (
    classifier,
    get_model_metadata_impl,
    multi_inference,
    predict_util,
    regressor,
)


class PredictionServiceImpl(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core):
        self._core = core

    def Predict(self, request, context):
        if hasattr(context, "deferred_reply"):
            # InlineGrpcServer: a batched Predict frees this thread while it
            # waits; the thread that runs the batch sends the answer.
            return answer_later(
                "Predict",
                request,
                context,
                lambda done: predict_util.run_predict_then(self._core, request, done),
            )
        return self._predict(request, context)

    @grpc_method("Predict")
    def _predict(self, request, context):
        return predict_util.run_predict(self._core, request)

    @grpc_method("Classify")
    def Classify(self, request, context):
        return classifier.run_classify(self._core, request)

    @grpc_method("Regress")
    def Regress(self, request, context):
        return regressor.run_regress(self._core, request)

    @grpc_method("MultiInference")
    def MultiInference(self, request, context):
        return multi_inference.run_multi_inference(self._core, request)

    @grpc_method("GetModelMetadata")
    def GetModelMetadata(self, request, context):
        return get_model_metadata_impl.run_get_model_metadata(self._core, request)
