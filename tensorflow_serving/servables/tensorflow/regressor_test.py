"""Regress over tf.Examples gives one value per example."""

import sys

import pytest

from tensorflow_serving.apis import regression_pb2
from tensorflow_serving.servables.tensorflow import regressor
from tensorflow_serving.servables.tensorflow.classifier_test import examples
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def request(signature, input_proto):
    req = regression_pb2.RegressionRequest(input=input_proto)
    req.model_spec.name = "hp"
    req.model_spec.signature_name = signature
    return req


def test_regress_x_to_y_and_y2(model):
    response = regressor.regress_response(model, request("regress_x_to_y", examples(2.0, 6.0)))
    assert [r.value for r in response.result.regressions] == [3.0, 5.0]
    response = regressor.regress_response(model, request("regress_x_to_y2", examples(2.0)))
    assert [r.value for r in response.result.regressions] == [4.0]


def test_classify_signature_is_not_a_regression(model):
    with pytest.raises(status.ServingError, match="No output Tensor named 'outputs'"):
        regressor.regress_response(model, request("classify_x_to_y", examples(1.0)))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
