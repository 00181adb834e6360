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
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import signal
import sys
import threading

import numpy as np

from tensorflow_serving.model_servers.inline_grpc_server import GRPC_SERVERS, new_grpc_server


def _zeros(outputs: dict, batch: int) -> dict[str, np.ndarray]:
    return {
        alias: np.zeros((batch, *o["row_shape"]), dtype=o["dtype"]) for alias, o in outputs.items()
    }


def serve_grpc(port: int, spec: dict, threads: int, kind: str = "inline") -> None:
    """Serves the gRPC floor on 127.0.0.1:`port` until SIGTERM/SIGINT."""

    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from tensorflow_serving.util import tensor_codec

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
            return response(batch)

    serve_prediction_service(FixedPrediction(), port, threads, kind)


def serve_prediction_service(servicer, port: int, threads: int, kind: str = "inline") -> None:
    """Serves `servicer` (a PredictionServiceServicer) on 127.0.0.1:`port` until SIGTERM/SIGINT.

    Prints "READY <port> <pid>" once serving. Shared by the floor and the
    minimal server, so both measure the same transport set-up.
    """
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server = new_grpc_server(
        kind,
        num_threads=threads,
        options=[("grpc.max_receive_message_length", -1), ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gc.collect()
    gc.freeze()
    server.start()
    print(f"READY {bound} {os.getpid()}", flush=True)
    stop.wait()
    server.stop(0)


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


def floor_rest_app(spec: dict, options):
    """The REST floor's app: the model server's RestApiApp, with :predict answered at once.

    Small :predict bodies reach `answer` through the inline protocol, as in
    the model server; everything else goes through ASGI to `rest_app`.
    """
    from tensorflow_serving.model_servers.rest.app import RestApiApp
    from tensorflow_serving.model_servers.rest.handler import RestResponse
    from tensorflow_serving.util import json_dense

    asgi = rest_app(spec)

    class FloorRestApp(RestApiApp):
        def answer(self, route, body: bytes, respond) -> None:
            dense = json_dense.decode(body)
            rows = asgi.rows(body) if dense is None else _rows_of(dense.values)
            respond(RestResponse(200, asgi.response(rows)))

        async def __call__(self, scope, receive, send) -> None:
            await asgi(scope, receive, send)

    return FloorRestApp(None, options)


def _rows_of(values: np.ndarray) -> int:
    return int(values.shape[0]) if values.ndim else 1


def serve_rest(port: int, spec: dict) -> None:
    """Serves the REST floor on 127.0.0.1:`port` until SIGTERM/SIGINT."""
    from tensorflow_serving.model_servers.rest.app import HttpOptions
    from tensorflow_serving.model_servers.rest.server import HttpServer

    options = HttpOptions(port=port, host="127.0.0.1")
    server = HttpServer(floor_rest_app(spec, options), options)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gc.collect()
    gc.freeze()
    server.start()
    print(f"READY {server.port} {os.getpid()}", flush=True)
    stop.wait()
    server.stop(timeout=5)


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
    args = parser.parse_args(argv)
    spec = json.loads(args.spec)
    if args.protocol == "grpc":
        serve_grpc(args.port, spec, args.threads, args.grpc_server)
    else:
        serve_rest(args.port, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
