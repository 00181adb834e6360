"""Both export styles load into a session and expose their signatures."""

import os
import sys
import threading

import grpc
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tensorflow.core.framework import types_pb2

from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    MAX_MESSAGE_CHARS,
    load_saved_model_bundle,
    runs_on_calling_thread_only,
    runs_ops_one_at_a_time,
    session_config,
)
from tensorflow_serving.servables.tensorflow.testdata.export_string_parser import (
    export_string_parser,
)
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


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


@pytest.fixture(scope="module")
def string_parser(tmp_path_factory):
    bundle = load_saved_model_bundle(export_string_parser(str(tmp_path_factory.mktemp("s") / "1")))
    yield bundle
    bundle.close()


def _run_on_strings(bundle, values: list[bytes], output: str) -> dict[str, np.ndarray]:
    strings = np.empty(len(values), dtype=object)
    strings[:] = values
    return bundle.run(bundle.signature("serving_default"), {"s": strings}, (output,))


@pytest.mark.parametrize(
    "value,words",
    [
        (b"abc", "could not correctly convert string: abc"),
        # TensorFlow quotes the bytes; as they are not UTF-8, Python could not
        # read its message and raised UnicodeDecodeError instead.
        (b"\xc0\xc0", "could not correctly convert string: \\xc0\\xc0"),
    ],
)
def test_a_run_failing_on_the_inputs_bytes_is_invalid_argument(string_parser, value, words):
    with pytest.raises(status.ServingError) as raised:
        _run_on_strings(string_parser, [b"1", value], "number")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in raised.value.message
    assert "[[" not in raised.value.message, "no node trace"


def test_a_run_error_quoting_a_long_input_is_cut_short(string_parser):
    with pytest.raises(status.ServingError) as raised:
        _run_on_strings(string_parser, [b"\xff" * 100_000], "number")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message.endswith("... (truncated)")
    assert len(raised.value.message) <= MAX_MESSAGE_CHARS + len("... (truncated)")


def test_bytes_that_are_not_utf8_pass_through_an_op_that_does_not_read_them(string_parser):
    assert _run_on_strings(string_parser, [b"\xc0\xc0"], "echo")["echo"].tolist() == [b"\xc0\xc0"]


def _thread_id(_) -> np.int64:
    # Module-level: TF's registry of Python ops keeps only weak references,
    # so the function must outlive the graph that was exported with it.
    return np.int64(threading.get_ident())


def _export_thread_reporter(export_dir: str) -> None:
    """A model whose output is the id of the thread that ran its op.

    Its op is a Python function, so it only loads in this process, which is
    all a test of where ops run needs.
    """
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        x = tf.placeholder(tf.float32, [None], name="x")
        ident = tf.numpy_function(_thread_id, [x], tf.int64, name="ident")
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


def test_calling_thread_only_also_needs_one_intra_op_thread(monkeypatch):
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    assert runs_on_calling_thread_only(session_config(1, 1))
    assert not runs_on_calling_thread_only(session_config(2, 1))
    assert not runs_on_calling_thread_only(session_config(1, 2))
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert runs_on_calling_thread_only(session_config())
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    assert not runs_on_calling_thread_only(session_config())


# Calls of the op of _export_call_recorder's models: (thread id, scheduling policy).
_RECORDED_CALLS = []


def _record_call(x):
    _RECORDED_CALLS.append((threading.get_ident(), os.sched_getscheduler(0)))
    return x


def _export_call_recorder(export_dir: str, counts_calls: bool) -> None:
    """A model whose op records every run in _RECORDED_CALLS (so it loads in this
    process only); with `counts_calls` it also adds 1 to a variable per run."""
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        x = tf.placeholder(tf.float32, [None], name="x")
        y = tf.numpy_function(_record_call, [x], tf.float32, stateful=False, name="record")
        if counts_calls:
            calls = tf.Variable(0.0, name="calls", use_resource=True)
            with tf.control_dependencies([calls.assign_add(1.0)]):
                y = tf.identity(y)
        session.run(tf.global_variables_initializer())
        builder = tf.saved_model.Builder(export_dir)
        signature = tf.saved_model.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"serving_default": signature}
        )
        builder.save()


def _reruns() -> list:
    return [call for call in list(_RECORDED_CALLS) if call[0] != threading.get_ident()]


@pytest.mark.parametrize("counts_calls", [False, True])
def test_warmer_reruns_read_only_calls_at_idle_priority_until_the_model_closes(
    tmp_path, counts_calls
):
    export_dir = str(tmp_path / "1")
    _export_call_recorder(export_dir, counts_calls)
    warmer = IdleWarmer(window_seconds=30.0)
    bundle = load_saved_model_bundle(export_dir, config=session_config(1, 1), warmer=warmer)
    try:
        _RECORDED_CALLS.clear()
        sig = bundle.signature("serving_default")
        out = bundle.run(sig, {"x": np.array([1.0, 2.0], np.float32)}, ("y",))
        np.testing.assert_allclose(out["y"], [1.0, 2.0])
        if counts_calls:  # a call that changes state runs once per request, never more
            assert warmer.idle, "the warmer was handed a call that changes state"
            assert _reruns() == []
        else:
            assert testing.wait_for(lambda: len(_reruns()) >= 3, timeout=30), "no rerun"
            assert {policy for _, policy in _reruns()} == {os.SCHED_IDLE}
        bundle.close()  # a rerun in progress may finish; none starts afterwards
        assert testing.wait_for(lambda: warmer.idle, timeout=30), "still rerunning after close"
    finally:
        warmer.stop()
        bundle.close()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
