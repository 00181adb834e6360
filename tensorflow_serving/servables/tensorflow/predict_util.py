"""Predict on one loaded version: check a request against a signature, submit the
run, and shape the answer (upstream: predict_util.h).

Transport-free: the gRPC service and the REST handler both call
`submit_predict` with numpy inputs; `check_input_tensors`, `decode_inputs`
and `predict_response` are the PredictRequest / PredictResponse ends the
gRPC side and warmup use. A PredictRequest's tensors are checked against the
signature and the decode budget (sizes only) before any is decoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from tensorflow.core.framework import tensor_pb2

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow import method_name_check
from tensorflow_serving.servables.tensorflow.saved_model_bundle import (
    Signature,
    dtype_mismatch,
    feed_dtype_check,
)
from tensorflow_serving.util import status, tensor_codec
from tensorflow_serving.util.completion import Completion
from tensorflow_serving.util.decode_budget import DecodeBudget
from tensorflow_serving.util.executors import Runner

DEFAULT_SIGNATURE = "serving_default"


def _set_text(items: Iterable[str]) -> str:
    return ",".join(sorted(items))


def validate_inputs(signature: Signature, inputs: dict[str, np.ndarray], model_name: str) -> None:
    """Same aliases as the signature, right dtypes: upstream's wording on failure."""
    check_aliases(signature, inputs, model_name)
    feed_dtype_check(signature, inputs)


def check_aliases(signature: Signature, inputs: Iterable[str], model_name: str) -> None:
    """The request names exactly the signature's inputs: upstream's wording on failure."""
    sent = set(inputs)
    wanted = set(signature.inputs)
    if sent != wanted:
        raise status.invalid_argument(
            f"Request inputs do not match required inputs for model `{model_name}`. "
            f"Send extra: {{{_set_text(sent - wanted)}}}. "
            f"Missing but required: {{{_set_text(wanted - sent)}}}."
        )


def check_input_tensors(
    signature: Signature,
    tensors: Mapping[str, tensor_pb2.TensorProto],
    model_name: str,
    max_decoded_bytes: int,
) -> dict[str, tuple[int, ...]]:
    """Checks a PredictRequest's tensors before any is decoded, from their sizes alone.

    In upstream's order: the aliases against the signature, each tensor's
    parts against each other (tensor_codec.check_tensor), its dtype against
    the signature's (upstream's words for each); then their decoded size
    against `max_decoded_bytes` (0: no limit). Returns each alias's checked
    shape, for decode_inputs.
    """
    check_aliases(signature, tensors, model_name)
    budget = DecodeBudget(max_decoded_bytes)
    shapes = {}
    for index, alias in enumerate(signature.input_order):
        proto = tensors[alias]
        shape = shapes[alias] = tensor_codec.check_tensor(proto)
        want = signature.inputs[alias].dtype
        if proto.dtype != want:
            raise dtype_mismatch(index, want, proto.dtype)
        budget.charge_tensor(alias, want, shape)
    return shapes


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


def predict_signature(servable, signature_name: str) -> Signature:
    """The signature a Predict runs (default: serving_default), with upstream's checks.

    FAILED_PRECONDITION when the model has no such signature; with
    --enable_signature_method_name_check, INTERNAL when its method_name is
    none of predict, classify or regress.
    """
    signature = servable.signature(signature_name or DEFAULT_SIGNATURE)
    method_name_check.check_predict(signature)
    return signature


def submit_predict(
    handle: ServableHandle,
    signature_name: str,
    inputs: dict[str, np.ndarray],
    output_filter: Iterable[str],
    runner: Runner,
) -> tuple[Signature, Completion]:
    """Checks the inputs against the signature and submits the run to the servable.

    Returns the signature that runs and the Servable's future of its
    outputs. Bad inputs raise here (upstream's words), before anything runs;
    the future carries the model's own errors.
    """
    signature = predict_signature(handle.servable, signature_name)
    validate_inputs(signature, inputs, handle.name)
    return signature, submit_checked(handle, signature, inputs, output_filter, runner)


def submit_checked(
    handle: ServableHandle,
    signature: Signature,
    inputs: dict[str, np.ndarray],
    output_filter: Iterable[str],
    runner: Runner,
) -> Completion:
    """Submits inputs already checked against `signature` (check_input_tensors, then
    decode_inputs with its shapes); the Servable's future of the outputs."""
    return handle.servable.submit(
        signature, inputs, output_aliases(signature, output_filter), runner
    )


def fill_model_spec(model_spec, name: str, version: int, signature_name: str | None) -> None:
    """The response's model_spec names the version that answered, as upstream does."""
    model_spec.name = name
    model_spec.version.value = version
    if signature_name is not None:
        model_spec.signature_name = signature_name


def decode_inputs(
    request: predict_pb2.PredictRequest, shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, np.ndarray]:
    """The request's input tensors as numpy arrays (check_input_tensors first for a client's).

    `shapes`: what check_input_tensors returned for this request; each tensor
    is then not checked again.
    """
    return {
        alias: tensor_codec.to_ndarray(proto, None if shapes is None else shapes[alias])
        for alias, proto in request.inputs.items()
    }


def predict_response(
    handle: ServableHandle, signature: Signature, outputs, as_tensor_content: bool = False
) -> predict_pb2.PredictResponse:
    """Outputs in typed value fields (numbers in tensor_content with `as_tensor_content`),
    and the model_spec of the version that answered."""
    response = predict_pb2.PredictResponse()
    fill_model_spec(response.model_spec, handle.name, handle.version, signature.key)
    for alias, array in outputs.items():
        tensor_codec.to_tensor_proto(array, response.outputs[alias], as_tensor_content)
    return response
