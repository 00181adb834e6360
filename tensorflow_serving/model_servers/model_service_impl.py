"""The gRPC ModelService: model status and config reload."""

from __future__ import annotations

from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.model_servers.grpc_status_util import grpc_method


class ModelServiceImpl(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self._core = core

    @grpc_method("GetModelStatus")
    def GetModelStatus(self, request, context):
        return self._core.model_status(request.model_spec)

    @grpc_method("HandleReloadConfigRequest")
    def HandleReloadConfigRequest(self, request, context):
        self._core.reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()
