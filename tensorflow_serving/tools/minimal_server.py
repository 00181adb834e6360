"""The minimal server: the least any model server on our gRPC transport does per Predict.

Why: the ceiling adds the model's cost, measured back to back in-process, to
the no-work floor's cost, each with hot caches. A server does both on the
same core, one after the other, and they evict each other's caches. So how
far a server is from the ceiling mixes two things: what its own code adds,
and what the machine charges for the mix. This server keeps only what no
model server can skip:
- parse the PredictRequest;
- turn each input into numpy (the model server's tensor_codec);
- call the signature the way the model server does (the same Session
  callable as the in-process limit);
- encode the outputs into a PredictResponse.

It does no batching, validation, version handling or metrics. With one
client its distance to the ceiling is the machine's; the model server's
distance to it is the server's own. `--keep_model_warm_micros` gives it the
server's warmer (the benchmark passes the server's value), so the two
differ only in code. Under concurrency it has no batching,
so the benchmark runs it at concurrency 1 only.

`--stand_in_micros` makes it the benchmark's *stand-in* server: for
requests of the listed row counts the model call is replaced by a busy loop
of the given length (the limit's time per call), answered with the outputs
of the first real call at that row count. A busy loop costs the same however
cold the caches are, and a model does not: so the stand-in shows what the
transport and a handler reach against the same ceiling when the model's cost
stays fixed, and the minimal server's distance below it is what running the
real model between requests costs on this machine. Its answers are not the
model's for the request sent, so it is a benchmark party, nothing more.

    python -m tensorflow_serving.tools.minimal_server --port 9000 \\
        --model_dir /tmp/mnist_model/1 --signature predict_images --intra 1 --inter 1
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

from tensorflow_serving.model_servers.inline_grpc_server import GRPC_SERVERS
from tensorflow_serving.tools import inprocess_limit


def _version_of(model_dir: str) -> int:
    name = os.path.basename(os.path.normpath(model_dir))
    return int(name) if name.isdigit() else 0


def _warmer_for(loaded, window_micros: int):
    """The server's IdleWarmer for `loaded`, or None: off, or the call may change state."""
    from tensorflow_serving.servables.tensorflow.graph_side_effects import first_side_effect
    from tensorflow_serving.servables.tensorflow.idle_warmer import IdleWarmer

    if window_micros <= 0:
        return None
    effect = first_side_effect(
        loaded.session.graph.as_graph_def(),
        [spec.tensor_name for spec in loaded.inputs],
        [spec.tensor_name for spec in loaded.outputs],
    )
    return None if effect else IdleWarmer(window_micros / 1e6)


def parse_stand_in(text: str) -> dict[int, float]:
    """'1=527,32=8810' (rows=microseconds) -> {rows: seconds}; ValueError names the bad item."""
    stand_in: dict[int, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        rows_text, _, micros_text = item.partition("=")
        try:
            rows, micros = int(rows_text), float(micros_text)
        except ValueError:
            raise ValueError(f"--stand_in_micros items are rows=micros, got {item!r}") from None
        if rows < 1 or not 0 < micros < math.inf:
            raise ValueError(f"--stand_in_micros needs rows >= 1 and micros > 0, got {item!r}")
        stand_in[rows] = micros / 1e6
    return stand_in


def _busy_wait(seconds: float) -> None:
    """Spends `seconds` of CPU touching almost no memory: a model whose cost never changes."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _stand_in_for(fn, stand_in: dict[int, float]):
    """`fn`, except that for the row counts in `stand_in` a busy loop replaces it after the
    first call, which gives the outputs every later call answers with."""
    first_outputs: dict[int, object] = {}

    def call(*feeds):
        rows = feeds[0].shape[0] if feeds and feeds[0].ndim else None
        seconds = stand_in.get(rows)
        if seconds is None:
            return fn(*feeds)
        if rows not in first_outputs:
            first_outputs[rows] = fn(*feeds)
            return first_outputs[rows]
        _busy_wait(seconds)
        return first_outputs[rows]

    return call


def make_servicer(
    loaded,
    model_name: str,
    signature: str,
    version: int,
    warmer=None,
    stand_in: dict[int, float] | None = None,
):
    """A PredictionServiceServicer whose Predict runs `loaded` (an inprocess_limit.LoadedSignature);
    with `warmer` (an IdleWarmer), each call is handed to it after it ran, as the server does;
    with `stand_in` ({rows: seconds}), a busy loop replaces the model for those row counts."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from tensorflow_serving.util import tensor_codec

    fn = _stand_in_for(loaded.fn, stand_in) if stand_in else loaded.fn
    input_aliases = [spec.alias for spec in loaded.inputs]
    output_aliases = [spec.alias for spec in loaded.outputs]

    class MinimalPrediction(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802  (gRPC's method name)
            feeds = [tensor_codec.to_ndarray(request.inputs[alias]) for alias in input_aliases]
            results = fn(*feeds)
            if warmer is not None:
                warmer.note(self, fn, feeds)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = model_name
            response.model_spec.signature_name = signature
            response.model_spec.version.value = version
            for alias, value in zip(output_aliases, results, strict=True):
                tensor_codec.to_tensor_proto(value, response.outputs[alias])
            return response

    return MinimalPrediction()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    inprocess_limit.add_signature_flags(parser)
    parser.add_argument("--model_name", default="model")
    parser.add_argument("--threads", type=int, default=8, help="gRPC handler threads")
    parser.add_argument(
        "--grpc_server", default="inline", choices=GRPC_SERVERS, help="as the model server's flag"
    )
    parser.add_argument(
        "--keep_model_warm_micros", type=int, default=0, help="as the model server's flag"
    )
    parser.add_argument(
        "--stand_in_micros",
        default="",
        help="rows=micros,...: for requests of those row counts, a busy loop that long "
        "replaces the model call (the benchmark's stand-in party)",
    )
    args = parser.parse_args(argv)
    try:
        stand_in = parse_stand_in(args.stand_in_micros)
    except ValueError as error:
        parser.error(str(error))
    if stand_in and args.keep_model_warm_micros:
        parser.error(
            "--stand_in_micros leaves no model run to keep warm: drop --keep_model_warm_micros"
        )

    from tensorflow_serving.tools import floor_servers

    loaded = inprocess_limit.load_signature_from(args)
    warmer = _warmer_for(loaded, args.keep_model_warm_micros)
    servicer = make_servicer(
        loaded, args.model_name, args.signature, _version_of(args.model_dir), warmer, stand_in
    )
    floor_servers.serve_prediction_service(servicer, args.port, args.threads, args.grpc_server)
    if warmer is None:
        loaded.session.close()
    else:
        warmer.forget(servicer, loaded.session.close)  # no rerun may reach the closed session
        warmer.stop()  # a deferred close runs before the thread ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
