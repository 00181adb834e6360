"""Warmup replays the recorded requests of assets.extra before a version serves."""

import logging
import os
import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.servables.tensorflow import saved_model_warmup
from tensorflow_serving.servables.tensorflow.saved_model_bundle import SavedModelBundle
from tensorflow_serving.servables.tensorflow.saved_model_bundle_source_adapter import (
    BundleOptions,
    SavedModelLoader,
)
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status, tensor_codec


def write_warmup(export_dir, *records):
    """Writes one PredictionLog per dict of inputs into the version's warmup file."""
    os.makedirs(os.path.join(export_dir, "assets.extra"), exist_ok=True)
    path = os.path.join(export_dir, saved_model_warmup.WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for inputs in records:
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = "hp"
            for alias, array in inputs.items():
                tensor_codec.to_tensor_proto(array, request.inputs[alias])
            writer.write(log.SerializeToString())


@pytest.fixture
def model_runs(monkeypatch):
    """Every run of a loaded SavedModel in this test: (signature key, inputs, outputs)."""
    runs = []
    original = SavedModelBundle.run

    def counted(self, signature, inputs, output_aliases):
        outputs = original(self, signature, inputs, output_aliases)
        runs.append((signature.key, {k: v.tolist() for k, v in inputs.items()}, outputs))
        return outputs

    monkeypatch.setattr(SavedModelBundle, "run", counted)
    return runs


@pytest.fixture
def export_copy(tf1_dir, tmp_path):
    path = str(tmp_path / "1")
    shutil.copytree(tf1_dir, path)
    return path


def test_good_warmup_records_are_replayed(export_copy, model_runs, caplog):
    write_warmup(
        export_copy, {"x": np.array([[1.0]], np.float32)}, {"x": np.array([[4.0]], np.float32)}
    )
    loader = SavedModelLoader(ServableId("hp", 1), export_copy, BundleOptions(warmup_iterations=3))
    with caplog.at_level(logging.INFO):
        servable = loader.load()
    try:
        # Each record, three times (--num_request_iterations_for_warmup), in file order.
        assert [(key, inputs) for key, inputs, _ in model_runs] == [
            *[("serving_default", {"x": [[1.0]]})] * 3,
            *[("serving_default", {"x": [[4.0]]})] * 3,
        ]
        np.testing.assert_allclose(model_runs[0][2]["y"], [[2.5]])  # the model really ran
        assert "Number of warmup records read: 2." in caplog.text
    finally:
        loader.unload(servable)


def test_warmup_off_replays_nothing(export_copy, model_runs):
    write_warmup(export_copy, {"x": np.array([[1.0]], np.float32)})
    loader = SavedModelLoader(
        ServableId("hp", 1), export_copy, BundleOptions(enable_model_warmup=False)
    )
    loader.unload(loader.load())
    assert model_runs == []


def test_bad_warmup_record_fails_the_load(export_copy):
    write_warmup(export_copy, {"wrong": np.array([[1.0]], np.float32)})
    loader = SavedModelLoader(ServableId("hp", 1), export_copy, BundleOptions())
    with pytest.raises(status.ServingError, match="Missing but required: {x}"):
        loader.load()
    # With warmup off, the same version loads.
    loader = SavedModelLoader(
        ServableId("hp", 1), export_copy, BundleOptions(enable_model_warmup=False)
    )
    loader.unload(loader.load())


def test_no_warmup_file_means_nothing_replayed(tf1, model_runs):
    assert (
        saved_model_warmup.run_saved_model_warmup(tf1.servable.export_dir, "hp", 1, tf1.servable)
        == 0
    )
    assert model_runs == []


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
