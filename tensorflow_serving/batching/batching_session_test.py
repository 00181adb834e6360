"""Batching merges requests and hands every caller back exactly its own rows."""

import sys
import threading

import numpy as np
import pytest

from tensorflow_serving.batching.batching_session import (
    BatchingOptions,
    BatchingServable,
    batching_options,
)
from tensorflow_serving.batching.shared_batch_scheduler import QueueOptions, SharedBatchScheduler
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import config_protos, status
from tensorflow_serving.util.executors import CALLING_THREAD, WorkerThreads


class Signature:
    key = "serving_default"
    input_order = ("x",)


class RecordingBundle:
    """Doubles its input; records each batch it was asked to run.

    With `hold_first`, the first batch waits until the test sets that event
    (so the requests behind it queue up and share the next batch).
    """

    signatures = {"serving_default": Signature()}
    meta_graph_def = None
    export_dir = "/nowhere"

    def __init__(self, hold_first: threading.Event | None = None):
        self.batches = []
        self.hold_first = hold_first
        self.closed = False

    def signature(self, key):
        return self.signatures[key]

    def run(self, signature, inputs, output_aliases):
        if self.hold_first is not None and not self.batches:
            self.hold_first.wait(10)
        self.batches.append(inputs["x"].copy())
        return {"y": inputs["x"] * 2}

    def close(self):
        self.closed = True


@pytest.fixture
def scheduler():
    s = SharedBatchScheduler(num_batch_threads=1)
    yield s
    s.stop()


def run(servable, x):
    """One request on the calling thread, waiting for its answer."""
    return servable.submit(Signature(), {"x": x}, ("y",), CALLING_THREAD).result(timeout=30)


def run_behind_a_held_batch(servable, bundle, scheduler, requests):
    """The first request holds the batch slot until the others have all queued behind it."""
    results = [None] * len(requests)

    def call(i):
        try:
            results[i] = run(servable, requests[i])
        except status.ServingError as error:
            results[i] = error

    first = threading.Thread(target=call, args=(0,))
    first.start()
    rest = [threading.Thread(target=call, args=(i,)) for i in range(1, len(requests))]
    for t in rest:
        t.start()
    rows = sum(len(r) for r in requests[1:])
    testing.wait_for(lambda: scheduler.enqueued() == rows or not any(t.is_alive() for t in rest))
    bundle.hold_first.set()
    for t in [first, *rest]:
        t.join(30)
    return results


def test_merged_requests_of_different_sizes_come_back_to_the_right_callers(scheduler):
    bundle = RecordingBundle(hold_first=threading.Event())
    options = BatchingOptions(queue=QueueOptions(max_batch_size=16))
    servable = BatchingServable(bundle, scheduler, options)
    requests = [np.full((n, 2), float(i), dtype=np.float32) for i, n in enumerate([1, 3, 2, 5])]
    results = run_behind_a_held_batch(servable, bundle, scheduler, requests)
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], request * 2)
        # Each answer is a view into the batch's output: no caller may write another's rows.
        assert not result["y"].flags.writeable
    assert [len(batch) for batch in bundle.batches] == [1, 10], "the queued requests share a batch"


def test_request_larger_than_max_batch_size_is_rejected(scheduler):
    servable = BatchingServable(
        RecordingBundle(), scheduler, BatchingOptions(queue=QueueOptions(max_batch_size=4))
    )
    with pytest.raises(status.ServingError, match="larger than maximum input batch size 4"):
        run(servable, np.zeros((5, 1), np.float32))


def test_batch_is_padded_to_an_allowed_size_and_padding_is_dropped(scheduler):
    bundle = RecordingBundle()
    options = BatchingOptions(queue=QueueOptions(max_batch_size=8), allowed_batch_sizes=(2, 4, 8))
    servable = BatchingServable(bundle, scheduler, options)
    x = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    result = run(servable, x)
    assert bundle.batches[-1].shape[0] == 4
    np.testing.assert_array_equal(result["y"], x * 2)


def test_variable_length_inputs_are_padded_when_asked(scheduler):
    bundle = RecordingBundle(hold_first=threading.Event())
    options = BatchingOptions(queue=QueueOptions(max_batch_size=8), pad_variable_length_inputs=True)
    servable = BatchingServable(bundle, scheduler, options)
    first = np.ones((1, 3), np.float32)
    short = np.ones((1, 2), np.float32)
    long = np.ones((1, 4), np.float32)
    results = run_behind_a_held_batch(servable, bundle, scheduler, [first, short, long])
    assert bundle.batches[1].shape == (2, 4), "short and long shared one padded batch"
    assert results[1]["y"].shape == (1, 4)
    np.testing.assert_array_equal(results[1]["y"], [[2, 2, 0, 0]])


def test_full_queue_answers_unavailable_at_once(scheduler):
    bundle = RecordingBundle(hold_first=threading.Event())
    options = BatchingOptions(queue=QueueOptions(max_batch_size=1, max_enqueued_batches=1))
    servable = BatchingServable(bundle, scheduler, options)
    pool = WorkerThreads(1)
    x = np.ones((1, 1), np.float32)
    held = servable.submit(Signature(), {"x": x}, ("y",), pool)
    queued = servable.submit(Signature(), {"x": x}, ("y",), CALLING_THREAD)
    with pytest.raises(status.ServingError) as refused:
        servable.submit(Signature(), {"x": x}, ("y",), CALLING_THREAD)
    assert refused.value.http_status() == 503 and "full" in refused.value.message
    bundle.hold_first.set()
    np.testing.assert_array_equal(held.result(timeout=10)["y"], x * 2)
    np.testing.assert_array_equal(queued.result(timeout=10)["y"], x * 2)
    pool.shutdown()


def splitting_options(max_batch_size: int, max_execution_batch_size: int, **kw):
    params = config_protos.BatchingParameters(**kw)
    params.max_batch_size.value = max_batch_size
    params.enable_large_batch_splitting.value = True
    params.max_execution_batch_size.value = max_execution_batch_size
    return batching_options(params)


def test_a_request_larger_than_a_batch_is_split_and_joined_in_order(scheduler):
    bundle = RecordingBundle()
    servable = BatchingServable(bundle, scheduler, splitting_options(128, 32))
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    result = run(servable, x)
    np.testing.assert_array_equal(result["y"], x * 2)
    assert [len(batch) for batch in bundle.batches] == [32, 32, 32, 4]


def test_with_splitting_a_request_that_fits_runs_whole_and_the_input_limit_holds(scheduler):
    bundle = RecordingBundle()
    servable = BatchingServable(bundle, scheduler, splitting_options(64, 32))
    run(servable, np.ones((32, 1), np.float32))
    assert [len(batch) for batch in bundle.batches] == [32]
    with pytest.raises(status.ServingError, match="larger than maximum input batch size 64"):
        run(servable, np.zeros((65, 1), np.float32))


def test_split_pieces_are_padded_to_allowed_sizes(scheduler):
    bundle = RecordingBundle()
    options = splitting_options(64, 8, allowed_batch_sizes=[4, 8])
    servable = BatchingServable(bundle, scheduler, options)
    x = np.arange(11, dtype=np.float32).reshape(11, 1)
    np.testing.assert_array_equal(run(servable, x)["y"], x * 2)
    assert [len(batch) for batch in bundle.batches] == [8, 4], "3 rows padded to 4"


def test_a_split_request_the_queue_cannot_hold_is_refused_and_leaves_nothing_queued(scheduler):
    bundle = RecordingBundle(hold_first=threading.Event())
    options = BatchingOptions(
        queue=QueueOptions(max_batch_size=2, max_enqueued_batches=2), max_input_batch_size=64
    )
    servable = BatchingServable(bundle, scheduler, options)
    pool = WorkerThreads(1)
    held = servable.submit(Signature(), {"x": np.ones((1, 1), np.float32)}, ("y",), pool)
    testing.wait_for(lambda: scheduler.enqueued() == 0)  # the held batch is running
    with pytest.raises(status.ServingError, match="full"):
        servable.submit(Signature(), {"x": np.ones((6, 1), np.float32)}, ("y",), CALLING_THREAD)
    bundle.hold_first.set()
    held.result(timeout=10)
    testing.wait_for(lambda: scheduler.enqueued() == 0)
    assert [len(batch) for batch in bundle.batches] == [1], "no piece of the refused request ran"
    pool.shutdown()


def test_splitting_answers_the_same_values_as_the_model_without_batching(scheduler, tmp_path):
    """The issue's check: 100 rows, max_execution_batch_size 32, splitting on."""
    from tensorflow_serving.servables.tensorflow.saved_model_bundle import load_saved_model_bundle
    from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp

    path = hp.export_half_plus_two_tf2(str(tmp_path / "hp"), 1)
    bundle = load_saved_model_bundle(path)
    signature = bundle.signature("serving_default")
    x = np.linspace(-5.0, 5.0, 100, dtype=np.float32)
    unbatched = bundle.run(signature, {"x": x}, ("y",))["y"]
    sizes = []
    servable = BatchingServable(
        bundle, scheduler, splitting_options(1000, 32), lambda padded, *_: sizes.append(padded)
    )
    batched = servable.submit(signature, {"x": x}, ("y",), CALLING_THREAD).result(timeout=30)
    np.testing.assert_array_equal(batched["y"], unbatched)
    assert sizes == [32, 32, 32, 4]
    servable.close()


def test_splitting_parameters_and_their_checks():
    options = splitting_options(100, 32)
    assert (options.queue.max_batch_size, options.max_input_batch_size) == (32, 100)
    params = config_protos.BatchingParameters()
    params.max_batch_size.value = 16
    params.max_execution_batch_size.value = 4  # ignored unless splitting is on, as upstream
    assert batching_options(params).queue.max_batch_size == 16
    assert batching_options(params).max_input_batch_size == 0
    with pytest.raises(status.ServingError, match="at most max_batch_size; got 64 and 16"):
        splitting_options(16, 64)
    with pytest.raises(status.ServingError, match="must equal max_execution_batch_size"):
        splitting_options(64, 8, allowed_batch_sizes=[4, 16])


def test_close_refuses_queued_work_and_closes_the_bundle(scheduler):
    bundle = RecordingBundle()
    servable = BatchingServable(bundle, scheduler, BatchingOptions())
    run(servable, np.ones((1, 1), np.float32))
    servable.close()
    assert bundle.closed


def test_parameters_defaults_and_checks():
    options = batching_options(config_protos.BatchingParameters())
    assert options.queue == QueueOptions(1000, 0, 10)
    params = config_protos.BatchingParameters(allowed_batch_sizes=[4, 2])
    params.max_batch_size.value = 2
    with pytest.raises(status.ServingError, match="monotonically increasing"):
        batching_options(params)
    params = config_protos.BatchingParameters(allowed_batch_sizes=[2, 4])
    params.max_batch_size.value = 8
    with pytest.raises(status.ServingError, match="must equal max_batch_size"):
        batching_options(params)


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
