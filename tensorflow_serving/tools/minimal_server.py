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

    python -m tensorflow_serving.tools.minimal_server --port 9000 \\
        --model_dir /tmp/mnist_model/1 --signature predict_images --intra 1 --inter 1
"""

from __future__ import annotations

import argparse
import os
import sys

from tensorflow_serving.model_servers.inline_grpc_server import GRPC_SERVERS


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


def make_servicer(loaded, model_name: str, signature: str, version: int, warmer=None):
    """A PredictionServiceServicer whose Predict runs `loaded` (an inprocess_limit.LoadedSignature);
    with `warmer` (an IdleWarmer), each call is handed to it after it ran, as the server does."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    from tensorflow_serving.util import tensor_codec

    fn = loaded.fn
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
    parser.add_argument("--model_dir", required=True, help="a SavedModel (version) directory")
    parser.add_argument("--model_name", default="model")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--tags", default="serve")
    parser.add_argument("--input_shape", action="append", default=[])
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TF decides)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TF decides)")
    parser.add_argument("--threads", type=int, default=8, help="gRPC handler threads")
    parser.add_argument(
        "--grpc_server", default="inline", choices=GRPC_SERVERS, help="as the model server's flag"
    )
    parser.add_argument(
        "--keep_model_warm_micros", type=int, default=0, help="as the model server's flag"
    )
    args = parser.parse_args(argv)

    from tensorflow_serving.tools import floor_servers, inprocess_limit

    loaded = inprocess_limit.load_signature(
        args.model_dir, args.tags, args.signature, args.input_shape, args.intra, args.inter
    )
    warmer = _warmer_for(loaded, args.keep_model_warm_micros)
    servicer = make_servicer(
        loaded, args.model_name, args.signature, _version_of(args.model_dir), warmer
    )
    floor_servers.serve_prediction_service(servicer, args.port, args.threads, args.grpc_server)
    if warmer is not None:
        warmer.forget(servicer)  # no rerun may reach the closed session
    loaded.session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
