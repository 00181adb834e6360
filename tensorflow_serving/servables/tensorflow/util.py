"""Helpers shared by Classify, Regress and MultiInference (upstream: util.h)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from tensorflow_serving.apis import input_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow.predict_util import fill_model_spec
from tensorflow_serving.servables.tensorflow.saved_model_bundle import Signature
from tensorflow_serving.util import status
from tensorflow_serving.util.executors import CALLING_THREAD

ResponseT = TypeVar("ResponseT")


def num_input_examples(input_proto: input_pb2.Input) -> int:
    """The tf.Examples an Input carries (upstream's NumInputExamples), for the metrics."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return len(input_proto.example_list.examples)
    if kind == "example_list_with_context":
        return len(input_proto.example_list_with_context.examples)
    return 0


def serialized_examples(input_proto: input_pb2.Input) -> np.ndarray:
    """The Input's tf.Examples as a [N] string tensor, context merged in.

    Serialized protobufs concatenate as a merge, so `context + example` is the
    example with the context's features added (its own win on conflicts),
    which is what upstream feeds for ExampleListWithContext.
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        records = [ex.SerializeToString() for ex in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = input_proto.example_list_with_context
        context = with_context.context.SerializeToString()
        records = [context + ex.SerializeToString() for ex in with_context.examples]
    else:
        records = []
    if not records:
        raise status.invalid_argument("Input is empty.")
    tensor = np.empty(len(records), dtype=object)
    tensor[:] = records
    return tensor


def inference_signature(servable, signature_name: str) -> Signature:
    """A Classify/Regress signature: it exists and has exactly one (string) input."""
    name = signature_name or "serving_default"
    signature = servable.signatures.get(name)
    if signature is None:
        raise status.invalid_argument(f"No signature was found with the name: {name}")
    if len(signature.inputs) != 1:
        raise status.invalid_argument(
            f"Expected one input Tensor in signature {name}, found {len(signature.inputs)}."
        )
    return signature


def check_batch(alias: str, array: np.ndarray, batch_size: int) -> None:
    """Each output must give one row per example, as upstream checks."""
    if array.ndim == 0 or array.shape[0] != batch_size:
        raise status.invalid_argument(
            f"Expected {alias} output batch size of {batch_size}, got shape {list(array.shape)}"
        )


def run_on_examples(
    handle: ServableHandle, signature: Signature, examples: np.ndarray, outputs: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Feeds the serialized examples to the signature's only input; blocks for the outputs."""
    (alias,) = signature.inputs
    return handle.servable.submit(signature, {alias: examples}, outputs, CALLING_THREAD).result()


def examples_response(run, response: ResponseT, handle: ServableHandle, request) -> ResponseT:
    """`response` filled by `run(handle, signature_name, input)` for a Classify/Regress request.

    `run` returns (result, signature key); the response's model_spec names
    the version and signature that answered.
    """
    result, key = run(handle, request.model_spec.signature_name, request.input)
    response.result.CopyFrom(result)
    fill_model_spec(response.model_spec, handle.name, handle.version, key)
    return response
