"""The gRPC PredictionService: a thin transport over the DataPlane.

Each method turns its request into a Call and a Work and returns the
DataPlane's future of the response; the gRPC server sends the answer when
the future is done (InlineGrpcServer natively; grpcio through
grpc_status_util.FutureResponses), with a ServingError's code and message
on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.core import request_logger
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.model_servers.data_plane import Call, DataPlane, SyncWork, Work
from tensorflow_serving.servables.tensorflow import (
    classifier,
    get_model_metadata_impl,
    multi_inference,
    predict_util,
    regressor,
)
from tensorflow_serving.servables.tensorflow import util as servable_util
from tensorflow_serving.util import predict_request_wire, request_deadline
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.executors import Runner

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


class PredictWork(Work):
    """A PredictRequest: tensors checked against the version's signature, then decoded;
    a PredictResponse after the run (numbers in tensor_content with `as_tensor_content`)."""

    __slots__ = ("_request", "_max_decoded_bytes", "_signature", "_as_tensor_content", "_inputs")

    def __init__(
        self,
        request: predict_pb2.PredictRequest,
        max_decoded_bytes: int = 0,
        as_tensor_content: bool = False,
    ):
        self._request = request
        self._max_decoded_bytes = max_decoded_bytes
        self._signature = None
        self._as_tensor_content = as_tensor_content
        self._inputs = None

    def start(self, handle: ServableHandle, runner: Runner) -> Completion:
        request = self._request
        signature = predict_util.predict_signature(
            handle.servable, request.model_spec.signature_name
        )
        shapes = predict_util.check_input_tensors(
            signature, request.inputs, handle.name, self._max_decoded_bytes
        )
        self._inputs = predict_util.decode_inputs(request, shapes)
        self._signature = signature
        self.signature_name = signature.key
        return predict_util.submit_checked(
            handle, signature, self._inputs, request.output_filter, runner
        )

    def logged(self, value):
        return self._signature.key, self._inputs, value

    def finish(self, handle: ServableHandle, value) -> predict_pb2.PredictResponse:
        return predict_util.predict_response(
            handle, self._signature, value, self._as_tensor_content
        )


class ExamplesWork(SyncWork):
    """A Classify, Regress or MultiInference request: `run(handle)` answers it; a sampled
    one is logged (logging_config) as the request and response, under `log_kind`."""

    def __init__(
        self,
        run: Callable[[ServableHandle], Any],
        request: Any,
        log_kind: str,
        check: Callable[[], None] | None = None,
    ):
        super().__init__(run, check)
        self._request = request
        self._log_kind = log_kind
        self.example_count = servable_util.num_input_examples(request.input)

    def logged(self, value) -> request_logger.ExamplesRecord:
        return request_logger.ExamplesRecord(self._log_kind, self._request, value)


def grpc_call(api: str, model_spec: model_pb2.ModelSpec, context: grpc.ServicerContext) -> Call:
    """A Call with the client's deadline."""
    return Call(api, model_spec, request_deadline.after(context.time_remaining()))


class PredictionServiceImpl(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Every method returns a Completion of its response.

    `max_decoded_bytes` bounds what a Predict's tensors may decode to (0: no
    limit); the server also parses large Predict messages with
    `decode_predict_request`. `as_tensor_content`: Predict answers carry
    numeric outputs in tensor_content (--enable_serialization_as_tensor_content).
    """

    def __init__(
        self, plane: DataPlane, max_decoded_bytes: int = 0, as_tensor_content: bool = False
    ):
        self._plane = plane
        self._max_decoded_bytes = max_decoded_bytes
        self._as_tensor_content = as_tensor_content

    def decode_predict_request(self, data: bytes) -> predict_pb2.PredictRequest:
        """The Predict method's deserializer: predict_request_wire.parse under this budget."""
        return predict_request_wire.parse(data, self._max_decoded_bytes)

    def Predict(self, request: predict_pb2.PredictRequest, context):
        call = grpc_call("Predict", request.model_spec, context)
        work = PredictWork(request, self._max_decoded_bytes, self._as_tensor_content)
        return self._plane.serve(call, work)

    def Classify(self, request: classification_pb2.ClassificationRequest, context):
        call = grpc_call("Classify", request.model_spec, context)
        work = ExamplesWork(
            lambda handle: classifier.classify_response(handle, request),
            request,
            request_logger.CLASSIFY_LOG,
        )
        return self._plane.serve(call, work)

    def Regress(self, request: regression_pb2.RegressionRequest, context):
        call = grpc_call("Regress", request.model_spec, context)
        work = ExamplesWork(
            lambda handle: regressor.regress_response(handle, request),
            request,
            request_logger.REGRESS_LOG,
        )
        return self._plane.serve(call, work)

    def MultiInference(self, request: inference_pb2.MultiInferenceRequest, context):
        spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        work = ExamplesWork(
            lambda handle: multi_inference.multi_inference_response(handle, request),
            request,
            request_logger.MULTI_INFERENCE_LOG,
            check=lambda: multi_inference.check_tasks(request),
        )
        return self._plane.serve(grpc_call("MultiInference", spec, context), work)

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        call = grpc_call("GetModelMetadata", request.model_spec, context)
        work = SyncWork(
            lambda handle: get_model_metadata_impl.metadata_response(handle, request),
            check=lambda: get_model_metadata_impl.check_request(request),
        )
        return self._plane.serve(call, work)
