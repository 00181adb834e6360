"""One request lifecycle: every outcome reaches the caller once, and the version is released."""

import sys
import threading
import time

import numpy as np
import pytest

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.batching.batching_session import BatchingOptions, BatchingServable
from tensorflow_serving.batching.shared_batch_scheduler import SharedBatchScheduler
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.model_servers import metrics
from tensorflow_serving.model_servers.data_plane import Call, DataPlane
from tensorflow_serving.model_servers.prediction_service_impl import PredictWork
from tensorflow_serving.servables.tensorflow.saved_model_bundle import load_saved_model_bundle
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status, tensor_codec
from tensorflow_serving.util.executors import WorkerThreads


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    loaded = load_saved_model_bundle(
        hp.export_half_plus_two_tf1(str(tmp_path_factory.mktemp("m")), 1)
    )
    yield loaded
    loaded.close()


class CountingCore:
    """A one-model core whose handles count how many holds are open."""

    def __init__(self, servable):
        self.servable = servable
        self.open = 0
        self._lock = threading.Lock()

    def servable_handle(self, model_spec):
        if model_spec.name != "hp":
            raise status.not_found(f"Servable not found for request: Latest({model_spec.name})")
        core = self

        class Handle(ServableHandle):
            released = False

            def release(self):
                if not self.released:
                    self.released = True
                    with core._lock:
                        core.open -= 1

        with self._lock:
            self.open += 1
        return Handle("hp", 1, self.servable)


class BundleDouble:
    """The bundle's signatures, with `run` replaced (what BatchingServable calls)."""

    def __init__(self, bundle, run):
        self.signatures = bundle.signatures
        self.meta_graph_def = bundle.meta_graph_def
        self.export_dir = bundle.export_dir
        self.signature = bundle.signature
        self.run = run


def predict_request(values, name="hp") -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    tensor_codec.to_tensor_proto(np.asarray(values, np.float32), request.inputs["x"])
    return request


def serve(plane, request, deadline=None):
    return plane.serve(Call("Predict", request.model_spec, deadline), PredictWork(request))


def plane_for(core, **kw):
    return DataPlane(core, metrics.GRPC, metrics=metrics.ServingMetrics(process=False), **kw)


def test_a_plain_servable_answers_before_serve_returns_and_releases(bundle):
    core = CountingCore(bundle)
    outcome = serve(plane_for(core), predict_request([[1.0], [2.0]]))
    assert outcome.done()
    response = outcome.result()
    assert list(response.outputs["y"].float_val) == [2.5, 3.0]
    assert response.model_spec.version.value == 1
    assert core.open == 0


def test_batched_requests_each_get_their_own_rows_and_release(bundle):
    scheduler = SharedBatchScheduler(1)
    try:
        core = CountingCore(BatchingServable(bundle, scheduler, BatchingOptions()))
        plane = plane_for(core)
        outcomes = [serve(plane, predict_request([[float(i)]])) for i in range(5)]
        for i, outcome in enumerate(outcomes):
            assert list(outcome.result(timeout=10).outputs["y"].float_val) == [i / 2 + 2]
        assert core.open == 0
    finally:
        scheduler.stop()


def test_a_bad_request_fails_without_running_and_releases(bundle):
    runs = []

    class Watched(BatchingServable):
        def submit(self, *args):
            runs.append(args)
            return super().submit(*args)

    scheduler = SharedBatchScheduler(1)
    try:
        core = CountingCore(Watched(bundle, scheduler, BatchingOptions()))
        request = predict_request([[1.0]])
        request.inputs["z"].CopyFrom(request.inputs["x"])
        outcome = serve(plane_for(core), request)
        with pytest.raises(status.ServingError, match="Send extra: {z}"):
            outcome.result(timeout=10)
        assert runs == [] and core.open == 0
    finally:
        scheduler.stop()


def test_a_failed_batch_reaches_every_caller_as_its_error(bundle):
    def broken(signature, inputs, output_aliases):
        raise status.internal("the model broke")

    scheduler = SharedBatchScheduler(1)
    try:
        core = CountingCore(
            BatchingServable(BundleDouble(bundle, broken), scheduler, BatchingOptions())
        )
        outcome = serve(plane_for(core), predict_request([[1.0]]))
        with pytest.raises(status.ServingError, match="the model broke"):
            outcome.result(timeout=10)
        assert core.open == 0
    finally:
        scheduler.stop()


def test_unknown_model_and_passed_deadline_are_answered_not_raised(bundle):
    plane = plane_for(CountingCore(bundle))
    missing = serve(plane, predict_request([[1.0]], name="nope"))
    assert missing.exception().code.name == "NOT_FOUND"
    late = serve(plane, predict_request([[1.0]]), deadline=time.monotonic() - 1)
    assert late.exception().code.name == "DEADLINE_EXCEEDED"


def test_requests_past_max_in_flight_are_refused_unavailable(bundle):
    gate = threading.Event()

    def held(signature, inputs, output_aliases):
        gate.wait(10)
        return bundle.run(signature, inputs, output_aliases)

    scheduler = SharedBatchScheduler(1)
    try:
        core = CountingCore(
            BatchingServable(BundleDouble(bundle, held), scheduler, BatchingOptions())
        )
        pool = WorkerThreads(1)
        plane = plane_for(core, runner=pool, max_in_flight=1)
        first = serve(plane, predict_request([[1.0]]))
        second = serve(plane, predict_request([[2.0]]))
        assert second.exception(timeout=10).code.name == "UNAVAILABLE"
        assert "overloaded" in second.exception().message
        gate.set()
        assert list(first.result(timeout=10).outputs["y"].float_val) == [2.5]
        assert plane.in_flight() == 0
        pool.shutdown()
    finally:
        gate.set()
        scheduler.stop()


def test_the_outcome_callback_runs_before_the_request_is_counted(bundle):
    serving_metrics = metrics.ServingMetrics(process=False)
    plane = DataPlane(CountingCore(bundle), metrics.GRPC, metrics=serving_metrics)
    pages = []
    request = predict_request([[1.0]])
    plane.serve(
        Call("Predict", request.model_spec),
        PredictWork(request),
        done=lambda outcome: pages.append(serving_metrics.render().decode()),
    )
    assert pages and 'API="Predict"' not in pages[0]
    assert 'API="Predict"' in serving_metrics.render().decode()


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
