"""Config messages the pip package lacks: BatchingParameters, MonitoringConfig, SSLConfig.

tensorflow-serving-api ships ModelServerConfig but not these. We declare them
here with upstream's package, names and field numbers, so the same ASCII
files that configure the stock server parse with protobuf's text_format; no
generated code to keep in step with the protobuf runtime.
"""

from __future__ import annotations

from google.protobuf import (
    descriptor_pb2,
    text_format,
    wrappers_pb2,  # noqa: F401  (registers wrappers.proto in the pool)
)

from tensorflow_serving.util import file_io, status
from tensorflow_serving.util.declared_protos import declare_messages

# The file these messages are declared in (other declared files depend on it).
FILE_NAME = "tensorflow_serving_py/config_protos.proto"

_F = descriptor_pb2.FieldDescriptorProto
_WRAPPERS = "google/protobuf/wrappers.proto"

# message name -> [(field name, number, type, label, type_name)]
_MESSAGES = {
    "BatchingParameters": [
        ("max_batch_size", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        (
            "batch_timeout_micros",
            2,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.Int64Value",
        ),
        (
            "max_enqueued_batches",
            3,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.Int64Value",
        ),
        ("num_batch_threads", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.Int64Value"),
        ("thread_pool_name", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".google.protobuf.StringValue"),
        ("allowed_batch_sizes", 6, _F.TYPE_INT64, _F.LABEL_REPEATED, None),
        ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
        (
            "enable_large_batch_splitting",
            8,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.BoolValue",
        ),
        (
            "max_execution_batch_size",
            9,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".google.protobuf.Int64Value",
        ),
    ],
    "PrometheusConfig": [
        ("enable", 1, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
        ("path", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "MonitoringConfig": [
        (
            "prometheus_config",
            1,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            ".tensorflow.serving.PrometheusConfig",
        ),
    ],
    "SSLConfig": [
        ("server_key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("server_cert", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("custom_ca", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("client_verify", 4, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    ],
}


_CLASSES = declare_messages(FILE_NAME, "tensorflow.serving", [_WRAPPERS], _MESSAGES)
BatchingParameters = _CLASSES["BatchingParameters"]
PrometheusConfig = _CLASSES["PrometheusConfig"]
MonitoringConfig = _CLASSES["MonitoringConfig"]
SSLConfig = _CLASSES["SSLConfig"]


def parse_text_file(path: str, message_class: type):
    """Reads an ASCII proto file; INVALID_ARGUMENT names the file and the problem.

    A file that does not parse gets a message that starts as upstream's does,
    `Error parsing text-format tensorflow.serving.<Message>: `, then the
    position and problem, then the file.
    """
    try:
        text = file_io.read_text(path)
    except OSError as error:
        raise status.invalid_argument(f"Cannot read '{path}': {error.strerror or error}") from None
    except UnicodeDecodeError as error:  # binary garbage: the read itself fails
        raise _parse_error(path, message_class, error) from None
    try:
        return text_format.Parse(text, message_class())
    except (text_format.ParseError, UnicodeDecodeError) as error:
        raise _parse_error(path, message_class, error) from None


def _parse_error(path: str, message_class: type, error: Exception) -> status.ServingError:
    name = message_class.DESCRIPTOR.full_name
    return status.invalid_argument(
        f"Error parsing text-format {name}: {error}; Invalid protobuf file: '{path}'"
    )
