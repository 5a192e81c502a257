"""``--metrics-file``: the run's counters in Prometheus text format, for node_exporter.

node_exporter's textfile collector reads ``*.prom`` files from a directory;
this module writes one with the official ``prometheus_client`` (a registry
holding one collector, written by ``write_to_textfile``, which writes a
temporary file and renames it, so the collector never reads half a file).

Two steps, so that a snapshot is taken on the event loop (where the counters
change) and the file is written in a worker thread:

* :func:`snapshot` copies the counters into a frozen :class:`RunMetrics`;
* :func:`write_metrics` turns one into a registry and writes the file.

Contract (README, "Metrics"): counters cover this process's run (a resumed
run starts them at 0 again, which Prometheus reads as a counter reset);
``code`` is the exact HTTP status, ``error`` when no answer came;
``swr_crawler_last_success_timestamp_seconds`` is the end of the last run
that exited 0, carried over from the previous file by a run that did not
(0 when none ever did), so that an alert on "no success for 26 h" works.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from crawler.run.stats import RunStats

PREFIX = "swr_crawler_"
LAST_SUCCESS = PREFIX + "last_success_timestamp_seconds"


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """The values one metrics file shows (a copy: safe to read in another thread)."""

    requests: Mapping[tuple[str, str], int]
    """(api, code) -> HTTP requests."""
    retries: int
    throttled: int
    rows: Mapping[str, int]
    """``tags`` / ``errors`` -> rows written."""
    errors: Mapping[str, int]
    """error kind -> error rows."""
    targets: int
    complete: bool
    duration_seconds: float
    rate_limit: float
    """The adaptive rate now, requests/s (0 = unlimited)."""
    last_success: float
    """Unix time of the end of the last run that exited 0 (0 = none yet)."""


def snapshot(
    stats: RunStats,
    *,
    complete: bool,
    duration_seconds: float,
    rate_limit: float,
    last_success: float,
) -> RunMetrics:
    """A copy of the run's counters as of now (call it where they are updated)."""
    errors = {str(kind): n for kind, n in stats.errors.items()}
    return RunMetrics(
        requests=dict(stats.responses),
        retries=stats.retries,
        throttled=stats.throttled,
        rows={"tags": stats.ok, "errors": sum(errors.values())},
        errors=errors,
        targets=stats.targets,
        complete=complete,
        duration_seconds=duration_seconds,
        rate_limit=rate_limit,
        last_success=last_success,
    )


class _RunCollector(Collector):
    """Yields the metric families of one :class:`RunMetrics`."""

    def __init__(self, metrics: RunMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily(
            PREFIX + "requests",
            "HTTP requests sent, by API and HTTP status ('error': no answer came).",
            labels=["api", "code"],
        )
        for (api, code), n in sorted(m.requests.items()):
            requests.add_metric([api, code], n)
        yield requests
        yield CounterMetricFamily(
            PREFIX + "retries", "Requests tried again after a failure.", value=m.retries
        )
        yield CounterMetricFamily(
            PREFIX + "throttled", "HTTP 429 answers (throttled by the gateway).", value=m.throttled
        )
        rows = CounterMetricFamily(
            PREFIX + "rows", "Rows written, by table (tags, errors).", labels=["table"]
        )
        for table in ("tags", "errors"):
            rows.add_metric([table], m.rows.get(table, 0))
        yield rows
        errors = CounterMetricFamily(
            PREFIX + "errors", "Error rows written, by error kind.", labels=["kind"]
        )
        for kind, n in sorted(m.errors.items()):
            errors.add_metric([kind], n)
        yield errors
        yield CounterMetricFamily(
            PREFIX + "targets",
            "Distinct targets taken from the input, invalid ones included.",
            value=m.targets,
        )
        yield GaugeMetricFamily(
            PREFIX + "run_complete",
            "1 when the run ended with every target recorded, else 0 (also while it runs).",
            value=1 if m.complete else 0,
        )
        yield GaugeMetricFamily(
            PREFIX + "run_duration_seconds",
            "Seconds the run has taken so far.",
            value=m.duration_seconds,
        )
        yield GaugeMetricFamily(
            PREFIX + "rate_limit_current",
            "The adaptive request rate now, requests/s (0 = unlimited).",
            value=m.rate_limit,
        )
        yield GaugeMetricFamily(
            LAST_SUCCESS,
            "Unix time the last run that exited 0 ended (0 = none yet).",
            value=m.last_success,
        )


def registry_for(metrics: RunMetrics) -> CollectorRegistry:
    """A registry holding ``metrics`` (what :func:`write_metrics` writes)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(metrics))
    return registry


def write_metrics(path: Path, metrics: RunMetrics) -> None:
    """Write ``metrics`` to ``path`` atomically (temporary file in the same folder + rename)."""
    write_to_textfile(str(path), registry_for(metrics))


def previous_last_success(path: Path) -> float:
    """The last-success time a previous run wrote to ``path``; 0 when there is none.

    A missing, unreadable or foreign file counts as "never succeeded": the
    metric then says so, and the alert fires, which is the safe side.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return 0.0
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except ValueError:
        return 0.0
    return 0.0
