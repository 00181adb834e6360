"""Classify: tf.Examples in, (label, score) lists out, over a classify signature.

As upstream with its default `--enable_signature_method_name_check=false`, any
signature with one string input and a `classes` and/or `scores` output
classifies, so TF2 exports (whose signatures all say "predict") work too; with
the check on, only signatures whose method_name is classify do.
"""

from __future__ import annotations

import numpy as np
from tensorflow.core.framework import types_pb2

from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow import method_name_check, util
from tensorflow_serving.util import status

CLASSES = "classes"
SCORES = "scores"


def _classify_outputs(signature) -> tuple[str, ...]:
    outputs = tuple(k for k in (CLASSES, SCORES) if k in signature.outputs)
    if not outputs:
        raise status.invalid_argument(
            f"Expected classification signature outputs to contain at least one of "
            f"'{CLASSES}' or '{SCORES}'; signature {signature.key} has "
            f"{{{','.join(sorted(signature.outputs))}}}."
        )
    if CLASSES in outputs and signature.outputs[CLASSES].dtype != types_pb2.DT_STRING:
        raise status.invalid_argument("Expected classes Tensor of DT_STRING.")
    if SCORES in outputs and signature.outputs[SCORES].dtype != types_pb2.DT_FLOAT:
        raise status.invalid_argument("Expected scores Tensor of DT_FLOAT.")
    return outputs


def _as_matrix(alias: str, array: np.ndarray, batch_size: int) -> np.ndarray:
    util.check_batch(alias, array, batch_size)
    if array.ndim == 1:
        return array.reshape(batch_size, 1)
    if array.ndim != 2:
        raise status.invalid_argument(
            f"Expected Tensor shape: [batch_size num_classes] but got {list(array.shape)}"
        )
    return array


def classify(
    handle, signature_name: str, input_proto
) -> tuple[classification_pb2.ClassificationResult, str]:
    """Runs a classify signature on the Input's examples.

    Returns the result, one Classifications per example in input order, and
    the key of the signature that ran (for the response's model_spec).
    """
    signature = util.inference_signature(handle.servable, signature_name)
    method_name_check.check_classify(signature)
    outputs = _classify_outputs(signature)
    examples = util.serialized_examples(input_proto)
    batch = len(examples)
    values = util.run_on_examples(handle, signature, examples, outputs)
    classes = _as_matrix(CLASSES, values[CLASSES], batch) if CLASSES in values else None
    scores = _as_matrix(SCORES, values[SCORES], batch) if SCORES in values else None
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise status.invalid_argument(
            f"Tensors class and score should match in dim[1]: {classes.shape[1]} vs "
            f"{scores.shape[1]}"
        )
    result = classification_pb2.ClassificationResult()
    width = (classes if classes is not None else scores).shape[1]
    for row in range(batch):
        classifications = result.classifications.add()
        for col in range(width):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = classes[row, col].decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[row, col])
    return result, signature.key


def classify_response(
    handle: ServableHandle, request: classification_pb2.ClassificationRequest
) -> classification_pb2.ClassificationResponse:
    """ClassificationRequest in, ClassificationResponse out, on `handle`'s version."""
    return util.examples_response(
        classify, classification_pb2.ClassificationResponse(), handle, request
    )
