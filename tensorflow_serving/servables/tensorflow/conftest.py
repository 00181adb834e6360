"""Models the servables tests share: half_plus_two in TF1 and TF2 form, exported once."""

import pytest

from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow.saved_model_bundle import load_saved_model_bundle
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp


@pytest.fixture(scope="session")
def tf1_dir(tmp_path_factory):
    return hp.export_half_plus_two_tf1(str(tmp_path_factory.mktemp("tf1")), 1)


@pytest.fixture(scope="session")
def tf2_dir(tmp_path_factory):
    return hp.export_half_plus_two_tf2(str(tmp_path_factory.mktemp("tf2")), 2)


@pytest.fixture(scope="session")
def tf1(tf1_dir):
    bundle = load_saved_model_bundle(tf1_dir)
    yield ServableHandle("hp", 1, bundle)
    bundle.close()


@pytest.fixture(scope="session")
def tf2(tf2_dir):
    bundle = load_saved_model_bundle(tf2_dir)
    yield ServableHandle("hp", 2, bundle)
    bundle.close()


@pytest.fixture(params=["tf1", "tf2"])
def model(request):
    """Each test taking `model` runs on both export styles."""
    return request.getfixturevalue(request.param)
