"""The stock server's ASCII config files parse into our declared messages."""

import sys

import pytest

from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import config_protos, status


def test_batching_parameters_file_in_upstream_syntax(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text(
        "max_batch_size { value: 32 }\n"
        "batch_timeout_micros { value: 500 }\n"
        "num_batch_threads { value: 2 }\n"
        "allowed_batch_sizes: 8\nallowed_batch_sizes: 32\n"
        "pad_variable_length_inputs: true\n"
    )
    params = config_protos.parse_text_file(str(path), config_protos.BatchingParameters)
    assert params.max_batch_size.value == 32
    assert params.batch_timeout_micros.value == 500
    assert not params.HasField("max_enqueued_batches")
    assert list(params.allowed_batch_sizes) == [8, 32]
    assert params.pad_variable_length_inputs


def test_monitoring_and_ssl_configs(tmp_path):
    path = tmp_path / "monitoring.txt"
    path.write_text('prometheus_config { enable: true, path: "/metrics" }')
    config = config_protos.parse_text_file(str(path), config_protos.MonitoringConfig)
    assert config.prometheus_config.enable and config.prometheus_config.path == "/metrics"
    ssl = config_protos.SSLConfig(server_key="k", server_cert="c", client_verify=True)
    assert ssl.client_verify


def test_garbage_names_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("max_batch_size: {{{")
    with pytest.raises(status.ServingError, match="bad.txt") as raised:
        config_protos.parse_text_file(str(path), config_protos.BatchingParameters)
    assert raised.value.http_status() == 400
    with pytest.raises(status.ServingError, match="Cannot read"):
        config_protos.parse_text_file(str(tmp_path / "missing.txt"), config_protos.MonitoringConfig)


@pytest.mark.parametrize(
    "message_class",
    [
        model_server_config_pb2.ModelServerConfig,
        config_protos.BatchingParameters,
        config_protos.MonitoringConfig,
        config_protos.SSLConfig,
    ],
    ids=lambda cls: cls.DESCRIPTOR.name,
)
@pytest.mark.parametrize("content", [b"no_such_field: 1\n", b"\x89PNG\r\n\x1a\n\xff\xfe"])
def test_a_file_that_does_not_parse_gets_upstreams_first_words(tmp_path, message_class, content):
    path = tmp_path / "bad.config"
    path.write_bytes(content)
    with pytest.raises(status.ServingError) as raised:
        config_protos.parse_text_file(str(path), message_class)
    message = raised.value.message
    name = message_class.DESCRIPTOR.full_name
    assert message.startswith(f"Error parsing text-format {name}: "), message
    assert str(path) in message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
