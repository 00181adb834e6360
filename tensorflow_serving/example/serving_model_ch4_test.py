"""serving_model_ch4 exports a CNN that serves both signatures as it predicted in training."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tensorflow_serving.example import (
    atomic_export,
    mnist_input_data,
    mnist_signatures,
    serving_model_ch4,
)
from tensorflow_serving.test_util import testing

TINY = {"conv1_depth": 4, "conv2_depth": 8, "fc_units": 32}


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=50)
    return path


@pytest.fixture(scope="module")
def export(work_dir, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("mnist_model"))
    result = serving_model_ch4.train_and_export(
        base, 1, training_iteration=20, work_dir=work_dir, seed=0, **TINY
    )
    return base, result


def test_train_and_export_writes_version_dir(export):
    base, result = export
    assert result.export_path == os.path.join(base, "1")
    assert os.listdir(base) == ["1"]
    assert result.test_scores.shape == (50, 10)


@pytest.mark.parametrize("runner", ["v1", "tf2"])
def test_both_signatures_answer_as_the_trained_graph_did(work_dir, export, runner):
    _, result = export
    images = mnist_input_data.read_data_sets(work_dir, source_url=None).test.images
    run = mnist_signatures.run_export_v1 if runner == "v1" else mnist_signatures.run_export_tf2
    out = run(result.export_path, images)
    np.testing.assert_allclose(out.predict_scores, result.test_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out.predict_scores.argmax(1), result.test_scores.argmax(1))
    top = out.classify_classes[:, 0].astype(int)
    np.testing.assert_array_equal(top, result.test_scores.argmax(1))
    np.testing.assert_allclose(out.classify_scores[:, 0], result.test_scores.max(1), rtol=1e-5)


def test_second_version_beside_the_first_and_refusal(work_dir, export):
    base, _ = export
    serving_model_ch4.train_and_export(base, 2, training_iteration=2, work_dir=work_dir, **TINY)
    assert sorted(os.listdir(base)) == ["1", "2"]
    with pytest.raises(atomic_export.VersionExistsError, match="version 2 already exists"):
        serving_model_ch4.train_and_export(base, 2, training_iteration=2, work_dir=work_dir, **TINY)
    serving_model_ch4.train_and_export(
        base, 2, training_iteration=2, work_dir=work_dir, overwrite=True, **TINY
    )
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_binary_trains_and_exports_the_full_size_cnn(work_dir, tmp_path):
    env = testing.child_env()
    out_dir = str(tmp_path / "mnist_model")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow_serving.example.serving_model_ch4",
            "--training_iteration=3",
            "--model_version=5",
            f"--work_dir={work_dir}",
            out_dir,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training accuracy " in proc.stdout
    assert "new model exported!" in proc.stdout
    assert os.listdir(out_dir) == ["5"]
    out = mnist_signatures.run_export_tf2(
        os.path.join(out_dir, "5"), np.zeros((2, 784), np.float32)
    )
    assert out.predict_scores.shape == (2, 10)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
