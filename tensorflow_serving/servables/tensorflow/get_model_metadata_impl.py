"""GetModelMetadata: the signature_def map of the version that answers."""

from __future__ import annotations

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow.predict_util import fill_model_spec
from tensorflow_serving.util import status

SIGNATURE_DEF = "signature_def"


def signature_def_map(handle: ServableHandle) -> get_model_metadata_pb2.SignatureDefMap:
    """Every signature of the loaded MetaGraphDef, as upstream reports them."""
    meta_graph_def = handle.servable.meta_graph_def
    result = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in meta_graph_def.signature_def.items():
        result.signature_def[key].CopyFrom(signature)
    return result


def check_request(request: get_model_metadata_pb2.GetModelMetadataRequest) -> None:
    """Upstream's checks of the metadata fields, made before the model is looked up."""
    if not request.metadata_field:
        raise status.invalid_argument(
            "GetModelMetadataRequest must specify at least one metadata_field"
        )
    for field in request.metadata_field:
        if field != SIGNATURE_DEF:
            raise status.invalid_argument(f"Metadata field {field} is not supported")


def metadata_response(
    handle: ServableHandle, request: get_model_metadata_pb2.GetModelMetadataRequest
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The signature_def map of `handle`'s version (request checked by check_request)."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.metadata[SIGNATURE_DEF].Pack(signature_def_map(handle))
    fill_model_spec(response.model_spec, handle.name, handle.version, None)
    return response
