"""Requests are refused before they decode past --max_decoded_request_bytes, on both transports.

Served (one process for the module, --max_decoded_request_bytes=64 MiB):
"echo", whose default signature takes f float[-1] -> f2 = 2f, and whose
"strings" signature takes s string[-1] -> echo.

Each hostile request is a few MB on the wire and would decode to far more
(or, as a fill, to more from a few bytes); each must get INVALID_ARGUMENT /
400 with a message that names what was wrong, and the server must go on
answering. Large requests within the limit, which the server parses in
pieces (gRPC messages over 1 MiB, JSON bodies over 8 MiB), must get the same
answers as small ones.
"""

import json
import sys

import grpc
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from tensorflow.core.framework import types_pb2

from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.servables.tensorflow.testdata import saved_model_writer
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import predict_request_wire, tensor_codec

MODEL = "echo"
MAX_DECODED = 64 << 20
FLAG = "--max_decoded_request_bytes"


def export_echo_model(path: str) -> None:
    with tf.Graph().as_default(), tf.Session() as session:
        f = tf.placeholder(tf.float32, [None], name="f")
        s = tf.placeholder(tf.string, [None], name="s")
        saved_model_writer.save_predict_signatures(
            session,
            path,
            {
                "serving_default": ({"f": f}, {"f2": tf.identity(f * 2, name="f2")}),
                "strings": ({"s": s}, {"echo": tf.identity(s, name="echo")}),
            },
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    export_echo_model(str(base / MODEL / "1"))
    running = RunningServer(
        base,
        "decode_limits",
        [
            f"--model_name={MODEL}",
            f"--model_base_path={base / MODEL}",
            f"{FLAG}={MAX_DECODED}",
        ],
    )
    with running.serving():
        yield running


def stub(server):
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request_with(alias: str, signature: str = "") -> tuple[predict_pb2.PredictRequest, object]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    return request, request.inputs[alias]


def string_bomb(dims: list[int], dtype: int, entries: int) -> predict_pb2.PredictRequest:
    """`entries` empty string_val entries under a tensor of `dtype` and `dims`, for input f."""
    request, tensor = request_with("f")
    tensor.dtype = dtype
    for size in dims:
        tensor.tensor_shape.dim.add(size=size)
    tensor.string_val.extend([b""] * entries)
    return request


def fill_bomb() -> predict_pb2.PredictRequest:
    """One float standing for 20 million: a few bytes that decode to 80 MB."""
    request, tensor = request_with("f")
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.tensor_shape.dim.add(size=20_000_000)
    tensor.float_val.append(1.0)
    return request


def output_filter_bomb() -> predict_pb2.PredictRequest:
    request, tensor = request_with("f")
    tensor_codec.to_tensor_proto(np.ones([1], np.float32), tensor)
    names = [f"output{i:010d}" for i in range(predict_request_wire.MAX_REQUEST_FIELDS + 1)]
    request.output_filter.extend(names)
    assert request.ByteSize() > predict_request_wire.DIRECT_PARSE_BYTES
    return request


BOMBS = {
    "strings for the float input": (
        string_bomb([2_000_000], types_pb2.DT_STRING, 2_000_000),
        f"takes 96000000 bytes once decoded; a request may decode to at most {MAX_DECODED} "
        f"bytes ({FLAG})",
    ),
    "more strings than the shape holds": (
        string_bomb([1], types_pb2.DT_STRING, 2_000_000),
        "has more than 1 values in string_val, but its shape holds 1 elements",
    ),
    "strings in a float tensor": (
        string_bomb([2_000_000], types_pb2.DT_FLOAT, 2_000_000),
        "Input tensor f of dtype float carries values in string_val; its values go in float_val",
    ),
    "one value filling 20 million": (fill_bomb(), "takes 80000000 bytes once decoded"),
    "output_filter entries": (
        output_filter_bomb(),
        f"PredictRequest has more than {predict_request_wire.MAX_REQUEST_FIELDS} fields",
    ),
}


def assert_still_serving(server) -> None:
    request, tensor = request_with("f")
    tensor_codec.to_tensor_proto(np.array([1.5], np.float32), tensor)
    assert stub(server).Predict(request, timeout=30).outputs["f2"].float_val == [3.0]
    assert server.json("POST", f"/v1/models/{MODEL}:predict", {"instances": [1.5]}) == (
        200,
        {"predictions": [3.0]},
    )


@pytest.mark.parametrize("name", BOMBS)
def test_grpc_request_that_would_decode_past_the_limit_is_refused(server, name):
    request, words = BOMBS[name]
    with pytest.raises(grpc.RpcError) as raised:
        stub(server).Predict(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in raised.value.details()
    assert_still_serving(server)


def test_grpc_strings_for_a_float_input_are_refused_by_dtype_before_decoding(server):
    request = string_bomb([100], types_pb2.DT_STRING, 100)  # small: parsed whole
    with pytest.raises(grpc.RpcError) as raised:
        stub(server).Predict(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "Expects arg[0] to be float but string is provided"


def test_rest_body_that_would_parse_past_the_limit_is_refused(server):
    body = b'{"instances": [' + b",".join([b"[]"] * 1_500_000) + b"]}"
    code, _, raw = server.request("POST", f"/v1/models/{MODEL}:predict", body)
    assert code == 400
    message = json.loads(raw)["error"]
    assert f"JSON body of {len(body)} bytes takes" in message and FLAG in message
    assert_still_serving(server)


def large_floats() -> np.ndarray:
    return np.random.default_rng(0).random(2_500_000, dtype=np.float32)


@pytest.mark.parametrize("encoding", ["float_val", "tensor_content"])
def test_large_grpc_floats_within_the_limit_are_served(server, encoding):
    values = large_floats()
    request, tensor = request_with("f")
    if encoding == "float_val":
        tensor_codec.to_tensor_proto(values, tensor)
    else:
        tensor.CopyFrom(tf.make_tensor_proto(values))
    assert request.ByteSize() > predict_request_wire.DIRECT_PARSE_BYTES
    answer = stub(server).Predict(request, timeout=60)
    np.testing.assert_array_equal(tensor_codec.to_ndarray(answer.outputs["f2"]), values * 2)


def test_large_grpc_strings_within_the_limit_are_served(server):
    values = np.array([b"s%d" % i for i in range(200_000)], dtype=object)
    request, tensor = request_with("s", "strings")
    tensor_codec.to_tensor_proto(values, tensor)
    assert request.ByteSize() > predict_request_wire.DIRECT_PARSE_BYTES
    answer = stub(server).Predict(request, timeout=60)
    assert list(answer.outputs["echo"].string_val) == list(values)


def test_large_rest_body_within_the_limit_is_served(server):
    values = large_floats()[:700_000].astype(np.float64)
    body = json.dumps({"instances": values.tolist()}).encode()
    assert len(body) > 8 << 20  # parsed in pieces
    code, _, raw = server.request("POST", f"/v1/models/{MODEL}:predict", body)
    assert code == 200, raw[:200]
    expected = (values.astype(np.float32) * 2).tolist()
    assert np.array(json.loads(raw)["predictions"], np.float32).tolist() == expected


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
