"""Request logging: a model's sampled requests and answers, as PredictionLog records.

Upstream's core/request_logger.h and server_request_logger.h name the
parts: a RequestLogger per model (`logging_config` in its ModelConfig:
`sampling_config.sampling_rate`, `log_collector_config.filename_prefix`),
and a ServerRequestLogger that maps model names to them and is updated with
the config. Upstream's open-source binary refuses `logging_config`; ours
writes the log with a LogCollector (TFRecord files of PredictionLog, the
format of `assets.extra/tf_serving_warmup_requests`, so a log file can warm
a new version with real traffic).

On the request path a logger costs a dict lookup and a random draw, and for
a sampled request one append to a bounded queue: the protos are built on
the collector's thread from the arrays the request already had. Predict is
logged as `predict_log`; Classify, Regress and MultiInference, as upstream
logs them, as `classify_log`, `regress_log` and `multi_inference_log` with
the request and response protos as they were sent.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.core.log_collector import LogCollector
from tensorflow_serving.util import status, tensor_codec

# Collector types we write; upstream leaves the type to a registered factory.
COLLECTOR_TYPES = ("", "tfrecord")
# PredictionLog's fields for the request kinds logged as protos.
CLASSIFY_LOG = "classify_log"
REGRESS_LOG = "regress_log"
MULTI_INFERENCE_LOG = "multi_inference_log"


@dataclasses.dataclass(frozen=True, slots=True)
class ExamplesRecord:
    """A Classify, Regress or MultiInference request and its response, to be logged.

    `kind` is the PredictionLog field (CLASSIFY_LOG, ...). The protos are
    serialized later, on the collector's thread: neither may change after.
    """

    kind: str
    request: Any
    response: Any

    @property
    def signature_name(self) -> str:
        """The signature that answered, as the response names it (a MultiInference's first task)."""
        response = self.response
        if self.kind == MULTI_INFERENCE_LOG:
            return response.results[0].model_spec.signature_name if response.results else ""
        return response.model_spec.signature_name


def validate(model_name: str, config) -> None:
    """Rejects a LoggingConfig we cannot honour, naming the model and the value."""
    rate = config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise status.invalid_argument(
            f"Model {model_name}: logging_config.sampling_config.sampling_rate must be in "
            f"[0, 1]; got {rate}"
        )
    collector = config.log_collector_config
    if collector.type not in COLLECTOR_TYPES:
        raise status.invalid_argument(
            f"Model {model_name}: unsupported logging_config.log_collector_config.type "
            f"{collector.type!r}; supported: 'tfrecord' (or empty)"
        )
    if not collector.filename_prefix:
        raise status.invalid_argument(
            f"Model {model_name}: logging_config.log_collector_config.filename_prefix is empty"
        )


class RequestLogger:
    """Samples one model's requests and hands them to its LogCollector. Thread-safe."""

    def __init__(self, config, collector: LogCollector):
        self.config = config
        self.sampling_rate = config.sampling_config.sampling_rate
        self.collector = collector
        self._random = random.random

    def sampled(self) -> bool:
        """Whether to log the request at hand (one draw per request)."""
        return self._random() < self.sampling_rate

    def log_predict(
        self,
        model_name: str,
        version: int,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> bool:
        """Queues one Predict and its answer (never blocks; False if the queue was full)."""
        return self.collector.collect(
            (model_name, version, signature_name, inputs, outputs, time.time(), self.config)
        )

    def log(self, model_name: str, version: int, record: tuple | ExamplesRecord) -> bool:
        """Queues what a request's Work.logged gave: an ExamplesRecord, or a Predict's
        (signature_name, inputs, outputs). Never blocks; False if the queue was full."""
        if isinstance(record, ExamplesRecord):
            return self.collector.collect((model_name, version, record, time.time(), self.config))
        return self.log_predict(model_name, version, *record)


def encode_log(item: tuple) -> bytes:
    """A queued request (RequestLogger.log or log_predict) as a serialized PredictionLog."""
    if isinstance(item[2], ExamplesRecord):
        return encode_examples_log(item)
    return encode_predict_log(item)


def encode_examples_log(item: tuple) -> bytes:
    """A queued Classify, Regress or MultiInference as a serialized PredictionLog."""
    model_name, version, record, when, config = item
    log = prediction_log_pb2.PredictionLog()
    _fill_metadata(log.log_metadata, model_name, version, record.signature_name, when, config)
    entry = getattr(log, record.kind)
    entry.request.CopyFrom(record.request)
    entry.response.CopyFrom(record.response)
    return log.SerializeToString()


def encode_predict_log(item: tuple) -> bytes:
    """A queued Predict (RequestLogger.log_predict) as a serialized PredictionLog."""
    model_name, version, signature_name, inputs, outputs, when, config = item
    log = prediction_log_pb2.PredictionLog()
    _fill_metadata(log.log_metadata, model_name, version, signature_name, when, config)
    request = log.predict_log.request
    _fill_spec(request.model_spec, model_name, version, signature_name)
    for alias, array in inputs.items():
        tensor_codec.to_tensor_proto(np.asarray(array), request.inputs[alias])
    response = log.predict_log.response
    _fill_spec(response.model_spec, model_name, version, signature_name)
    for alias, array in outputs.items():
        tensor_codec.to_tensor_proto(np.asarray(array), response.outputs[alias])
    return log.SerializeToString()


def _fill_metadata(
    metadata, name: str, version: int, signature_name: str, when: float, config
) -> None:
    _fill_spec(metadata.model_spec, name, version, signature_name)
    metadata.sampling_config.CopyFrom(config.sampling_config)
    metadata.timestamp_secs = int(when)


def _fill_spec(spec, name: str, version: int, signature_name: str) -> None:
    spec.name = name
    spec.version.value = version
    spec.signature_name = signature_name


class ServerRequestLogger:
    """The request loggers of the configured models, by name; updated with each config.

    A model whose logging_config is unchanged keeps its logger and files;
    loggers of models that no longer log are flushed and closed. `logger(name)`
    is a plain dict lookup, for the request path.
    """

    def __init__(self, collector_options: dict | None = None):
        self._loggers: dict[str, RequestLogger] = {}
        self._lock = threading.Lock()
        self._collector_options = collector_options or {}

    def logger(self, model_name: str) -> RequestLogger | None:
        return self._loggers.get(model_name)

    def update(self, models: Iterable) -> None:
        """Applies the logging_config of each ModelConfig in `models` (validated before)."""
        with self._lock:
            wanted = {m.name: m.logging_config for m in models if m.HasField("logging_config")}
            current = dict(self._loggers)
            loggers = {}
            for name, config in wanted.items():
                kept = current.pop(name, None)
                if kept is not None and kept.config == config:
                    loggers[name] = kept
                    continue
                if kept is not None:
                    current[name] = kept
                collector = LogCollector(
                    config.log_collector_config.filename_prefix,
                    encode_log,
                    **self._collector_options,
                )
                loggers[name] = RequestLogger(config, collector)
            self._loggers = loggers
        for retired in current.values():
            retired.collector.close()

    def dropped(self) -> dict[str, int]:
        """Records dropped so far (full queue), by model name, for the metrics."""
        return {name: logger.collector.dropped for name, logger in self._loggers.items()}

    def flush(self) -> None:
        for logger in list(self._loggers.values()):
            logger.collector.flush()

    def close(self) -> None:
        self.update(())
