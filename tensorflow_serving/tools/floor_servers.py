"""Transport floors: Predict servers that do no model work and answer a fixed response.

What any Python server on the same transport pays per request at least, so
the benchmark can tell the transport's cost from the server's:

- gRPC: the same stack as the model server (`--grpc_server`, default
  `inline`: model_servers/inline_grpc_server.py; the generated
  PredictionService servicer). Each call parses the
  PredictRequest (protobuf's upb parser does that before the handler runs),
  reads the batch size off its first dimension and returns a prebuilt
  PredictResponse of that shape, encoded as the model server encodes
  outputs. Turning tensors into numpy is the server's work, not the
  transport's, so it is not part of the floor.
- REST: the model server's HTTP stack (rest/server.py's HttpServer: uvicorn
  on uvloop with the inline :predict protocol), with an app that answers on
  the event loop. Each :predict call's body is parsed as the model server
  parses it first (json_dense; other bodies with orjson into numpy arrays),
  and a prebuilt {"predictions": ...} of the right shape is the answer.

    python -m tensorflow_serving.tools.floor_servers grpc --port 9000 --spec '{...}'

`--spec` is JSON: {"model_name", "signature", "inputs": {alias: dtype},
"outputs": {alias: {"dtype", "row_shape"}}}. SIGTERM stops either server.

`--hold_micros=N` answers as a batching server does: requests wait on a
stand-in batch thread, which answers all that are waiting N microseconds
after the first of them came, from its own thread (gRPC: the reply leaves
from that thread; REST: each answer is handed to the event loop, which
writes it). The hold sleeps, so the floor's CPU per request stays the
transport's: what the batched path costs each protocol beyond answering at
once. gRPC only with `--grpc_server=inline`.

`--model_dir` (with the minimal server's signature flags) makes it the
*model floor*: the least a batching model server on this transport does.
The stand-in batch thread takes what is held (at most `--max_batch_size`
rows; 0: all), runs the model on that many rows of `--data` (the same
Session callable as the in-process limit), and only then answers those
requests, with the fixed response as before. As with batch_timeout_micros 0,
a batch starts as soon as the thread is free, so batches grow while the
model runs; and, as the model server's scheduler does, before a batch that
is not full the thread lets requests the gRPC transport has received arrive
(batching/arrivals.py; the REST transport needs no such wait). It does not
decode inputs, check them, or use the model's outputs: both protocols' model floors differ only in their transport, so
their ratio is what the transport allows a server when a model runs between
its requests (evicting the transport's code and data from the caches).
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from tensorflow_serving.batching.arrivals import Arrivals
from tensorflow_serving.batching.shared_batch_scheduler import (
    ARRIVAL_WAIT_SECONDS,
    MONOTONIC,
    Clock,
)
from tensorflow_serving.model_servers.inline_grpc_server import GRPC_SERVERS, new_grpc_server
from tensorflow_serving.tools import inprocess_limit


class Holder:
    """The stand-in batch thread of `--hold_micros` and `--model_dir`: answers held requests
    together.

    `hold(rows, answer)` from any thread; `answer()` runs on the holder's
    thread, `hold_s` after the first request of its batch was held and after
    `run_batch(rows in the batch)` returned (when given). A batch takes held
    requests in order while their rows fit in `max_rows` (always at least
    one; 0: every held request). With `arrivals` (the transport's count of
    requests on their way in), a batch that is not full first waits for them
    as the model server's scheduler does (SharedBatchScheduler._lead), by
    `clock` (the one `arrivals` waits by).
    """

    def __init__(
        self,
        hold_s: float,
        run_batch: Callable[[int], None] | None = None,
        max_rows: int = 0,
        arrivals: Arrivals | None = None,
        clock: Clock = MONOTONIC,
    ):
        self._hold_s = hold_s
        self._run_batch = run_batch
        self._max_rows = max_rows
        self._arrivals = arrivals
        self._clock = clock
        self._held: collections.deque[tuple[int, Callable[[], None]]] = collections.deque()
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="floor_hold", daemon=True).start()

    def hold(self, rows: int, answer: Callable[[], None]) -> None:
        with self._cond:
            self._held.append((rows, answer))
            if len(self._held) == 1:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._held:
                    self._cond.wait()
            if self._hold_s > 0:
                time.sleep(self._hold_s)
            if self._arrivals is not None:
                self._let_requests_arrive(self._arrivals)
            with self._cond:
                answers, rows = self._take_batch()
            if self._run_batch is not None:
                self._run_batch(rows)
            for answer in answers:
                answer()

    def _let_requests_arrive(self, arrivals: Arrivals) -> None:
        """Before a batch that is not full: yields once, then waits while requests are
        arriving, at most ARRIVAL_WAIT_SECONDS (the server scheduler's rule)."""
        if self._full():
            return
        arrivals.let_arrive()
        until = self._clock.now() + ARRIVAL_WAIT_SECONDS
        while arrivals.arriving() and not self._full():
            left = until - self._clock.now()
            if left <= 0:
                return
            arrivals.wait_handed_over(left)

    def _full(self) -> bool:
        with self._cond:
            return bool(self._max_rows) and sum(r for r, _ in self._held) >= self._max_rows

    def _take_batch(self) -> tuple[list[Callable[[], None]], int]:
        """The answers of the next batch's held requests, oldest first, and their rows
        (condition held)."""
        rows, answer = self._held.popleft()
        answers = [answer]
        while self._held and (not self._max_rows or rows + self._held[0][0] <= self._max_rows):
            more, answer = self._held.popleft()
            rows += more
            answers.append(answer)
        return answers, rows


class ModelBatch:
    """What the model floor's batch thread runs: `loaded` (an inprocess_limit.LoadedSignature)
    on `rows` rows of `data` inputs (or of `rows_by_alias`, --input_data's rows cycled to the
    batch); `max_rows` caps the rows of one batch (0: no cap). The inputs of each row count
    are made once."""

    def __init__(
        self,
        loaded,
        data: str = "random",
        max_rows: int = 0,
        rows_by_alias: dict[str, np.ndarray] | None = None,
    ):
        self.loaded = loaded
        self.data = data
        self.max_rows = max_rows
        self.rows_by_alias = rows_by_alias
        self._feeds = functools.lru_cache(maxsize=128)(self._make_feeds)

    def __call__(self, rows: int) -> None:
        self.loaded.fn(*self._feeds(rows))

    def _make_feeds(self, rows: int) -> list[np.ndarray]:
        from tensorflow_serving.tools import signature_inputs

        arrays = signature_inputs.make_inputs(
            self.loaded.inputs, rows, self.data, data=self.rows_by_alias
        )
        return [arrays[spec.alias] for spec in self.loaded.inputs]


def _holder(
    hold_micros: int, model: ModelBatch | None = None, arrivals: Arrivals | None = None
) -> Holder | None:
    """The stand-in batch thread the flags ask for; None: each request is answered at once.
    `arrivals` (the gRPC transport's) is waited for before a model batch that is not full."""
    if model is not None:
        return Holder(max(hold_micros, 0) / 1e6, model, model.max_rows, arrivals)
    return Holder(hold_micros / 1e6) if hold_micros > 0 else None


def _zeros(outputs: dict, batch: int) -> dict[str, np.ndarray]:
    return {
        alias: np.zeros((batch, *o["row_shape"]), dtype=o["dtype"]) for alias, o in outputs.items()
    }


def serve_grpc(
    port: int,
    spec: dict,
    threads: int,
    kind: str = "inline",
    hold_micros: int = 0,
    model: ModelBatch | None = None,
) -> None:
    """Serves the gRPC floor (with `model`, the model floor) on 127.0.0.1:`port` until
    SIGTERM/SIGINT."""

    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from tensorflow_serving.util import tensor_codec
    from tensorflow_serving.util.completion import Completion

    arrivals = Arrivals() if model is not None else None
    holder = _holder(hold_micros, model, arrivals)
    if holder is not None and kind != "inline":
        raise ValueError(
            "--hold_micros and --model_dir need --grpc_server=inline (they answer with a "
            "Completion)"
        )

    @functools.lru_cache(maxsize=64)
    def response(batch: int) -> predict_pb2.PredictResponse:
        answer = predict_pb2.PredictResponse()
        answer.model_spec.name = spec["model_name"]
        answer.model_spec.signature_name = spec["signature"]
        answer.model_spec.version.value = 1
        for alias, array in _zeros(spec["outputs"], batch).items():
            tensor_codec.to_tensor_proto(array, answer.outputs[alias])
        return answer

    class FixedPrediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802  (gRPC's method name)
            batch = 1
            for tensor in request.inputs.values():
                dims = tensor.tensor_shape.dim
                batch = dims[0].size if dims else 1
            if holder is None:
                return response(batch)
            answer = Completion()
            answer.set_running_or_notify_cancel()
            holder.hold(batch, functools.partial(answer.set_result, response(batch)))
            return answer

    serve_prediction_service(FixedPrediction(), port, threads, kind, arrivals)


def serve_prediction_service(
    servicer, port: int, threads: int, kind: str = "inline", arrivals: Arrivals | None = None
) -> None:
    """Serves `servicer` (a PredictionServiceServicer) on 127.0.0.1:`port` until SIGTERM/SIGINT.

    Prints "READY <port> <pid>" once serving. Shared by the floor and the
    minimal server, so both measure the same transport set-up. `arrivals`
    counts the inline server's requests in (see new_grpc_server).
    """
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server = new_grpc_server(
        kind,
        num_threads=threads,
        arrivals=arrivals,
        options=[("grpc.max_receive_message_length", -1), ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")

    def start() -> int:
        server.start()
        return bound

    _serve_until_signalled(start, lambda: server.stop(0))


def _serve_until_signalled(start: Callable[[], int], stop: Callable[[], None]) -> None:
    """Runs `start()` (which returns the port it serves on), prints "READY <port> <pid>",
    then blocks until SIGTERM/SIGINT and runs `stop()`. Main thread only: it installs
    the signal handlers. Shared by both floors, so they start and stop alike."""
    signalled = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: signalled.set())
    gc.collect()
    gc.freeze()
    port = start()
    print(f"READY {port} {os.getpid()}", flush=True)
    signalled.wait()
    stop()


def rest_app(spec: dict):
    """The REST floor's answers as an ASGI app (for bodies the inline protocol leaves to
    ASGI); its `rows(body)` and `response(rows)` serve the inline path too."""
    import orjson

    dtypes = dict(spec["inputs"])
    outputs = spec["outputs"]
    not_found = b'{"error": "not found"}'

    @functools.lru_cache(maxsize=64)
    def response(batch: int) -> bytes:
        arrays = _zeros(outputs, batch)
        if len(arrays) == 1:
            predictions = next(iter(arrays.values()))
        else:
            predictions = [{a: v[i] for a, v in arrays.items()} for i in range(batch)]
        return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)

    def decode(body: bytes) -> int:
        request = orjson.loads(body)
        if "instances" in request:
            rows = request["instances"]
            if rows and isinstance(rows[0], dict):
                for alias in rows[0]:
                    np.asarray([r[alias] for r in rows], dtype=dtypes.get(alias))
            else:
                np.asarray(rows, dtype=next(iter(dtypes.values()), None))
            return len(rows)
        batch = 1
        for alias, value in request["inputs"].items():
            batch = len(np.asarray(value, dtype=dtypes.get(alias)))
        return batch

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["method"] == "POST" and scope["path"].endswith(":predict"):
            status, body = 200, response(decode(b"".join(chunks)))
        else:
            status, body = 404, not_found
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    app.rows = decode
    app.response = response
    return app


def floor_rest_app(spec: dict, options, hold_micros: int = 0, model: ModelBatch | None = None):
    """The REST floor's app: the model server's RestApiApp, with :predict answered at once
    (or after a hold, see --hold_micros, or after a model batch, see --model_dir).

    Small :predict bodies reach `answer` through the inline protocol, as in
    the model server; everything else goes through ASGI to `rest_app`.
    """
    import asyncio

    from tensorflow_serving.model_servers.rest.app import RestApiApp
    from tensorflow_serving.model_servers.rest.handler import RestResponse
    from tensorflow_serving.util import json_dense

    asgi = rest_app(spec)
    holder = _holder(hold_micros, model)

    class FloorRestApp(RestApiApp):
        def answer(self, route, body: bytes, respond) -> None:
            dense = json_dense.decode(body)
            rows = asgi.rows(body) if dense is None else _rows_of(dense.values)
            response = RestResponse(200, asgi.response(rows))
            if holder is None:
                respond(response)
                return
            loop = asyncio.get_running_loop()
            holder.hold(rows, functools.partial(loop.call_soon_threadsafe, respond, response))

        async def __call__(self, scope, receive, send) -> None:
            await asgi(scope, receive, send)

    return FloorRestApp(None, options)


def _rows_of(values: np.ndarray) -> int:
    return int(values.shape[0]) if values.ndim else 1


def serve_rest(
    port: int, spec: dict, hold_micros: int = 0, model: ModelBatch | None = None
) -> None:
    """Serves the REST floor (with `model`, the model floor) on 127.0.0.1:`port` until
    SIGTERM/SIGINT."""
    from tensorflow_serving.model_servers.rest.app import HttpOptions
    from tensorflow_serving.model_servers.rest.server import HttpServer

    options = HttpOptions(port=port, host="127.0.0.1")
    server = HttpServer(floor_rest_app(spec, options, hold_micros, model), options)

    def start() -> int:
        server.start()
        return server.port

    _serve_until_signalled(start, lambda: server.stop(timeout=5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("protocol", choices=["grpc", "rest"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", required=True, help="JSON: model_name, signature, in/outputs")
    parser.add_argument("--threads", type=int, default=8, help="gRPC handler threads")
    parser.add_argument(
        "--grpc_server", default="inline", choices=GRPC_SERVERS, help="as the model server's flag"
    )
    parser.add_argument(
        "--hold_micros",
        type=int,
        default=0,
        help="answer held requests together this long after the first (0: each at once)",
    )
    inprocess_limit.add_signature_flags(parser, required=False)
    parser.add_argument(
        "--max_batch_size", type=int, default=0, help="with --model_dir: rows per batch at most"
    )
    parser.add_argument(
        "--data", default="random", help="with --model_dir: synthetic rows the model runs on"
    )
    parser.add_argument("--input_data", default="", help="with --model_dir: .npz rows by alias")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    model = _model_batch(args) if args.model_dir else None
    if args.protocol == "grpc":
        serve_grpc(args.port, spec, args.threads, args.grpc_server, args.hold_micros, model)
    else:
        serve_rest(args.port, spec, args.hold_micros, model)
    return 0


def _model_batch(args: argparse.Namespace) -> ModelBatch:
    """The model floor's batch run, loaded (and run once at every batch size up to the cap,
    so that no measured batch pays a first call's set-up)."""
    from tensorflow_serving.tools import signature_inputs

    loaded = inprocess_limit.load_signature_from(args)
    data = (
        signature_inputs.load_input_data(args.input_data, loaded.inputs)
        if args.input_data
        else None
    )
    model = ModelBatch(loaded, args.data, args.max_batch_size, data)
    for rows in range(1, max(args.max_batch_size, 1) + 1):
        model(rows)
    return model


if __name__ == "__main__":
    sys.exit(main())
