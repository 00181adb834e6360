"""SessionBundleConfig: how the TensorFlow platform loads and runs every model
(upstream: servables/tensorflow/session_bundle_config.proto and
saved_model_bundle_source_adapter.proto).

The pip package tensorflow-serving-api lacks these messages; a
--platform_config_file names them (its `tensorflow` entry is an Any holding a
SavedModelBundleSourceAdapterConfig), so they are declared here with
upstream's package, names and field numbers, and the same text files parse.
They refer to TensorFlow's own ConfigProto and NamedTensorProto, hence a
module of their own beside config_protos (which must not import TensorFlow).

Fields up to enable_per_model_batching_params (789) are declared; a file
that sets a newer field fails to parse, naming it.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from tensorflow.core.protobuf import config_pb2, named_tensor_pb2

from tensorflow_serving.util import config_protos
from tensorflow_serving.util.declared_protos import declare_messages

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL = _F.LABEL_OPTIONAL
_REPEATED = _F.LABEL_REPEATED

# message name -> [(field name, number, type, label, type_name)]
_MESSAGES = {
    "ModelWarmupOptions": [
        ("num_request_iterations", 1, _F.TYPE_MESSAGE, _OPTIONAL, ".google.protobuf.Int32Value"),
        ("num_model_warmup_threads", 2, _F.TYPE_MESSAGE, _OPTIONAL, ".google.protobuf.Int32Value"),
        ("model_name", 3, _F.TYPE_STRING, _OPTIONAL, None),
        ("model_version", 4, _F.TYPE_INT64, _OPTIONAL, None),
    ],
    "SessionBundleConfig": [
        ("session_target", 1, _F.TYPE_STRING, _OPTIONAL, None),
        ("session_config", 2, _F.TYPE_MESSAGE, _OPTIONAL, ".tensorflow.ConfigProto"),
        (
            "batching_parameters",
            3,
            _F.TYPE_MESSAGE,
            _OPTIONAL,
            ".tensorflow.serving.BatchingParameters",
        ),
        (
            "session_run_load_threadpool_index",
            4,
            _F.TYPE_MESSAGE,
            _OPTIONAL,
            ".google.protobuf.Int32Value",
        ),
        ("experimental_transient_ram_bytes_during_load", 5, _F.TYPE_UINT64, _OPTIONAL, None),
        ("saved_model_tags", 6, _F.TYPE_STRING, _REPEATED, None),
        (
            "experimental_fixed_input_tensors",
            778,
            _F.TYPE_MESSAGE,
            _REPEATED,
            ".tensorflow.NamedTensorProto",
        ),
        ("enable_model_warmup", 779, _F.TYPE_BOOL, _OPTIONAL, None),
        (
            "model_warmup_options",
            780,
            _F.TYPE_MESSAGE,
            _OPTIONAL,
            ".tensorflow.serving.ModelWarmupOptions",
        ),
        ("enable_session_metadata", 781, _F.TYPE_BOOL, _OPTIONAL, None),
        ("remove_unused_fields_from_bundle_metagraph", 782, _F.TYPE_BOOL, _OPTIONAL, None),
        ("prefer_tflite_model", 783, _F.TYPE_BOOL, _OPTIONAL, None),
        ("resource_estimation_uses_validation_result", 784, _F.TYPE_BOOL, _OPTIONAL, None),
        ("num_tflite_interpreters", 785, _F.TYPE_INT32, _OPTIONAL, None),
        ("num_tflite_interpreters_per_pool", 786, _F.TYPE_INT32, _OPTIONAL, None),
        ("num_tflite_pools", 787, _F.TYPE_INT32, _OPTIONAL, None),
        ("wrap_session_with_no_threading_params", 788, _F.TYPE_BOOL, _OPTIONAL, None),
        ("enable_per_model_batching_params", 789, _F.TYPE_BOOL, _OPTIONAL, None),
    ],
    "SavedModelBundleSourceAdapterConfig": [
        (
            "legacy_config",
            1000,
            _F.TYPE_MESSAGE,
            _OPTIONAL,
            ".tensorflow.serving.SessionBundleConfig",
        ),
    ],
}


# In the default pool, where text_format resolves an Any's type.
_CLASSES = declare_messages(
    "tensorflow_serving_py/session_bundle_config.proto",
    "tensorflow.serving",
    [
        config_protos.FILE_NAME,
        config_pb2.DESCRIPTOR.name,
        named_tensor_pb2.DESCRIPTOR.name,
        "google/protobuf/wrappers.proto",
    ],
    _MESSAGES,
)
ModelWarmupOptions = _CLASSES["ModelWarmupOptions"]
SessionBundleConfig = _CLASSES["SessionBundleConfig"]
SavedModelBundleSourceAdapterConfig = _CLASSES["SavedModelBundleSourceAdapterConfig"]

# What an Any holding the TensorFlow platform's adapter config names as its type.
SOURCE_ADAPTER_TYPE_URL = (
    "type.googleapis.com/" + SavedModelBundleSourceAdapterConfig.DESCRIPTOR.full_name
)
