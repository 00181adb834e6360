"""Both export styles load into a session and expose their signatures."""

import sys
import threading

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tensorflow.core.framework import types_pb2

from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    load_saved_model_bundle,
    runs_ops_one_at_a_time,
    session_config,
)
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


def _export_thread_reporter(export_dir: str) -> None:
    """A model whose output is the id of the thread that ran its op.

    Its op is a Python function, so it only loads in this process, which is
    all a test of where ops run needs.
    """
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        x = tf.placeholder(tf.float32, [None], name="x")
        ident = tf.numpy_function(
            lambda _: np.int64(threading.get_ident()), [x], tf.int64, name="ident"
        )
        builder = tf.saved_model.Builder(export_dir)
        signature = tf.saved_model.predict_signature_def({"x": x}, {"thread": ident})
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()


@pytest.mark.parametrize(("inter_op_threads", "on_caller"), [(1, True), (2, False)])
def test_one_inter_op_thread_runs_the_graph_on_the_callers_thread(
    tmp_path, inter_op_threads, on_caller
):
    export_dir = str(tmp_path / "1")
    _export_thread_reporter(export_dir)
    bundle = load_saved_model_bundle(export_dir, config=session_config(1, inter_op_threads))
    try:
        sig = bundle.signature("serving_default")
        out = bundle.run(sig, {"x": np.zeros([1], np.float32)}, ("thread",))
        assert (int(out["thread"]) == threading.get_ident()) is on_caller
    finally:
        bundle.close()


def test_auto_inter_op_threads_follow_the_env_then_the_cpus_we_may_use(monkeypatch):
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "1")
    assert runs_ops_one_at_a_time(session_config())
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")
    assert not runs_ops_one_at_a_time(session_config())
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert runs_ops_one_at_a_time(session_config())
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert not runs_ops_one_at_a_time(session_config())
    pooled = session_config(inter_op_threads=1)
    pooled.session_inter_op_thread_pool.add(num_threads=1)
    assert not runs_ops_one_at_a_time(pooled)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
