"""The REST handler against a ServerCore serving half_plus_two: URLs, JSON, errors."""

import json
import sys

import pytest
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2

from tensorflow_serving.model_servers import metrics
from tensorflow_serving.model_servers.data_plane import DataPlane
from tensorflow_serving.model_servers.rest import handler as rest
from tensorflow_serving.model_servers.rest.routes import parse_route
from tensorflow_serving.model_servers.server_core import (
    ModelServerConfig,
    ServerCore,
    ServerCoreOptions,
)
from tensorflow_serving.servables.tensorflow.saved_model_bundle import Signature, TensorSpec
from tensorflow_serving.servables.tensorflow.testdata import export_half_plus_two as hp
from tensorflow_serving.test_util import testing


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    hp.export_half_plus_two_tf1(str(base / "hp"), 1)  # y = 0.5x + 2
    hp.export_half_plus_two_tf1(str(base / "hp"), 2, b=3.0)  # y = 0.5x + 3
    hp.export_half_plus_two_tf2(str(base / "hp2"), 7)
    config = text_format.Parse(
        f"""
        model_config_list {{
          config {{
            name: "hp" base_path: "{base / "hp"}" model_platform: "tensorflow"
            model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
            version_labels {{ key: "stable" value: 1 }}
            version_labels {{ key: "canary" value: 2 }}
          }}
          config {{ name: "hp2" base_path: "{base / "hp2"}" model_platform: "tensorflow" }}
        }}""",
        ModelServerConfig(),
    )
    server_core = ServerCore.create(
        ServerCoreOptions(model_server_config=config, file_system_poll_wait_seconds=0.1)
    )
    yield server_core
    server_core.stop()


def handler_of(core) -> rest.HttpRestApiHandler:
    return rest.HttpRestApiHandler(
        DataPlane(core, metrics.REST, metrics=metrics.ServingMetrics(process=False))
    )


@pytest.fixture(scope="module")
def handler(core):
    return handler_of(core)


def call(handler, method, path, body=None):
    raw = (
        body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    )
    response = handler.process_request(method, path, raw)
    return response.http_status, json.loads(response.body) if response.body else None


# -- Predict -------------------------------------------------------------------


class _Servable:
    """Just the signatures, as a servable describes them."""

    def __init__(self, *input_dtypes):
        inputs = {
            f"in{i}": TensorSpec(f"in{i}", f"in{i}:0", d, None) for i, d in enumerate(input_dtypes)
        }
        self.signatures = {"serving_default": Signature("serving_default", "m", inputs, {}, (), ())}


def test_bodies_are_tried_as_dense_json_only_for_models_with_one_float_input(core):
    """Any other model would parse every :predict body twice (json_dense, then orjson)."""
    assert rest._takes_dense(_Servable(types_pb2.DT_FLOAT))
    assert rest._takes_dense(_Servable(types_pb2.DT_DOUBLE))
    assert not rest._takes_dense(_Servable(types_pb2.DT_INT64))
    assert not rest._takes_dense(_Servable(types_pb2.DT_STRING))
    assert not rest._takes_dense(_Servable(types_pb2.DT_FLOAT, types_pb2.DT_FLOAT))
    with core.servable_handle(parse_route("POST", "/v1/models/hp:predict").model_spec()) as h:
        assert rest._takes_dense(h.servable)


def test_a_dense_body_is_charged_what_it_parsed_to_against_max_decoded_bytes(core):
    body = json.dumps({"instances": [1.0] * 1000}).encode()
    decoded = len(body) + 8 * 1000  # the body, and its float64 array
    plane = DataPlane(core, metrics.REST, metrics=metrics.ServingMetrics(process=False))
    refusing = rest.HttpRestApiHandler(plane, None, decoded - 1)
    code, answer = call(refusing, "POST", "/v1/models/hp:predict", body)
    assert code == 400
    assert f"JSON body of {len(body)} bytes takes {decoded} bytes once decoded" in answer["error"]
    serving = rest.HttpRestApiHandler(plane, None, decoded)
    assert call(serving, "POST", "/v1/models/hp:predict", body) == (
        200,
        {"predictions": [3.5] * 1000},
    )


def test_predict_row_format_answers_predictions(handler):
    code, answer = call(handler, "POST", "/v1/models/hp:predict", {"instances": [1.0, 2, 5.0]})
    assert (code, answer) == (200, {"predictions": [3.5, 4.0, 5.5]})  # latest: version 2


def test_predict_columnar_format_answers_outputs(handler):
    code, answer = call(
        handler, "POST", "/v1/models/hp/versions/1:predict", {"inputs": {"x": [[1.0], [3.0]]}}
    )
    assert (code, answer) == (200, {"outputs": [[2.5], [3.5]]})


def test_predict_by_label_and_explicit_signature(handler):
    body = {"signature_name": "serving_default", "instances": [[4.0]]}
    assert call(handler, "POST", "/v1/models/hp/labels/stable:predict", body) == (
        200,
        {"predictions": [[4.0]]},
    )
    assert call(handler, "POST", "/v1/models/hp/labels/canary:predict", body) == (
        200,
        {"predictions": [[5.0]]},
    )


def test_predict_on_a_tf2_export(handler):
    assert call(handler, "POST", "/v1/models/hp2:predict", {"instances": [2.0, 4.0]}) == (
        200,
        {"predictions": [3.0, 4.0]},
    )


def test_urls_match_case_insensitively_and_decode_names(handler):
    assert (
        call(handler, "POST", "/V1/Models/%68p/Versions/1:predict", {"instances": [0.0]})[0] == 200
    )
    # Upstream compares the method name exactly.
    code, answer = call(handler, "POST", "/v1/models/hp:PREDICT", {"instances": [0.0]})
    assert code == 400 and answer["error"].startswith("Malformed request: POST")


def test_response_says_which_version_and_signature_answered(handler):
    response = handler.process_request(
        "POST", "/v1/models/hp/labels/stable:predict", b'{"instances": [1.0]}'
    )
    assert (response.version, response.signature_name) == ("1", "serving_default")


@pytest.mark.parametrize(
    "path, body, code, message",
    [
        (
            "/v1/models/nope:predict",
            {"instances": [1.0]},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "/v1/models/hp/versions/9:predict",
            {"instances": [1.0]},
            404,
            "Servable not found for request: Specific(hp, 9)",
        ),
        (
            "/v1/models/hp/labels/nope:predict",
            {"instances": [1.0]},
            400,
            "Unrecognized servable version label: nope",
        ),
        (
            "/v1/models/hp:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        ("/v1/models/hp:predict", {"instances": ["a"]}, 400, "is not of expected type: float"),
        (
            "/v1/models/hp:predict",
            {"instances": [1.0], "inputs": [1.0]},
            400,
            "expecting only one of",
        ),
        ("/v1/models/hp:predict", b"", 400, "JSON Parse error: The document is empty"),
        ("/v1/models/hp:predict", b"{", 400, "JSON Parse error"),
        (
            "/v1/models/hp:predict",
            {"instances": [[1.0], [2.0, 3.0]]},
            400,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 1 but got: 2",
        ),
        (
            "/v1/models/hp/versions/99999999999999999999:predict",
            {},
            400,
            "Failed to convert version",
        ),
        (
            "/v1/models/hp/version/1:predict",
            {},
            400,
            "Malformed request: POST /v1/models/hp/version/1:predict",
        ),
        ("/v1/models:predict", {}, 400, "Malformed request"),
    ],
)
def test_predict_errors_have_upstreams_codes_and_words(handler, path, body, code, message):
    got_code, answer = call(handler, "POST", path, body)
    assert got_code == code
    assert message in answer["error"]


def test_bad_json_beats_an_unknown_model(handler):
    # Upstream parses the body before it looks the model up.
    code, answer = call(handler, "POST", "/v1/models/nope:predict", b"[")
    assert code == 400 and "JSON Parse error" in answer["error"]


# -- Classify / Regress ----------------------------------------------------------


def test_classify_answers_results_with_label_and_score(handler):
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}, {"x": 10.0}]}
    code, answer = call(handler, "POST", "/v1/models/hp/versions/1:classify", body)
    assert (code, answer) == (200, {"results": [[["", 12.0]], [["", 7.0]]]})


def test_regress_answers_results(handler):
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    assert call(handler, "POST", "/v1/models/hp/versions/1:regress", body) == (
        200,
        {"results": [42.0]},
    )
    body = {"signature_name": "regress_x_to_y2", "context": {"x": 4.0}, "examples": [{}, {}]}
    assert call(handler, "POST", "/v1/models/hp/versions/1:regress", body) == (
        200,
        {"results": [5.0, 5.0]},
    )


def test_classify_and_regress_on_a_tf2_export(handler):
    examples = {"examples": [{"x": 2.0}]}
    assert call(
        handler,
        "POST",
        "/v1/models/hp2:classify",
        {"signature_name": "classify_x_to_y", **examples},
    ) == (200, {"results": [[["", 3.0]]]})
    assert call(
        handler, "POST", "/v1/models/hp2:regress", {"signature_name": "regress_x_to_y", **examples}
    ) == (200, {"results": [3.0]})


def test_classify_errors(handler):
    code, answer = call(handler, "POST", "/v1/models/hp:classify", {"instances": [1.0]})
    assert code == 400 and "key 'examples' is expected and was not found" in answer["error"]
    # A JSON integer makes an int64 feature, which the float feature x refuses.
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 10}]}
    code, answer = call(handler, "POST", "/v1/models/hp:classify", body)
    assert code == 400 and "Data types don't match" in answer["error"]
    body = {"signature_name": "nope", "examples": [{"x": 1.0}]}
    code, answer = call(handler, "POST", "/v1/models/hp:regress", body)
    assert code == 400 and answer == {"error": "No signature was found with the name: nope"}


# -- Status and metadata -----------------------------------------------------------


def test_model_status_lists_every_version_with_status(handler):
    ok = {"error_code": "OK", "error_message": ""}
    assert call(handler, "GET", "/v1/models/hp") == (
        200,
        {
            "model_version_status": [
                {"version": "2", "state": "AVAILABLE", "status": ok},
                {"version": "1", "state": "AVAILABLE", "status": ok},
            ]
        },
    )
    assert call(handler, "GET", "/v1/models/hp/labels/stable") == (
        200,
        {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]},
    )


def test_model_status_errors(handler):
    assert call(handler, "GET", "/v1/models") == (400, {"error": "Missing model name in request."})
    assert call(handler, "GET", "/v1/models/nope") == (
        404,
        {"error": "Could not find any versions of model nope"},
    )
    assert call(handler, "GET", "/v1/models/hp/versions/5")[0] == 404
    assert call(handler, "GET", "/v1/foo")[0] == 400
    assert call(handler, "GET", "/v1/models/hp:predict")[0] == 400


def test_metadata_is_the_signature_def_map(handler):
    code, answer = call(handler, "GET", "/v1/models/hp/versions/1/metadata")
    assert code == 200
    assert answer["model_spec"] == {"name": "hp", "signature_name": "", "version": "1"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(signatures)
    x = signatures["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT"
    assert x["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
        "unknown_rank": False,
    }
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"


# -- Health (beyond upstream) --------------------------------------------------------


def test_ready_when_every_model_serves(handler):
    assert handler.ready().http_status == 200
    assert json.loads(handler.live().body) == {"status": "live"}


def test_not_ready_names_the_model_without_versions(tmp_path):
    config = text_format.Parse(
        f'model_config_list {{ config {{ name: "later" base_path: "{tmp_path}" '
        f'model_platform: "tensorflow" }} }}',
        ModelServerConfig(),
    )
    core = ServerCore.create(
        ServerCoreOptions(model_server_config=config, file_system_poll_wait_seconds=0.1)
    )
    try:
        response = handler_of(core).ready()
        assert response.http_status == 503
        answer = json.loads(response.body)
        assert "model later has no AVAILABLE version" in answer["error"]
        assert answer["reasons"] == [answer["error"]]
    finally:
        core.stop()


def test_parse_route():
    route = parse_route("GET", "/v1/models/a%20b/labels/x%2Fy/metadata")
    assert (route.api, route.model_name, route.label, route.version) == (
        "metadata",
        "a b",
        "x/y",
        None,
    )
    assert parse_route("POST", "/v1/models/m/versions/3:regress").version == 3
    assert parse_route("DELETE", "/v1/models/m").error is not None


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
