"""End to end over gRPC: the built binary, every RPC, its error codes, hot swaps.

Served: half_plus_two TF1 (versions 1 and 2, labels stable/canary) and TF2,
from a --model_config_file, with the health service and a Unix socket.
"""

import os
import sys

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import cpu_scheduling, tensor_codec

Code = grpc.StatusCode

CONFIG = """
model_config_list {
  config {
    name: "tf1" base_path: "%(base)s/tf1" model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
  config { name: "tf2" base_path: "%(base)s/tf2" model_platform: "tensorflow" }
}
"""


@pytest.fixture(scope="module", params=["inline", "grpcio"])
def server(request, tmp_path_factory):
    """The gRPC API suite runs on both --grpc_server implementations."""
    base = tmp_path_factory.mktemp("models")
    hp.export_half_plus_two_tf1(str(base / "tf1"), 1)
    hp.export_half_plus_two_tf1(str(base / "tf1"), 2, b=3.0)
    hp.export_half_plus_two_tf2(str(base / "tf2"), 7)
    config = base / "models.config"
    config.write_text(CONFIG % {"base": base})
    socket_path = str(base / "grpc.sock")
    running = RunningServer(
        base,
        "grpc",
        [
            f"--model_config_file={config}",
            f"--grpc_socket_path={socket_path}",
            "--enable_grpc_healthcheck_service",
            "--file_system_poll_wait_seconds=1",
            f"--grpc_server={request.param}",
        ],
        rest=False,
    )
    running.base = base
    running.socket_path = socket_path
    running.wait_until_serving()
    yield running
    assert running.stop() == 0, "SIGTERM must end the server with exit code 0"


def predict_stub(server):
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel)


def model_stub(server):
    return model_service_pb2_grpc.ModelServiceStub(server.channel)


def predict_request(model, values, *, version=None, label=None, signature="", key="x"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    tensor_codec.to_tensor_proto(np.asarray(values, np.float32), request.inputs[key])
    return request


def error_of(call, request):
    with pytest.raises(grpc.RpcError) as raised:
        call(request)
    return raised.value.code(), raised.value.details()


def test_tensorflows_log_records_print_once_in_the_servers_format(server):
    log = server.log_path.read_text()
    assert "I tensorflow] Restoring parameters from" in log, "the TF1 models' Saver restores"
    assert "INFO:tensorflow:" not in log, "not a second time in TensorFlow's own format"


def test_tensorflows_import_lines_print_once_as_the_stock_server_prints_them(server):
    log = server.log_path.read_text()
    assert log.count("oneDNN custom operations are on") == 1, log[:2000]
    assert log.count("before absl::InitializeLog() is called") == 1, log[:2000]


def test_every_server_thread_runs_under_sched_batch(server):
    """--cpu_scheduling_policy defaults to batch, for gRPC's and TensorFlow's threads too."""
    predict_stub(server).Predict(predict_request("tf1", [[1.0]]))  # TF threads exist by now
    policies = cpu_scheduling.thread_policies(server.process.pid)
    assert len(policies) > 5
    assert set(policies.values()) == {os.SCHED_BATCH}


@pytest.mark.parametrize("model,version", [("tf1", 2), ("tf2", 7)])
def test_predict_latest_fills_the_answering_version(server, model, version):
    response = predict_stub(server).Predict(predict_request(model, [[1.0], [3.0]]))
    assert response.model_spec.name == model
    assert response.model_spec.version.value == version
    assert response.model_spec.signature_name == "serving_default"
    y = tensor_codec.to_ndarray(response.outputs["y"]).ravel()
    expected = [2.5 + (version == 2), 3.5 + (version == 2)]
    np.testing.assert_allclose(y, expected)
    assert response.outputs["y"].float_val, "outputs come in float_val like the stock server's"


def test_predict_by_version_and_label(server):
    stub = predict_stub(server)
    assert stub.Predict(predict_request("tf1", [[2.0]], version=1)).outputs["y"].float_val == [3.0]
    stable = stub.Predict(predict_request("tf1", [[2.0]], label="stable"))
    assert stable.model_spec.version.value == 1
    canary = stub.Predict(predict_request("tf1", [[2.0]], label="canary"))
    assert canary.model_spec.version.value == 2 and canary.outputs["y"].float_val == [4.0]


def test_rank_one_input_accepted_for_minus_one_by_one(server):
    response = predict_stub(server).Predict(predict_request("tf1", [2.0]))
    assert response.outputs["y"].float_val == [4.0]


@pytest.mark.parametrize(
    "request_kw,code,words",
    [
        (dict(model="nope"), Code.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        (dict(model="tf1", version=9), Code.NOT_FOUND, "Specific(tf1, 9)"),
        (dict(model="tf1", label="nope"), Code.INVALID_ARGUMENT, "Unrecognized servable version"),
        (dict(model="tf1", signature="nope"), Code.FAILED_PRECONDITION, 'key "nope" not found'),
        (dict(model="tf1", key="z"), Code.INVALID_ARGUMENT, "Missing but required: {x}"),
    ],
)
def test_predict_errors_carry_upstreams_codes(server, request_kw, code, words):
    kw = dict(request_kw)
    model = kw.pop("model")
    got_code, details = error_of(
        predict_stub(server).Predict, predict_request(model, [[1.0]], **kw)
    )
    assert got_code == code
    assert words in details


def test_wrong_dtype_and_malformed_tensor_are_invalid_argument(server):
    request = predict_request("tf1", [[1.0]])
    tensor_codec.to_tensor_proto(np.array([[1.0]], np.float64), request.inputs["x"])
    code, details = error_of(predict_stub(server).Predict, request)
    assert code == Code.INVALID_ARGUMENT and "double" in details
    request.inputs["x"].tensor_shape.dim[0].size = 5  # the shape holds 5 values, 2 are sent
    request.inputs["x"].ClearField("double_val")
    request.inputs["x"].double_val.extend([1.0, 2.0])
    code, details = error_of(predict_stub(server).Predict, request)
    assert code == Code.INVALID_ARGUMENT and "2 values" in details


def test_output_filter(server):
    request = predict_request("tf1", [[1.0]])
    request.output_filter.append("y")
    assert list(predict_stub(server).Predict(request).outputs) == ["y"]
    request.output_filter.append("bogus")
    code, _ = error_of(predict_stub(server).Predict, request)
    assert code == Code.INVALID_ARGUMENT


def examples(*xs):
    proto = input_pb2.Input()
    for x in xs:
        proto.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return proto


@pytest.mark.parametrize("model", ["tf1", "tf2"])
def test_classify_regress_and_multi_inference(server, model):
    stub = predict_stub(server)
    classify = classification_pb2.ClassificationRequest(input=examples(2.0))
    classify.model_spec.name = model
    classify.model_spec.signature_name = "classify_x_to_y"
    result = stub.Classify(classify).result
    assert result.classifications[0].classes[0].score == pytest.approx(3.0 + (model == "tf1"))
    regress = regression_pb2.RegressionRequest(input=examples(2.0, 4.0))
    regress.model_spec.name = model
    regress.model_spec.signature_name = "regress_x_to_y2"
    assert [r.value for r in stub.Regress(regress).result.regressions] == [4.0, 5.0]
    multi = inference_pb2.MultiInferenceRequest(input=examples(2.0))
    for signature, method in [("classify_x_to_y", "classify"), ("regress_x_to_y2", "regress")]:
        task = multi.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name = model
        task.model_spec.signature_name = signature
    results = stub.MultiInference(multi).results
    assert results[1].regression_result.regressions[0].value == 4.0
    classify.input.Clear()
    code, details = error_of(stub.Classify, classify)
    assert code == Code.INVALID_ARGUMENT and "empty" in details


def test_metadata(server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "tf2"
    response = predict_stub(server).GetModelMetadata(request)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert "regress_x_to_y" in signatures.signature_def
    assert response.model_spec.version.value == 7


def test_model_status(server):
    stub = model_stub(server)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "tf1"
    versions = {s.version: s.state for s in stub.GetModelStatus(request).model_version_status}
    assert versions == {1: 30, 2: 30}  # AVAILABLE
    request.model_spec.name = "nope"
    code, details = error_of(stub.GetModelStatus, request)
    assert code == Code.NOT_FOUND and "Could not find any versions of model nope" in details


def test_health_service_and_unix_socket(server):
    health = health_pb2_grpc.HealthStub(server.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == 1  # SERVING
    with grpc.insecure_channel(f"unix:{server.socket_path}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(predict_request("tf2", [2.0])).outputs["y"].float_val == [3.0]


@pytest.mark.parametrize(
    "service",
    [
        "",
        "ModelService",
        "PredictionService",
        "tensorflow.serving.ModelService",
        "tensorflow.serving.PredictionService",
    ],
)
def test_health_answers_serving_for_upstreams_service_names(server, service):
    """Upstream registers the short names: probes written for the stock server ask for them."""
    health = health_pb2_grpc.HealthStub(server.channel)
    response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_watch_streams_the_status_until_the_client_leaves(server):
    health = health_pb2_grpc.HealthStub(server.channel)
    updates = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    assert next(updates).status == 1  # SERVING
    updates.cancel()
    # The watch's end freed the server for more work.
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1


def test_reload_config_adds_and_removes_models_and_rejects_bad_ones(server):
    stub = model_stub(server)
    base = server.base
    hp.export_half_plus_two_tf1(str(base / "extra"), 1, b=100.0)
    reload = model_management_pb2.ReloadConfigRequest()
    models = reload.config.model_config_list
    models.config.add(name="tf2", base_path=str(base / "tf2"), model_platform="tensorflow")
    models.config.add(name="extra", base_path=str(base / "extra"), model_platform="tensorflow")
    bad = model_management_pb2.ReloadConfigRequest()
    bad.config.CopyFrom(reload.config)
    bad.config.model_config_list.config.add(name="extra", base_path="/x")
    code, details = error_of(stub.HandleReloadConfigRequest, bad)
    assert code == Code.INVALID_ARGUMENT and "multiple times" in details
    assert predict_stub(server).Predict(predict_request("tf1", [[1.0]])), "old config kept"

    stub.HandleReloadConfigRequest(reload)
    extra = predict_stub(server).Predict(predict_request("extra", [[2.0]]))
    assert extra.outputs["y"].float_val == [101.0]

    def tf1_is_gone() -> bool:
        try:
            predict_stub(server).Predict(predict_request("tf1", [[1.0]]))
        except grpc.RpcError as error:
            assert error.code() == Code.NOT_FOUND, error.details()
            return True
        return False

    assert testing.wait_for(tf1_is_gone, timeout=30), (
        "tf1 was still served after it left the config"
    )


def test_hot_swap_under_concurrent_load_loses_no_request(server):
    """8 clients in a loop while version 8 of tf2 replaces version 7."""
    stub = predict_stub(server)
    versions, failures = server.swap_under_load(
        lambda: stub.Predict(predict_request("tf2", [1.0])).model_spec.version.value,
        lambda: hp.export_half_plus_two_tf2(str(server.base / "tf2"), 8),
        new=8,
        clients=8,
        model="tf2",
    )
    assert failures == []
    assert 8 in versions
    after = predict_stub(server).Predict(predict_request("tf2", [1.0]))
    assert after.model_spec.version.value == 8


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
