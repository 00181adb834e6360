"""Accuracy after restoring .npz weights equals the accuracy before saving, exactly."""

import os
import sys

import numpy as np
import pytest

from tensorflow_serving.example import mnist_input_data, save_restore_npz
from tensorflow_serving.test_util import testing

TINY = {"conv1_depth": 4, "conv2_depth": 8, "fc_units": 32}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("mnist"))
    mnist_input_data.write_synthetic_data_sets(path, num_train=300, num_test=200)
    return path


def _data(data_dir):
    return mnist_input_data.read_data_sets(
        data_dir, one_hot=True, validation_size=0, source_url=None
    )


def test_softmax_round_trip_is_exact(data_dir, tmp_path):
    result = save_restore_npz.softmax_round_trip(_data(data_dir), str(tmp_path), steps=20)
    assert os.path.basename(result.path) == "weight_storage.npz"
    assert result.accuracy_before > 0.5
    assert result.accuracy_after == result.accuracy_before
    np.testing.assert_array_equal(result.scores_after, result.scores_before)


def test_cnn_round_trip_through_simple_cnn_constructor_is_exact(data_dir, tmp_path):
    result = save_restore_npz.cnn_round_trip(_data(data_dir), str(tmp_path), steps=10, **TINY)
    assert os.path.basename(result.path) == "cnn_weight_storage.npz"
    assert len(np.load(result.path).files) == 8
    assert result.accuracy_after == result.accuracy_before
    np.testing.assert_array_equal(result.scores_after, result.scores_before)


def test_main_prints_both_accuracies(data_dir, tmp_path, capsys):
    code = save_restore_npz.main(
        ["--model=softmax", f"--work_dir={data_dir}", f"--output_dir={tmp_path}", "--steps=10"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Accuracy before saving: " in out
    assert "Accuracy after restoring from .npz: " in out


def test_main_rejects_non_positive_steps(capsys):
    assert save_restore_npz.main(["--steps=0"]) == 2
    assert "--steps must be positive, got 0" in capsys.readouterr().out


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
