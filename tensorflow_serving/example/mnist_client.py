"""The chapter's client: sends MNIST test digits to a served model, prints the error rate.

    bazel-bin/tensorflow_serving/example/mnist_client \
        --num_tests=1000 --server=localhost:8000

Each test image goes as its own PredictRequest (model_spec.name from
--model_name, signature `predict_images`, input `images` a float tensor
[1, 784]); the answer's `scores` are the class probabilities and their argmax
is compared with the label. At most --concurrency requests are in flight.
Prints "Inference error rate: X%" as upstream's mnist_client does.

Unlike upstream, it fails loudly: if the server cannot be reached, or any
request comes back with an error, it prints why and exits non-zero. With
--wait_for_server_seconds=N it first retries for up to N seconds until the
server answers, so a script can start the server and the client together.
"""

from __future__ import annotations

# Before anything imports tensorflow: its start-up logs off unless asked for.
from tensorflow_serving.example import quiet_tensorflow  # isort: skip

import argparse
import dataclasses
import sys
import threading
import time
from collections.abc import Sequence

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.example import mnist_input_data

REQUEST_TIMEOUT_SECONDS = 5.0
MAX_TESTS = 10000
# While waiting for a server that is starting, these mean "not ready yet".
_RETRYABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)

# gRPC backs off exponentially (up to 2 minutes) between connection attempts;
# cap it so a client waiting for a starting server notices it within a second.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class ClientError(Exception):
    """The test could not run or the server answered with errors; the message says why."""


@dataclasses.dataclass
class Result:
    """Outcome of one run: wrong answers, failed requests and the first failure."""

    num_tests: int
    wrong: int
    failed: int
    first_failure: str | None

    @property
    def error_rate(self) -> float:
        """Upstream's rate: failed requests count as wrong answers."""
        return (self.wrong + self.failed) / self.num_tests


def make_request(
    image: np.ndarray, model_name: str = "mnist", signature_name: str = "predict_images"
) -> predict_pb2.PredictRequest:
    """A PredictRequest carrying one image as float TensorProto [1, 784] (tensor_content)."""
    image = np.ascontiguousarray(image, dtype=np.float32).reshape(1, -1)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    request.inputs["images"].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in image.shape]
            ),
            tensor_content=image.tobytes(),
        )
    )
    return request


def scores_of(response: predict_pb2.PredictResponse) -> np.ndarray:
    """The `scores` output as a float array, from float_val or tensor_content."""
    if "scores" not in response.outputs:
        raise ClientError(
            f"response has no output 'scores' (outputs: {sorted(response.outputs)}); "
            "is the model exported with the predict_images signature?"
        )
    tensor = response.outputs["scores"]
    if tensor.float_val:
        return np.asarray(tensor.float_val, dtype=np.float32)
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=np.float32)
    raise ClientError("response output 'scores' holds no float values")


def _describe(error: grpc.RpcError) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    return f"{code.name if code else 'UNKNOWN'}: {details}"


def wait_for_server(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    probe: predict_pb2.PredictRequest,
    server: str,
    wait_seconds: float,
) -> None:
    """Sends `probe` until it succeeds; retries "not ready" errors for up to wait_seconds."""
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        timeout = REQUEST_TIMEOUT_SECONDS if remaining <= 0 else max(1.0, min(5.0, remaining))
        try:
            stub.Predict(probe, timeout=timeout)
            return
        except grpc.RpcError as e:
            retryable = e.code() in _RETRYABLE
            if not retryable or time.monotonic() + 0.25 >= deadline:
                waited = (
                    f" after {attempts} attempts over {wait_seconds:g} s" if attempts > 1 else ""
                )
                hint = (
                    " (is tensorflow_model_server running there? --wait_for_server_seconds "
                    "retries while it starts)"
                    if retryable
                    else ""
                )
                raise ClientError(
                    f"cannot get an answer from the PredictionService at {server}{waited}: "
                    f"{_describe(e)}{hint}"
                ) from e
        time.sleep(0.25)


def do_inference(
    server: str,
    work_dir: str,
    concurrency: int,
    num_tests: int,
    model_name: str = "mnist",
    signature_name: str = "predict_images",
    wait_for_server_seconds: float = 0.0,
    progress: bool = True,
) -> Result:
    """Sends num_tests test images with at most `concurrency` in flight; counts errors."""
    test_set = mnist_input_data.read_data_sets(work_dir).test
    with grpc.insecure_channel(server, options=_CHANNEL_OPTIONS) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        first_image = test_set.images[:1]
        wait_for_server(
            stub,
            make_request(first_image, model_name, signature_name),
            server,
            wait_for_server_seconds,
        )

        lock = threading.Condition()
        state = {"active": 0, "done": 0, "wrong": 0, "failed": 0, "first_failure": None}

        def on_done(future: grpc.Future, label: int) -> None:
            try:
                prediction = int(np.argmax(scores_of(future.result())))
                wrong, failure = prediction != label, None
            except grpc.RpcError as e:
                wrong, failure = False, _describe(e)
            except ClientError as e:
                wrong, failure = False, str(e)
            with lock:
                if failure is not None:
                    state["failed"] += 1
                    state["first_failure"] = state["first_failure"] or failure
                elif wrong:
                    state["wrong"] += 1
                if progress:
                    # Under the lock, so no dot lands after the summary line.
                    sys.stdout.write("." if failure is None else "E")
                    sys.stdout.flush()
                state["done"] += 1
                state["active"] -= 1
                lock.notify_all()

        for _ in range(num_tests):
            image, label = test_set.next_batch(1)
            request = make_request(image[0], model_name, signature_name)
            with lock:
                while state["active"] >= concurrency:
                    lock.wait()
                state["active"] += 1
            future = stub.Predict.future(request, timeout=REQUEST_TIMEOUT_SECONDS)
            future.add_done_callback(lambda f, label=int(label[0]): on_done(f, label))
        with lock:
            while state["done"] < num_tests:
                lock.wait()
    if progress:
        sys.stdout.write("\n")
    return Result(num_tests, state["wrong"], state["failed"], state["first_failure"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concurrency", type=int, default=1, help="maximum number of concurrent inference requests"
    )
    parser.add_argument("--num_tests", type=int, default=100, help="Number of test images")
    parser.add_argument("--server", default="", help="PredictionService host:port")
    parser.add_argument("--work_dir", default="/tmp", help="Working directory (MNIST data).")
    parser.add_argument("--model_name", default="mnist", help="model_spec.name of the requests")
    parser.add_argument("--signature_name", default="predict_images", help="signature to call")
    parser.add_argument(
        "--wait_for_server_seconds",
        type=float,
        default=0.0,
        help="retry for up to this long until the server answers (0: one attempt)",
    )
    quiet_tensorflow.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.num_tests > MAX_TESTS:
        print(f"num_tests should not be greater than 10k, got {args.num_tests}")
        return 2
    if args.num_tests <= 0 or args.concurrency <= 0:
        print(
            f"--num_tests and --concurrency must be positive, got {args.num_tests}, {args.concurrency}"
        )
        return 2
    if not args.server:
        print("please specify server host:port (--server=localhost:8000)")
        return 2
    try:
        result = do_inference(
            args.server,
            args.work_dir,
            args.concurrency,
            args.num_tests,
            args.model_name,
            args.signature_name,
            args.wait_for_server_seconds,
        )
    except ClientError as e:
        print(f"Error: {e}")
        return 1
    print(f"\nInference error rate: {result.error_rate * 100:g}%")
    if result.failed:
        print(
            f"Error: {result.failed} of {result.num_tests} requests to {args.server} failed; "
            f"first failure: {result.first_failure}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
