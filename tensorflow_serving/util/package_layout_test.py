"""Both halves of the shared `tensorflow_serving` name import together.

The pip package tensorflow-serving-api owns `tensorflow_serving.apis` and
`.config`; this repository owns everything else under the same name
(tensorflow_serving/__init__.py extends the package's __path__). If either
half shadowed the other, the server would import stale protos or none of its
own modules: these tests say which half each import came from.
"""

import os
import sys

import tensorflow_serving
from tensorflow_serving.test_util import testing

# This repository's tensorflow_serving directory (this file is in its util/).
OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _package_dir(module) -> str:
    """The directory of the `tensorflow_serving` package a submodule was found in."""
    path = os.path.abspath(module.__file__)
    while os.path.basename(path) != "tensorflow_serving":
        path = os.path.dirname(path)
    return path


def test_pip_protos_come_from_site_packages():
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.config import model_server_config_pb2

    for module in (predict_pb2, model_server_config_pb2):
        package = _package_dir(module)
        assert package != OURS, f"{module.__name__} was found in this repository: {package}"
        assert "site-packages" in package.split(os.sep), f"{module.__name__} from {package}"
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    assert request.SerializeToString() == b"\n\x07\n\x05mnist"


def test_our_modules_come_from_this_repository():
    from tensorflow_serving import model_servers, util

    for module in (model_servers, util, testing):
        assert _package_dir(module) == OURS, f"{module.__name__} from {module.__file__}"
        assert "site-packages" not in module.__file__


def test_the_package_path_holds_both_halves():
    from tensorflow_serving import apis

    path = [os.path.abspath(entry) for entry in tensorflow_serving.__path__]
    assert OURS in path, path
    assert _package_dir(apis) in path, path
    assert path.index(OURS) < path.index(_package_dir(apis)), "ours first: it has __init__.py"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
