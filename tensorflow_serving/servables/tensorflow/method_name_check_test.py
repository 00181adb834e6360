"""--enable_signature_method_name_check: upstream's checks of a signature's method_name."""

import sys

import pytest

from tensorflow_serving.servables.tensorflow import method_name_check
from tensorflow_serving.servables.tensorflow.saved_model_bundle import Signature
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def signature(method_name: str) -> Signature:
    return Signature("sig", method_name, {}, {}, (), ())


@pytest.fixture
def check_on():
    method_name_check.set_enabled(True)
    yield
    method_name_check.set_enabled(False)


def test_off_by_default_every_method_name_serves_every_api():
    assert not method_name_check.enabled()
    for check in (
        method_name_check.check_predict,
        method_name_check.check_classify,
        method_name_check.check_regress,
    ):
        check(signature("tensorflow/serving/predict"))
        check(signature("anything/else"))


@pytest.mark.usefixtures("check_on")
def test_predict_accepts_any_of_the_three_serving_methods_and_nothing_else():
    for method in ("predict", "classify", "regress"):
        method_name_check.check_predict(signature(f"tensorflow/serving/{method}"))
    with pytest.raises(status.ServingError) as raised:
        method_name_check.check_predict(signature("not/supported"))
    assert raised.value.code.name == "INTERNAL"
    assert raised.value.message == (
        "Expected prediction signature method_name to be one of {tensorflow/serving/predict, "
        "tensorflow/serving/classify, tensorflow/serving/regress}. Was: not/supported"
    )


@pytest.mark.usefixtures("check_on")
def test_classify_and_regress_need_their_own_method_name():
    method_name_check.check_classify(signature("tensorflow/serving/classify"))
    method_name_check.check_regress(signature("tensorflow/serving/regress"))
    with pytest.raises(status.ServingError) as raised:
        method_name_check.check_classify(signature("tensorflow/serving/predict"))
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert raised.value.message == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    with pytest.raises(status.ServingError, match="Expected regression signature method_name"):
        method_name_check.check_regress(signature("tensorflow/serving/classify"))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
