"""TfLiteSession: signatures named as upstream names them, runs resized to each batch, a pool
of interpreters, split batches, tf.Examples parsed for Classify/Regress, and the loader's choice."""

import sys
import threading

import grpc
import numpy as np
import pytest

from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.core.servable_state import ServableId
from tensorflow_serving.servables.tensorflow import classifier, regressor, tflite_session
from tensorflow_serving.servables.tensorflow.saved_model_bundle import SavedModelBundle
from tensorflow_serving.servables.tensorflow.saved_model_bundle_source_adapter import (
    BundleOptions,
    SavedModelLoader,
)
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.servables.tensorflow.testdata import export_tflite
from tensorflow_serving.servables.tensorflow.tflite_interpreter_pool import InterpreterPool
from tensorflow_serving.servables.tensorflow.tflite_session import TfLiteOptions, TfLiteSession
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status

ONE = TfLiteOptions(prefer_tflite_model=True, num_pools=1)


def session(model: bytes, options: TfLiteOptions = ONE) -> TfLiteSession:
    return TfLiteSession("/models/m/1", model, options)


def run(servable, values, key="serving_default", alias="x"):
    signature = servable.signature(key)
    return servable.run(signature, {alias: np.asarray(values, np.float32)}, ("y",))["y"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("work"))
    return {
        "signature": export_tflite.half_plus_two_with_signature(),
        "none": export_tflite.half_plus_two_without_signature(),
        "legacy": export_tflite.half_plus_two_with_legacy_signature(),
        "two": export_tflite.two_signatures(work),
        "matmul": export_tflite.matmul_model(),
        "examples": export_tflite.examples_model(),
    }


@pytest.mark.parametrize(
    "kind, tensor",
    [("signature", "serving_default_x:0"), ("none", "x"), ("legacy", "tflite_input")],
)
def test_half_plus_two_in_each_form_answers_3_for_2(models, kind, tensor):
    servable = session(models[kind])
    signature = servable.meta_graph_def.signature_def["serving_default"]
    assert list(servable.meta_graph_def.signature_def) == ["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["x"].name == tensor
    assert list(signature.outputs) == ["y"]
    np.testing.assert_allclose(run(servable, [2.0]).ravel(), [3.0])


def test_inputs_are_resized_to_each_batch_and_back(models):
    servable = session(models["none"])  # allocated for [1, 1]
    np.testing.assert_allclose(run(servable, [[1.0], [2.0], [3.0]]).ravel(), [2.5, 3.0, 3.5])
    np.testing.assert_allclose(run(servable, [[2.0]]).ravel(), [3.0])


def test_each_signature_of_a_model_runs_its_own_subgraph(models):
    servable = session(models["two"])
    assert sorted(servable.signatures) == ["serving_default", "times_three"]
    np.testing.assert_allclose(run(servable, [[2.0], [4.0]]).ravel(), [3.0, 4.0])
    np.testing.assert_allclose(run(servable, [[2.0], [4.0]], "times_three").ravel(), [6.0, 12.0])


def test_an_unknown_signature_is_failed_precondition(models):
    error = testing.serving_error(session(models["two"]).signature, "nope")
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION


def test_inputs_the_model_cannot_take_are_invalid_argument_and_the_next_run_works(models):
    servable = session(models["matmul"])
    error = testing.serving_error(run, servable, np.ones([2, 3]))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "[2, 3]" in error.message and "serving_default" in error.message
    np.testing.assert_allclose(run(servable, np.ones([2, 4])), [[4.0, 4.0]] * 2)


def examples(*rows):
    proto = input_pb2.Input()
    for x, label in rows:
        example = proto.example_list.examples.add()
        if x is not None:
            example.features.feature["x"].float_list.value.append(x)
        if label is not None:
            example.features.feature["label"].bytes_list.value.append(label)
    return proto


def test_classify_and_regress_parse_the_examples_inside_the_model(models):
    handle = ServableHandle("examples", 1, session(models["examples"]))
    proto = examples((2.0, b"two"), (None, None))
    classified = classifier.classify_response(
        handle, classification_pb2.ClassificationRequest(input=proto)
    )
    classes = [[(c.label, c.score) for c in cl.classes] for cl in classified.result.classifications]
    assert classes == [[("two", 3.0)], [("missing", 2.0)]]
    regressed = regressor.regress_response(handle, regression_pb2.RegressionRequest(input=proto))
    assert [r.value for r in regressed.result.regressions] == [3.0, 2.0]


def test_parse_example_in_a_second_signature_fails_the_load_with_a_reason(tmp_path):
    model = export_tflite.two_signatures(str(tmp_path), parse_in_second=True)
    error = testing.serving_error(session, model)
    assert error.code == grpc.StatusCode.UNIMPLEMENTED
    assert "ParseExample ops in subgraphs [1]" in error.message


def test_bytes_that_are_no_examples_are_invalid_argument(models):
    servable = session(models["examples"])
    signature = servable.signature("serving_default")
    garbage = np.array([b"\xff\xfe not a proto"], dtype=object)
    error = testing.serving_error(servable.run, signature, {"inputs": garbage}, ("outputs",))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "parse" in error.message


def test_a_pool_lends_each_interpreter_to_one_run_at_a_time():
    made = []
    pool = InterpreterPool(lambda: made.append(object()) or made[-1], 2)
    with pool.interpreter() as first, pool.interpreter() as second:
        assert first is not second  # two runs at once: each has its own
    with pytest.raises(RuntimeError):
        with pool.interpreter() as broken:
            raise RuntimeError("invoke failed")
    lent = []
    with pool.interpreter() as a, pool.interpreter() as b:
        lent = [a, b]
    assert broken not in lent and len(made) == 3  # the failed one was replaced


def test_a_closed_pool_lends_nothing():
    pool = InterpreterPool(object, 1)
    pool.close()
    with pytest.raises(status.ServingError, match="unloaded"):
        with pool.interpreter():
            pass


def test_a_run_waits_while_every_interpreter_is_busy():
    pool = InterpreterPool(object, 1)
    got = threading.Event()

    def borrow():
        with pool.interpreter():
            got.set()

    with pool.interpreter():
        waiter = threading.Thread(target=borrow)
        waiter.start()
        assert testing.wait_for(lambda: pool.waiting() == 1, timeout=10)
        assert not got.is_set()
    waiter.join(10)
    assert got.is_set()


def test_interpreters_per_pool_splits_a_large_batch_into_pieces(models, monkeypatch):
    pieces = []
    real = tflite_session._Interpreter.run

    def recording(self, feeds, outputs):
        pieces.append(next(iter(feeds.values())).shape[0])
        return real(self, feeds, outputs)

    monkeypatch.setattr(tflite_session._Interpreter, "run", recording)
    servable = session(models["signature"], TfLiteOptions(True, 2, 4))  # pieces of 125 rows
    values = np.arange(300, dtype=np.float32).reshape(300, 1)
    np.testing.assert_allclose(run(servable, values), values * 0.5 + 2.0)
    assert sorted(pieces) == [50, 125, 125]
    pieces.clear()
    run(servable, values[:125])
    assert pieces == [125]
    servable.close()


def test_the_loader_serves_model_tflite_only_when_preferred(tmp_path, models):
    path = hp.export_half_plus_two_tf2(str(tmp_path), 1)
    export_tflite.export(str(tmp_path), 1, models["two"])
    servable_id = ServableId("m", 1)
    preferred = SavedModelLoader(servable_id, path, BundleOptions(tflite=ONE)).load()
    assert isinstance(preferred, TfLiteSession) and "times_three" in preferred.signatures
    plain = SavedModelLoader(servable_id, path, BundleOptions()).load()
    assert isinstance(plain, SavedModelBundle) and "times_three" not in plain.signatures
    preferred.close()
    plain.close()


def test_a_version_without_model_tflite_loads_its_saved_model(tmp_path):
    path = hp.export_half_plus_two_tf2(str(tmp_path), 1)
    servable = SavedModelLoader(ServableId("m", 1), path, BundleOptions(tflite=ONE)).load()
    assert isinstance(servable, SavedModelBundle)
    servable.close()


def test_a_file_that_is_no_tflite_model_fails_to_load_with_its_path(tmp_path):
    export_tflite.export(str(tmp_path), 1, b"not a flatbuffer at all")
    error = testing.serving_error(tflite_session.load_tflite_session, str(tmp_path / "1"), ONE)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "model.tflite" in error.message


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
