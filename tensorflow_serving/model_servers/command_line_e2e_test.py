"""End to end: a command line written for the stock server starts ours and means the same.

One server, started as a manifest for the stock image might start it: with a
flag this server does not know, --rest_api_port equal to --port,
--enable_serialization_as_tensor_content and
--enable_signature_method_name_check. Then the chapter's model served by
upstream's command lines: its run-time flags (profiler, TFLite pools, XLA,
mixed precision, TPU) given explicitly, a session config file, a platform
config file with batching parameters, per-model batching parameters.
"""

import sys

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import (
    classification_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.example import mnist_client, mnist_input_data, serving_model_ch4
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
            "--enable_signature_method_name_check",
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


def test_with_the_method_name_check_a_tf2_classify_signature_is_refused(server):
    """TF2 writes every signature as predict: upstream's check refuses it for Classify."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "hp"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Classify(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    assert predict(server, [2.0]).outputs["y"].tensor_content, "Predict still serves"


TINY_CNN = dict(conv1_depth=4, conv2_depth=8, fc_units=32)

SESSION_CONFIG = "intra_op_parallelism_threads: 1\ninter_op_parallelism_threads: 1\n"

PLATFORM_CONFIG = """
platform_configs {
  key: "tensorflow"
  value {
    source_adapter_config {
      [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] {
        legacy_config {
          session_config { intra_op_parallelism_threads: 1 inter_op_parallelism_threads: 1 }
          batching_parameters {
            max_batch_size { value: 128 }
            enable_large_batch_splitting { value: true }
            max_execution_batch_size { value: 32 }
            num_batch_threads { value: 1 }
          }
        }
      }
    }
  }
}
"""

PER_MODEL_BATCHING = "max_batch_size { value: 16 }\nnum_batch_threads { value: 1 }\n"


@pytest.fixture(scope="module")
def chapter_model(tmp_path_factory):
    """The chapter's CNN (tiny, on synthetic digits), its data and the scores it exported."""
    work_dir = str(tmp_path_factory.mktemp("data"))
    mnist_input_data.write_synthetic_data_sets(work_dir)
    base = tmp_path_factory.mktemp("mnist_model")
    exported = serving_model_ch4.train_and_export(str(base), 1, 30, work_dir, seed=0, **TINY_CNN)
    (base / "1" / "batching_params.pbtxt").write_text(PER_MODEL_BATCHING)
    config = tmp_path_factory.mktemp("config")
    (config / "session.config").write_text(SESSION_CONFIG)
    (config / "platform.config").write_text(PLATFORM_CONFIG)
    return base, work_dir, exported, config


UPSTREAM_COMMAND_LINES = {
    "runtime_flags": [
        "--enable_profiler=true",
        "--num_tflite_pools=2",
        "--xla_gpu_compilation_enabled=false",
        "--mixed_precision=",
        "--skip_initialize_tpu=true",
    ],
    "session_config_file": ["--tensorflow_session_config_file={config}/session.config"],
    "platform_config_file": ["--platform_config_file={config}/platform.config"],
    "per_model_batching": ["--enable_batching", "--enable_per_model_batching_parameters"],
}


@pytest.fixture(scope="module")
def chapter_server(request, chapter_model, tmp_path_factory):
    base, work_dir, exported, config = chapter_model
    flags = [flag.format(config=config) for flag in UPSTREAM_COMMAND_LINES[request.param]]
    running = RunningServer(
        tmp_path_factory.mktemp(request.param),
        request.param,
        ["--model_name=mnist", f"--model_base_path={base}", *flags],
        rest=False,
    )
    with running.serving():
        running.name, running.work_dir, running.exported = request.param, work_dir, exported
        yield running


def predict_images(server, images: np.ndarray) -> np.ndarray:
    request = mnist_client.make_request(images[0])
    request.inputs["images"].CopyFrom(tensor_codec.to_tensor_proto(images.astype(np.float32)))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(server.channel)
    response = stub.Predict(request, timeout=60)
    return mnist_client.scores_of(response).reshape(len(images), -1)


@pytest.mark.parametrize("chapter_server", sorted(UPSTREAM_COMMAND_LINES), indirect=True)
def test_each_upstream_command_line_serves_the_chapters_model(chapter_server):
    result = mnist_client.do_inference(
        f"127.0.0.1:{chapter_server.grpc_port}", chapter_server.work_dir, 4, 40, progress=False
    )
    assert (result.failed, result.num_tests) == (0, 40), result.first_failure
    images = mnist_input_data.read_data_sets(chapter_server.work_dir).test.images[:5]
    np.testing.assert_allclose(
        predict_images(chapter_server, images),
        chapter_server.exported.test_scores[:5],
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.parametrize("chapter_server", ["platform_config_file"], indirect=True)
def test_the_platform_configs_batching_splits_100_rows_and_answers_as_unbatched(chapter_server):
    images = mnist_input_data.read_data_sets(chapter_server.work_dir).test.images[:100]
    np.testing.assert_allclose(
        predict_images(chapter_server, images),
        chapter_server.exported.test_scores[:100],
        rtol=1e-4,
        atol=1e-6,
    )
    refusal = "Task size 129 is larger than maximum input batch size 128"
    with pytest.raises(grpc.RpcError, match=refusal):
        predict_images(chapter_server, np.zeros((129, 784), np.float32))


@pytest.mark.parametrize("chapter_server", ["per_model_batching"], indirect=True)
def test_per_model_batching_parameters_come_from_the_version_directory(chapter_server):
    predict_images(chapter_server, np.zeros((16, 784), np.float32))
    with pytest.raises(grpc.RpcError) as raised:
        predict_images(chapter_server, np.zeros((17, 784), np.float32))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Task size 17 is larger than maximum input batch size 16" in raised.value.details()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
