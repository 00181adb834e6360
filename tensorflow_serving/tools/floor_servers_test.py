"""The floors' stand-in batch thread, and the model floor answering a concurrent load."""

import json
import sys
import threading

import numpy as np
import pytest

from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.batching.shared_batch_scheduler import ARRIVAL_WAIT_SECONDS
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.fake_clock import FakeClock
from tensorflow_serving.tools import floor_servers, load_generator, processes, signature_inputs
from tensorflow_serving.tools.load_generator import LoadSpec

SPEC = {
    "model_name": "hpt",
    "signature": "serving_default",
    "inputs": {"x": "float32"},
    "outputs": {"y": {"dtype": "float32", "row_shape": [1]}},
}


class _GatedRuns:
    """A batch run that records its rows and holds the first run until released."""

    def __init__(self):
        self.rows = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def __call__(self, rows: int) -> None:
        self.rows.append(rows)
        if len(self.rows) == 1:
            self.first_started.set()
            self.release_first.wait()


def test_requests_held_while_the_model_runs_form_the_next_batches_up_to_the_row_cap():
    runs = _GatedRuns()
    holder = floor_servers.Holder(0.0, runs, max_rows=3)
    answered = []
    all_answered = threading.Event()

    def answer(name):
        answered.append(name)
        if len(answered) == 5:
            all_answered.set()

    holder.hold(1, lambda: answer("a"))
    assert runs.first_started.wait(10)
    for name in "bcde":  # come in while the model runs for "a"
        holder.hold(1, lambda name=name: answer(name))
    runs.release_first.set()
    assert all_answered.wait(10)
    assert runs.rows == [1, 3, 1]  # "a", then three of the four queued, then the last
    assert answered == ["a", "b", "c", "d", "e"]


def test_a_request_larger_than_the_cap_runs_alone():
    runs = _GatedRuns()
    holder = floor_servers.Holder(0.0, runs, max_rows=2)
    done = threading.Event()
    holder.hold(1, lambda: None)
    assert runs.first_started.wait(10)
    holder.hold(5, lambda: None)
    holder.hold(1, done.set)
    runs.release_first.set()
    assert done.wait(10)
    assert runs.rows == [1, 5, 1]


def _waiting_for_an_arrival(first_answer):
    """A holder (up to 3 rows) whose first request, held while another is still being read,
    waits for it: (clock, arrivals, rows of each batch run, holder)."""
    clock = FakeClock()
    arrivals = Arrivals(clock)
    runs = []
    holder = floor_servers.Holder(0.0, runs.append, 3, arrivals, clock)
    arrivals.begin()  # a request gRPC is still reading
    holder.hold(1, first_answer)
    assert testing.wait_for(lambda: arrivals.waiting() == 1, timeout=10)
    return clock, arrivals, runs, holder


def test_a_batch_that_is_not_full_waits_for_requests_the_transport_is_taking_in():
    done = threading.Event()
    _, arrivals, runs, holder = _waiting_for_an_arrival(lambda: None)
    holder.hold(1, done.set)  # it is in, and handed over
    arrivals.abandon()
    assert done.wait(10)
    assert runs == [2]


def test_the_wait_for_arriving_requests_is_bounded():
    done = threading.Event()
    clock, _, runs, _ = _waiting_for_an_arrival(done.set)  # the other is never handed over
    clock.advance(ARRIVAL_WAIT_SECONDS)
    assert done.wait(10)
    assert runs == [1]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_the_model_floor_answers_every_request_of_a_concurrent_load(tmp_path, protocol):
    base = tmp_path / "hpt"
    export_half_plus_two.export_half_plus_two_tf1(str(base), 1)
    port = processes.free_port()
    cmd = [
        *processes.python_module("tensorflow_serving.tools.floor_servers"),
        protocol,
        f"--port={port}",
        f"--spec={json.dumps(SPEC)}",
        f"--model_dir={base / '1'}",
        "--intra=1",
        "--inter=1",
        "--max_batch_size=3",
    ]
    log = str(tmp_path / "floor.log")
    server = processes.start(cmd, None, log)
    try:
        assert processes.wait_for_port(port, 120, server), processes.log_tail(log)
        x = {"x": np.ones((1, 1), np.float32)}
        if protocol == "grpc":
            body = signature_inputs.grpc_request("hpt", "serving_default", x)
        else:
            body = signature_inputs.rest_body("serving_default", x)
        spec = LoadSpec(
            protocol=protocol,
            port=port,
            body=body,
            batch=1,
            rest_path="/v1/models/hpt:predict",
            concurrency=4,
            requests=60,
            duration_s=None,
            warmup_s=0.0,
        )
        result = load_generator.run_load(spec)
        assert result.failure is None and result.errors == 0
        assert result.requests_ok == 60
    finally:
        processes.stop(server)


def test_a_model_floor_with_grpcio_is_refused():
    with pytest.raises(ValueError, match="--grpc_server=inline"):
        floor_servers.serve_grpc(0, SPEC, 1, "grpcio", model=floor_servers.ModelBatch(None))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
