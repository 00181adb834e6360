"""Bad input over both transports, against one built tensorflow_model_server.

Every malformed, mistyped, oversized or hostile request must get a client
error (REST 4xx with {"error": ...}; gRPC INVALID_ARGUMENT / NOT_FOUND /
FAILED_PRECONDITION, or RESOURCE_EXHAUSTED for size) whose message says what
was wrong, and the server must go on answering good requests. Request names
never reach the file system: a model name that spells a path is an unknown
model, even when a SavedModel sits at that path.

Served (one process for the module, --max_request_bytes=256 KiB):
- "hp": TF1 half_plus_two version 1, label "stable";
- "mixed": f float[-1] -> f2 = 2f, i int64[-1] -> i1 = i+1, s string[-1] -> echo;
- "strings": s string[-1] -> number (fails on text that is no number), echo
  (export_string_parser);
- next to them on disk, "secret": a SavedModel that is not in the config.

The property-based tests (hypothesis) draw valid and invalid requests for
both transports; PROPERTY_EXAMPLES (default 400 per transport) sets the count
(--hypothesis-show-statistics shows how the answers were spread).
"""

import base64
import json
import math
import os
import socket
import sys
import time
import urllib.parse

import grpc
import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2

from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.servables.tensorflow.testdata import (
    export_string_parser,
    saved_model_writer,
)
from tensorflow_serving.test_util import testing
from tensorflow_serving.test_util.model_server_process import RunningServer
from tensorflow_serving.util import tensor_codec

Code = grpc.StatusCode
MAX_REQUEST_BYTES = 256 * 1024
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "400"))
# The codes a client error may carry; anything else (INTERNAL, UNKNOWN, ...) is a bug.
CLIENT_ERRORS = {Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.FAILED_PRECONDITION}


def export_mixed_model(path: str) -> None:
    """Three inputs of three dtypes, each with its own easily checked output."""
    with tf.Graph().as_default(), tf.Session() as session:
        f = tf.placeholder(tf.float32, [None], name="f")
        i = tf.placeholder(tf.int64, [None], name="i")
        s = tf.placeholder(tf.string, [None], name="s")
        outputs = {
            "f2": tf.identity(f * 2, name="f2"),
            "i1": tf.identity(i + 1, name="i1"),
            "echo": tf.identity(s, name="echo"),
        }
        saved_model_writer.save_predict_model(session, path, {"f": f, "i": i, "s": s}, outputs)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)
    export_mixed_model(str(base / "mixed" / "1"))
    export_string_parser.export_string_parser(str(base / "strings" / "1"))
    hp.export_half_plus_two_tf1(str(base / "secret"), 1)  # on disk, never configured
    config = base / "models.config"
    config.write_text(
        f"""model_config_list {{
          config {{
            name: "hp" base_path: "{base / "hp"}" model_platform: "tensorflow"
            version_labels {{ key: "stable" value: 1 }}
          }}
          config {{ name: "mixed" base_path: "{base / "mixed"}" model_platform: "tensorflow" }}
          config {{ name: "strings" base_path: "{base / "strings"}" model_platform: "tensorflow" }}
        }}"""
    )
    running = RunningServer(
        base,
        "bad_input",
        [f"--model_config_file={config}", f"--max_request_bytes={MAX_REQUEST_BYTES}"],
    )
    running.base = base
    with running.serving():
        yield running


def predict_stub(server):
    return prediction_service_pb2_grpc.PredictionServiceStub(server.channel)


def model_stub(server):
    return model_service_pb2_grpc.ModelServiceStub(server.channel)


def assert_still_serving(server) -> None:
    """A good request on each transport still gets the right answer."""
    assert server.process.poll() is None, server.log_tail()
    assert server.json("POST", "/v1/models/hp:predict", {"instances": [2.0]}) == (
        200,
        {"predictions": [3.0]},
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    tensor_codec.to_tensor_proto(np.array([[2.0]], np.float32), request.inputs["x"])
    assert predict_stub(server).Predict(request, timeout=30).outputs["y"].float_val == [3.0]


def rest_error(server, method, path, body):
    code, headers, raw = server.request(method, path, body)
    assert headers.get("content-type") == "application/json", (code, raw[:200])
    return code, json.loads(raw)


# -- REST: each kind of bad body, with its status and words ---------------------------

MIXED = "/v1/models/mixed:predict"
HP = "/v1/models/hp:predict"


def _deep(levels: int) -> bytes:
    return b'{"inputs": ' + b"[" * levels + b"1" + b"]" * levels + b"}"


REST_CASES = [
    # (path, body, HTTP status, words in the error)
    (HP, b"", 400, "JSON Parse error: The document is empty"),
    (HP, b"   ", 400, "JSON Parse error"),
    (HP, b"{oops", 400, "JSON Parse error"),
    (HP, b'{"instances": [1.0]', 400, "JSON Parse error"),
    (HP, b'{"instances": [1.0]} trailing', 400, "JSON Parse error"),
    (HP, b"\xff\xfe{}", 400, "Invalid encoding"),
    (HP, b"[1.0, 2.0]", 400, "Is not object"),
    (HP, b"null", 400, "Is not object"),
    (HP, b'{"instances": "x"}', 400, "Excepting 'instances' to be an list/array"),
    (HP, b'{"instances": []}', 400, "No values in 'instances' array"),
    (HP, b'{"nothing": 1}', 400, "Missing 'inputs' or 'instances' key"),
    (HP, b'{"instances": [1], "inputs": [1]}', 400, "only one of 'inputs' or 'instances'"),
    # wrong types
    (HP, b'{"instances": ["x"]}', 400, 'JSON Value: "x" Type: String is not of expected type'),
    (HP, b'{"instances": [true]}', 400, "Type: True is not of expected type: float"),
    (HP, b'{"instances": [null]}', 400, "Type: Null is not of expected type: float"),
    (HP, b'{"instances": [{"b64": "AAAA"}]}', 400, "is not of expected type: float"),
    (MIXED, b'{"instances": [{"f": 1, "i": 1.5, "s": "a"}]}', 400, "expected type: int64"),
    (MIXED, b'{"instances": [{"f": 1, "i": 1, "s": 7}]}', 400, "expected type: string"),
    (HP, b'{"signature_name": 7, "instances": [1]}', 400, "'signature_name' key must be a string"),
    # ragged lists
    (HP, b'{"instances": [[1.0], [2.0, 3.0]]}', 400, "Expecting tensor size: 1 but got: 2"),
    (HP, b'{"instances": [1.0, [2.0]]}', 400, "Expecting shape [] but got: [1]"),
    (HP, b'{"inputs": {"x": [[1.0], [2.0, 3.0]]}}', 400, "Encountered list at unexpected size"),
    (HP, b'{"inputs": [[1.0], 2.0]}', 400, "found at incorrect level"),
    # huge numbers
    (HP, b'{"instances": [1e39]}', 400, "Cannot convert JSON value: 1e+39 to float"),
    (HP, b'{"instances": [16777217]}', 400, "16777217 to float without loss of precision"),
    (HP, b'{"instances": [1e400]}', 400, "Number too big to be stored in double: 1e400"),
    (HP, b'{"instances": [-1' + b"0" * 400 + b"]}", 400, "Number too big to be stored in double"),
    (HP, b'{"instances": [NaN, 1' + b"0" * 5000 + b"]}", 400, "Number too big"),
    (
        MIXED,
        b'{"instances": [{"f": 1, "i": 9223372036854775808, "s": "a"}]}',
        400,
        "is not of expected type: int64",
    ),
    # deep nesting
    (HP, _deep(65), 400, "JSON list nested 65 levels deep: a tensor has at most 64 dimensions"),
    (HP, _deep(1000), 400, "nested 1000 levels deep"),
    (HP, _deep(50000), 400, "JSON Parse error: document nested too deeply"),
    (HP, b'{"a": ' * 20000 + b"1" + b"}" * 20000, 400, "nested too deeply"),
    # base64 and text encoding
    (MIXED, b'{"instances": [{"f": 1, "i": 1, "s": {"b64": "!!!"}}]}', 400, "base64 decode"),
    (MIXED, b'{"inputs": {"f": [1], "i": [1], "s": [{"b64": 5}]}}', 400, "for base64 data"),
    (MIXED, b'{"inputs": {"f": [1], "i": [1], "s": ["\\ud800"]}}', 400, "surrogate pair"),
    # unknown or missing fields
    (MIXED, b'{"instances": [{"f": 1, "i": 1, "s": "a", "t": 1}]}', 400, "named input: t"),
    (MIXED, b'{"instances": [{"f": 1, "i": 1}]}', 400, "keys must be equal to: f,i,s"),
    (MIXED, b'{"inputs": {"f": [1], "i": [1]}}', 400, "Missing named input: s"),
    (MIXED, b'{"instances": [1.0]}', 400, "expecting list of objects as multiple input"),
    # classify / regress bodies
    ("/v1/models/hp:classify", b'{"examples": [1]}', 400, "Example must be JSON object"),
    ("/v1/models/hp:regress", b'{"examples": []}', 400, "'examples' value is an empty array"),
    ("/v1/models/hp:classify", b'{"examples": [{"x": {"b64": "?"}}]}', 400, "base64 decode"),
    ("/v1/models/hp:regress", b'{"examples": [{"x": [[1]]}]}', 400, "unexpected JSON type: Array"),
    ("/v1/models/hp:regress", b'{"examples": [{"x": [1, "a"]}]}', 400, "Unexpected element type"),
    # unknown model / version / label / signature
    ("/v1/models/nope:predict", b'{"instances": [1.0]}', 404, "Servable not found"),
    ("/v1/models/nope:predict", b'{"instances": [1.0]', 400, "JSON Parse error"),  # body first
    ("/v1/models/hp/versions/9:predict", b'{"instances": [1.0]}', 404, "Specific(hp, 9)"),
    (
        "/v1/models/hp/versions/99999999999999999999:predict",
        b'{"instances": [1.0]}',
        400,
        "Failed to convert version: 99999999999999999999 to numeric",
    ),
    ("/v1/models/hp/labels/nope:predict", b'{"instances": [1.0]}', 400, "version label: nope"),
    (HP, b'{"signature_name": "nope", "instances": [1.0]}', 400, 'name: "nope" not found'),
    ("/v1/models/hp:classify", b'{"examples": [{"x": 1.0}]}', 400, "classification signature"),
    ("/v1/models/hp:explode", b'{"instances": [1.0]}', 400, "Malformed request"),
]


@pytest.mark.parametrize(
    "path,body,code,words", REST_CASES, ids=lambda v: v[:40] if isinstance(v, bytes) else None
)
def test_rest_bad_bodies_get_a_client_error_that_names_the_problem(server, path, body, code, words):
    got, answer = rest_error(server, "POST", path, body)
    assert (got, words in answer["error"]) == (code, True), answer["error"][:500]


def test_rest_unknown_top_level_fields_are_ignored_as_upstream_does(server):
    assert server.json("POST", HP, {"instances": [2.0], "bogus": {"deep": [1, 2]}}) == (
        200,
        {"predictions": [3.0]},
    )


def test_a_scalar_string_comes_back_as_a_scalar_string(server):
    # The session hands a 0-d string output back as bare bytes (found by the random test).
    for text in ("", "a"):
        body = {"inputs": {"f": 0.0, "i": 0, "s": text}}
        assert server.json("POST", MIXED, body) == (
            200,
            {"outputs": {"echo": text, "f2": 0.0, "i1": 1}},
        )


def test_rest_error_messages_quote_a_bounded_part_of_a_large_body(server):
    body = b'{"instances": "x", "pad": [' + b",".join([b"1.5"] * 40000) + b"]}"
    code, answer = rest_error(server, "POST", HP, body)
    assert code == 400 and "(truncated)" in answer["error"]
    assert len(answer["error"]) < 5000
    assert_still_serving(server)


def _http_request(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(),
        len(body),
        body,
    )


def test_clients_that_leave_with_pipelined_requests_pending_or_send_garbage(server):
    """Each used to log a traceback (issue 36, item 8); the last test of the module
    checks that the log holds none. A :classify runs on a worker, so the client
    is gone before its answer is written."""
    examples = json.dumps({"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}] * 2000})
    small = _http_request(HP, b'{"instances": [1.0]}')
    for first in (_http_request("/v1/models/hp:classify", examples.encode()), small):
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
                sock.sendall(first + small * 20)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
            sock.sendall(b"GARBAGE\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    assert_still_serving(server)
    log = server.log_path.read_text(errors="replace")
    assert log.count("Invalid HTTP request received.") <= 1, "one line a minute at most"


# -- gRPC: each kind of bad tensor or model spec ---------------------------------------


def _tensor(dtype, dims=(1,), **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _hp_request(x=None, **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", "hp")
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs["x"].CopyFrom(
        x if x is not None else _tensor(types_pb2.DT_FLOAT, (1, 1), float_val=[1.0])
    )
    return request


F = types_pb2.DT_FLOAT
GRPC_CASES = [
    # (request, code, words in details)
    (_hp_request(_tensor(F, (2,), tensor_content=b"\0" * 4)), Code.INVALID_ARGUMENT, "4 bytes"),
    (_hp_request(_tensor(F, (3,), float_val=[1, 2])), Code.INVALID_ARGUMENT, "2 values"),
    (_hp_request(_tensor(F, (-1,))), Code.INVALID_ARGUMENT, "negative dimension: [-1]"),
    (_hp_request(_tensor(F, (1,) * 65)), Code.INVALID_ARGUMENT, "at most 64"),
    (_hp_request(_tensor(F, (2**40,))), Code.INVALID_ARGUMENT, "filling more than"),
    (_hp_request(_tensor(F, (2**62, 2**62))), Code.INVALID_ARGUMENT, "is too large"),
    (_hp_request(_tensor(999)), Code.INVALID_ARGUMENT, "Unsupported tensor dtype: 999"),
    (
        _hp_request(_tensor(types_pb2.DT_VARIANT)),
        Code.INVALID_ARGUMENT,
        "Unsupported tensor dtype: DT_VARIANT",
    ),
    (
        _hp_request(_tensor(types_pb2.DT_STRING, (1, 1), string_val=[b"1.0"])),
        Code.INVALID_ARGUMENT,
        "Expects arg[0] to be float but string is provided",
    ),
    (
        _hp_request(_tensor(types_pb2.DT_DOUBLE, (1, 1), double_val=[1.0])),
        Code.INVALID_ARGUMENT,
        "to be float but double",
    ),
    (
        _hp_request(
            tensor_pb2.TensorProto(dtype=F, float_val=[1.0], tensor_shape={"unknown_rank": True})
        ),
        Code.INVALID_ARGUMENT,
        "known rank",
    ),
    (_hp_request(name="nope"), Code.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    (_hp_request(version=9), Code.NOT_FOUND, "Specific(hp, 9)"),
    (_hp_request(version_label="nope"), Code.INVALID_ARGUMENT, "version label: nope"),
    (_hp_request(signature_name="nope"), Code.FAILED_PRECONDITION, 'key "nope" not found'),
]


@pytest.mark.parametrize("request_proto,code,words", GRPC_CASES)
def test_grpc_bad_requests_get_a_client_error_that_names_the_problem(
    server, request_proto, code, words
):
    with pytest.raises(grpc.RpcError) as raised:
        predict_stub(server).Predict(request_proto, timeout=30)
    assert (raised.value.code(), words in raised.value.details()) == (code, True), (
        raised.value.details()
    )


def test_grpc_missing_extra_inputs_and_bad_output_filter(server):
    stub = predict_stub(server)
    request = _hp_request()
    request.inputs["z"].CopyFrom(_tensor(F, (1,), float_val=[1.0]))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == Code.INVALID_ARGUMENT
    assert "Send extra: {z}. Missing but required: {}." in raised.value.details()
    request = _hp_request()
    request.output_filter.extend(["y", "nope"])
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(request, timeout=30)
    assert raised.value.code() == Code.INVALID_ARGUMENT
    assert "output tensor alias not found in signature: nope" in raised.value.details()


def test_grpc_bytes_that_are_no_protobuf_are_invalid_argument(server):
    for method in (
        "/tensorflow.serving.PredictionService/Predict",
        "/tensorflow.serving.ModelService/GetModelStatus",
    ):
        call = server.channel.unary_unary(method)  # no serializers: raw bytes
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05\xff\xfe\xfd\xfc\xfb"):
            with pytest.raises(grpc.RpcError) as raised:
                call(garbage, timeout=30)
            assert raised.value.code() == Code.INVALID_ARGUMENT, raised.value.details()
            assert "not a valid protobuf message" in raised.value.details()
    assert_still_serving(server)


# -- Size limit: --max_request_bytes -------------------------------------------------


def _raw_http(server, head: bytes, parts: list[bytes], pause: float = 0.0) -> bytes:
    """Sends a request piece by piece on a raw socket; returns all the server wrote."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
            time.sleep(pause)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _status_and_json(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head.lower(), json.loads(body)


def test_rest_body_declared_over_the_limit_gets_413_without_being_read(server):
    # The body is announced as 1 GB and 1 KB of it is sent: the answer must come now.
    head = (
        b"POST /v1/models/hp:predict HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
    )
    code, headers, answer = _status_and_json(_raw_http(server, head, [b" " * 1024]))
    assert code == 413
    assert answer["error"] == (
        f"Request body of 1000000000 bytes is larger than --max_request_bytes={MAX_REQUEST_BYTES}"
    )
    assert b"connection: close" in headers
    assert_still_serving(server)


def test_rest_chunked_body_over_the_limit_gets_413(server):
    head = (
        b"POST /v1/models/hp:predict HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"[" + b"1.0," * 16383 + b"1.0]"  # 64 KiB
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 6 + [b"0\r\n\r\n"]
    code, _, answer = _status_and_json(_raw_http(server, head, parts, pause=0.05))
    assert code == 413
    assert f"or more is larger than --max_request_bytes={MAX_REQUEST_BYTES}" in answer["error"]
    assert_still_serving(server)


def test_rest_body_just_under_the_limit_is_served(server):
    values = [1.0] * 40000
    body = json.dumps({"instances": values}).encode()
    assert len(body) < MAX_REQUEST_BYTES
    code, answer = server.json("POST", HP, body)
    assert code == 200 and len(answer["predictions"]) == 40000


def test_grpc_message_over_the_limit_is_resource_exhausted(server):
    request = _hp_request(tensor_codec.to_tensor_proto(np.ones((70000, 1), np.float32)))
    assert request.ByteSize() > MAX_REQUEST_BYTES
    with pytest.raises(grpc.RpcError) as raised:
        predict_stub(server).Predict(request, timeout=30)
    assert raised.value.code() == Code.RESOURCE_EXHAUSTED
    assert f"vs. {MAX_REQUEST_BYTES})" in raised.value.details()
    small = _hp_request(tensor_codec.to_tensor_proto(np.ones((1000, 1), np.float32)))
    assert len(predict_stub(server).Predict(small, timeout=30).outputs["y"].float_val) == 1000


# -- No path from a request reaches the file system ------------------------------------


def _path_names(server) -> list[str]:
    secret = str(server.base / "secret")
    return [
        "../secret",
        "../../../../etc/passwd",
        "/etc/passwd",
        secret,
        secret + "/1",
        "secret",
        "..",
        ".",
        "%2e%2e",
        "%2e%2e%2fsecret",
        "hp/../hp",
        "hp/1",
        "~",
        "\\..\\secret",
    ]


def test_model_names_that_spell_paths_are_unknown_models_on_both_transports(server):
    for name in _path_names(server):
        quoted = urllib.parse.quote(name, safe="")
        for path in (f"/v1/models/{quoted}:predict", f"/v1/models/{quoted}/versions/1:predict"):
            code, answer = rest_error(server, "POST", path, {"instances": [1.0]})
            assert code == 404 and "Servable not found" in answer["error"], (name, answer)
        code, answer = rest_error(server, "GET", f"/v1/models/{quoted}", None)
        assert code == 404 and "Could not find any versions" in answer["error"], (name, answer)
        code, answer = rest_error(server, "GET", f"/v1/models/{quoted}/metadata", None)
        assert code == 404, (name, answer)
        with pytest.raises(grpc.RpcError) as raised:
            predict_stub(server).Predict(_hp_request(name=name), timeout=30)
        assert raised.value.code() == Code.NOT_FOUND, (name, raised.value.details())
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = name
        with pytest.raises(grpc.RpcError) as raised:
            model_stub(server).GetModelStatus(status_request, timeout=30)
        assert raised.value.code() == Code.NOT_FOUND, (name, raised.value.details())
        metadata_request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=["signature_def"]
        )
        metadata_request.model_spec.name = name
        with pytest.raises(grpc.RpcError) as raised:
            predict_stub(server).GetModelMetadata(metadata_request, timeout=30)
        assert raised.value.code() == Code.NOT_FOUND, (name, raised.value.details())


def test_raw_path_segments_and_labels_with_path_characters_are_refused(server):
    # Unencoded slashes never match a route; labels are looked up, never opened.
    for path in ("/v1/models/../secret:predict", "/v1/models/hp/../../secret:predict"):
        code, answer = rest_error(server, "POST", path, {"instances": [1.0]})
        assert code == 400 and "Malformed request" in answer["error"], answer
    for label in ("..", "../1", "%2e%2e%2f1", "/etc/passwd"):
        quoted = urllib.parse.quote(label, safe="")
        code, answer = rest_error(
            server, "POST", f"/v1/models/hp/labels/{quoted}:predict", {"instances": [1.0]}
        )
        assert code == 400 and f"version label: {label}" in answer["error"], answer
        with pytest.raises(grpc.RpcError) as raised:
            predict_stub(server).Predict(_hp_request(version_label=label), timeout=30)
        assert raised.value.code() == Code.INVALID_ARGUMENT
    assert_still_serving(server)


# -- Property-based: random requests, both transports ----------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# float32-exact values keep the expected answer exact; ints leave room for +1.
# (TensorFlow flushes subnormal floats to zero on CPU: leave them out.)
f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)
i64 = st.integers(min_value=-(2**62), max_value=2**62)
text = st.text(max_size=12)


@st.composite
def valid_rest_request(draw):
    """(path, body, expected answer) for the mixed model, row or columnar."""
    n = draw(st.integers(1, 4))
    rows = [{"f": draw(f32), "i": draw(i64), "s": draw(text)} for _ in range(n)]
    path = draw(st.sampled_from([MIXED, "/v1/models/mixed/versions/1:predict"]))
    signature = draw(st.sampled_from([{}, {"signature_name": "serving_default"}]))
    with np.errstate(over="ignore"):
        f2 = [float(np.float32(r["f"]) * np.float32(2)) for r in rows]
    expected = {
        "f2": f2,
        "i1": [r["i"] + 1 for r in rows],
        "echo": [r["s"] for r in rows],
    }
    if draw(st.booleans()):
        return path, {**signature, "instances": rows}, ("predictions", expected)
    columns = {k: [r[k] for r in rows] for k in ("f", "i", "s")}
    return path, {**signature, "inputs": columns}, ("outputs", expected)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and +-Infinity too: json.dumps writes them as bare tokens
    text,
    st.builds(lambda s: {"b64": s}, st.sampled_from(["AAAA", "!!", "", "QQ", "x" * 5])),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["f", "i", "s", "x", "b64", "instances", "inputs", "examples"]) | text,
            inner,
            max_size=4,
        )
    ),
    max_leaves=16,
)
rest_paths = st.sampled_from(
    [
        MIXED,
        HP,
        "/v1/models/mixed/versions/1:predict",
        "/v1/models/mixed/versions/2:predict",
        "/v1/models/hp/labels/stable:predict",
        "/v1/models/hp:classify",
        "/v1/models/hp:regress",
        "/v1/models/mixed:classify",
        "/v1/models/nope:predict",
        "/v1/models/%2e%2e%2fsecret:predict",
    ]
) | st.builds(lambda name: f"/v1/models/{urllib.parse.quote(name, safe='')}:predict", text)


@st.composite
def mutated_body(draw):
    """A valid body, broken: a value replaced, a key renamed, or its bytes cut or spliced."""
    _, doc, _ = draw(valid_rest_request())
    how = draw(st.sampled_from(["value", "key", "bytes"]))
    key = "instances" if "instances" in doc else "inputs"
    if how == "value":
        if key == "instances":
            row = draw(st.sampled_from(doc[key]))
            row[draw(st.sampled_from(["f", "i", "s"]))] = draw(json_value)
        else:
            doc[key][draw(st.sampled_from(["f", "i", "s"]))] = draw(json_value)
        return json.dumps(doc).encode()
    if how == "key":
        doc[draw(text)] = doc.pop(key)
        return json.dumps(doc).encode()
    raw = json.dumps(doc).encode()
    cut = draw(st.integers(0, len(raw)))
    return raw[:cut] + draw(st.binary(max_size=4)) + raw[cut + draw(st.integers(0, 3)) :]


def _floats_equal(got: list, want: list) -> bool:
    return all(
        (math.isnan(g) and math.isnan(w)) or np.float32(g) == np.float32(w)
        for g, w in zip(got, want, strict=True)
    )


def _check_valid_answer(code: int, answer, expected) -> None:
    key, values = expected
    assert code == 200, answer
    if key == "predictions":
        rows = answer["predictions"]
        got = {name: [row[name] for row in rows] for name in ("f2", "i1", "echo")}
    else:
        got = answer["outputs"]
    assert _floats_equal(got["f2"], values["f2"]), (got, values)
    assert (got["i1"], got["echo"]) == (values["i1"], values["echo"])


@PROPERTY_SETTINGS
@given(
    case=st.one_of(
        valid_rest_request().map(lambda c: ("valid", *c)),
        st.tuples(st.just("invalid"), rest_paths, mutated_body(), st.none()),
        st.tuples(st.just("invalid"), rest_paths, json_value.map(json.dumps), st.none()),
        st.tuples(st.just("invalid"), rest_paths, st.binary(max_size=48), st.none()),
    )
)
def test_random_rest_requests_get_a_result_or_a_client_error(server, case):
    kind, path, body, expected = case
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    code, headers, answer_raw = server.request("POST", path, raw)
    event(f"{kind}: HTTP {code}")
    assert 200 <= code < 500, (code, answer_raw[:300])
    answer = json.loads(answer_raw)  # always JSON, NaN/Infinity tokens included
    if kind == "valid":
        _check_valid_answer(code, answer, expected)
    elif code != 200:
        assert isinstance(answer["error"], str) and answer["error"], answer


# gRPC: every DataType the proto knows, and numbers it does not.
DTYPES = st.sampled_from(sorted(types_pb2.DataType.values())) | st.integers(0, 400)


@st.composite
def random_tensor(draw) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=draw(DTYPES))
    if draw(st.integers(0, 20)) == 0:
        proto.tensor_shape.unknown_rank = True
    for size in draw(st.lists(st.integers(-2, 4), max_size=4)):
        proto.tensor_shape.dim.add(size=size)
    fill = draw(
        st.sampled_from(["content", "float_val", "int_val", "int64_val", "string_val", "mixed"])
    )
    if fill in ("content", "mixed"):
        proto.tensor_content = draw(st.binary(max_size=64))
    if fill in ("float_val", "mixed"):
        proto.float_val.extend(draw(st.lists(f32, max_size=8)))
    if fill in ("int_val", "mixed"):
        proto.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8)))
    if fill == "int64_val":
        proto.int64_val.extend(draw(st.lists(i64, max_size=8)))
    if fill in ("string_val", "mixed"):
        proto.string_val.extend(draw(st.lists(st.binary(max_size=8), max_size=8)))
    return proto


@st.composite
def valid_tensor(draw, name: str) -> tensor_pb2.TensorProto:
    n = draw(st.integers(0, 4))
    if name == "f":
        array = np.array(draw(st.lists(f32, min_size=n, max_size=n)), np.float32)
    elif name == "i":
        array = np.array(draw(st.lists(i64, min_size=n, max_size=n)), np.int64)
    else:
        array = np.empty(n, dtype=object)
        array[:] = draw(st.lists(st.binary(max_size=8), min_size=n, max_size=n))
    proto = tensor_codec.to_tensor_proto(array)
    if name != "s" and draw(st.booleans()):  # the same values as tensor_content
        proto.ClearField("float_val")
        proto.ClearField("int64_val")
        proto.tensor_content = array.tobytes()
    return proto


@st.composite
def grpc_request(draw):
    """(PredictRequest, whether it is valid for the mixed model by construction)."""
    request = predict_pb2.PredictRequest()
    valid = draw(st.booleans())
    if valid:
        request.model_spec.name = "mixed"
        if draw(st.booleans()):
            request.model_spec.version.value = 1
        request.model_spec.signature_name = draw(st.sampled_from(["", "serving_default"]))
        for name in ("f", "i", "s"):
            request.inputs[name].CopyFrom(draw(valid_tensor(name)))
        request.output_filter.extend(
            draw(st.lists(st.sampled_from(["f2", "i1", "echo"]), unique=True))
        )
        return request, True
    request.model_spec.name = draw(st.sampled_from(["mixed", "hp", "nope", "../secret"]) | text)
    choice = draw(st.sampled_from(["latest", "version", "label"]))
    if choice == "version":
        request.model_spec.version.value = draw(st.integers(-(2**63), 2**63 - 1) | st.just(1))
    elif choice == "label":
        request.model_spec.version_label = draw(st.just("stable") | text)
    request.model_spec.signature_name = draw(
        st.sampled_from(["", "serving_default", "classify_x_to_y", "nope"])
    )
    names = draw(st.lists(st.sampled_from(["f", "i", "s", "x"]) | text, max_size=4, unique=True))
    for name in names:
        tensor = draw(random_tensor() | valid_tensor(draw(st.sampled_from(["f", "i", "s"]))))
        request.inputs[name].CopyFrom(tensor)
    request.output_filter.extend(
        draw(st.lists(st.sampled_from(["f2", "i1", "echo", "y", "nope"]), max_size=3))
    )
    return request, False


def _check_mixed_outputs(request, response) -> None:
    """Any answer from the mixed model: each output is its input's function."""
    inputs = {name: tensor_codec.to_ndarray(request.inputs[name]) for name in ("f", "i", "s")}
    outputs = {name: tensor_codec.to_ndarray(t) for name, t in response.outputs.items()}
    wanted = set(request.output_filter) or {"f2", "i1", "echo"}
    assert set(outputs) == wanted
    if "f2" in outputs:
        f = inputs["f"]
        f = np.where(np.abs(f) < np.finfo(np.float32).tiny, np.float32(0), f)  # TF's FTZ
        with np.errstate(over="ignore", invalid="ignore"):
            np.testing.assert_array_equal(outputs["f2"], f * np.float32(2))
    if "i1" in outputs:
        np.testing.assert_array_equal(outputs["i1"], inputs["i"] + 1)
    if "echo" in outputs:
        assert outputs["echo"].tolist() == inputs["s"].tolist()


@PROPERTY_SETTINGS
@given(case=grpc_request())
def test_random_grpc_requests_get_a_result_or_a_client_error(server, case):
    request, valid = case
    try:
        response = predict_stub(server).Predict(request, timeout=30)
    except grpc.RpcError as error:
        event(f"{error.code().name}")
        assert not valid, (error.code(), error.details(), request)
        assert error.code() in CLIENT_ERRORS, (error.code(), error.details(), request)
        assert error.details()
        return
    event(f"OK ({'valid' if valid else 'random'} request)")
    if response.model_spec.name == "mixed":
        _check_mixed_outputs(request, response)


# -- Property-based: random bytes into a model that reads its string input -----------

STRINGS = "/v1/models/strings:predict"
# Numbers too, so that some requests succeed.
random_strings = st.lists(
    st.binary(max_size=12) | st.integers().map(lambda i: str(i).encode()), min_size=1, max_size=4
)


def _rest_strings_body(draw, values: list[bytes]) -> bytes:
    """`values` as one of the ways REST carries a string input: b64 or text, rows or columns."""
    if draw(st.booleans()):
        encoded = [{"b64": base64.b64encode(v).decode()} for v in values]
    else:
        encoded = [v.decode("utf-8", "replace") for v in values]
    if draw(st.booleans()):
        return json.dumps({"instances": encoded}).encode()
    return json.dumps({"inputs": {"s": encoded}}).encode()


@PROPERTY_SETTINGS
@given(values=random_strings, data=st.data())
def test_random_bytes_in_a_rest_string_input_get_200_or_400(server, values, data):
    code, _, raw = server.request("POST", STRINGS, _rest_strings_body(data.draw, values))
    event(f"HTTP {code}")
    answer = json.loads(raw)
    assert code in (200, 400), (code, values, answer)
    if code == 400:
        assert isinstance(answer["error"], str) and 0 < len(answer["error"]) < 2000, answer


@PROPERTY_SETTINGS
@given(
    values=random_strings,
    outputs=st.lists(st.sampled_from(export_string_parser.OUTPUTS), unique=True),
)
def test_random_bytes_in_a_grpc_string_input_get_ok_or_invalid_argument(server, values, outputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "strings"
    request.inputs["s"].CopyFrom(_tensor(types_pb2.DT_STRING, (len(values),), string_val=values))
    request.output_filter.extend(outputs)
    try:
        response = predict_stub(server).Predict(request, timeout=30)
    except grpc.RpcError as error:
        event(error.code().name)
        assert error.code() == Code.INVALID_ARGUMENT, (error.code(), error.details(), values)
        assert 0 < len(error.details()) < 2000
        return
    event("OK")
    assert set(response.outputs) == set(outputs or export_string_parser.OUTPUTS)


def test_bytes_that_are_not_utf8_in_a_string_input_are_a_client_error_on_both_transports(server):
    """The reproduction from issue 36: TensorFlow's error quoting the bytes."""
    body = b'{"instances": [{"b64": "wMA="}]}'
    code, answer = rest_error(server, "POST", STRINGS, body)
    assert code == 400, answer
    assert "could not correctly convert string: \\xc0\\xc0" in answer["error"]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "strings"
    request.inputs["s"].CopyFrom(_tensor(types_pb2.DT_STRING, (1,), string_val=[b"\xc0\xc0"]))
    with pytest.raises(grpc.RpcError) as raised:
        predict_stub(server).Predict(request, timeout=30)
    assert raised.value.code() == Code.INVALID_ARGUMENT
    assert "could not correctly convert string: \\xc0\\xc0" in raised.value.details()


def test_after_all_of_it_the_server_still_serves_and_logged_no_unexpected_failure(server):
    assert_still_serving(server)
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "hp"
    classify.model_spec.signature_name = "classify_x_to_y"
    classify.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
    response = predict_stub(server).Classify(classify, timeout=30)
    assert response.result.classifications[0].classes[0].score == 3.0
    log = server.log_path.read_text(errors="replace")
    assert "failed unexpectedly" not in log, log[-4000:]
    assert "Traceback" not in log, "a client's request never logs a traceback"


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
