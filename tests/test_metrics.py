"""--metrics-file: Prometheus text written with prometheus_client, read back with its parser."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from crawler.run.metrics import (
    LAST_SUCCESS,
    previous_last_success,
    snapshot,
    write_metrics,
)
from crawler.run.stats import RunStats
from tests.e2e_helpers import metric_samples


def stats() -> RunStats:
    s = RunStats(targets=12, ok=7, retries=4, throttled=3)
    s.errors = Counter({"not_found": 2, "invalid_target": 1, "timeout": 2})
    s.count_requests("tag_details", 1, "200")
    s.count_requests("tag_details", 1, "429")
    s.count_requests("tag_details", 1, "error")
    s.count_requests("tag_details", 2, "200")  # a renewed credential: first answered 401
    s.count_requests("namespaces", 1, "200")
    return s


def test_every_listed_metric_is_written_with_its_value(tmp_path: Path) -> None:
    """The file holds each contract metric with the run's values, labels as documented."""
    path = tmp_path / "swr.prom"
    write_metrics(
        path,
        snapshot(stats(), complete=True, duration_seconds=9.5, rate_limit=17.5, last_success=1e9),
    )
    got = metric_samples(path)
    assert got["swr_crawler_requests_total", (("api", "tag_details"), ("code", "200"))] == 2
    assert got["swr_crawler_requests_total", (("api", "tag_details"), ("code", "401"))] == 1
    assert got["swr_crawler_requests_total", (("api", "tag_details"), ("code", "429"))] == 1
    assert got["swr_crawler_requests_total", (("api", "tag_details"), ("code", "error"))] == 1
    assert got["swr_crawler_requests_total", (("api", "namespaces"), ("code", "200"))] == 1
    assert got["swr_crawler_retries_total", ()] == 4
    assert got["swr_crawler_throttled_total", ()] == 3
    assert got["swr_crawler_rows_total", (("table", "tags"),)] == 7
    assert got["swr_crawler_rows_total", (("table", "errors"),)] == 5
    assert got["swr_crawler_errors_total", (("kind", "timeout"),)] == 2
    assert got["swr_crawler_targets_total", ()] == 12
    assert got["swr_crawler_run_complete", ()] == 1
    assert got["swr_crawler_run_duration_seconds", ()] == 9.5
    assert got["swr_crawler_rate_limit_current", ()] == 17.5
    assert got[LAST_SUCCESS, ()] == 1e9


def test_every_family_has_help_and_a_type(tmp_path: Path) -> None:
    """Each metric comes with a # HELP line and the right # TYPE."""
    path = tmp_path / "swr.prom"
    write_metrics(
        path, snapshot(stats(), complete=False, duration_seconds=1, rate_limit=0, last_success=0)
    )
    text = path.read_text()
    families = list(text_string_to_metric_families(text))
    assert len(families) == 10
    for family in families:
        assert family.documentation, family.name
    types = {f.name: f.type for f in families}
    assert types["swr_crawler_requests"] == "counter"
    assert types["swr_crawler_run_complete"] == "gauge"
    assert text.count("# HELP ") == 10


def test_written_atomically_leaving_no_temporary_file(tmp_path: Path) -> None:
    """A rewrite replaces the file whole; nothing else stays in the collector's folder."""
    path = tmp_path / "swr.prom"
    for n in range(3):
        s = RunStats(targets=n)
        write_metrics(
            path, snapshot(s, complete=False, duration_seconds=n, rate_limit=1, last_success=0)
        )
    assert [p.name for p in tmp_path.iterdir()] == ["swr.prom"]
    assert metric_samples(path)["swr_crawler_targets_total", ()] == 2


def test_last_success_is_read_back_from_a_previous_file(tmp_path: Path) -> None:
    """The previous file's last-success time is found; no file or a foreign one reads as 0."""
    path = tmp_path / "swr.prom"
    assert previous_last_success(path) == 0.0
    write_metrics(
        path,
        snapshot(RunStats(), complete=True, duration_seconds=1, rate_limit=1, last_success=1.7e9),
    )
    assert previous_last_success(path) == 1.7e9
    path.write_text("this is {not prometheus\n")
    assert previous_last_success(path) == 0.0
