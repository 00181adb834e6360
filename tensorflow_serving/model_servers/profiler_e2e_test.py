"""End to end: TensorFlow's profiler client captures a trace of the server on its gRPC port.

`profiler_client.trace("localhost:<grpc port>", logdir, ms)` is what
TensorBoard's profile plugin calls. With --enable_profiler (the default) it
writes `<logdir>/plugins/profile/<run>/<host>.xplane.pb` while requests
flow, on both --grpc_server implementations, and the server opens no port
beyond its gRPC and REST ones, enabled or not.
"""

import glob
import os
import sys
import threading

import grpc
import numpy as np
import pytest
from tensorflow.python.profiler import profiler_client
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.test_util.process_sockets import listening_ports
from tensorflow_serving.util import tensor_codec


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)
    return base


@pytest.fixture(scope="module", params=["inline", "grpcio"])
def server(request, model):
    running = RunningServer(
        model,
        f"profiler-{request.param}",
        [f"--model_base_path={model}/hp", f"--grpc_server={request.param}"],
    )
    with running.serving():
        yield running


def _predict_until(server, stop: threading.Event, answered: list) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    tensor_codec.to_tensor_proto(np.array([[1.0]], np.float32), request.inputs["x"])
    while not stop.is_set():
        stub.Predict(request, timeout=30)
        answered.append(1)


def test_trace_while_requests_flow_writes_an_xplane(server, tmp_path):
    stop, answered = threading.Event(), []
    client = threading.Thread(target=_predict_until, args=(server, stop, answered))
    client.start()
    try:
        assert testing.wait_for(lambda: answered)
        profiler_client.trace(f"localhost:{server.grpc_port}", str(tmp_path), 1000)
    finally:
        stop.set()
        client.join()
    traces = glob.glob(str(tmp_path / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert [os.path.basename(t) for t in traces] == [f"localhost_{server.grpc_port}.xplane.pb"]
    with open(traces[0], "rb") as trace:
        space = xplane_pb2.XSpace.FromString(trace.read())
    events = [
        space_plane.event_metadata[event.metadata_id].name
        for space_plane in space.planes
        for line in space_plane.lines
        for event in line.events
    ]
    assert events, "the trace recorded no event"


def test_monitor_gets_tensorflows_answer(server):
    with pytest.raises(Exception) as raised:
        profiler_client.monitor(f"localhost:{server.grpc_port}", 100, 1)
    assert "UNIMPLEMENTED: unimplemented." in str(raised.value)


def test_terminate_without_a_session_answers(server):
    terminate = server.channel.unary_unary("/tensorflow.ProfilerService/Terminate")
    assert terminate(b"\n\x03abc", timeout=10) == b""


def test_no_extra_listener(server):
    assert listening_ports(server.process.pid) == {server.grpc_port, server.rest_port}


def test_disabled_profiler_is_not_served(model):
    running = RunningServer(
        model, "profiler-off", [f"--model_base_path={model}/hp", "--enable_profiler=false"]
    )
    with running.serving():
        profile = running.channel.unary_unary("/tensorflow.ProfilerService/Profile")
        with pytest.raises(grpc.RpcError) as raised:
            profile(b"", timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert listening_ports(running.process.pid) == {running.grpc_port, running.rest_port}


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
