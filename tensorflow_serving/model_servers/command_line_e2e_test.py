"""End to end: a command line written for the stock server starts ours and means the same.

One server, started as a manifest for the stock image might start it: with a
flag this server does not know, --rest_api_port equal to --port, and
--enable_serialization_as_tensor_content.
"""

import sys

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

UNKNOWN_FLAG = "--a_flag_from_a_future_release=1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    hp.export_half_plus_two_tf2(str(base / "hp"), 1)
    port = testing.free_port()
    running = RunningServer(
        base,
        "command_line",
        [
            "--model_name=hp",
            f"--model_base_path={base / 'hp'}",
            UNKNOWN_FLAG,
            f"--rest_api_port={port}",
            "--enable_serialization_as_tensor_content",
        ],
        rest=False,
        grpc_port=port,
    )
    with running.serving():
        yield running


def predict(server, values: list[float]) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.asarray(values, np.float32), request.inputs["x"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    return stub.Predict(request, timeout=30)


def test_an_unknown_flag_is_reported_and_the_server_serves(server):
    log = server.log_path.read_text()
    assert f"unknown argument: {UNKNOWN_FLAG}" in log
    assert "usage: tensorflow_model_server" in log
    assert predict(server, [2.0]).outputs["y"].tensor_content, "it answers"


def test_rest_on_the_grpc_port_leaves_grpc_alone_and_says_why(server):
    assert predict(server, [4.0]).model_spec.name == "hp"
    log = server.log_path.read_text()
    assert f"--rest_api_port={server.grpc_port} is the same as --port" in log
    assert "Exporting HTTP/REST API" not in log


def test_predict_outputs_travel_as_tensor_content(server):
    output = predict(server, [2.0, 4.0]).outputs["y"]
    assert list(output.float_val) == [], "the values are not written twice"
    assert [d.size for d in output.tensor_shape.dim] == [2]
    assert np.frombuffer(output.tensor_content, "<f4").tolist() == [3.0, 4.0]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
