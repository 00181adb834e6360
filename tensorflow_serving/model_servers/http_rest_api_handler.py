"""The REST API: URL + JSON body in, JSON out (upstream: http_rest_api_handler.cc).

A thin transport over the same handlers the gRPC services call, so a request
gets the same answer and the same error words either way:

    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]            model status
    GET  /v1/models/{name}[/versions/{v} | /labels/{l}]/metadata   signature defs
    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict | :classify | :regress

URLs match case-insensitively and names may be %-encoded, as upstream's
regexes and decoding allow. Errors are `{"error": "<message>"}` with the HTTP
code upstream maps the canonical code to (util/status.py). Beyond upstream,
`GET /v1/health/live` and `GET /v1/health/ready` answer load balancers.

The handler is synchronous: the HTTP server (http_server.py) calls it on a
worker thread, bounds its time, and records metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import re
import urllib.parse
import weakref
from collections.abc import Callable

import orjson
from google.protobuf import json_format

from tensorflow_serving.apis import get_model_metadata_pb2, model_pb2
from tensorflow_serving.servables.tensorflow import (
    classifier,
    get_model_metadata_impl,
    predict_util,
    regressor,
)
from tensorflow_serving.util import (
    json_body,
    json_dense,
    json_example,
    json_predict_request,
    json_response,
    json_to_tensor,
    status,
)

_LOG = logging.getLogger(__name__)

# Paths the REST handler owns (upstream's kPathRegex); others are not found.
PATH_REGEX = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_PREDICTION_REGEX = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_MODEL_STATUS_REGEX = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
HEALTH_LIVE_PATH = "/v1/health/live"
HEALTH_READY_PATH = "/v1/health/ready"

_MAX_INT64 = (1 << 63) - 1

# API labels of the metrics: upstream's REST method names, and names for the GETs.
PREDICT, CLASSIFY, REGRESS = "predict", "classify", "regress"
STATUS, METADATA = "status", "metadata"


@dataclasses.dataclass(frozen=True)
class Route:
    """What a request path asks for; `error` when it asks for nothing we serve."""

    api: str = ""
    model_name: str = ""
    version: int | None = None
    label: str | None = None
    error: status.ServingError | None = None

    def model_spec(self) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name)
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec


@dataclasses.dataclass
class RestResponse:
    """An answer plus what the metrics label it with."""

    http_status: int
    body: bytes
    status_name: str = "OK"
    version: str = ""
    signature_name: str = ""


def parse_route(http_method: str, path: str) -> Route:
    """Matches a request against the API's URLs (no model access: cheap, on the event loop)."""
    malformed = Route(error=status.invalid_argument(f"Malformed request: {http_method} {path}"))
    if http_method == "POST":
        match = _PREDICTION_REGEX.fullmatch(path)
        if match is None:
            return malformed
        name, version, label, api = match.groups()
        if api not in (PREDICT, CLASSIFY, REGRESS):
            return malformed  # the regex ignores case; upstream's dispatch does not
    elif http_method == "GET":
        match = _MODEL_STATUS_REGEX.fullmatch(path)
        if match is None:
            return malformed
        name, version, label, subresource = match.groups()
        # Like upstream, only a lower-case "metadata" selects the metadata API.
        api = METADATA if subresource == METADATA else STATUS
    else:
        return malformed
    name = urllib.parse.unquote(name) if name else ""
    label = urllib.parse.unquote(label) if label else None
    if version is not None:
        number = int(version)
        if number > _MAX_INT64:
            return Route(
                api=api,
                model_name=name,
                error=status.invalid_argument(f"Failed to convert version: {version} to numeric."),
            )
        version = number
    return Route(api=api, model_name=name, version=version, label=label)


def error_response(error: status.ServingError) -> RestResponse:
    return RestResponse(
        error.http_status(), json_response.error_json(error.message), error.code.name
    )


def _failure_response(route: Route, error: Exception) -> RestResponse:
    """{"error": ...}: a ServingError's own code, anything else INTERNAL (and logged)."""
    if isinstance(error, status.ServingError):
        return error_response(error)
    _LOG.exception("REST %s for model %r failed unexpectedly", route.api, route.model_name)
    return error_response(status.internal(f"{route.api} failed: {type(error).__name__}: {error}"))


def _bad_body_first(body: bytes, error: Exception) -> Exception:
    """A body that does not parse is reported before `error`, as upstream parses first."""
    try:
        json_body.loads_object(body)
    except status.ServingError as bad_body:
        return bad_body
    return error


# Servable -> whether a dense body (json_dense) can serve any of its signatures.
_DENSE_SERVABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _takes_dense(servable) -> bool:
    """Whether some signature of `servable` has exactly one float input (json_dense's case).

    For a model without one, every :predict body would be parsed twice:
    by json_dense, then, declined, by the general decoder. Worked out once
    per servable; anything unexpected keeps trying json_dense.
    """
    try:
        return _DENSE_SERVABLES[servable]
    except (KeyError, TypeError):
        pass
    signatures = getattr(servable, "signatures", None)
    if not isinstance(signatures, dict):
        return True
    takes = any(
        len(signature.inputs) == 1
        and json_to_tensor.takes_dense(next(iter(signature.inputs.values())).dtype)
        for signature in signatures.values()
    )
    try:
        _DENSE_SERVABLES[servable] = takes
    except TypeError:  # not weakly referenceable: worked out again next time
        pass
    return takes


def _worker_response(work: concurrent.futures.Future) -> RestResponse:
    """A worker's answer; handle() answers every error itself, so only a cancelled run is left."""
    if work.cancelled():
        return error_response(status.unavailable("The HTTP/REST server is shutting down"))
    return work.result()


def _predict_answer(outputs, fmt, version: int, signature_key: str) -> RestResponse:
    answer = json_response.predict_response_json(outputs, fmt)
    return RestResponse(200, answer, version=str(version), signature_name=signature_key)


def _pretty(document: dict) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


class HttpRestApiHandler:
    """Serves one REST request against a ServerCore."""

    def __init__(self, core):
        self._core = core

    def process_request(self, http_method: str, path: str, body: bytes) -> RestResponse:
        """The whole request: route, run, encode (used by tests and simple callers)."""
        return self.handle(parse_route(http_method, path), body)

    def handle(self, route: Route, body: bytes) -> RestResponse:
        """Runs a parsed route; every failure becomes {"error": ...} with its HTTP code."""
        try:
            if route.error is not None:
                raise route.error
            if route.api == PREDICT:
                return self._predict(route, body)
            if route.api in (CLASSIFY, REGRESS):
                return self._classify_or_regress(route, body)
            if route.api == METADATA:
                return self._metadata(route)
            return self._status(route)
        except Exception as error:
            return _failure_response(route, error)

    # -- POST ------------------------------------------------------------------

    def _predict(self, route: Route, body: bytes) -> RestResponse:
        try:
            handle = self._core.servable_handle(route.model_spec())
        except Exception as error:
            raise _bad_body_first(body, error) from None
        with handle:
            decoded = self._decode_body(body, _takes_dense(handle.servable))
            name, inputs, fmt = self._predict_request(handle, decoded, body)
            signature, outputs = predict_util.predict(handle, name, inputs)
        return _predict_answer(outputs, fmt, handle.version, signature.key)

    def predict_then(
        self,
        route: Route,
        body: bytes,
        executor: concurrent.futures.Executor,
        done: Callable[[RestResponse], None],
    ) -> None:
        """:predict from the event loop without a task: `done(response)` follows on the loop.

        Same checks and answers as handle(), but the model runs through the
        batching queue, so no thread waits for the batch, and no coroutine
        either. The version stays held until its answer is built. A servable
        without a batching queue gains nothing from the loop (its run needs a
        worker anyway, and decoding there keeps the loop free), so such a
        request runs whole on `executor`, as handle() would.
        """
        loop = asyncio.get_running_loop()
        try:
            handle = self._core.servable_handle(route.model_spec()).__enter__()
        except Exception as error:
            done(_failure_response(route, _bad_body_first(body, error)))
            return
        if not hasattr(handle.servable, "submit_async"):
            handle.__exit__(None, None, None)
            work = executor.submit(self.handle, route, body)
            work.add_done_callback(
                lambda finished: loop.call_soon_threadsafe(done, _worker_response(finished))
            )
            return
        try:
            decoded = self._decode_body(body, _takes_dense(handle.servable))
            name, inputs, fmt = self._predict_request(handle, decoded, body)
            signature, pending = predict_util.submit_predict(handle, name, inputs, executor)
        except Exception as error:
            handle.__exit__(None, None, None)
            done(_failure_response(route, error))
            return

        def answered(outputs: asyncio.Future) -> None:
            try:
                if outputs.cancelled():
                    return  # the transport gave up on it (timeout) and has answered
                response = _predict_answer(outputs.result(), fmt, handle.version, signature.key)
            except Exception as error:
                response = _failure_response(route, error)
            finally:
                handle.__exit__(None, None, None)
            done(response)

        pending.add_done_callback(answered)

    @staticmethod
    def _decode_body(body: bytes, may_be_dense: bool) -> json_dense.DenseBody | dict:
        """A :predict body parsed: one dense tensor of numbers if json_dense takes it.

        Otherwise (and always unless `may_be_dense`) the general decoder's
        document; its parse errors raise here.
        """
        dense = json_dense.decode(body) if may_be_dense else None
        return dense if dense is not None else json_body.loads_object(body)

    @staticmethod
    def _predict_request(handle, decoded: json_dense.DenseBody | dict, body: bytes):
        """(signature name, input arrays, request format) of a decoded :predict body.

        A dense body for a signature with one float input skips the Python
        objects; anything else, and every error, comes from the general
        decoder.
        """
        if isinstance(decoded, json_dense.DenseBody):
            name = decoded.signature_name or predict_util.DEFAULT_SIGNATURE
            signature = handle.servable.signatures.get(name)
            if signature is not None and len(signature.inputs) == 1:
                ((alias, spec),) = signature.inputs.items()
                tensor = json_to_tensor.dense_tensor(decoded.values, spec.dtype)
                if tensor is not None:
                    return name, {alias: tensor}, decoded.format
            decoded = json_body.loads_object(body)
        return HttpRestApiHandler._predict_inputs(handle, decoded, body)

    @staticmethod
    def _predict_inputs(handle, doc: dict, body: bytes):
        """(signature name, input arrays, request format) of a :predict body."""
        requested = json_body.signature_name(doc)
        name = requested or predict_util.DEFAULT_SIGNATURE
        signature = handle.servable.signatures.get(name)
        if signature is None:
            raise status.invalid_argument(
                f'Serving signature name: "{name}" not found in signature def'
            )
        dtypes = json_predict_request.signature_input_dtypes(signature)
        if not dtypes:
            raise status.invalid_argument(
                f"Failed to get input map for signature: {requested or 'DEFAULT'}"
            )
        inputs, fmt = json_predict_request.predict_inputs_from_json(doc, dtypes, body)
        return name, inputs, fmt

    def _classify_or_regress(self, route: Route, body: bytes) -> RestResponse:
        doc = json_body.loads_object(body)
        requested = json_body.signature_name(doc)
        request_input = json_example.input_from_json(doc)
        with self._core.servable_handle(route.model_spec()) as handle:
            if route.api == CLASSIFY:
                result, key = classifier.classify(handle, requested, request_input)
            else:
                result, key = regressor.regress(handle, requested, request_input)
            version = handle.version
        if route.api == CLASSIFY:
            answer = json_response.classification_response_json(result)
        else:
            answer = json_response.regression_response_json(result)
        return RestResponse(200, answer, version=str(version), signature_name=key)

    # -- GET -------------------------------------------------------------------

    def _status(self, route: Route) -> RestResponse:
        if not route.model_name:
            raise status.invalid_argument("Missing model name in request.")
        response = self._core.model_status(route.model_spec())
        for entry in response.model_version_status:
            # Upstream always fills status (OK when nothing went wrong).
            entry.status.SetInParent()
        document = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
        return RestResponse(200, _pretty(document))

    def _metadata(self, route: Route) -> RestResponse:
        if not route.model_name:
            raise status.invalid_argument("Missing model name in request.")
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=route.model_spec(),
            metadata_field=[get_model_metadata_impl.SIGNATURE_DEF],
        )
        response = get_model_metadata_impl.run_get_model_metadata(self._core, request)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata[get_model_metadata_impl.SIGNATURE_DEF].Unpack(signature_defs):
            raise status.internal("Failed to unpack 'Any' object to 'SignatureDefMap'.")
        options = dict(preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        document = {
            "model_spec": json_format.MessageToDict(response.model_spec, **options),
            "metadata": {
                get_model_metadata_impl.SIGNATURE_DEF: json_format.MessageToDict(
                    signature_defs, **options
                )
            },
        }
        return RestResponse(200, _pretty(document), version=str(response.model_spec.version.value))

    # -- Health (beyond upstream) ----------------------------------------------

    def live(self) -> RestResponse:
        """The process answers HTTP: nothing more is claimed."""
        return RestResponse(200, b'{"status":"live"}')

    def ready(self) -> RestResponse:
        """Ready when every configured model has an AVAILABLE version; else 503 and why."""
        reasons = self._core.readiness()
        if not reasons:
            return RestResponse(200, b'{"status":"ready"}')
        body = orjson.dumps({"error": "; ".join(reasons), "reasons": reasons})
        return RestResponse(503, body, "UNAVAILABLE")


__all__ = [
    "HEALTH_LIVE_PATH",
    "HEALTH_READY_PATH",
    "HttpRestApiHandler",
    "PATH_REGEX",
    "PREDICT",
    "RestResponse",
    "Route",
    "error_response",
    "parse_route",
]
