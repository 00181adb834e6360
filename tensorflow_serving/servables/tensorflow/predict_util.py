"""Predict: check a request against a signature, run it, and shape the answer.

The numpy-level `predict` is shared by both transports; `run_predict` is the
PredictRequest -> PredictResponse form the gRPC service calls, and
`run_predict_then` the same without waiting for a batch (InlineGrpcServer).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterable

import numpy as np

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    Signature,
    feed_dtype_check,
)
from tensorflow_serving.util import status, tensor_codec

DEFAULT_SIGNATURE = "serving_default"


def _set_text(items: Iterable[str]) -> str:
    return ",".join(sorted(items))


def validate_inputs(signature: Signature, inputs: dict[str, np.ndarray], model_name: str) -> None:
    """Same aliases as the signature, right dtypes: upstream's wording on failure."""
    sent = set(inputs)
    wanted = set(signature.inputs)
    if sent != wanted:
        raise status.invalid_argument(
            f"Request inputs do not match required inputs for model `{model_name}`. "
            f"Send extra: {{{_set_text(sent - wanted)}}}. "
            f"Missing but required: {{{_set_text(wanted - sent)}}}."
        )
    feed_dtype_check(signature, inputs)


def output_aliases(signature: Signature, output_filter: Iterable[str]) -> tuple[str, ...]:
    """The outputs to fetch: the filter, checked, or every output in sorted order."""
    requested = list(output_filter) if output_filter else ()
    if not requested:
        return signature.output_order
    seen: set[str] = set()
    for alias in requested:
        if alias not in signature.outputs:
            raise status.invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{_set_text(signature.outputs)}}}."
            )
        if alias in seen:
            raise status.invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return tuple(requested)


def _checked(
    handle, signature_name: str, inputs: dict[str, np.ndarray], output_filter: Iterable[str]
) -> tuple[Signature, tuple[str, ...]]:
    """The signature to run and the outputs to fetch, once the inputs passed the checks."""
    signature = handle.servable.signature(signature_name or DEFAULT_SIGNATURE)
    validate_inputs(signature, inputs, handle.name)
    return signature, output_aliases(signature, output_filter)


def predict(
    handle,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: Iterable[str] = (),
) -> tuple[Signature, dict[str, np.ndarray]]:
    """Runs a signature of the servable behind `handle` on numpy inputs."""
    signature, fetch = _checked(handle, signature_name, inputs, output_filter)
    return signature, handle.servable.run(signature, inputs, fetch)


def submit_predict(
    handle,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    executor: concurrent.futures.Executor,
    output_filter: Iterable[str] = (),
) -> tuple[Signature, asyncio.Future]:
    """`predict` from an event loop that must not block: the outputs come as a future of it.

    The request joins the servable's batching queue directly (submit_async),
    so no thread waits for the batch; inputs that cannot be batched run on
    `executor`. Bad inputs raise here, before anything is queued.
    """
    signature, fetch = _checked(handle, signature_name, inputs, output_filter)
    servable = handle.servable
    pending = servable.submit_async(signature, inputs, fetch)
    if pending is None:
        pending = asyncio.get_running_loop().run_in_executor(
            executor, servable.run, signature, inputs, fetch
        )
    return signature, pending


def fill_model_spec(model_spec, name: str, version: int, signature_name: str | None) -> None:
    """The response's model_spec names the version that answered, as upstream does."""
    model_spec.name = name
    model_spec.version.value = version
    if signature_name is not None:
        model_spec.signature_name = signature_name


def _decoded_inputs(request: predict_pb2.PredictRequest) -> dict[str, np.ndarray]:
    return {alias: tensor_codec.to_ndarray(proto) for alias, proto in request.inputs.items()}


def _predict_response(handle, signature: Signature, outputs) -> predict_pb2.PredictResponse:
    """Outputs in typed value fields, and the model_spec of the version that answered."""
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, handle.name, handle.version, signature.key)
    for alias, array in outputs.items():
        tensor_codec.to_tensor_proto(array, response.outputs[alias])
    return response


def run_predict(core, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """PredictRequest in, PredictResponse out, with outputs in typed value fields."""
    inputs = _decoded_inputs(request)
    with core.servable_handle(request.model_spec) as handle:
        signature, outputs = predict(
            handle, request.model_spec.signature_name, inputs, request.output_filter
        )
    return _predict_response(handle, signature, outputs)


def run_predict_then(
    core,
    request: predict_pb2.PredictRequest,
    done: Callable[[predict_pb2.PredictResponse | None, BaseException | None], None],
) -> None:
    """run_predict without waiting for a batching servable: `done(response, error)` follows.

    Bad requests raise here, before anything is queued. The version stays held
    until its answer is built. A servable that does not batch (or inputs it
    cannot batch) runs at once, and `done` is called before this returns.
    """
    inputs = _decoded_inputs(request)
    handle = core.servable_handle(request.model_spec).__enter__()
    try:
        signature, fetch = _checked(
            handle, request.model_spec.signature_name, inputs, request.output_filter
        )
    except BaseException:
        handle.__exit__(None, None, None)
        raise

    def finished(outputs, error: BaseException | None) -> None:
        response = None
        try:
            if error is None:
                response = _predict_response(handle, signature, outputs)
        except Exception as raised:
            error = raised
        finally:
            handle.__exit__(None, None, None)
        done(response, error)

    servable = handle.servable
    submit_then = getattr(servable, "submit_then", None)
    try:
        queued = submit_then is not None and submit_then(signature, inputs, fetch, finished)
    except BaseException:
        handle.__exit__(None, None, None)
        raise
    if not queued:
        try:
            outputs = servable.run(signature, inputs, fetch)
        except Exception as error:
            finished(None, error)
        else:
            finished(outputs, None)
