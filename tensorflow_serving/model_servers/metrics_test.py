"""metrics: the Prometheus page a scraper reads, and what moves its numbers."""

import sys

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.core.servable_state import ManagerState, ServableId, ServableState
from tensorflow_serving.model_servers import metrics
from tensorflow_serving.test_util import testing
from tensorflow_serving.util import status


def page_samples(serving_metrics: metrics.ServingMetrics) -> dict:
    """{(sample name, frozenset(labels)): value} from the rendered page."""
    text = serving_metrics.render().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def serving_metrics():
    return metrics.ServingMetrics(process=False)


REQUEST = dict(
    model_name="hp", version="1", signature_name="serving_default", API="predict", entrypoint="REST"
)


def test_requests_are_counted_with_upstream_names(serving_metrics):
    for _ in range(3):
        serving_metrics.record_request("hp", "predict", "REST", "OK", 0.002, "1", "serving_default")
    serving_metrics.record_request(
        "hp", "predict", "REST", "INVALID_ARGUMENT", 0.001, "1", "serving_default"
    )
    text = serving_metrics.render().decode()
    # Upstream's sample name: no _total suffix, no _created series.
    assert '\n:tensorflow:serving:request_count{model_name="hp"' in text
    assert "_created" not in text
    samples = page_samples(serving_metrics)
    # The parser reads counters as <name>_total.
    assert value(samples, ":tensorflow:serving:request_count_total", **REQUEST, status="OK") == 3
    assert (
        value(
            samples, ":tensorflow:serving:request_count_total", **REQUEST, status="INVALID_ARGUMENT"
        )
        == 1
    )
    assert value(samples, ":tensorflow:serving:request_latency_count", **REQUEST) == 4
    # Latency in microseconds, as upstream: 3 * 2000 + 1000.
    assert value(samples, ":tensorflow:serving:request_latency_sum", **REQUEST) == pytest.approx(
        7000
    )


def test_a_group_page_sums_the_workers_and_a_loaded_version_counts_only_if_on_every_one():
    workers = [metrics.ServingMetrics(process=False) for _ in range(3)]
    for index, worker in enumerate(workers):
        worker.available_models = lambda index=index: {"hp": [1]} if index < 2 else {"hp": []}
        for _ in range(index + 1):
            worker.record_request("hp", "predict", "REST", "OK", 0.002, "1", "serving_default")
        worker.observe_batch(4)
    page = workers[0]
    page.attach_group(lambda: [worker.snapshot() for worker in workers[1:]])
    samples = page_samples(page)
    assert value(samples, ":tensorflow:serving:request_count_total", **REQUEST, status="OK") == 6
    assert value(samples, ":tensorflow:serving:request_latency_count", **REQUEST) == 6
    assert value(samples, ":tensorflow:serving:loaded_versions", model_name="hp") == 0
    page.attach_group(lambda: [workers[1].snapshot()])  # worker 2 does not answer
    samples = page_samples(page)
    assert value(samples, ":tensorflow:serving:request_count_total", **REQUEST, status="OK") == 3
    assert value(samples, ":tensorflow:serving:loaded_versions", model_name="hp") == 1


def test_unconfigured_model_names_do_not_become_labels(serving_metrics):
    class FakeManager:
        def available_models(self):
            return {"hp": {1: object(), 2: object()}}

    class FakeCore:
        manager = FakeManager()

        def model_names(self):
            return ["hp"]

    serving_metrics.attach_core(FakeCore())
    serving_metrics.record_request("made-up-name", "predict", "REST", "NOT_FOUND", 0.001)
    samples = page_samples(serving_metrics)
    text = serving_metrics.render().decode()
    assert "made-up-name" not in text
    assert (
        value(
            samples,
            ":tensorflow:serving:request_count_total",
            model_name="",
            version="",
            signature_name="",
            API="predict",
            entrypoint="REST",
            status="NOT_FOUND",
        )
        == 1
    )
    assert value(samples, ":tensorflow:serving:loaded_versions", model_name="hp") == 2


def test_grpc_calls_take_version_and_signature_from_the_answer(serving_metrics):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "hp"
    response.model_spec.version.value = 7
    response.model_spec.signature_name = "serving_default"
    serving_metrics.record_grpc("Predict", request, response, grpc.StatusCode.OK, 0.001)
    serving_metrics.record_grpc("Predict", request, None, grpc.StatusCode.NOT_FOUND, 0.001)
    samples = page_samples(serving_metrics)
    grpc_labels = dict(model_name="hp", API="Predict", entrypoint="GRPC")
    assert (
        value(
            samples,
            ":tensorflow:serving:request_count_total",
            **grpc_labels,
            version="7",
            signature_name="serving_default",
            status="OK",
        )
        == 1
    )
    assert (
        value(
            samples,
            ":tensorflow:serving:request_count_total",
            **grpc_labels,
            version="",
            signature_name="",
            status="NOT_FOUND",
        )
        == 1
    )


def test_loads_and_unloads_are_counted_from_state_changes(serving_metrics):
    def publish(version, state, error=None):
        serving_metrics.on_servable_state(ServableState(ServableId("hp", version), state, error))

    publish(1, ManagerState.START)
    publish(1, ManagerState.LOADING)
    publish(1, ManagerState.AVAILABLE)
    publish(2, ManagerState.LOADING)
    publish(2, ManagerState.END, status.not_found("no SavedModel"))
    publish(1, ManagerState.UNLOADING)
    publish(1, ManagerState.END)
    samples = page_samples(serving_metrics)
    count = ":tensorflow:serving:load_attempt_count_total"
    assert value(samples, count, model_name="hp", status="OK") == 1
    assert value(samples, count, model_name="hp", status="NOT_FOUND") == 1
    assert value(samples, ":tensorflow:serving:load_latency_count", model_name="hp") == 2
    assert value(samples, ":tensorflow:serving:unload_count_total", model_name="hp") == 1
    assert value(samples, ":tensorflow:serving:unload_latency_count", model_name="hp") == 1


def test_batches_are_observed(serving_metrics):
    serving_metrics.attach_batching(lambda: 5)
    serving_metrics.observe_batch(8)
    serving_metrics.observe_batch(32)
    samples = page_samples(serving_metrics)
    assert value(samples, ":tensorflow:serving:batching_session:batch_size_count") == 2
    assert value(samples, ":tensorflow:serving:batching_session:batch_size_sum") == 40
    assert value(samples, ":tensorflow:serving:batching_session:queue_depth") == 5


def test_runtime_latency_has_upstreams_labels_and_skips_calls_without_a_model_run(
    serving_metrics,
):
    serving_metrics.record_runtime("hp", "predict", 0.002)
    serving_metrics.record_runtime("hp", "Classify", 0.002)
    serving_metrics.record_runtime("hp", "metadata", 0.002)
    samples = page_samples(serving_metrics)
    name = ":tensorflow:serving:runtime_latency_count"
    assert value(samples, name, model_name="hp", API="Predict", runtime="TF1") == 1
    assert value(samples, name, model_name="hp", API="Classify", runtime="TF1") == 1
    assert not [k for k in samples if k[0] == name and ("API", "metadata") in k[1]]
    assert value(
        samples,
        ":tensorflow:serving:runtime_latency_sum",
        model_name="hp",
        API="Predict",
        runtime="TF1",
    ) == pytest.approx(2000)


def test_example_counts_per_request_and_in_total(serving_metrics):
    serving_metrics.record_examples("hp", 3)
    serving_metrics.record_examples("hp", 5)
    samples = page_samples(serving_metrics)
    assert value(samples, ":tensorflow:serving:request_example_count_total", model="hp") == 8
    counts = ":tensorflow:serving:request_example_counts_bucket"
    assert value(samples, counts, model="hp", le="4.0") == 1
    assert value(samples, counts, model="hp", le="8.0") == 2
    assert value(samples, counts, model="hp", le="16384.0") == 2


def test_batching_metrics_per_model(serving_metrics):
    serving_metrics.observe_batch(8, "hp", (2, 3), (0.001, 0.0005))
    samples = page_samples(serving_metrics)
    batch = dict(model_name="hp", op_name="batching_session")
    assert value(samples, ":tensorflow:serving:batching:input_batch_size_count", **batch) == 2
    assert value(samples, ":tensorflow:serving:batching:input_batch_size_sum", **batch) == 5
    assert value(samples, ":tensorflow:serving:batching:processed_batch_size_sum", **batch) == 8
    padding = dict(model_name="hp", execution_batch_size="8", op_name="batching_session")
    assert value(samples, ":tensorflow:serving:batching:padding_size_sum", **padding) == 3
    queuing = dict(thread_pool_name="batching_session", model_name="hp")
    assert value(
        samples, ":tensorflow:serving:batching_session:queuing_latency_sum", **queuing
    ) == pytest.approx(1500)


def test_warmup_and_saved_model_loads_under_upstream_names(serving_metrics):
    serving_metrics.record_warmup("/m/1", "OK", 0.01)
    stages = {"restore_graph": 0.2, "init_graph": 0.1}
    serving_metrics.record_saved_model_load("/m/1", True, 0.3, stages)
    serving_metrics.record_saved_model_load("/m/2", False, 0.1, {})
    samples = page_samples(serving_metrics)
    assert (
        value(
            samples,
            ":tensorflow:serving:model_warmup_latency_count",
            model_path="/m/1",
            status="OK",
        )
        == 1
    )
    loads = ":tensorflow:cc:saved_model:load_attempt_count_total"  # the parser adds _total
    assert value(samples, loads, model_path="/m/1", status="success") == 1
    assert value(samples, loads, model_path="/m/2", status="fail") == 1
    assert value(
        samples, ":tensorflow:cc:saved_model:load_latency_total", model_path="/m/1"
    ) == pytest.approx(300000)
    by_stage = ":tensorflow:cc:saved_model:load_latency_by_stage_sum"
    assert value(samples, by_stage, model_path="/m/1", stage="init_graph") == pytest.approx(100000)


def test_process_metrics_keep_their_standard_names():
    text = metrics.ServingMetrics().render().decode()
    assert "\nprocess_cpu_seconds_total " in text
    assert "\nprocess_resident_memory_bytes " in text


def test_label_values_are_escaped(serving_metrics):
    serving_metrics.record_request('a"b\\c\nd', "predict", "REST", "OK", 0.001)
    samples = page_samples(serving_metrics)
    assert (
        value(
            samples,
            ":tensorflow:serving:request_count_total",
            model_name='a"b\\c\nd',
            version="",
            signature_name="",
            API="predict",
            entrypoint="REST",
            status="OK",
        )
        == 1
    )


def test_monitoring_config_file(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true, path: "/metrics" }\n')
    assert metrics.prometheus_path(metrics.read_monitoring_config(str(path))) == "/metrics"
    path.write_text("prometheus_config { enable: true }\n")
    assert (
        metrics.prometheus_path(metrics.read_monitoring_config(str(path)))
        == metrics.DEFAULT_PROMETHEUS_PATH
    )
    path.write_text('prometheus_config { path: "/metrics" }\n')
    assert metrics.prometheus_path(metrics.read_monitoring_config(str(path))) is None
    path.write_text('prometheus_config { enable: true, path: "metrics" }\n')
    with pytest.raises(status.ServingError, match="must start with '/'"):
        metrics.read_monitoring_config(str(path))
    path.write_text("prometheus_config { enabled: true }\n")
    with pytest.raises(status.ServingError, match="Invalid protobuf file"):
        metrics.read_monitoring_config(str(path))


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
