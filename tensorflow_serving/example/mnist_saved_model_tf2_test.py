"""The TF2-native exporter serves the same signature names as the TF1 ones."""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tensorflow_serving.example import (
    atomic_export,
    mnist_input_data,
    mnist_saved_model_tf2,
    mnist_signatures,
)
from tensorflow_serving.test_util import testing


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=50)
    return path


@pytest.fixture(scope="module")
def export(work_dir, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("tf2_model"))
    result = mnist_saved_model_tf2.train_and_export(
        base, 1, training_iteration=30, work_dir=work_dir, seed=0
    )
    return base, result


def test_trains_and_exports_to_the_version_dir(export):
    base, result = export
    assert result.export_path == os.path.join(base, "1")
    assert os.listdir(base) == ["1"]
    assert result.test_accuracy > 0.5


@pytest.mark.parametrize("runner", ["v1", "tf2"])
def test_both_loaders_reproduce_the_modules_predictions(work_dir, export, runner):
    _, result = export
    images = mnist_input_data.read_data_sets(work_dir, source_url=None).test.images
    run = mnist_signatures.run_export_v1 if runner == "v1" else mnist_signatures.run_export_tf2
    out = run(result.export_path, images)
    np.testing.assert_allclose(out.predict_scores, result.test_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        out.classify_classes[:, 0].astype(int), result.test_scores.argmax(1)
    )
    np.testing.assert_allclose(out.classify_scores[:, 0], result.test_scores.max(1), rtol=1e-5)


def test_signature_names_and_io_keys(export):
    _, result = export
    loaded = tf.saved_model.load(result.export_path)
    assert set(loaded.signatures) == {"predict_images", "serving_default"}
    predict = loaded.signatures["predict_images"]
    classify = loaded.signatures["serving_default"]
    assert list(predict.structured_input_signature[1]) == ["images"]
    assert set(predict.structured_outputs) == {"scores"}
    inputs = classify.structured_input_signature[1]
    assert list(inputs) == ["inputs"] and inputs["inputs"].dtype == tf.string
    assert set(classify.structured_outputs) == {"classes", "scores"}


def test_existing_version_is_refused(work_dir, export):
    base, _ = export
    with pytest.raises(atomic_export.VersionExistsError):
        mnist_saved_model_tf2.train_and_export(base, 1, training_iteration=1, work_dir=work_dir)


def test_main_exports(work_dir, tmp_path, capsys):
    args = ["--training_iteration=5", "--model_version=2", f"--work_dir={work_dir}", str(tmp_path)]
    assert mnist_saved_model_tf2.main(args) == 0
    assert "new model exported!" in capsys.readouterr().out
    assert os.listdir(str(tmp_path)) == ["2"]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
