"""Both halves of the shared `tensorflow_serving` name import together."""

import sys

from tensorflow_serving.test_util import testing


def test_pip_apis_import_beside_our_packages():
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.config import model_server_config_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    assert request.model_spec.name == "mnist"
    assert model_server_config_pb2.ModelServerConfig().model_config_list is not None


def test_our_module_comes_from_this_repo_not_site_packages():
    assert "site-packages" not in testing.__file__


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
