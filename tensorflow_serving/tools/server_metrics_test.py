"""The server's batches over a window, read off the Prometheus page the server renders."""

import http.server
import sys
import threading

import pytest

from tensorflow_serving.model_servers import metrics
from tensorflow_serving.test_util import testing
from tensorflow_serving.tools import server_metrics


def _page(*batches: int) -> str:
    served = metrics.ServingMetrics(process=False)
    for size in batches:
        served.observe_batch(size)
    return served.render().decode()


def test_the_batch_histogram_totals_are_read_off_the_servers_own_page():
    assert server_metrics.histogram_totals(_page(4, 8, 8), metrics.BATCH_SIZE_METRIC) == (20, 3)
    assert server_metrics.histogram_totals(_page(), metrics.BATCH_SIZE_METRIC) == (0, 0)


def test_labelled_series_add_up_and_a_missing_histogram_is_none():
    page = (
        "# TYPE b histogram\n"
        'b_bucket{q="x",le="+Inf"} 2\nb_sum{q="x"} 6\nb_count{q="x"} 2\n'
        'b_bucket{q="y",le="+Inf"} 1\nb_sum{q="y"} 10\nb_count{q="y"} 1\n'
        "# TYPE other counter\nother 5\n"
    )
    assert server_metrics.histogram_totals(page, "b") == (16, 3)
    assert server_metrics.histogram_totals(page, "other") is None
    assert server_metrics.histogram_totals(page, metrics.BATCH_SIZE_METRIC) is None


def test_the_delta_of_two_readings_is_the_windows_batches_and_mean():
    assert server_metrics.batch_delta((20, 3), (120, 7)) == {
        "batches": 4,
        "rows": 100,
        "mean": 25.0,
    }
    assert server_metrics.batch_delta((20, 3), (20, 3)) == {"batches": 0, "rows": 0, "mean": None}
    assert server_metrics.batch_delta(None, (20, 3)) is None
    assert server_metrics.batch_delta((20, 3), None) is None


@pytest.fixture
def served_page():
    """The page of a live ServingMetrics on a loopback port: (metrics, port)."""
    served = metrics.ServingMetrics(process=False)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != metrics.DEFAULT_PROMETHEUS_PATH:
                self.send_error(404)
                return
            body = served.render()
            self.send_response(200)
            self.send_header("Content-Type", metrics.CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_meter_counts_only_the_batches_run_between_start_and_stop(served_page):
    served, port = served_page
    served.observe_batch(32)  # before the window: the warm-up's
    meter = server_metrics.BatchSizeMeter("127.0.0.1", port, metrics.DEFAULT_PROMETHEUS_PATH)
    meter.start()
    for size in (3, 5, 4):
        served.observe_batch(size)
    assert meter.stop() == {"batches": 3, "rows": 12, "mean": 4.0}


def test_a_page_that_cannot_be_read_gives_no_count(served_page):
    _, port = served_page
    missing = server_metrics.BatchSizeMeter("127.0.0.1", port, "/no/such/page")
    missing.start()
    assert missing.stop() is None
    assert server_metrics.fetch_page("127.0.0.1", testing.free_port(), "/") is None


if __name__ == "__main__":
    sys.exit(testing.main(__file__))
