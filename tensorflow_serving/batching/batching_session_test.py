"""Batching merges requests and hands every caller back exactly its own rows."""

import sys
import threading
import time

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


class Signature:
    key = "serving_default"
    input_order = ("x",)


class RecordingBundle:
    """Doubles its input; records each batch it was asked to run."""

    signatures = {"serving_default": Signature()}
    meta_graph_def = None
    export_dir = "/nowhere"

    def __init__(self, delay=0.0):
        self.batches = []
        self.delay = delay
        self.closed = False

    def signature(self, key):
        return self.signatures[key]

    def run(self, signature, inputs, output_aliases):
        self.batches.append(inputs["x"].copy())
        time.sleep(self.delay)
        return {"y": inputs["x"] * 2}

    def close(self):
        self.closed = True


@pytest.fixture
def scheduler():
    s = SharedBatchScheduler(num_batch_threads=1)
    yield s
    s.stop()


def run_concurrently(servable, requests):
    results = [None] * len(requests)

    def call(i):
        try:
            results[i] = servable.run(Signature(), {"x": requests[i]}, ("y",))
        except status.ServingError as error:
            results[i] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_merged_requests_of_different_sizes_come_back_to_the_right_callers(scheduler):
    bundle = RecordingBundle(delay=0.05)
    options = BatchingOptions(queue=QueueOptions(max_batch_size=16, batch_timeout_micros=20000))
    servable = BatchingServable(bundle, scheduler, options)
    requests = [np.full((n, 2), float(i), dtype=np.float32) for i, n in enumerate([1, 3, 2, 5])]
    results = run_concurrently(servable, requests)
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result["y"], request * 2)
        # Each answer is a view into the batch's output: no caller may write another's rows.
        assert not result["y"].flags.writeable
    assert len(bundle.batches) < len(requests), "some requests must have shared a batch"


def test_request_larger_than_max_batch_size_is_rejected(scheduler):
    servable = BatchingServable(
        RecordingBundle(), scheduler, BatchingOptions(queue=QueueOptions(max_batch_size=4))
    )
    with pytest.raises(status.ServingError, match="larger than maximum input batch size 4"):
        servable.run(Signature(), {"x": np.zeros((5, 1), np.float32)}, ("y",))


def test_batch_is_padded_to_an_allowed_size_and_padding_is_dropped(scheduler):
    bundle = RecordingBundle()
    options = BatchingOptions(queue=QueueOptions(max_batch_size=8), allowed_batch_sizes=(2, 4, 8))
    servable = BatchingServable(bundle, scheduler, options)
    x = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    result = servable.run(Signature(), {"x": x}, ("y",))
    assert bundle.batches[-1].shape[0] == 4
    np.testing.assert_array_equal(result["y"], x * 2)


def test_variable_length_inputs_are_padded_when_asked(scheduler):
    bundle = RecordingBundle(delay=0.05)
    options = BatchingOptions(
        queue=QueueOptions(max_batch_size=8, batch_timeout_micros=50000),
        pad_variable_length_inputs=True,
    )
    servable = BatchingServable(bundle, scheduler, options)
    short = np.ones((1, 2), np.float32)
    long = np.ones((1, 4), np.float32)
    results = run_concurrently(servable, [short, long])
    assert results[0]["y"].shape == (1, 4)
    np.testing.assert_array_equal(results[0]["y"], [[2, 2, 0, 0]])


def test_full_queue_answers_unavailable_at_once(scheduler):
    bundle = RecordingBundle(delay=0.3)
    options = BatchingOptions(queue=QueueOptions(max_batch_size=1, max_enqueued_batches=1))
    servable = BatchingServable(bundle, scheduler, options)
    results = run_concurrently(servable, [np.ones((1, 1), np.float32)] * 6)
    refused = [r for r in results if isinstance(r, status.ServingError)]
    assert refused, "a bounded queue must refuse work"
    assert all(r.http_status() == 503 and "full" in r.message for r in refused)
    assert any(isinstance(r, dict) for r in results)


def test_close_refuses_queued_work_and_closes_the_bundle(scheduler):
    bundle = RecordingBundle()
    servable = BatchingServable(bundle, scheduler, BatchingOptions())
    servable.run(Signature(), {"x": np.ones((1, 1), np.float32)}, ("y",))
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
