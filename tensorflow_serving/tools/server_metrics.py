"""The batches a model server ran over a measured window, from its Prometheus page.

The server counts every batch it runs in the histogram
`metrics.BATCH_SIZE_METRIC` (rows after padding). Its `_sum` and `_count`
read at the start and at the end of a window give the rows and batches run in
between, and their ratio the mean batch size. The page is served on the REST
port when `--monitoring_config_file` turns Prometheus on.
"""

from __future__ import annotations

import http.client

from prometheus_client.parser import text_string_to_metric_families

from tensorflow_serving.model_servers.metrics import BATCH_SIZE_METRIC

_TIMEOUT_S = 5.0


def histogram_totals(page: str, name: str) -> tuple[float, float] | None:
    """(sum, count) of histogram `name` on a Prometheus text page, over all its label sets.

    None when the page has no such histogram, or none of its series yet.
    """
    totals = {"_sum": 0.0, "_count": 0.0}
    seen = False
    for family in text_string_to_metric_families(page):
        if family.name != name or family.type != "histogram":
            continue
        for sample in family.samples:
            suffix = sample.name[len(name) :]
            if suffix in totals:
                totals[suffix] += sample.value
                seen = True
    return (totals["_sum"], totals["_count"]) if seen else None


def batch_delta(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> dict[str, float | None] | None:
    """Rows and batches run between two (sum, count) readings, and the mean batch.

    None when either reading is missing; `mean` is None when no batch ran.
    """
    if before is None or after is None:
        return None
    rows = after[0] - before[0]
    batches = round(after[1] - before[1])
    return {
        "batches": batches,
        "rows": rows,
        "mean": round(rows / batches, 3) if batches > 0 else None,
    }


def fetch_page(host: str, port: int, path: str) -> str | None:
    """The text of `path` on `host:port`, or None when it cannot be read."""
    conn = http.client.HTTPConnection(host, port, timeout=_TIMEOUT_S)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except OSError:
        return None
    finally:
        conn.close()
    return body.decode("utf-8", errors="replace") if response.status == 200 else None


class BatchSizeMeter:
    """The server's batch-size histogram read at start() and at stop(): the window's batches.

    stop() returns batch_delta's record, or None when the page or the
    histogram could not be read at either end (e.g. a server without it).
    """

    def __init__(self, host: str, port: int, path: str, name: str = BATCH_SIZE_METRIC):
        self._host, self._port, self._path, self._name = host, port, path, name
        self._before: tuple[float, float] | None = None

    def _read(self) -> tuple[float, float] | None:
        page = fetch_page(self._host, self._port, self._path)
        return None if page is None else histogram_totals(page, self._name)

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, float | None] | None:
        return batch_delta(self._before, self._read())
