"""The gRPC ModelService: model status and config reload."""

from __future__ import annotations

from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.model_servers.grpc_status_util import grpc_method
from tensorflow_serving.model_servers.worker_group import is_local_only


class ModelServiceImpl(model_service_pb2_grpc.ModelServiceServicer):
    """`group`, for a worker of a supervisor, answers for every worker (see WorkerGroup);
    a call from another worker is answered from `core` alone."""

    def __init__(self, core, group=None):
        self._core = core
        self._group = group

    def _control(self, context):
        if self._group is None or is_local_only(context):
            return self._core
        return self._group

    @grpc_method("GetModelStatus")
    def GetModelStatus(self, request, context):
        return self._control(context).model_status(request.model_spec)

    @grpc_method("HandleReloadConfigRequest")
    def HandleReloadConfigRequest(self, request, context):
        self._control(context).reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()
