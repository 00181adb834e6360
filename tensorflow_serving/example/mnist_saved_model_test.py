"""mnist_saved_model exports the softmax model with the same two signatures."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tensorflow_serving.example import mnist_input_data, mnist_saved_model, mnist_signatures
from tensorflow_serving.test_util import testing


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=50)
    return path


@pytest.mark.parametrize("runner", ["v1", "tf2"])
def test_export_serves_both_signatures_like_the_trained_graph(work_dir, tmp_path, runner):
    result = mnist_saved_model.train_and_export(
        str(tmp_path), 4, training_iteration=30, work_dir=work_dir
    )
    assert result.export_path == os.path.join(str(tmp_path), "4")
    assert result.test_accuracy > 0.5
    images = mnist_input_data.read_data_sets(work_dir, source_url=None).test.images
    run = mnist_signatures.run_export_v1 if runner == "v1" else mnist_signatures.run_export_tf2
    out = run(result.export_path, images)
    np.testing.assert_allclose(out.predict_scores, result.test_scores, rtol=1e-5, atol=1e-6)
    top = out.classify_classes[:, 0].astype(int)
    np.testing.assert_array_equal(top, result.test_scores.argmax(1))


def test_binary_prints_the_chapters_lines(work_dir, tmp_path):
    env = testing.child_env()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow_serving.example.mnist_saved_model",
            "--training_iteration=10",
            f"--work_dir={work_dir}",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "new model exported!" in proc.stdout
    assert os.listdir(str(tmp_path)) == ["1"]


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
