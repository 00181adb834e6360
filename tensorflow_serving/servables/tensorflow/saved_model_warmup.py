"""Model warmup: replay recorded requests before a version becomes AVAILABLE.

A SavedModel may carry `assets.extra/tf_serving_warmup_requests`, a TFRecord
file of PredictionLog protos. Running them once at load time makes the first
real requests fast (TF's lazy initialisation happens here instead).
"""

from __future__ import annotations

import logging
import os

import tensorflow as tf

from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.servables.tensorflow import (
    classifier,
    multi_inference,
    predict_util,
    regressor,
)
from tensorflow_serving.servables.tensorflow.util import FixedHandle
from tensorflow_serving.util import status, tensor_codec

_LOG = logging.getLogger(__name__)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # upstream's limit


def _replay(handle: FixedHandle, log: prediction_log_pb2.PredictionLog) -> None:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        inputs = {k: tensor_codec.to_ndarray(v) for k, v in request.inputs.items()}
        predict_util.predict(
            handle, request.model_spec.signature_name, inputs, request.output_filter
        )
    elif kind == "classify_log":
        request = log.classify_log.request
        classifier.classify(handle, request.model_spec.signature_name, request.input)
    elif kind == "regress_log":
        request = log.regress_log.request
        regressor.regress(handle, request.model_spec.signature_name, request.input)
    elif kind == "multi_inference_log":
        multi_inference.run_multi_inference(handle, log.multi_inference_log.request)
    else:
        raise status.unimplemented(f"Unsupported log_type for warmup: {kind}")


def run_saved_model_warmup(
    export_dir: str, name: str, version: int, servable: object, iterations: int = 1
) -> int:
    """Replays the warmup file (if any) `iterations` times; returns records replayed."""
    path = os.path.join(export_dir, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    handle = FixedHandle(name, version, servable)
    count = 0
    try:
        for record in tf.compat.v1.io.tf_record_iterator(path):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise status.invalid_argument(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
            log = prediction_log_pb2.PredictionLog.FromString(record)
            for _ in range(max(1, iterations)):
                _replay(handle, log)
    except tf.errors.OpError as error:
        raise status.invalid_argument(
            f"Failed to read warmup file {path}: {error.message}"
        ) from None
    _LOG.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d.",
        export_dir,
        count,
    )
    return count
