"""Prometheus metrics: what the server counts, and the page it serves them on.

Upstream exports its monitoring counters on the REST port when
`--monitoring_config_file` holds `prometheus_config { enable: true }`, at
`path` (default /monitoring/prometheus/metrics). We keep upstream's metric
names, `/tensorflow/serving/request_count` written the Prometheus way as
`:tensorflow:serving:request_count`, so dashboards and alerts written for the
stock server (e.g. Grafana's TF Serving mixin) work unchanged, and counters
appear without the `_total` suffix, as upstream writes them. Collection goes
through prometheus_client (its metric types, locking, and process collector);
only the text page is written here, to keep those names.

What is counted, gRPC and REST alike (label `entrypoint` = GRPC / REST):
- `:tensorflow:serving:request_count` and `:tensorflow:serving:request_latency`
  (microseconds) per model, version, signature, API and status. Upstream
  labels only model/status (count) and model/API/entrypoint (latency); the
  extra labels narrow a query and do not break one.
- loads and unloads of model versions (count, latency), versions serving now;
- batch sizes and queue depth when --enable_batching is on.

And, under upstream's names, labels and buckets: `runtime_latency` (a
model run's wall time, by model, API and runtime "TF1"),
`request_example_counts` and `request_example_count_total` (tf.Examples of
Classify/Regress/MultiInference), `model_warmup_latency` (by version path
and status), the batching session's `batching:input_batch_size`,
`batching:processed_batch_size`, `batching:padding_size` (op_name
"batching_session", per model) and `batching_session:queuing_latency`
(thread_pool_name "batching_session", plus model_name), and TensorFlow's
SavedModel loader metrics `:tensorflow:cc:saved_model:load_attempt_count`,
`load_latency` and `load_latency_by_stage` (restore_graph, init_graph).
Upstream's percentile samplers for the batching sizes are written as
histograms with the buckets of their `_v2` histograms.

Label values are bounded: a request for a model that is not configured is
counted under model_name="" (a client must not be able to grow the page with
made-up names); version and signature are the ones that answered.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tensorflow_serving.core.servable_state import ManagerState, ServableState
from tensorflow_serving.util import config_protos, status

_LOG = logging.getLogger(__name__)

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GRPC = "GRPC"
REST = "REST"
OK = "OK"

# Upstream's request-latency buckets: 10 us * 1.8**i for i < 33 (10 us .. ~2e9 us).
LATENCY_BUCKETS_USEC = tuple(float(f"{10.0 * 1.8**i:.6g}") for i in range(33))
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(13))
# The histogram of batch sizes run; its _sum/_count over a window is the mean batch.
BATCH_SIZE_METRIC = ":tensorflow:serving:batching_session:batch_size"
_LATENCY_BOUNDS = (*(floatToGoString(bound) for bound in LATENCY_BUCKETS_USEC), "+Inf")

# Upstream's runtime label for a TensorFlow Session (TFRT would be "TFRT").
RUNTIME_TF1 = "TF1"
# APIs that run a model, by our API labels, as upstream's runtime_latency names them.
_RUNTIME_APIS = {
    "Predict": "Predict",
    "Classify": "Classify",
    "Regress": "Regress",
    "MultiInference": "MultiInference",
    "predict": "Predict",
    "classify": "Classify",
    "regress": "Regress",
}
# Upstream's buckets: examples per request 1, 2, 4 .. 2**14; input batch sizes
# (2/3) * 2**i for i < 15; padding -2/3 then (2/3) * 2**i for i < 16;
# queuing latency 100 us * 1.2**i for i < 52 (~1 s).
EXAMPLE_COUNT_BUCKETS = tuple(float(2**i) for i in range(15))
INPUT_BATCH_BUCKETS = tuple(2.0 / 3.0 * 2**i for i in range(15))
PADDING_BUCKETS = (-2.0 / 3.0, *(2.0 / 3.0 * 2**i for i in range(16)))
QUEUING_BUCKETS_USEC = tuple(float(f"{100.0 * 1.2**i:.6g}") for i in range(52))
# The op_name label of the batching metrics: upstream's batching session has no op.
BATCHING_SESSION_OP = "batching_session"

_UPSTREAM_PREFIX = ":tensorflow:"
_REQUEST_LABELS = ("model_name", "version", "signature_name", "API", "entrypoint")


def read_monitoring_config(path: str):
    """Parses --monitoring_config_file (ASCII MonitoringConfig)."""
    config = config_protos.parse_text_file(path, config_protos.MonitoringConfig)
    page = config.prometheus_config.path
    if page and not page.startswith("/"):
        raise status.invalid_argument(
            f"Invalid monitoring config '{path}': prometheus_config.path must start with '/', "
            f"got {page!r}"
        )
    return config


def prometheus_path(config) -> str | None:
    """The page to serve metrics on, or None when Prometheus export is off."""
    if config is None or not config.prometheus_config.enable:
        return None
    return config.prometheus_config.path or DEFAULT_PROMETHEUS_PATH


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class _LiveGauges(Collector):
    """Gauges read at scrape time: versions serving now, batch queue depth."""

    def __init__(self, metrics: ServingMetrics):
        self._metrics = metrics

    def collect(self):
        loaded = GaugeMetricFamily(
            ":tensorflow:serving:loaded_versions",
            "Number of versions of each model that are AVAILABLE (serving) now.",
            labels=["model_name"],
        )
        available = self._metrics.available_models
        if available is not None:
            for name, versions in sorted(available().items()):
                loaded.add_metric([name], len(versions))
        yield loaded
        request_logs = self._metrics.request_logs
        if request_logs is not None:
            dropped = CounterMetricFamily(
                ":tensorflow:serving:request_log_dropped",
                "Request log records dropped because the log collector's queue was full "
                "(not upstream).",
                labels=["model_name"],
            )
            for name, count in sorted(request_logs.dropped().items()):
                dropped.add_metric([name], count)
            yield dropped
        queued = self._metrics.queued_rows
        if queued is not None:
            yield GaugeMetricFamily(
                ":tensorflow:serving:batching_session:queue_depth",
                "Rows waiting in the batching queues now.",
                value=queued(),
            )


class _RequestStats(Collector):
    """request_count and request_latency, recorded under one lock; families built at scrape time.

    record() may be called from any thread, and costs a bisect and three
    additions under one lock. collect() turns the tallies into the families
    prometheus_client's Counter and Histogram would give (cumulative buckets,
    `le` written as prometheus_client writes it), so the page is the same.
    Why not those classes: they take three locks per request and walk the 33
    latency buckets in Python, on the event loop's time for every REST request.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: dict[tuple, int] = {}  # (labels, status) -> requests
        self._buckets: dict[tuple, list[int]] = {}  # labels -> per-bucket counts, +Inf last
        self._sums: dict[tuple, float] = {}  # labels -> microseconds in all

    def record(self, labels: tuple, status_name: str, micros: float) -> None:
        bucket = bisect.bisect_left(LATENCY_BUCKETS_USEC, micros)  # first bound >= micros
        counted = (labels, status_name)
        with self._lock:
            self._counts[counted] = self._counts.get(counted, 0) + 1
            buckets = self._buckets.get(labels)
            if buckets is None:
                buckets = self._buckets[labels] = [0] * (len(LATENCY_BUCKETS_USEC) + 1)
                self._sums[labels] = 0.0
            buckets[bucket] += 1
            self._sums[labels] += micros

    def collect(self):
        with self._lock:
            counts = dict(self._counts)
            buckets = {labels: list(tally) for labels, tally in self._buckets.items()}
            sums = dict(self._sums)
        count = CounterMetricFamily(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            labels=[*_REQUEST_LABELS, "status"],
        )
        for (labels, status_name), value in counts.items():
            count.add_metric([*labels, status_name], value)
        yield count
        latency = HistogramMetricFamily(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for serving requests, from "
            "the request arriving to the answer being ready.",
            labels=list(_REQUEST_LABELS),
        )
        for labels, tally in buckets.items():
            running, cumulative = 0, []
            for bound, value in zip(_LATENCY_BOUNDS, tally, strict=True):
                running += value
                cumulative.append((bound, running))
            latency.add_metric(list(labels), cumulative, sum_value=sums[labels])
        yield latency


class _Histograms(Collector):
    """One histogram family, recorded under one lock, built at scrape time (see _RequestStats).

    record() may be called from any thread: a bisect and two additions
    under the lock, so it is cheap enough for the request path and batch
    threads.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], bounds: tuple):
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._bounds = bounds
        self._written_bounds = (*(floatToGoString(b) for b in bounds), "+Inf")
        self._lock = threading.Lock()
        self._buckets: dict[tuple, list[int]] = {}
        self._sums: dict[tuple, float] = {}

    def record(self, labels: tuple, value: float) -> None:
        bucket = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._tally(labels)[bucket] += 1
            self._sums[labels] += value

    def record_all(self, labels: tuple, values: Sequence[float]) -> None:
        """record() of each of `values` under `labels`, taking the lock once (a batch's tasks)."""
        found = [bisect.bisect_left(self._bounds, value) for value in values]
        with self._lock:
            tally = self._tally(labels)
            for bucket in found:
                tally[bucket] += 1
            self._sums[labels] += sum(values)

    def _tally(self, labels: tuple) -> list[int]:
        """The per-bucket counts of `labels` (+Inf last), created at zero; lock held."""
        tally = self._buckets.get(labels)
        if tally is None:
            tally = self._buckets[labels] = [0] * (len(self._bounds) + 1)
            self._sums[labels] = 0.0
        return tally

    def collect(self):
        with self._lock:
            buckets = {labels: list(tally) for labels, tally in self._buckets.items()}
            sums = dict(self._sums)
        family = HistogramMetricFamily(self._name, self._documentation, labels=list(self._labels))
        for labels, tally in buckets.items():
            running, cumulative = 0, []
            for bound, value in zip(self._written_bounds, tally, strict=True):
                running += value
                cumulative.append((bound, running))
            family.add_metric(list(labels), cumulative, sum_value=sums[labels])
            if self._bounds[0] < 0:  # prometheus_client leaves these out; upstream writes them
                named = dict(zip(self._labels, labels, strict=True))
                family.add_sample(f"{self._name}_count", named, running)
                family.add_sample(f"{self._name}_sum", named, sums[labels])
        yield family


class ServingMetrics:
    """Every metric the server records, in one registry, and the page of them."""

    def __init__(self, registry: CollectorRegistry | None = None, process: bool = True):
        self.registry = registry or CollectorRegistry()
        self._requests = _RequestStats()
        self.registry.register(self._requests)
        self.load_count = Counter(
            ":tensorflow:serving:load_attempt_count",
            "Model version loads that finished, by outcome (OK or the error code).",
            ["model_name", "status"],
            registry=self.registry,
        )
        self.load_latency = Histogram(
            ":tensorflow:serving:load_latency",
            "Wall time (in microseconds) from a version starting to load to it serving "
            "or failing for good (retries included).",
            ["model_name"],
            buckets=LATENCY_BUCKETS_USEC,
            registry=self.registry,
        )
        self.unload_count = Counter(
            ":tensorflow:serving:unload_count",
            "Model versions unloaded.",
            ["model_name"],
            registry=self.registry,
        )
        self.unload_latency = Histogram(
            ":tensorflow:serving:unload_latency",
            "Wall time (in microseconds) to unload a version, draining its in-flight requests.",
            ["model_name"],
            buckets=LATENCY_BUCKETS_USEC,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            BATCH_SIZE_METRIC,
            "Sizes of the batches run (after padding to an allowed batch size).",
            buckets=BATCH_SIZE_BUCKETS,
            registry=self.registry,
        )
        self._add_upstream_families()
        self.available_models: Callable[[], dict] | None = None
        self.queued_rows: Callable[[], int] | None = None
        self.request_logs = None  # the core's ServerRequestLogger (attach_core)
        self._known_models: Callable[[], Iterable[str]] | None = None
        # The other workers' snapshots, with --num_server_processes (attach_group).
        self._others: Callable[[], list[bytes]] | None = None
        self._known_cache: tuple[object, frozenset[str]] = (None, frozenset())
        self.registry.register(_LiveGauges(self))
        if process:
            ProcessCollector(registry=self.registry)
        self._transitions: dict[tuple[str, int], tuple[ManagerState, float]] = {}
        self._lock = threading.Lock()

    def _add_upstream_families(self) -> None:
        """The families upstream's servables, batching and SavedModel loader export."""

        def histograms(name, documentation, labels, bounds) -> _Histograms:
            family = _Histograms(name, documentation, labels, bounds)
            self.registry.register(family)
            return family

        self._runtime = histograms(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ("model_name", "API", "runtime"),
            LATENCY_BUCKETS_USEC,
        )
        self._example_counts = histograms(
            ":tensorflow:serving:request_example_counts",
            "The number of tensorflow.Examples per request.",
            ("model",),
            EXAMPLE_COUNT_BUCKETS,
        )
        self.example_count_total = Counter(
            ":tensorflow:serving:request_example_count_total",
            "The total number of tensorflow.Examples.",
            ["model"],
            registry=self.registry,
        )
        self._warmup_latency = histograms(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.",
            ("model_path", "status"),
            LATENCY_BUCKETS_USEC,
        )
        batch_labels = ("model_name", "op_name")
        self._input_batch = histograms(
            ":tensorflow:serving:batching:input_batch_size",
            "Tracks the batch size distribution on the inputs by model_name (if available).",
            batch_labels,
            INPUT_BATCH_BUCKETS,
        )
        self._processed_batch = histograms(
            ":tensorflow:serving:batching:processed_batch_size",
            "Tracks the batch size distribution on processing by model_name (if available).",
            batch_labels,
            INPUT_BATCH_BUCKETS,
        )
        self._padding = histograms(
            ":tensorflow:serving:batching:padding_size",
            "Tracks the padding size distribution on batches by model_name (if available).",
            ("model_name", "execution_batch_size", "op_name"),
            PADDING_BUCKETS,
        )
        self._queuing = histograms(
            ":tensorflow:serving:batching_session:queuing_latency",
            "Distribution of wall time spent (in microseconds) in queuing",
            ("thread_pool_name", "model_name"),
            QUEUING_BUCKETS_USEC,
        )
        self.saved_model_loads = Counter(
            ":tensorflow:cc:saved_model:load_attempt_count",
            "The number of times a SavedModel was successfully loaded.",
            ["model_path", "status"],
            registry=self.registry,
        )
        self.saved_model_load_latency = Counter(
            ":tensorflow:cc:saved_model:load_latency",
            "Latency in microseconds for SavedModels that were successfully loaded.",
            ["model_path"],
            registry=self.registry,
        )
        self._load_stages = histograms(
            ":tensorflow:cc:saved_model:load_latency_by_stage",
            "Distribution of wall time spent (in microseconds) in each stage (restore graph "
            "from disk, run init graph op, etc) when loading the model",
            ("model_path", "stage"),
            LATENCY_BUCKETS_USEC,
        )

    # -- Wiring -------------------------------------------------------------

    def attach_core(self, core) -> None:
        """Lets the page show loaded versions and bound model-name labels to the config."""
        self.available_models = core.manager.available_models
        self._known_models = core.model_names
        self.request_logs = getattr(core, "request_logger", None)

    def attach_group(self, others: Callable[[], list[bytes]]) -> None:
        """Makes the page show a supervisor's whole group of workers (see WorkerGroup).

        `others()` returns the other workers' `snapshot()`s (those that
        answer); the page then sums every counter, histogram and gauge over
        the workers, except the gauges that hold only if every worker holds
        them (_GROUP_MIN_GAUGES), which take the smallest.
        """
        self._others = others

    def snapshot(self) -> bytes:
        """This process's samples, for another worker's page (JSON; see attach_group)."""
        return json.dumps(
            [
                [
                    family.name,
                    family.type,
                    family.documentation,
                    [
                        [s.name, s.labels, s.value]
                        for s in family.samples
                        if not s.name.endswith("_created")
                    ],
                ]
                for family in self.registry.collect()
            ]
        ).encode()

    def _families(self) -> list[Metric]:
        families = list(self.registry.collect())
        if self._others is None:
            return families
        return _merged_families(families, [_families_of(raw) for raw in self._others()])

    def attach_batching(self, queued_rows: Callable[[], int] | None) -> None:
        """Lets the page show the rows waiting in the batching queues (read at scrape time)."""
        self.queued_rows = queued_rows

    # -- Requests -----------------------------------------------------------

    def _model_label(self, name: str) -> str:
        if self._known_models is None:
            return name
        names = self._known_models()
        key, known = self._known_cache
        if key is not names:  # ServerCore hands out one tuple per config
            known = frozenset(names)
            self._known_cache = (names, known)
        return name if name in known else ""

    def record_request(
        self,
        model_name: str,
        api: str,
        entrypoint: str,
        status_name: str,
        seconds: float,
        version: str = "",
        signature_name: str = "",
    ) -> None:
        """One finished request: count it and its latency."""
        labels = (self._model_label(model_name), version, signature_name, api, entrypoint)
        self._requests.record(labels, status_name, seconds * 1e6)

    def record_grpc(
        self, api: str, request, response, code: grpc.StatusCode, seconds: float
    ) -> None:
        """A gRPC call as the decorator saw it; version and signature from the answer."""
        spec = getattr(request, "model_spec", None)
        name = spec.name if spec is not None else ""
        version = signature = ""
        answered = getattr(response, "model_spec", None) if response is not None else None
        if answered is not None:
            if answered.HasField("version"):
                version = str(answered.version.value)
            signature = answered.signature_name
        self.record_request(
            name,
            api,
            GRPC,
            OK if code == grpc.StatusCode.OK else code.name,
            seconds,
            version,
            signature,
        )

    def record_runtime(self, model_name: str, api: str, seconds: float) -> None:
        """A model run's wall time (queueing for a batch included, as upstream's Session::Run).

        `api` is our API label; calls that run no model (metadata) are not recorded.
        """
        upstream_api = _RUNTIME_APIS.get(api)
        if upstream_api is not None:
            labels = (self._model_label(model_name), upstream_api, RUNTIME_TF1)
            self._runtime.record(labels, seconds * 1e6)

    def record_examples(self, model_name: str, count: int) -> None:
        """tf.Examples in one Classify, Regress or MultiInference request."""
        model = self._model_label(model_name)
        self._example_counts.record((model,), count)
        self.example_count_total.labels(model).inc(count)

    def record_warmup(self, model_path: str, status_text: str, seconds: float) -> None:
        """One version's warmup (only when it has a warmup file, as upstream)."""
        self._warmup_latency.record((model_path, status_text), seconds * 1e6)

    def record_saved_model_load(
        self, model_path: str, ok: bool, seconds: float, stages: dict[str, float]
    ) -> None:
        """One SavedModel load: its outcome, wall time, and the time of each stage done."""
        self.saved_model_loads.labels(model_path, "success" if ok else "fail").inc()
        self.saved_model_load_latency.labels(model_path).inc(seconds * 1e6)
        for stage, stage_seconds in stages.items():
            self._load_stages.record((model_path, stage), stage_seconds * 1e6)

    # -- Model versions (a ServableStateMonitor listener) -----------------------

    def on_servable_state(self, state: ServableState) -> None:
        """Turns state changes into load/unload counts and latencies."""
        key = (state.id.name, state.id.version)
        now = time.monotonic()
        with self._lock:
            previous = self._transitions.get(key)
            if state.state in (ManagerState.LOADING, ManagerState.UNLOADING):
                if previous is None or previous[0] != state.state:
                    self._transitions[key] = (state.state, now)
                return
            self._transitions.pop(key, None)
        if previous is None:
            return
        started_as, started_at = previous
        elapsed_usec = (now - started_at) * 1e6
        name = state.id.name
        if started_as == ManagerState.LOADING:
            if state.state == ManagerState.AVAILABLE:
                outcome = OK
            else:
                outcome = state.error.code.name if state.error is not None else "CANCELLED"
            self.load_count.labels(name, outcome).inc()
            self.load_latency.labels(name).observe(elapsed_usec)
        elif started_as == ManagerState.UNLOADING and state.state == ManagerState.END:
            self.unload_count.labels(name).inc()
            self.unload_latency.labels(name).observe(elapsed_usec)

    # -- Batching -------------------------------------------------------------

    def observe_batch(
        self,
        batch_size: int,
        model_name: str = "",
        input_sizes: tuple[int, ...] = (),
        queued_seconds: tuple[float, ...] = (),
    ) -> None:
        """One batch about to run, of `batch_size` rows after padding (any thread).

        BatchingServable's on_batch hook: `input_sizes` are the rows of each
        request in it, `queued_seconds` how long each waited. The rows still
        queued are read at scrape time instead (attach_batching).
        """
        self.batch_size.observe(batch_size)
        if not input_sizes:
            return
        model = self._model_label(model_name)
        labels = (model, BATCHING_SESSION_OP)
        self._input_batch.record_all(labels, input_sizes)
        self._processed_batch.record(labels, batch_size)
        self._padding.record(
            (model, str(batch_size), BATCHING_SESSION_OP), batch_size - sum(input_sizes)
        )
        self._queuing.record_all(
            (BATCHING_SESSION_OP, model), [max(0.0, seconds) * 1e6 for seconds in queued_seconds]
        )

    # -- The page ---------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text page (format 0.0.4).

        Our own metrics are written with upstream's names: counters without
        `_total`, no `_created` series. Others (process_*) keep
        prometheus_client's standard names.
        """
        lines: list[str] = []
        for family in self._families():
            upstream = family.name.startswith(_UPSTREAM_PREFIX)
            kind = family.type
            name = family.name
            if kind == "counter" and not upstream:
                name = f"{family.name}_total"
            if kind == "unknown":
                kind = "untyped"
            lines.append(f"# HELP {name} {_escape_help(family.documentation)}")
            lines.append(f"# TYPE {name} {kind}")
            for sample in family.samples:
                sample_name = sample.name
                if sample_name.endswith("_created"):
                    continue
                if upstream and kind == "counter" and sample_name.endswith("_total"):
                    sample_name = sample_name[: -len("_total")]
                if sample.labels:
                    labels = ",".join(
                        f'{key}="{_escape_label(str(value))}"'
                        for key, value in sample.labels.items()
                    )
                    lines.append(f"{sample_name}{{{labels}}} {floatToGoString(sample.value)}")
                else:
                    lines.append(f"{sample_name} {floatToGoString(sample.value)}")
        lines.append("")
        return "\n".join(lines).encode("utf-8")


# Gauges of a group of workers that hold only as far as every worker holds them.
_GROUP_MIN_GAUGES = frozenset({":tensorflow:serving:loaded_versions", "process_start_time_seconds"})


def _families_of(raw: bytes) -> list[Metric]:
    families = []
    for name, kind, documentation, samples in json.loads(raw):
        family = Metric(name, documentation, kind)
        for sample_name, labels, value in samples:
            family.add_sample(sample_name, labels, value)
        families.append(family)
    return families


def _merged_families(own: list[Metric], others: list[list[Metric]]) -> list[Metric]:
    """Each family's samples combined over the workers (see ServingMetrics.attach_group)."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    seen: dict[tuple, int] = {}  # (family, sample key) -> workers that reported it
    workers = 1 + len(others)
    for families in [own, *others]:
        for family in families:
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            pick_min = family.type == "gauge" and family.name in _GROUP_MIN_GAUGES
            table = values[family.name]
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                seen[(family.name, key)] = seen.get((family.name, key), 0) + 1
                if key not in table:
                    table[key] = sample.value
                elif pick_min:
                    table[key] = min(table[key], sample.value)
                else:
                    table[key] += sample.value
    for name, family in merged.items():
        min_gauge = family.type == "gauge" and name in _GROUP_MIN_GAUGES
        for key, value in values[name].items():
            if min_gauge and seen[(name, key)] < workers:
                value = 0.0  # a worker without the sample does not hold it
            family.add_sample(key[0], dict(key[1]), value)
    return list(merged.values())


_DEFAULT: ServingMetrics | None = None
_DEFAULT_LOCK = threading.Lock()


def default() -> ServingMetrics:
    """The process's metrics: gRPC and REST record into the same instance."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = ServingMetrics()
    return _DEFAULT


__all__ = [
    "BATCH_SIZE_METRIC",
    "CONTENT_TYPE",
    "DEFAULT_PROMETHEUS_PATH",
    "GRPC",
    "REST",
    "ServingMetrics",
    "default",
    "prometheus_path",
    "read_monitoring_config",
]
