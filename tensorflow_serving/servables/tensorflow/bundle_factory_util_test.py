"""Per-model batching parameters: a version's batching_params.pbtxt, as upstream reads it."""

import sys

import pytest

from tensorflow_serving.batching.batching_session import BatchingOptions
from tensorflow_serving.batching.shared_batch_scheduler import QueueOptions
from tensorflow_serving.servables.tensorflow.bundle_factory_util import (
    BATCHING_PARAMS_FILENAME,
    model_batching_options,
)
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status

COMMON = BatchingOptions(queue=QueueOptions(max_batch_size=64))


def test_without_per_model_parameters_every_model_batches_with_the_servers(tmp_path):
    (tmp_path / BATCHING_PARAMS_FILENAME).write_text("max_batch_size { value: 4 }")
    assert model_batching_options(str(tmp_path), COMMON, per_model=False) is COMMON


def test_a_versions_file_replaces_the_servers_parameters(tmp_path):
    (tmp_path / BATCHING_PARAMS_FILENAME).write_text(
        "max_batch_size { value: 4 }\nbatch_timeout_micros { value: 100 }\n"
        "num_batch_threads { value: 0 }\n"  # the shared threads are the server's: ignored
    )
    options = model_batching_options(str(tmp_path), COMMON, per_model=True)
    assert options.queue == QueueOptions(max_batch_size=4, batch_timeout_micros=100)


def test_a_version_without_a_file_is_not_batched(tmp_path):
    assert model_batching_options(str(tmp_path), COMMON, per_model=True) is None


@pytest.mark.parametrize(
    "text,message",
    [
        ("max_batch_size: 4", "Error parsing text-format tensorflow.serving.BatchingParameters"),
        ("max_batch_size { value: 0 }", "max_batch_size must be positive; was 0"),
    ],
)
def test_a_bad_file_fails_the_load_naming_the_file(tmp_path, text, message):
    (tmp_path / BATCHING_PARAMS_FILENAME).write_text(text)
    with pytest.raises(status.ServingError) as raised:
        model_batching_options(str(tmp_path), COMMON, per_model=True)
    assert raised.value.code.name == "INVALID_ARGUMENT"
    assert message in raised.value.message
    assert str(tmp_path / BATCHING_PARAMS_FILENAME) in raised.value.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
