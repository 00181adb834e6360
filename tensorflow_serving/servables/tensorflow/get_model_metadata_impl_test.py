"""GetModelMetadata returns the signature_def map of the serving version."""

import sys

import pytest

from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.servables.tensorflow import get_model_metadata_impl
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def run_get_model_metadata(handle, request):
    """As the servers do: the request is checked, then answered from the version."""
    get_model_metadata_impl.check_request(request)
    return get_model_metadata_impl.metadata_response(handle, request)


def request(*fields):
    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    req.model_spec.name = "hp"
    return req


def test_signature_def_map(model):
    response = run_get_model_metadata(model, request("signature_def"))
    assert response.model_spec.version.value == model.version
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["serving_default"].inputs["x"].dtype == 1  # DT_FLOAT


def test_fields_are_checked(model):
    with pytest.raises(status.ServingError, match="at least one metadata_field"):
        run_get_model_metadata(model, request())
    with pytest.raises(status.ServingError, match="Metadata field nope is not supported"):
        run_get_model_metadata(model, request("nope"))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
