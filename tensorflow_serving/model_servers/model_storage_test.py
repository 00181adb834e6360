"""Models, configs, batching and warmup files on TensorFlow's file systems, end to end.

A server in this test's process (ram:// is per process) reads its model
config, batching parameters, the model's versions and their warmup records
from ram:// (and, the same way, from a file:// URL), answers Predict over
gRPC and REST, and swaps to a new version written there while it serves.
"""

import json
import logging
import os
import sys
import urllib.request
import uuid

import grpc
import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.model_servers import main
from tensorflow_serving.model_servers.server import Server
from tensorflow_serving.servables.tensorflow import saved_model_warmup
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.gfile_tree import copy_tree
from tensorflow_serving.util import tensor_codec

CONFIG = """
model_config_list {
  config { name: "hp" base_path: "%s" model_platform: "tensorflow" }
}
"""
BATCHING = "max_batch_size { value: 8 } batch_timeout_micros { value: 1000 }\n"


def _write(path: str, text: str) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(text)


def _write_warmup(export_dir: str) -> None:
    """One recorded Predict of x = [[1.0]] in the version's assets.extra."""
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    record = prediction_log_pb2.PredictionLog()
    request = record.predict_log.request
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.array([[1.0]], np.float32), request.inputs["x"])
    path = os.path.join(export_dir, saved_model_warmup.WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(record.SerializeToString())


@pytest.fixture(params=["ram", "file_url"])
def root(request, tmp_path) -> str:
    """Where the server reads everything: TF's in-memory file system, or a file:// URL."""
    if request.param == "ram":
        return f"ram://model_storage_test/{uuid.uuid4().hex}"
    return f"file://{tmp_path}/store"


@pytest.fixture
def exports(tmp_path) -> dict[int, str]:
    """half_plus_two version 1 (y = x/2 + 2, with a warmup record) and 2 (y = x/2 + 3),
    exported to local directories."""
    local = tmp_path / "exports"
    first = hp.export_half_plus_two_tf1(str(local / "a"), 1)
    _write_warmup(first)  # the server logs how many records it replayed
    second = hp.export_half_plus_two_tf1(str(local / "b"), 2, b=3.0)
    return {1: first, 2: second}


@pytest.fixture
def server(root, exports, caplog):
    base = f"{root}/models/hp"
    tf.io.gfile.makedirs(base)
    copy_tree(exports[1], f"{base}/1")
    _write(f"{root}/models.config", CONFIG % base)
    _write(f"{root}/batching.config", BATCHING)
    options, _ = main.parse_options(
        [
            f"--port={testing.free_port()}",
            f"--rest_api_port={testing.free_port()}",
            "--bind_address=127.0.0.1",
            f"--model_config_file={root}/models.config",
            "--enable_batching",
            f"--batching_parameters_file={root}/batching.config",
            "--file_system_poll_wait_seconds=1",
            # A version seen half-copied fails its load; it is retried soon after.
            "--load_retry_interval_micros=100000",
        ]
    )
    caplog.set_level(logging.INFO)
    running = Server()
    running.build_and_start(options)
    yield running, base
    running.stop(grace_seconds=5)


def _grpc_predict(running: Server, x: float) -> tuple[float, int]:
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp"
        tensor_codec.to_tensor_proto(np.array([[x]], np.float32), request.inputs["x"])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    y = tensor_codec.to_ndarray(response.outputs["y"])
    return float(y.reshape(-1)[0]), response.model_spec.version.value


def _rest_predict(running: Server, x: float) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.http_port}/v1/models/hp:predict",
        data=json.dumps({"instances": [[x]]}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["predictions"][0][0]


def _versions(running: Server) -> dict[int, str]:
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "hp"
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request)
    return {
        status.version: get_model_status_pb2.ModelVersionStatus.State.Name(status.state)
        for status in response.model_version_status
    }


def test_serves_and_swaps_versions_from_the_file_system(server, exports, caplog):
    running, base = server
    assert _grpc_predict(running, 1.0) == (2.5, 1)
    assert _rest_predict(running, 3.0) == 3.5
    loading = "\n".join(record.getMessage() for record in caplog.get_records("setup"))
    assert "Number of warmup records read: 1" in loading

    copy_tree(exports[2], f"{base}/2")
    assert testing.wait_for(lambda: _versions(running) == {2: "AVAILABLE", 1: "END"}), _versions(
        running
    )
    assert _grpc_predict(running, 1.0) == (3.5, 2)
    assert _rest_predict(running, 3.0) == 4.5


def test_a_missing_config_file_names_the_path(root):
    options, _ = main.parse_options(
        [f"--port={testing.free_port()}", f"--model_config_file={root}/missing.config"]
    )
    running = Server()
    error = testing.serving_error(running.build_and_start, options)
    running.stop(grace_seconds=0)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{root}/missing.config" in error.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
