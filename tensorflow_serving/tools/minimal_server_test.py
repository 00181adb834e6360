"""The minimal server answers Predict with the model's own values, as the model server would."""

import sys
import time

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two
from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import inprocess_limit, minimal_server, processes, signature_inputs
from tensorflow_serving.util import tensor_codec


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """half_plus_two (y = x / 2 + 2), version 7, behind the minimal server: its port."""
    work = tmp_path_factory.mktemp("minimal")
    base = work / "hpt"
    export_half_plus_two.export_half_plus_two_tf1(str(base), 7)
    port = processes.free_port()
    cmd = [
        *processes.python_module("tensorflow_serving.tools.minimal_server"),
        f"--port={port}",
        f"--model_dir={base / '7'}",
        "--model_name=hpt",
        "--signature=serving_default",
        "--intra=1",
        "--inter=1",
    ]
    log = str(work / "minimal.log")
    server = processes.start(cmd, None, log)
    try:
        if not processes.wait_for_port(port, 120, server):
            pytest.fail(f"minimal server did not start:\n{processes.log_tail(log)}")
        yield port
    finally:
        processes.stop(server)


def test_predict_runs_the_model_and_names_what_answered(served):
    x = np.array([[1.0], [2.0], [-6.0]], np.float32)
    request = predict_pb2.PredictRequest.FromString(
        signature_inputs.grpc_request("hpt", "serving_default", {"x": x})
    )
    with grpc.insecure_channel(f"127.0.0.1:{served}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    assert response.model_spec.name == "hpt"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == 7
    np.testing.assert_allclose(tensor_codec.to_ndarray(response.outputs["y"]), x / 2 + 2)


def test_with_the_servers_warmer_each_call_is_handed_to_it(tmp_path):
    """--keep_model_warm_micros as in the server: off at 0, else every call goes to the warmer."""
    export_half_plus_two.export_half_plus_two_tf1(str(tmp_path / "hpt"), 1)
    loaded = inprocess_limit.load_signature(
        str(tmp_path / "hpt" / "1"), "serve", "serving_default", [], 1, 1
    )
    assert minimal_server._warmer_for(loaded, 0) is None
    warmer = minimal_server._warmer_for(loaded, 100_000)
    assert isinstance(warmer, IdleWarmer)
    servicer = minimal_server.make_servicer(loaded, "hpt", "serving_default", 1, warmer)
    x = np.array([[4.0]], np.float32)
    request = predict_pb2.PredictRequest.FromString(
        signature_inputs.grpc_request("hpt", "serving_default", {"x": x})
    )
    try:
        response = servicer.Predict(request, None)
        np.testing.assert_allclose(tensor_codec.to_ndarray(response.outputs["y"]), [[4.0]])
        owner, _, feeds = warmer._latest
        assert owner is servicer
        np.testing.assert_array_equal(feeds[0], x)
    finally:
        warmer.forget(servicer, loaded.session.close)
        warmer.stop()


def test_stand_in_micros_parse_as_rows_and_microseconds():
    assert minimal_server.parse_stand_in("1=527, 32=8810.5") == {1: 527e-6, 32: 8810.5e-6}
    assert minimal_server.parse_stand_in("") == {}
    for bad in ("1", "a=5", "1=x", "0=5", "1=0", "1=inf", "1=nan"):
        with pytest.raises(ValueError, match="stand_in_micros"):
            minimal_server.parse_stand_in(bad)


def test_stand_in_replaces_the_model_for_the_listed_rows_only(tmp_path):
    """After a first real call, requests of a listed row count get that call's outputs after
    a busy loop of at least the given time; other row counts still run the model."""
    export_half_plus_two.export_half_plus_two_tf1(str(tmp_path / "hpt"), 1)
    loaded = inprocess_limit.load_signature(
        str(tmp_path / "hpt" / "1"), "serve", "serving_default", [], 1, 1
    )
    servicer = minimal_server.make_servicer(loaded, "hpt", "serving_default", 1, stand_in={1: 0.02})

    def predict(x):
        request = predict_pb2.PredictRequest.FromString(
            signature_inputs.grpc_request("hpt", "serving_default", {"x": x})
        )
        started = time.perf_counter()
        response = servicer.Predict(request, None)
        return tensor_codec.to_ndarray(response.outputs["y"]), time.perf_counter() - started

    try:
        first, _ = predict(np.array([[4.0]], np.float32))
        np.testing.assert_allclose(first, [[4.0]])  # the model's answer: 4 / 2 + 2
        again, took = predict(np.array([[10.0]], np.float32))
        np.testing.assert_allclose(again, [[4.0]])  # the first call's outputs, not 10 / 2 + 2
        assert took >= 0.02
        two_rows, _ = predict(np.array([[10.0], [0.0]], np.float32))
        np.testing.assert_allclose(two_rows, [[7.0], [2.0]])  # not listed: the model runs
    finally:
        loaded.session.close()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
