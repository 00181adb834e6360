"""The REST API's handlers (upstream: http_rest_api_handler.cc): JSON bodies in,
JSON answers out, over the same DataPlane the gRPC services use, so a request
gets the same answer and the same error words either way.

Errors are `{"error": "<message>"}` with the HTTP code upstream maps the
canonical code to (util/status.py). The handler does not know where it runs:
the app (app.py) decides which thread starts each request.
"""

from __future__ import annotations

import dataclasses
import weakref

import orjson
from google.protobuf import json_format

from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, regression_pb2
from tensorflow_serving.core import request_logger
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.model_servers.data_plane import Call, DataPlane, Work
from tensorflow_serving.model_servers.rest.routes import (
    CLASSIFY,
    METADATA,
    PREDICT,
    REGRESS,
    Route,
    parse_route,
)
from tensorflow_serving.servables.tensorflow import (
    classifier,
    get_model_metadata_impl,
    predict_util,
    regressor,
)
from tensorflow_serving.servables.tensorflow import util as servable_util
from tensorflow_serving.servables.tensorflow.servable import Servable
from tensorflow_serving.util import (
    json_body,
    json_dense,
    json_example,
    json_predict_request,
    json_response,
    json_to_tensor,
    status,
)
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.decode_budget import DecodeBudget
from tensorflow_serving.util.executors import CALLING_THREAD, Runner


@dataclasses.dataclass
class RestResponse:
    """An answer plus what the metrics label it with."""

    http_status: int
    body: bytes
    status_name: str = "OK"
    version: str = ""
    signature_name: str = ""


def error_response(error: status.ServingError) -> RestResponse:
    return RestResponse(
        error.http_status(), json_response.error_json(error.message), error.code.name
    )


def response_of(outcome: Completion) -> RestResponse:
    """A DataPlane outcome as an answer: its RestResponse, or its ServingError (blocks until done)."""
    error = outcome.exception()
    if error is None:
        return outcome.result()
    return error_response(error)


def _bad_body_first(body: bytes, error: Exception, max_decoded_bytes: int) -> Exception:
    """A body that does not parse is reported before `error`, as upstream parses first."""
    try:
        json_body.loads_object(body, max_decoded_bytes)
    except status.ServingError as bad_body:
        return bad_body
    return error


# Servable -> whether a dense body (json_dense) can serve any of its signatures.
_DENSE_SERVABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _takes_dense(servable: Servable) -> bool:
    """Whether some signature of `servable` has exactly one float input (json_dense's case).

    For a model without one, every :predict body would be parsed twice: by
    json_dense, then, declined, by the general decoder. Worked out once per
    servable. Any thread may call it (a race only repeats the work).
    """
    try:
        return _DENSE_SERVABLES[servable]
    except KeyError:
        pass
    takes = any(
        len(signature.inputs) == 1
        and json_to_tensor.takes_dense(next(iter(signature.inputs.values())).dtype)
        for signature in servable.signatures.values()
    )
    _DENSE_SERVABLES[servable] = takes
    return takes


def _pretty(document: dict) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


class PredictWork(Work):
    """A :predict body: decoded against the version's signature, answered as JSON.

    `max_decoded_bytes` bounds the parsed body (json_body.loads; 0: no limit).
    """

    def __init__(self, body: bytes, max_decoded_bytes: int = 0):
        self._body = body
        self._max_decoded_bytes = max_decoded_bytes
        self._format = None
        self._signature = None
        self._inputs = None

    def lookup_failed(self, error: Exception) -> Exception:
        return _bad_body_first(self._body, error, self._max_decoded_bytes)

    def start(self, handle: ServableHandle, runner: Runner) -> Completion:
        body, max_bytes = self._body, self._max_decoded_bytes
        decoded = _decode_body(body, _takes_dense(handle.servable), max_bytes)
        name, self._inputs, self._format = _predict_request(handle, decoded, body, max_bytes)
        self._signature, outputs = predict_util.submit_predict(
            handle, name, self._inputs, (), runner
        )
        self.signature_name = self._signature.key
        return outputs

    def logged(self, value):
        return self._signature.key, self._inputs, value

    def finish(self, handle: ServableHandle, value) -> RestResponse:
        answer = json_response.predict_response_json(value, self._format)
        return RestResponse(
            200, answer, version=str(handle.version), signature_name=self._signature.key
        )


class ExamplesWork(Work):
    """A :classify or :regress body: tf.Examples in, results as JSON; runs on `runner`.

    A sampled one is logged (logging_config) as the gRPC request and response
    it amounts to, as a Classify or Regress over gRPC is.
    """

    def __init__(self, route: Route, body: bytes, max_decoded_bytes: int = 0):
        self._route = route
        self._api = route.api
        self._body = body
        self._max_decoded_bytes = max_decoded_bytes
        self._requested = ""
        self._input = None
        self._result = None

    def check(self) -> None:
        document = json_body.loads_object(self._body, self._max_decoded_bytes)
        self._requested = json_body.signature_name(document)
        self._input = json_example.input_from_json(document)
        self.example_count = servable_util.num_input_examples(self._input)

    def start(self, handle: ServableHandle, runner: Runner) -> Completion:
        return runner.submit(self._run, handle)

    def _run(self, handle: ServableHandle) -> RestResponse:
        if self._api == CLASSIFY:
            result, key = classifier.classify(handle, self._requested, self._input)
            answer = json_response.classification_response_json(result)
        else:
            result, key = regressor.regress(handle, self._requested, self._input)
            answer = json_response.regression_response_json(result)
        self.signature_name = key
        self._result = (result, handle.name, handle.version)
        return RestResponse(200, answer, version=str(handle.version), signature_name=key)

    def logged(self, value: RestResponse) -> request_logger.ExamplesRecord:
        result, name, version = self._result
        if self._api == CLASSIFY:
            kind = request_logger.CLASSIFY_LOG
            request = classification_pb2.ClassificationRequest(input=self._input)
            response = classification_pb2.ClassificationResponse(result=result)
        else:
            kind = request_logger.REGRESS_LOG
            request = regression_pb2.RegressionRequest(input=self._input)
            response = regression_pb2.RegressionResponse(result=result)
        request.model_spec.CopyFrom(self._route.model_spec())
        request.model_spec.signature_name = self._requested
        predict_util.fill_model_spec(response.model_spec, name, version, self.signature_name)
        return request_logger.ExamplesRecord(kind, request, response)


class MetadataWork(Work):
    """GET .../metadata: the version's signature_def map as JSON; runs on `runner`."""

    def __init__(self, route: Route):
        self._request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=route.model_spec(),
            metadata_field=[get_model_metadata_impl.SIGNATURE_DEF],
        )

    def check(self) -> None:
        if not self._request.model_spec.name:
            raise status.invalid_argument("Missing model name in request.")

    def start(self, handle: ServableHandle, runner: Runner) -> Completion:
        return runner.submit(self._run, handle)

    def _run(self, handle: ServableHandle) -> RestResponse:
        response = get_model_metadata_impl.metadata_response(handle, self._request)
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
        return RestResponse(200, _pretty(document), version=str(handle.version))


def _decode_body(
    body: bytes, may_be_dense: bool, max_decoded_bytes: int
) -> json_dense.DenseBody | dict:
    """A :predict body parsed: one dense tensor of numbers if json_dense takes it.

    Otherwise (and always unless `may_be_dense`) the general decoder's
    document; its parse errors raise here, and so does a body whose parsed
    size would pass `max_decoded_bytes` (json_body checks its estimate before
    parsing; a dense body, at most json_dense.MAX_BODY_BYTES, is charged what
    it parsed to: its bytes and its array's).
    """
    dense = json_dense.decode(body) if may_be_dense else None
    if dense is None:
        return json_body.loads_object(body, max_decoded_bytes)
    if max_decoded_bytes:
        DecodeBudget(max_decoded_bytes).charge(
            f"JSON body of {len(body)} bytes", len(body) + dense.values.nbytes
        )
    return dense


def _predict_request(
    handle: ServableHandle,
    decoded: json_dense.DenseBody | dict,
    body: bytes,
    max_decoded_bytes: int,
):
    """(signature name, input arrays, request format) of a decoded :predict body.

    A dense body for a signature with one float input skips the Python
    objects; anything else, and every error, comes from the general decoder.
    """
    if isinstance(decoded, json_dense.DenseBody):
        name = decoded.signature_name or predict_util.DEFAULT_SIGNATURE
        signature = handle.servable.signatures.get(name)
        if signature is not None and len(signature.inputs) == 1:
            ((alias, spec),) = signature.inputs.items()
            tensor = json_to_tensor.dense_tensor(decoded.values, spec.dtype)
            if tensor is not None:
                return name, {alias: tensor}, decoded.format
        decoded = json_body.loads_object(body, max_decoded_bytes)
    return _predict_inputs(handle, decoded, body)


def _predict_inputs(handle: ServableHandle, doc: dict, body: bytes):
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


class HttpRestApiHandler:
    """The REST API over a DataPlane. Thread-safe; holds no per-request state."""

    def __init__(self, plane: DataPlane, control=None, max_decoded_bytes: int = 0):
        """`control` answers model status and readiness (default: the plane's ServerCore;
        a WorkerGroup answers for every worker of a supervisor); `max_decoded_bytes`
        bounds what a body may parse to (0: no limit)."""
        self._plane = plane
        self._core = control or plane.core
        self._max_decoded_bytes = max_decoded_bytes

    @property
    def plane(self) -> DataPlane:
        return self._plane

    def work_for(self, route: Route, body: bytes) -> Work:
        """The Work of a model request (predict, classify, regress, metadata)."""
        if route.api == PREDICT:
            return PredictWork(body, self._max_decoded_bytes)
        if route.api in (CLASSIFY, REGRESS):
            return ExamplesWork(route, body, self._max_decoded_bytes)
        if route.api == METADATA:
            return MetadataWork(route)
        raise ValueError(f"{route.api} does not use a model version")

    def process_request(self, http_method: str, path: str, body: bytes) -> RestResponse:
        """One whole request on the calling thread, which may block (tests, simple callers)."""
        route = parse_route(http_method, path)
        if route.error is not None:
            return error_response(route.error)
        if route.api not in (PREDICT, CLASSIFY, REGRESS, METADATA):
            return self.status(route)
        call = Call(route.api, route.model_spec())
        outcome = self._plane.serve(call, self.work_for(route, body), runner=CALLING_THREAD)
        return response_of(outcome)

    def status(self, route: Route) -> RestResponse:
        """GET /v1/models/{name}...: every version's state (no model version is used)."""
        try:
            return self._status(route)
        except status.ServingError as error:
            return error_response(error)

    def _status(self, route: Route) -> RestResponse:
        if not route.model_name:
            raise status.invalid_argument("Missing model name in request.")
        response = self._core.model_status(route.model_spec())
        for entry in response.model_version_status:
            # Upstream always fills status (OK when nothing went wrong).
            entry.status.SetInParent()
        document = json_format.MessageToDict(response, always_print_fields_with_no_presence=True)
        return RestResponse(200, _pretty(document))

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
    "HttpRestApiHandler",
    "RestResponse",
    "error_response",
    "response_of",
]
