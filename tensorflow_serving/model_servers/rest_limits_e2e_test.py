"""What a REST client may cost, against one built tensorflow_model_server.

The server starts with a soft open-file limit of 512 under a hard one of
1,024: it must raise the soft limit and say so, and derive its REST
connection cap from the new limit (768, leaving the rest to gRPC, model
files and logs). Connections past the cap are refused with 503 while the
open ones and gRPC go on answering; an oversized header section gets 431,
and a request stuck mid-headers or mid-body 408, each on the flags' own
limits (set small here), and each closes its connection.
"""

import socket
import sys

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.test_util.raw_http import read_responses, status_of, until_closed
from tensorflow_serving.util import open_files, tensor_codec

SOFT, HARD = 512, 1024
CAP = open_files.default_max_connections(HARD)
MAX_HEADER_BYTES = 8192
PHASE_TIMEOUT_MS = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)  # y = 0.5x + 2
    running = RunningServer(
        base,
        "limits",
        [
            "--model_name=hp",
            f"--model_base_path={base / 'hp'}",
            f"--rest_api_max_header_bytes={MAX_HEADER_BYTES}",
            f"--rest_api_header_timeout_in_ms={PHASE_TIMEOUT_MS}",
            f"--rest_api_body_timeout_in_ms={PHASE_TIMEOUT_MS}",
            "--rest_api_keep_alive_timeout_in_ms=120000",
        ],
        open_files=(SOFT, HARD),
    )
    with running.serving():
        yield running


def grpc_predict(server) -> float:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.array([[2.0]], np.float32), request.inputs["x"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    return stub.Predict(request, timeout=30).outputs["y"].float_val[0]


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.rest_port), timeout=30)


def answer(sock: socket.socket, request: bytes) -> tuple[int, bytes]:
    """The status and body of the answer to `request` on a kept-alive connection."""
    sock.sendall(request)
    ((code, _, body),) = read_responses(sock, 1)
    return code, body


LIVE = b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
PREDICT_BODY = b'{"instances": [[2.0]]}'
PREDICT = (
    b"POST /v1/models/hp:predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
    % len(PREDICT_BODY)
    + PREDICT_BODY
)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one_and_the_cap_derived(server):
    log = server.log_path.read_text()
    assert f"Open-file limit raised from {SOFT} to {HARD} (the hard limit)" in log
    assert f"REST connections: at most {CAP} open (open-file limit {HARD})" in log


@pytest.mark.parametrize(
    "sent,code",
    [
        (b"GET /v1/models/hp HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEADER_BYTES, 431),
        (b"GET /v1/models/hp HTTP/1.1\r\nHost: x\r\n", 408),
        (PREDICT[:-4], 408),
    ],
    ids=["header_too_large", "stuck_mid_headers", "stuck_mid_body"],
)
def test_a_request_past_a_limit_is_answered_and_its_connection_closed(server, sent, code):
    with connect(server) as sock:
        sock.sendall(sent)
        response = until_closed(sock)
    assert status_of(response) == code and b"connection: close" in response
    assert answer_once(server, PREDICT) == (200, b'{"predictions":[[3.0]]}')


def answer_once(server, request: bytes) -> tuple[int, bytes]:
    with connect(server) as sock:
        return answer(sock, request)


def test_connections_past_the_cap_get_503_while_open_ones_and_grpc_answer(server):
    held: list[socket.socket] = []
    try:
        for _ in range(CAP):  # each answered, so the server counts it open
            held.append(connect(server))
            assert answer(held[-1], LIVE)[0] == 200
        with connect(server) as refused:
            response = until_closed(refused)
        assert status_of(response) == 503
        assert f"--rest_api_max_connections={CAP}".encode() in response
        assert grpc_predict(server) == 3.0
        for sock in (held[0], held[-1]):
            assert answer(sock, PREDICT) == (200, b'{"predictions":[[3.0]]}')
    finally:
        for sock in held:
            sock.close()
    assert testing.wait_for(lambda: _rest_answers(server), timeout=30)


def _rest_answers(server) -> bool:
    try:
        return answer_once(server, LIVE)[0] == 200
    except (OSError, AssertionError):
        return False


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
