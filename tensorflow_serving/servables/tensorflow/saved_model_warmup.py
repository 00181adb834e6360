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
from tensorflow_serving.core.servable_handle import ServableHandle
from tensorflow_serving.servables.tensorflow import (
    classifier,
    multi_inference,
    predict_util,
    regressor,
)
from tensorflow_serving.util import file_io, status
from tensorflow_serving.util.executors import CALLING_THREAD

_LOG = logging.getLogger(__name__)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_WARMUP_RECORDS = 1000  # upstream's limit


def _replay(handle: ServableHandle, log: prediction_log_pb2.PredictionLog) -> None:
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        _, outputs = predict_util.submit_predict(
            handle,
            request.model_spec.signature_name,
            predict_util.decode_inputs(request),
            request.output_filter,
            CALLING_THREAD,
        )
        outputs.result()
    elif kind == "classify_log":
        classifier.classify_response(handle, log.classify_log.request)
    elif kind == "regress_log":
        regressor.regress_response(handle, log.regress_log.request)
    elif kind == "multi_inference_log":
        request = log.multi_inference_log.request
        multi_inference.check_tasks(request)
        multi_inference.multi_inference_response(handle, request)
    else:
        raise status.unimplemented(f"Unsupported log_type for warmup: {kind}")


def run_saved_model_warmup(
    export_dir: str, name: str, version: int, servable: object, iterations: int = 1
) -> int:
    """Replays the warmup file (if any) `iterations` times; returns records replayed."""
    path = file_io.join(export_dir, WARMUP_FILE)
    if not file_io.exists(path):
        return 0
    handle = ServableHandle(name, version, servable)
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
