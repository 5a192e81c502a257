"""Honest outcomes: metrics match run.json, warnings, --max-error-ratio, a dead endpoint,
the lock's own exit code, --dry-run, and what the logs and help say."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

from crawler.cli import EXIT_LOCKED, cli
from crawler.config import build_config, load_toml, unknown_variables
from crawler.crawl.control import UNREACHABLE, UNREACHABLE_AFTER
from crawler.crawl.intake import Intake
from crawler.errors import ConfigError
from crawler.output.lock import OutputLock
from crawler.run.dry_run import plan_discovery, plan_targets
from crawler.run.metrics import LAST_SUCCESS, snapshot, write_metrics
from crawler.run.stats import RunStats
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import running_sandbox, sandbox_in_thread
from crawler.targets import in_shard, parse_reference
from tests.e2e_helpers import (
    SMALL,
    TOKEN,
    catalogue_keys,
    crawl,
    crawl_args,
    metric_samples,
    run_cli,
    sandbox_config,
)

#: The sandbox's targets, known before it starts (faults are scripted per target).
KEYS = catalogue_keys(Catalogue(**SMALL))


@pytest.mark.anyio
async def test_metrics_file_matches_run_json(tmp_path: Path) -> None:
    """Every counter of --metrics-file, read with prometheus_client's parser, equals run.json."""
    metrics = tmp_path / "swr.prom"
    keys = KEYS
    faults = FaultConfig(scripts={keys[0]: ["429", "200"], keys[1]: ["503", "200"]})
    async with running_sandbox(sandbox_config(faults=faults)) as sb:
        lines = [*keys, "ghost/none:v1", "BAD/x:1", keys[2]]
        outcome = await crawl(sb.url, lines, tmp_path / "out", metrics_file=str(metrics))
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    counts = run["counts"]
    got = metric_samples(metrics)
    requests = {
        labels: value for (name, labels), value in got.items() if name.endswith("requests_total")
    }
    assert sum(requests.values()) == counts["requests"] == len(keys) + 1 + 2
    assert requests[(("api", "tag_details"), ("code", "429"))] == 1
    assert requests[(("api", "tag_details"), ("code", "503"))] == 1
    assert requests[(("api", "tag_details"), ("code", "404"))] == 1
    assert got["swr_crawler_retries_total", ()] == counts["retries"] == 2
    assert got["swr_crawler_throttled_total", ()] == counts["throttled_429"] == 1
    assert got["swr_crawler_rows_total", (("table", "tags"),)] == counts["ok"] == len(keys)
    assert got["swr_crawler_rows_total", (("table", "errors"),)] == counts["errors_total"] == 2
    for kind, n in counts["errors"].items():
        assert got["swr_crawler_errors_total", (("kind", kind),)] == n
    assert got["swr_crawler_targets_total", ()] == counts["targets"] == len(keys) + 2
    assert got["swr_crawler_run_complete", ()] == 1
    assert got["swr_crawler_run_duration_seconds", ()] > 0
    assert outcome.result.exit_code == 0
    assert got[LAST_SUCCESS, ()] > 1.7e9


@pytest.mark.anyio
async def test_last_success_is_kept_when_a_run_fails(tmp_path: Path) -> None:
    """A run that exits 1 keeps the previous file's last-success time (alerts keep working)."""
    metrics = tmp_path / "swr.prom"
    write_metrics(
        metrics,
        snapshot(RunStats(), complete=True, duration_seconds=1, rate_limit=1, last_success=1234.0),
    )
    keys = KEYS
    async with running_sandbox(
        sandbox_config(faults=FaultConfig(scripts={keys[0]: ["503"] * 5}))
    ) as sb:
        outcome = await crawl(sb.url, keys, tmp_path / "out", metrics_file=str(metrics))
    assert outcome.result.exit_code == 1
    got = metric_samples(metrics)
    assert got[LAST_SUCCESS, ()] == 1234.0
    assert got["swr_crawler_errors_total", (("kind", "server_error"),)] == 1


@pytest.mark.anyio
async def test_every_target_not_found_is_a_warning(tmp_path: Path) -> None:
    """All targets 404 (the wrong server, say): exit 0 but a warning in run.json and the log."""
    async with running_sandbox(sandbox_config()) as sb:
        with capture_logs() as logs:
            outcome = await crawl(sb.url, [f"ghost/app:v{i}" for i in range(5)], tmp_path / "o")
    assert outcome.result.exit_code == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert len(run["warnings"]) == 1
    assert "every target (5) ended not_found" in run["warnings"][0]
    assert any(e["event"] == "crawl.warning" for e in logs)


@pytest.mark.anyio
async def test_max_error_ratio_fails_the_run(tmp_path: Path) -> None:
    """3 error rows of 10 targets: exit 0 by default, exit 1 with --max-error-ratio 0.2."""
    async with running_sandbox(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)[:7]
        lines = [*keys, "ghost/a:1", "ghost/b:1", "ghost/c:1"]
        lenient = await crawl(sb.url, lines, tmp_path / "a")
        strict = await crawl(sb.url, lines, tmp_path / "b", max_error_ratio=0.2)
    assert lenient.result.exit_code == 0
    assert strict.result.exit_code == 1
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["complete"] is True
    assert run["error_ratio"] == 0.3
    assert "more than --max-error-ratio 0.2" in run["warnings"][0]


@pytest.mark.anyio
async def test_a_namespace_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    """--discover --namespace of a namespace that does not exist: a warning naming it."""
    async with running_sandbox(sandbox_config()) as sb:
        namespace = sb.catalogue.namespaces()[0]
        outcome = await crawl(
            sb.url,
            [],
            tmp_path / "o",
            targets=None,
            discover=True,
            namespaces=(namespace, "ghost-ns"),
        )
    warnings = outcome.result.report.warnings()
    assert any("'ghost-ns'" in w for w in warnings)
    assert not any(repr(namespace) in w for w in warnings)


class RefusingServer:
    """A loopback TCP server that accepts and at once resets every connection, counting them."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            conn.close()

    def __enter__(self) -> RefusingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def refusing() -> Iterator[RefusingServer]:
    with RefusingServer() as server:
        yield server


def test_dead_endpoint_stops_early_and_resumes(tmp_path: Path, refusing: RefusingServer) -> None:
    """An endpoint that answers nothing: the run stops after N failed requests (+ those in
    flight), exit 1, says to --resume; --resume against a live server then finishes."""
    targets = tmp_path / "targets.txt"
    with sandbox_in_thread(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)
        targets.write_text("\n".join(keys) + "\n")
        out = tmp_path / "out"
        common = ["crawl", "--targets", str(targets), "--out", str(out), "--rate", "0"]
        common += ["--concurrency", "4", "--backoff-initial", "0.01", "--backoff-max", "0.02"]
        # More attempts than the dead-endpoint threshold: no target can use up its own
        # attempts (and be recorded as `network`) before the run has seen 20 failures.
        common += ["--max-attempts", str(UNREACHABLE_AFTER + 1)]
        env = {"SWR_AUTH_TOKEN": TOKEN}
        dead = CliRunner().invoke(
            cli, [*common, "--endpoint", f"http://127.0.0.1:{refusing.port}"], env=env
        )
        assert dead.exit_code == 1, dead.output
        assert UNREACHABLE_AFTER <= refusing.accepted <= UNREACHABLE_AFTER + 4
        assert "answered none of the first requests" in dead.output
        assert "run again with --resume to finish" in dead.output
        run = json.loads((out / "run.json").read_text())
        assert run["stop_reason"] == UNREACHABLE
        assert run["counts"]["errors_total"] == 0  # nothing recorded: all left for --resume
        live = CliRunner().invoke(cli, [*common, "--endpoint", sb.url, "--resume"], env=env)
    assert live.exit_code == 0, live.output
    assert json.loads((out / "run.json").read_text())["counts"]["ok"] == len(keys)


def test_a_held_lock_has_its_own_exit_code(tmp_path: Path) -> None:
    """Another crawl writing into --out: exit 75 (not 2), naming the holder's pid and host."""
    targets = tmp_path / "t.txt"
    targets.write_text("a/b:1\n")
    out = tmp_path / "out"
    out.mkdir()
    lock = OutputLock(out / ".lock")
    lock.acquire()
    try:
        result = CliRunner().invoke(
            cli,
            crawl_args(targets, out, "http://h:1"),
            env={"SWR_AUTH_TOKEN": "t"},
        )
    finally:
        lock.release()
    assert result.exit_code == EXIT_LOCKED == 75
    assert "another crawl is writing here" in result.output
    assert "pid" in result.output
    assert socket.gethostname() in result.output


def test_dry_run_reads_checks_and_writes_nothing(tmp_path: Path) -> None:
    """--dry-run on a file: counts on stdout, invalid lines by physical line number, no
    request to the sandbox, nothing under --out."""
    with sandbox_in_thread(sandbox_config()) as sb:
        keys = catalogue_keys(sb.catalogue)
        targets = tmp_path / "t.txt"
        targets.write_text("\n".join([keys[0], "", "# c", "Bad/x:1", keys[0], *keys[1:]]) + "\n")
        out = tmp_path / "out"
        args = crawl_args(targets, out, sb.url, "--dry-run", "--rate", "4")
        result = CliRunner().invoke(cli, args, env={"SWR_AUTH_TOKEN": TOKEN})
        assert sb.stats.total_requests == 0
    assert result.exit_code == 0, result.output
    assert f"valid targets: {len(keys)}" in result.output
    assert "line 4: namespace 'Bad'" in result.output
    assert "duplicates: 1" in result.output
    assert f"requests: {len(keys)} tag-details requests" in result.output
    assert f"about {len(keys) / 4:.0f} s at --rate 4" in result.output
    assert not out.exists()


@pytest.mark.anyio
async def test_dry_run_discovery_sends_list_requests_only(tmp_path: Path) -> None:
    """--dry-run --discover lists the registry: list requests, counted, and no tag request."""
    async with running_sandbox(sandbox_config()) as sb:
        config = build_config(
            {"discover": True, "out": str(tmp_path / "o"), "endpoint": sb.url, "rate": 0},
            environ={},
        )
        plan = await plan_discovery(config, {"SWR_AUTH_TOKEN": TOKEN})
        assert sb.stats.tag_requests == 0
        assert plan.listing_requests == sb.stats.list_requests > 0
    assert plan.valid == len(sb.catalogue)
    assert not (tmp_path / "o").exists()


def test_dry_run_discovery_with_a_refused_credential_says_so_and_exits_1(tmp_path: Path) -> None:
    """A 401 on the dry run's listing stops it like a crawl's: a line that says so, exit 1,
    no traceback."""
    with sandbox_in_thread(sandbox_config()) as sb:
        args = ["crawl", "--dry-run", "--discover", "--out", str(tmp_path / "o")]
        result = CliRunner().invoke(
            cli, [*args, "--endpoint", sb.url], env={"SWR_AUTH_TOKEN": "no"}
        )
        assert sb.stats.tag_requests == 0
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "listing stopped (unauthorized): the counts here are incomplete" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.anyio
async def test_dry_run_discovery_counts_only_its_shard(tmp_path: Path) -> None:
    """--dry-run --discover --shard 1/2 counts this shard's tags and skips the others', as
    the crawl's intake does."""
    async with running_sandbox(sandbox_config()) as sb:
        flags = {"discover": True, "out": str(tmp_path / "o"), "endpoint": sb.url, "rate": 0}
        config = build_config({**flags, "shard": "1/2"}, environ={})
        plan = await plan_discovery(config, {"SWR_AUTH_TOKEN": TOKEN})
    mine = [key for key in KEYS if in_shard(key, 1, 2)]
    assert 0 < len(mine) < len(KEYS)
    assert plan.valid == len(mine)
    assert plan.other_shards == len(KEYS) - len(mine)
    assert plan.duplicates == 0


def test_dry_run_counts_a_file_as_the_intake_admits_it() -> None:
    """A file's dry run counts duplicates and other shards' lines as the crawl's intake skips
    them: the same numbers as the intake's own counters."""
    mine = [key for key in KEYS if in_shard(key, 0, 2)]
    lines = [*KEYS, mine[0], mine[1], "Bad/x:1", "Bad/x:1"]
    items = [parse_reference(line) for line in lines]
    plan = plan_targets(items, (0, 2))
    stats = RunStats()
    list(Intake(items, stats, shard=(0, 2)).batches())
    bad = int(in_shard("Bad/x:1", 0, 2))
    assert (plan.valid, plan.invalid) == (len(mine), bad)
    assert plan.duplicates == stats.duplicates == 2 + bad
    assert plan.other_shards == stats.skipped_shard == len(lines) - len(mine) - 2 - 2 * bad


@pytest.mark.anyio
@pytest.mark.parametrize(("concurrency", "listers"), [(2, 2), (16, 4)])
async def test_dry_run_discovery_lists_as_concurrently_as_the_crawl(
    tmp_path: Path, concurrency: int, listers: int
) -> None:
    """The dry run's discovery lists the tags of min(4, --concurrency) repositories at once,
    as the crawl's does."""
    async with running_sandbox(sandbox_config()) as sb:
        flags = {"discover": True, "out": str(tmp_path / "o"), "endpoint": sb.url}
        config = build_config({**flags, "concurrency": concurrency, "rate": 0}, environ={})
        with capture_logs() as logs:
            await plan_discovery(config, {"SWR_AUTH_TOKEN": TOKEN})
    (started,) = [e for e in logs if e["event"] == "discover.started"]
    assert started["concurrency"] == listers


def test_unknown_swr_variable_names_the_closest_setting() -> None:
    """SWR_CONCURENCY is a warning that suggests SWR_CONCURRENCY; known names are quiet."""
    warnings = unknown_variables(
        {"SWR_CONCURENCY": "4", "SWR_RATE": "1", "SWR_AUTH_TOKEN": "x", "HOME": "/"}
    )
    assert len(warnings) == 1
    assert "SWR_CONCURENCY" in warnings[0]
    assert "did you mean SWR_CONCURRENCY?" in warnings[0]


def test_unknown_toml_key_says_did_you_mean(tmp_path: Path) -> None:
    """A misspelled key in a config file is an error that suggests the right name."""
    path = tmp_path / "c.toml"
    path.write_text("[crawl]\nconcurency = 4\n")
    with pytest.raises(ConfigError, match="did you mean 'concurrency'"):
        load_toml(str(path))


def test_retries_are_debug_lines(tmp_path: Path) -> None:
    """A retry is logged at debug, not info: a run with faults stays quiet at info."""
    import anyio

    async def run() -> list[dict[str, Any]]:
        faults = FaultConfig(scripts={KEYS[0]: ["503", "200"]})
        async with running_sandbox(sandbox_config(faults=faults)) as sb:
            with capture_logs() as logs:
                await crawl(sb.url, KEYS, tmp_path / "o")
            return logs

    logs = anyio.run(run)  # structlog's defaults (conftest): debug events are kept
    retries = [e for e in logs if e["event"] == "crawl.retry_scheduled"]
    assert len(retries) == 1
    assert retries[0]["log_level"] == "debug"


@pytest.mark.parametrize("command", ["crawl", "report", "demo", "diff", "sandbox", "config show"])
def test_every_help_ends_with_an_example(command: str) -> None:
    """Each command's --help ends with a worked example."""
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    tail = result.output.rsplit("Example", 1)
    assert len(tail) == 2, result.output[-300:]
    assert "swr-crawler " in tail[1]


def test_crawl_help_names_the_credentials_and_the_precedence() -> None:
    """crawl --help names every credential variable family and the precedence order."""
    text = CliRunner().invoke(cli, ["crawl", "--help"]).output
    for name in ("SWR_AUTH_TOKEN", "CLOUD_SDK_AK", "CLOUD_SDK_SK", "SWR_IAM_USER"):
        assert name in text
    assert "defaults < --config < SWR_* < flags" in text
    assert "75" in text


def test_config_show_names_each_source_and_no_secret(tmp_path: Path) -> None:
    """config show: default, file, SWR_<NAME> and flag sources, credentials never shown."""
    path = tmp_path / "c.toml"
    path.write_text('[crawl]\nregion = "cn-north-4"\nrate = 7\n')
    result = CliRunner().invoke(
        cli,
        ["config", "show", "--config", str(path), "--concurrency", "3", "--json"],
        env={"SWR_RATE": "9", "SWR_AUTH_TOKEN": "very-secret-token"},
    )
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.output)["settings"]}
    assert (entries["region"]["value"], entries["region"]["source"]) == ("cn-north-4", "file")
    assert (entries["rate"]["value"], entries["rate"]["source"]) == (9.0, "SWR_RATE")
    assert (entries["concurrency"]["value"], entries["concurrency"]["source"]) == (3, "flag")
    assert (entries["timeout"]["value"], entries["timeout"]["source"]) == (30.0, "default")
    assert entries["SWR_AUTH_TOKEN"]["value"] == "(set, not shown)"
    assert "very-secret-token" not in result.output


def test_config_show_takes_repeatable_settings_from_the_environment() -> None:
    """An unused repeatable flag (--repository, --tag) leaves SWR_REPOSITORIES / SWR_TAGS in
    force in config show, as in a crawl: click's empty () is not a flag's value."""
    result = CliRunner().invoke(
        cli,
        ["config", "show", "--json"],
        env={"SWR_REPOSITORIES": "app*", "SWR_TAGS": "v1*"},
    )
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.output)["settings"]}
    assert entries["repositories"]["source"] == "SWR_REPOSITORIES"
    assert entries["tags"]["source"] == "SWR_TAGS"


def test_a_crawl_ends_with_the_short_report(tmp_path: Path) -> None:
    """The end of a crawl prints what the output holds (tags, bytes, namespaces, errors)."""
    targets = tmp_path / "t.txt"
    targets.write_text("\n".join([*KEYS, "ghost/x:1"]) + "\n")
    with sandbox_in_thread(sandbox_config()) as sb:
        args = crawl_args(targets, tmp_path / "o", sb.url, "--rate", "0", "--log-format", "console")
        result = CliRunner().invoke(cli, args, env={"SWR_AUTH_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    assert f"output: {len(KEYS)} tags" in result.output
    assert "error rows 1: not_found: 1" in result.output


@pytest.mark.slow
def test_json_logs_leave_stderr_json_only(tmp_path: Path) -> None:
    """--log-format json in a real process: every stderr line is a JSON object (the summary
    among them as crawl.finished); the human summary is on stdout."""
    targets = tmp_path / "t.txt"
    targets.write_text("\n".join([*KEYS, "ghost/x:1", "BAD/x:1"]) + "\n")
    faults = FaultConfig(scripts={KEYS[0]: ["503", "200"]})
    with sandbox_in_thread(sandbox_config(faults=faults)) as sb:
        args = crawl_args(targets, tmp_path / "o", sb.url, "--rate", "0", "--log-format", "json")
        done = run_cli(
            [*args, "--log-level", "debug"],
            {"SWR_AUTH_TOKEN": TOKEN, "SWR_CONCURENCY": "2"},
            tmp_path,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    names = [e["event"] for e in events]
    assert "crawl.finished" in names
    assert "crawl.retry_scheduled" in names
    unknown = [e for e in events if e["event"] == "config.unknown_variable"]
    assert "did you mean SWR_CONCURRENCY?" in unknown[0]["warning"]
    assert "complete" in done.stdout
    assert f"output: {len(KEYS)} tags" in done.stdout


def test_quiet_keeps_warnings_only(tmp_path: Path) -> None:
    """--quiet: no info event is logged, a warning still is (every target not found)."""
    targets = tmp_path / "t.txt"
    targets.write_text("ghost/a:1\nghost/b:1\n")
    with sandbox_in_thread(sandbox_config()) as sb:
        args = crawl_args(targets, tmp_path / "o", sb.url, "--log-format", "json", "--quiet")
        result = CliRunner().invoke(cli, args, env={"SWR_AUTH_TOKEN": TOKEN})
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert events
    assert {e["level"] for e in events} == {"warning"}
    assert any(e["event"] == "crawl.warning" for e in events)


def test_every_option_of_every_command_has_help() -> None:
    """No option of any command (config show included) comes without a help text."""
    import click

    commands: list[click.Command] = []
    for name in cli.list_commands(None):  # type: ignore[arg-type]
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None
        if isinstance(command, click.Group):
            commands += [command.get_command(None, n) for n in command.list_commands(None)]  # type: ignore[arg-type,misc]
        else:
            commands.append(command)
    missing = [
        f"{command.name} {param.opts[0]}"
        for command in commands
        for param in command.params
        if isinstance(param, click.Option) and not param.help and param.opts[0] != "--help"
    ]
    assert missing == []
