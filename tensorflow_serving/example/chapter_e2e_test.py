"""The chapter's last section end to end: export the CNN, serve it with the built
tensorflow_model_server, query it with mnist_client while version 2 replaces 1."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.example import mnist_client, mnist_input_data, serving_model_ch4
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer

TINY_CNN = dict(conv1_depth=4, conv2_depth=8, fc_units=32)


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp("data"))
    mnist_input_data.write_synthetic_data_sets(work_dir)
    base = tmp_path_factory.mktemp("mnist_model")
    exported = serving_model_ch4.train_and_export(str(base), 1, 30, work_dir, seed=0, **TINY_CNN)
    monitoring = tmp_path_factory.mktemp("config") / "monitoring.config"
    monitoring.write_text("prometheus_config { enable: true }\n")
    server = RunningServer(
        base,
        "mnist",
        [
            "--model_name=mnist",
            f"--model_base_path={base}",
            f"--monitoring_config_file={monitoring}",
        ],
    )
    server.base, server.work_dir, server.exported = base, work_dir, exported
    server.wait_until_serving()
    yield server
    assert server.stop() == 0


def test_mnist_client_gets_an_answer_for_every_digit(chapter):
    result = mnist_client.do_inference(
        f"127.0.0.1:{chapter.grpc_port}", chapter.work_dir, 4, 100, progress=False
    )
    assert result.failed == 0
    assert result.num_tests == 100


def test_served_scores_are_the_exported_models(chapter):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(chapter.channel)
    images = mnist_input_data.read_data_sets(chapter.work_dir).test.images[:5]
    for image, expected in zip(images, chapter.exported.test_scores[:5], strict=True):
        response = stub.Predict(mnist_client.make_request(image, "mnist", "predict_images"))
        np.testing.assert_allclose(mnist_client.scores_of(response), expected, rtol=1e-4, atol=1e-6)


def predictions_served(server) -> float:
    return server.metric(":tensorflow:serving:request_count", model_name="mnist", entrypoint="GRPC")


def test_hot_swap_while_mnist_client_runs_with_concurrency_8(chapter):
    served_before = predictions_served(chapter)
    results = []
    client = threading.Thread(
        target=lambda: results.append(
            mnist_client.do_inference(
                f"127.0.0.1:{chapter.grpc_port}", chapter.work_dir, 8, 2000, progress=False
            )
        )
    )
    client.start()
    assert testing.wait_for(lambda: predictions_served(chapter) >= served_before + 50), (
        "mnist_client is under way"
    )
    serving_model_ch4.train_and_export(str(chapter.base), 2, 30, chapter.work_dir, **TINY_CNN)
    client.join(300)
    assert results and results[0].failed == 0, "no request may fail during the swap"
    stub = prediction_service_pb2_grpc.PredictionServiceStub(chapter.channel)
    image = mnist_input_data.read_data_sets(chapter.work_dir).test.images[:1]

    def answering_version() -> int:
        request = mnist_client.make_request(image[0], "mnist", "predict_images")
        return stub.Predict(request).model_spec.version.value

    assert testing.wait_for(lambda: answering_version() == 2), (
        "answers name version 2 once it is available"
    )


def test_the_client_binary_prints_the_error_rate(chapter):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow_serving.example.mnist_client",
            "--num_tests=50",
            f"--server=127.0.0.1:{chapter.grpc_port}",
            f"--work_dir={chapter.work_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Inference error rate:" in out.stdout


def test_client_reports_an_unreachable_server_and_fails(chapter):
    with pytest.raises(mnist_client.ClientError):
        mnist_client.do_inference(
            f"127.0.0.1:{testing.free_port()}", chapter.work_dir, 1, 1, progress=False
        )


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
