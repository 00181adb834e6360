"""mnist_client against a fake PredictionService: request shape, error rate, failures, waiting."""

import sys
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.example import mnist_client, mnist_input_data
from tensorflow_serving.test_util import testing

NUM_TEST = 40


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=20, num_test=NUM_TEST, seed=3)
    return path


@pytest.fixture(scope="module")
def test_labels(work_dir):
    return mnist_input_data.read_data_sets(work_dir, source_url=None).test.labels


def label_of(image):
    """Synthetic digit k is a bright bar starting at row 2+2k or 3+2k; read k back."""
    rows = image.reshape(28, 28)[:, 4:24].mean(axis=1)
    first_bright_row = int(np.argmax(rows > 150 / 255))
    return (first_bright_row - 2) // 2


class FakePredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers Predict from a fixed function of the image, checking the request like a server."""

    def __init__(self, answer=label_of, fail_first=0, fail_code=grpc.StatusCode.NOT_FOUND):
        self.answer = answer
        self.fail_first = fail_first
        self.fail_code = fail_code
        self.requests = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        with self.lock:
            self.requests.append(request)
            failing = len(self.requests) <= self.fail_first
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if failing:
                context.abort(self.fail_code, "Servable not found for request: Latest(mnist)")
            tensor = request.inputs["images"]
            if tensor.tensor_content:
                image = np.frombuffer(tensor.tensor_content, dtype=np.float32)
            else:
                image = np.asarray(tensor.float_val, dtype=np.float32)
            dims = [d.size for d in tensor.tensor_shape.dim]
            if tensor.dtype != 1 or dims != [1, 784] or image.size != 784:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad images tensor {dims}")
            time.sleep(0.002)
            label = self.answer(image)
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(request.model_spec)
            scores = response.outputs["scores"]
            scores.dtype = 1
            scores.tensor_shape.dim.add(size=1)
            scores.tensor_shape.dim.add(size=10)
            scores.float_val.extend(np.eye(10, dtype=np.float32)[label] * 0.9 + 0.01)
            return response
        finally:
            with self.lock:
                self.active -= 1


class Server:
    def __init__(self, servicer, port=None):
        self.port = port or testing.free_port()
        self.servicer = servicer
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop(grace=None).wait()


@pytest.fixture()
def serve():
    servers = []

    def start(servicer, port=None, delay=None):
        server = Server(servicer, port)
        servers.append(server)
        if delay is None:
            server.start()
        else:
            threading.Timer(delay, server.start).start()
        return server

    yield start
    for server in servers:
        server.stop()


def test_sends_the_chapters_request_and_reports_zero_errors(work_dir, serve, capsys):
    server = serve(FakePredictionService())
    args = [f"--server={server.address}", f"--work_dir={work_dir}", "--num_tests=20"]
    assert mnist_client.main(args) == 0
    assert "Inference error rate: 0%" in capsys.readouterr().out
    request = server.servicer.requests[-1]
    assert request.model_spec.name == "mnist"
    assert request.model_spec.signature_name == "predict_images"
    assert list(request.inputs) == ["images"]
    # One probe while connecting, then one request per test image.
    assert len(server.servicer.requests) == 21


def test_error_rate_counts_wrong_answers(work_dir, test_labels, serve, capsys):
    def wrong_on_threes(image):
        label = label_of(image)
        return (label + 1) % 10 if label == 3 else label

    server = serve(FakePredictionService(answer=wrong_on_threes))
    args = [f"--server={server.address}", f"--work_dir={work_dir}", f"--num_tests={NUM_TEST}"]
    assert mnist_client.main(args) == 0
    expected = np.mean(np.asarray(test_labels) == 3) * 100
    assert expected > 0
    assert f"Inference error rate: {expected:g}%" in capsys.readouterr().out


def test_concurrency_limits_requests_in_flight(work_dir, serve):
    servicer = FakePredictionService()
    server = serve(servicer)
    result = mnist_client.do_inference(server.address, work_dir, 4, NUM_TEST, progress=False)
    assert result.wrong == result.failed == 0
    assert 1 < servicer.max_active <= 4


def test_progress_dots_all_come_before_the_summary(work_dir, serve, capsys):
    server = serve(FakePredictionService())
    args = [f"--server={server.address}", f"--work_dir={work_dir}", "--concurrency=8"]
    for _ in range(3):
        assert mnist_client.main(args + [f"--num_tests={NUM_TEST}"]) == 0
        out = capsys.readouterr().out
        assert out.count(".") == NUM_TEST
        assert out.endswith("\nInference error rate: 0%\n")


def test_model_name_flag(work_dir, serve):
    server = serve(FakePredictionService())
    args = [f"--server={server.address}", f"--work_dir={work_dir}", "--num_tests=2"]
    assert mnist_client.main(args + ["--model_name=digits"]) == 0
    assert server.servicer.requests[-1].model_spec.name == "digits"


def test_unreachable_server_is_a_clear_failure(work_dir, capsys):
    address = f"127.0.0.1:{testing.free_port()}"
    code = mnist_client.main([f"--server={address}", f"--work_dir={work_dir}", "--num_tests=5"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"Error: cannot get an answer from the PredictionService at {address}" in out
    assert "UNAVAILABLE" in out


def test_server_errors_make_a_non_zero_exit(work_dir, serve, capsys):
    server = serve(FakePredictionService(fail_first=10**6, fail_code=grpc.StatusCode.INTERNAL))
    args = [f"--server={server.address}", f"--work_dir={work_dir}", "--num_tests=5"]
    assert mnist_client.main(args) == 1
    out = capsys.readouterr().out
    assert "INTERNAL: Servable not found" in out


def test_failures_after_connecting_are_counted_and_reported(work_dir, serve, capsys):
    # The probe succeeds, then three requests fail: rate counts them, exit is 1.
    servicer = FakePredictionService()
    calls = {"n": 0}

    def flaky(image):
        calls["n"] += 1
        if 2 <= calls["n"] <= 4:
            raise RuntimeError("model crashed")
        return label_of(image)

    servicer.answer = flaky
    server = serve(servicer)
    args = [f"--server={server.address}", f"--work_dir={work_dir}", "--num_tests=10"]
    assert mnist_client.main(args) == 1
    out = capsys.readouterr().out
    assert "Inference error rate: 30%" in out
    assert "Error: 3 of 10 requests" in out
    assert "UNKNOWN" in out


def test_waits_for_a_server_that_starts_late(work_dir, serve, capsys):
    port = testing.free_port()
    serve(FakePredictionService(), port=port, delay=1.5)
    args = [
        f"--server=127.0.0.1:{port}",
        f"--work_dir={work_dir}",
        "--num_tests=5",
        "--wait_for_server_seconds=30",
    ]
    assert mnist_client.main(args) == 0
    assert "Inference error rate: 0%" in capsys.readouterr().out


def test_waits_while_the_model_is_still_loading(work_dir, serve, capsys):
    server = serve(FakePredictionService(fail_first=3))
    args = [
        f"--server={server.address}",
        f"--work_dir={work_dir}",
        "--num_tests=5",
        "--wait_for_server_seconds=20",
    ]
    assert mnist_client.main(args) == 0
    assert "Inference error rate: 0%" in capsys.readouterr().out


def test_wait_gives_up_with_a_clear_message(work_dir, serve, capsys):
    server = serve(FakePredictionService(fail_first=10**6))
    args = [
        f"--server={server.address}",
        f"--work_dir={work_dir}",
        "--num_tests=5",
        "--wait_for_server_seconds=1",
    ]
    assert mnist_client.main(args) == 1
    out = capsys.readouterr().out
    assert "attempts over 1 s" in out
    assert "NOT_FOUND: Servable not found" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num_tests=10001"], "num_tests should not be greater than 10k"),
        (["--num_tests=0"], "must be positive"),
        ([], "please specify server host:port"),
    ],
)
def test_bad_flags(args, message, capsys):
    server_flag = [] if message.startswith("please") else ["--server=localhost:1"]
    assert mnist_client.main(args + server_flag) == 2
    assert message in capsys.readouterr().out


def test_make_request_and_scores_of_round_trip():
    image = np.linspace(0, 1, 784, dtype=np.float32)
    request = mnist_client.make_request(image)
    tensor = request.inputs["images"]
    assert [d.size for d in tensor.tensor_shape.dim] == [1, 784]
    np.testing.assert_array_equal(np.frombuffer(tensor.tensor_content, np.float32), image)
    response = predict_pb2.PredictResponse()
    response.outputs["scores"].tensor_content = np.arange(10, dtype=np.float32).tobytes()
    assert int(np.argmax(mnist_client.scores_of(response))) == 9
    with pytest.raises(mnist_client.ClientError, match="no output 'scores'"):
        mnist_client.scores_of(predict_pb2.PredictResponse())


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
