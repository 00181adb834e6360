"""saved_model_to_tflite: a SavedModel version gains a model.tflite that serves the same answers."""

import os
import sys

import numpy as np
import pytest

from tensorflow_serving.example import saved_model_to_tflite
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.servables.tensorflow.tflite_session import (
    TfLiteOptions,
    load_tflite_session,
)
from tensorflow_serving.test_util import testing


def test_the_version_gains_a_model_tflite_with_the_signature(tmp_path, capsys):
    version = hp.export_half_plus_two_tf2(str(tmp_path), 1)
    assert saved_model_to_tflite.main(["--signature_keys=serving_default", version]) == 0
    assert "model.tflite" in capsys.readouterr().out
    assert not [n for n in os.listdir(version) if ".partial-" in n]
    servable = load_tflite_session(version, TfLiteOptions(True, 1, 1))
    signature = servable.signature("serving_default")
    (alias,) = signature.input_order
    (output,) = signature.output_order
    values = servable.run(signature, {alias: np.array([[2.0]], np.float32)}, (output,))
    np.testing.assert_allclose(values[output].ravel(), [3.0])
    servable.close()


def test_a_directory_without_a_saved_model_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        saved_model_to_tflite.main([str(tmp_path)])


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
