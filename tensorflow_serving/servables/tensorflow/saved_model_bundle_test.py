"""Both export styles load into a session and expose their signatures."""

import sys

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from tensorflow_serving.servables.tensorflow.saved_model_bundle import load_saved_model_bundle
from tensorflow_serving.util import status, testing


def test_signatures_are_digested_without_internal_ones(model):
    signatures = model.servable.signatures
    assert "serving_default" in signatures and "regress_x_to_y" in signatures
    assert not any(key.startswith("__") for key in signatures)
    x = signatures["serving_default"].inputs["x"]
    assert x.dtype == types_pb2.DT_FLOAT


def test_runs_a_signature(model):
    sig = model.servable.signature("serving_default")
    out = model.servable.run(sig, {"x": np.array([[1.0], [3.0]], np.float32)}, ("y",))
    np.testing.assert_allclose(out["y"].ravel(), [2.5, 3.5])


def test_rank_one_input_is_accepted_for_minus_one_by_one_like_the_cpp_session(tf1):
    sig = tf1.servable.signature("serving_default")
    assert sig.inputs["x"].shape == (-1, 1)
    out = tf1.servable.run(sig, {"x": np.array([1.0, 3.0], np.float32)}, ("y",))
    np.testing.assert_allclose(out["y"].ravel(), [2.5, 3.5])


def test_unknown_signature_is_failed_precondition_as_upstream(model):
    with pytest.raises(status.ServingError, match='Serving signature key "nope" not found'):
        model.servable.signature("nope")


def test_missing_directory_and_missing_pb_are_clear(tmp_path):
    with pytest.raises(status.ServingError, match="not found"):
        load_saved_model_bundle(str(tmp_path / "nope"))
    with pytest.raises(status.ServingError, match="Could not find SavedModel .pb"):
        load_saved_model_bundle(str(tmp_path))


def test_wrong_tags_fail_to_load(tf1_dir):
    with pytest.raises(status.ServingError):
        load_saved_model_bundle(tf1_dir, tags=("gpu",))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
