"""Request loggers: sampling, the PredictionLog records they write, rotation, a full queue."""

import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    prediction_log_pb2,
    regression_pb2,
)
from tensorflow_serving.config import logging_config_pb2, model_server_config_pb2
from tensorflow_serving.core import log_collector, request_logger
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status, tensor_codec


def logging_config(prefix, rate=1.0, kind=""):
    config = logging_config_pb2.LoggingConfig()
    config.sampling_config.sampling_rate = rate
    config.log_collector_config.filename_prefix = str(prefix)
    config.log_collector_config.type = kind
    return config


def model(name, config=None):
    model_config = model_server_config_pb2.ModelConfig(name=name, base_path="/m")
    if config is not None:
        model_config.logging_config.CopyFrom(config)
    return model_config


def records(paths):
    return [
        prediction_log_pb2.PredictionLog.FromString(raw)
        for path in paths
        for raw in tf.compat.v1.io.tf_record_iterator(path)
    ]


def test_a_logged_predict_is_a_prediction_log_with_request_and_answer(tmp_path):
    servers = request_logger.ServerRequestLogger()
    servers.update([model("m", logging_config(tmp_path / "logs" / "m"))])
    logger = servers.logger("m")
    x = np.array([[1.0], [2.0]], np.float32)
    assert logger.log_predict("m", 3, "serving_default", {"x": x}, {"y": x * 2})
    servers.flush()
    (log,) = records(logger.collector.files)
    request, response = log.predict_log.request, log.predict_log.response
    assert request.model_spec.name == "m" and request.model_spec.version.value == 3
    assert request.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(tensor_codec.to_ndarray(request.inputs["x"]), x)
    np.testing.assert_array_equal(tensor_codec.to_ndarray(response.outputs["y"]), x * 2)
    assert log.log_metadata.model_spec.name == "m"
    assert log.log_metadata.sampling_config.sampling_rate == 1.0
    servers.close()


def examples_exchange(kind):
    """A request and response of `kind` as a server would have them, signature 'sig'."""
    if kind == request_logger.CLASSIFY_LOG:
        request = classification_pb2.ClassificationRequest()
        response = classification_pb2.ClassificationResponse()
        response.result.classifications.add().classes.add(label="a", score=0.5)
    elif kind == request_logger.REGRESS_LOG:
        request = regression_pb2.RegressionRequest()
        response = regression_pb2.RegressionResponse()
        response.result.regressions.add(value=4.0)
    else:
        request = inference_pb2.MultiInferenceRequest()
        request.tasks.add().model_spec.name = "m"
        response = inference_pb2.MultiInferenceResponse()
        result = response.results.add()
        result.regression_result.regressions.add(value=4.0)
        spec = result.model_spec
    if kind != request_logger.MULTI_INFERENCE_LOG:
        request.model_spec.name = "m"
        spec = response.model_spec
    spec.name, spec.version.value, spec.signature_name = "m", 3, "sig"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(2)
    return request, response


@pytest.mark.parametrize(
    "kind",
    [request_logger.CLASSIFY_LOG, request_logger.REGRESS_LOG, request_logger.MULTI_INFERENCE_LOG],
)
def test_classify_regress_and_multi_inference_are_logged_as_their_protos(tmp_path, kind):
    servers = request_logger.ServerRequestLogger()
    servers.update([model("m", logging_config(tmp_path / "m", rate=0.75))])
    logger = servers.logger("m")
    request, response = examples_exchange(kind)
    assert logger.log("m", 3, request_logger.ExamplesRecord(kind, request, response))
    servers.flush()
    (log,) = records(logger.collector.files)
    assert log.WhichOneof("log_type") == kind
    assert getattr(log, kind).request == request
    assert getattr(log, kind).response == response
    spec = log.log_metadata.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("m", 3, "sig")
    assert log.log_metadata.sampling_config.sampling_rate == 0.75
    assert log.log_metadata.timestamp_secs > 0
    servers.close()


def test_log_takes_a_predicts_record_too(tmp_path):
    servers = request_logger.ServerRequestLogger()
    servers.update([model("m", logging_config(tmp_path / "m"))])
    x = np.array([1.0], np.float32)
    assert servers.logger("m").log("m", 1, ("serving_default", {"x": x}, {"y": x}))
    servers.flush()
    (log,) = records(servers.logger("m").collector.files)
    assert log.WhichOneof("log_type") == "predict_log"
    servers.close()


def test_sampling_draws_at_the_configured_rate():
    logger = request_logger.RequestLogger(logging_config("/unused", 0.25), collector=None)
    drawn = sum(logger.sampled() for _ in range(20000))
    assert 4500 < drawn < 5500
    assert not any(
        request_logger.RequestLogger(logging_config("/u", 0.0), None).sampled() for _ in range(1000)
    )


def test_files_rotate_by_size(tmp_path):
    collector = log_collector.LogCollector(str(tmp_path / "r"), rotate_bytes=1000)
    for _ in range(10):
        collector.collect(b"x" * 300)
    collector.close()
    assert len(collector.files) == 4  # 3 records (948 bytes with framing) fit in each
    assert (
        sum(1 for path in collector.files for _ in tf.compat.v1.io.tf_record_iterator(path)) == 10
    )


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path):
    gate = threading.Event()

    def slow_encode(item):
        gate.wait(30)
        return item

    collector = log_collector.LogCollector(str(tmp_path / "q"), slow_encode, queue_records=5)
    accepted = [collector.collect(b"r") for _ in range(50)]
    gate.set()
    collector.close()
    assert collector.dropped == accepted.count(False) > 0
    assert collector.written == accepted.count(True)


def test_a_record_that_fails_to_encode_is_skipped(tmp_path):
    def encode(item):
        if item == b"bad":
            raise ValueError("no")
        return item

    collector = log_collector.LogCollector(str(tmp_path / "e"), encode)
    for item in (b"a", b"bad", b"b"):
        collector.collect(item)
    collector.close()
    assert collector.written == 2


def test_an_unchanged_config_keeps_its_logger_and_a_removed_one_is_closed(tmp_path):
    servers = request_logger.ServerRequestLogger()
    config = logging_config(tmp_path / "k")
    servers.update([model("a", config), model("b", logging_config(tmp_path / "b"))])
    first, b_logger = servers.logger("a"), servers.logger("b")
    servers.update([model("a", config), model("b")])
    assert servers.logger("a") is first
    assert servers.logger("b") is None
    assert not b_logger.collector._thread.is_alive()
    servers.close()


@pytest.mark.parametrize(
    "config, words",
    [
        (logging_config("/p", rate=1.5), "sampling_rate must be in [0, 1]; got 1.5"),
        (
            logging_config("/p", kind="kafka"),
            "unsupported logging_config.log_collector_config.type 'kafka'",
        ),
        (logging_config(""), "filename_prefix is empty"),
    ],
)
def test_bad_logging_configs_are_refused_naming_the_value(config, words):
    error = testing.serving_error(request_logger.validate, "m", config)
    assert error.code == status.invalid_argument("").code
    assert words in error.message and "Model m" in error.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
