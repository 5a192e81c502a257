"""The command line: ``swr-crawler crawl|discover|config|report|diff|sandbox|demo``.

Configuration is loaded here and nowhere else (flags > environment > TOML >
defaults), logging is configured here once, and every usage or configuration
problem becomes one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any, ClassVar, NoReturn, TypeVar

import anyio
import click
import structlog

from crawler import __version__
from crawler.config import FIELDS, build_config, unknown_variables
from crawler.errors import ConfigError
from crawler.logs import LogOutputLost, configure_logging

EXIT_USAGE = 2
F = TypeVar("F", bound=Callable[..., Any])


def fail_usage(message: str) -> NoReturn:
    """Print a one-line usage/configuration error and exit 2."""
    click.echo(f"swr-crawler: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


class _LazyGroup(click.Group):
    """Imports ``sandbox``, ``demo`` and ``report`` only when asked for: a crawl never loads the
    sandbox server (aiohttp.web and the catalogue), which keeps its memory smaller."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "sandbox": ("crawler.sandbox.command", "sandbox_command"),
        "demo": ("crawler.demo", "demo_command"),
        "report": ("crawler.report.command", "report_command"),
        "diff": ("crawler.diff_command", "diff_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attribute = self.lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="swr-crawler")
def cli() -> None:
    """Crawl Huawei Cloud SWR tag details in bulk into Parquet."""


#: Numeric field annotations (strings: annotations are postponed) and their click types.
_NUMBER_TYPES: dict[str, type] = {"int": int, "int | None": int, "float": float}


def _option_of(spec: dataclasses.Field[Any]) -> Callable[[F], F]:
    """The click option of one :class:`CrawlConfig` field.

    Its default stays the config's: an option not given is None, so that the
    environment and the config file can still set it; ``--help`` shows it.
    """
    meta = spec.metadata
    default = spec.default
    flag = meta["flag"] or "--" + spec.name.replace("_", "-")
    kwargs: dict[str, Any] = {"default": None, "metavar": meta["metavar"]}
    shown: list[str] = []
    if isinstance(default, bool):
        if default:  # on unless turned off
            flag = f"{flag}/--no-{flag.removeprefix('--')}"
        else:
            kwargs["is_flag"] = True
    elif isinstance(default, tuple) and meta["metavar"] is None:
        kwargs["multiple"] = True
    elif meta["choices"] is not None:
        kwargs["type"] = click.Choice(meta["choices"])
    elif (kind := _NUMBER_TYPES.get(str(spec.type))) is not None:
        kwargs["type"] = kind
        if default is not None:
            shown.append(str(default))
    if meta["limits"] is not None:
        shown.append(f"range {meta['limits'].describe()}")
    text = meta["help"] + (f" [{', '.join(shown)}]" if shown else "")
    return click.option(flag, spec.name, help=text, **kwargs)


def _crawl_options(func: F) -> F:
    """Every setting of :class:`CrawlConfig` as a flag of ``crawl``, in field order."""
    for spec in reversed(FIELDS.values()):
        func = _option_of(spec)(func)
    return func


CRAWL_EPILOG = """
\b
Credentials come from the environment only, never from flags or config files:
  SWR_AUTH_TOKEN                  a token, sent as X-Auth-Token
  CLOUD_SDK_AK + CLOUD_SDK_SK     AK/SK, every request signed (SDK-HMAC-SHA256);
                                  optional CLOUD_SDK_PROJECT_ID, CLOUD_SDK_SECURITY_TOKEN
  SWR_IAM_USER + SWR_IAM_PASSWORD + SWR_IAM_DOMAIN (+ SWR_IAM_PROJECT)
                                  IAM password login, token cached and renewed

\b
Every setting also comes from --config FILE (TOML) and from SWR_<NAME>
(e.g. SWR_CONCURRENCY); precedence: defaults < --config < SWR_* < flags.
See them all, with where each value came from: swr-crawler config show

\b
Exit status: 0 done; 1 incomplete or failed targets (run again with --resume);
2 usage or configuration error; 75 another crawl holds --out (try again later).

\b
Example:
  export SWR_AUTH_TOKEN=...
  swr-crawler crawl --region cn-north-4 --targets targets.txt --out /data/swr/2026-12-01 \\
      --metrics-file /var/lib/node_exporter/textfile/swr.prom --resume
"""

#: "Another crawl holds this output": sysexits' EX_TEMPFAIL, try again later.
EXIT_LOCKED = 75


@cli.command(epilog=CRAWL_EPILOG)
@_crawl_options
@click.option("--config", "config_path", help="TOML config file.")
def crawl(config_path: str | None, **flags: Any) -> None:
    """Crawl the tag details of every target into Parquet under --out."""
    if os.environ.get("JOB_COMPLETION_INDEX") and not flags.get("shard"):
        flags["shard"] = _shard_from_job_index(os.environ)
    _unset_empty_multiples(flags)
    try:
        config = build_config(flags, config_path=config_path)
    except ConfigError as exc:
        fail_usage(str(exc))
    level = logging.WARNING if config.quiet else LEVELS[config.log_level]
    fmt = configure_logging(config.log_format, level=level)
    for warning in unknown_variables(os.environ):
        structlog.get_logger("crawler").warning("config.unknown_variable", warning=warning)
    if config.dry_run:
        from crawler.run.dry_run import dry_run

        try:
            sys.exit(dry_run(config))
        except ConfigError as exc:
            fail_usage(str(exc))
    sys.exit(_run(config, _Tell(fmt)))


CONFIG_SHOW_EPILOG = """
\b
Example:
  SWR_RATE=5 swr-crawler config show --config configs/cron.toml --concurrency 4
  # rate 5 from SWR_RATE, concurrency 4 from the flag, region from the file
"""


@cli.group()
def config() -> None:
    """Inspect the configuration a crawl would use."""


@config.command("show", epilog=CONFIG_SHOW_EPILOG)
@_crawl_options
@click.option("--config", "config_path", help="TOML config file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: a list of settings.")
def config_show(config_path: str | None, as_json: bool, **flags: Any) -> None:
    """Print every setting with its effective value and its source (default, file,
    SWR_<NAME> or flag); the crawl's flags may be given too. Credentials are named,
    never shown."""
    import json

    from crawler.config import resolve
    from crawler.http.credentials import CREDENTIAL_VARIABLES

    _unset_empty_multiples(flags)
    try:
        given = resolve(flags, config_path=config_path)
    except ConfigError as exc:
        fail_usage(str(exc))
    entries = []
    for name, spec in FIELDS.items():
        value, source = given.get(name, (spec.default, "default"))
        if name == "shard":
            value = f"{value[0]}/{value[1]}"
        entries.append(
            {
                "name": name,
                "value": list(value) if isinstance(value, tuple) else value,
                "source": source,
            }
        )
    for variable in CREDENTIAL_VARIABLES:
        if os.environ.get(variable):
            entries.append({"name": variable, "value": "(set, not shown)", "source": variable})
    if as_json:
        click.echo(json.dumps({"settings": entries}, indent=2))
        return
    width = max(len(e["name"]) for e in entries)
    for entry in entries:
        click.echo(f"{entry['name']:<{width}}  {json.dumps(entry['value'])}  ({entry['source']})")


LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _Tell:
    """Messages for the person or the log reader: with JSON logs stderr carries JSON
    lines only, so a message is an event there and the human summary goes to stdout."""

    def __init__(self, fmt: str) -> None:
        self.json = fmt == "json"

    def summary(self, line: str) -> None:
        with suppress(OSError):  # the reader went away: run.json has it all
            click.echo(line, err=not self.json)

    def message(self, text: str) -> None:
        if self.json:
            structlog.get_logger("crawler").warning("crawl.message", message=text)
        else:
            _say(f"swr-crawler: {text}")


#: The settings ``discover`` takes: the filters, and how to reach and pace the API.
DISCOVER_SETTINGS = (
    "namespaces",
    "repositories",
    "tags",
    "updated_since",
    "newest",
    "endpoint",
    "region",
    "concurrency",
    "rate",
    "burst",
    "max_attempts",
    "backoff_initial",
    "backoff_max",
    "timeout",
    "max_body_bytes",
    "log_format",
    "seed",
)


def _discover_options(func: F) -> F:
    for name in reversed(DISCOVER_SETTINGS):
        func = _option_of(FIELDS[name])(func)
    return func


@cli.command()
@_discover_options
@click.option(
    "--output", "-o", default="-", show_default=True, help="Targets file to write; - = stdout."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "jsonl"]),
    default="text",
    show_default=True,
    help="text: namespace/repository:tag lines; jsonl: with digest, size and updated.",
)
@click.option("--config", "config_path", help="TOML config file.")
def discover(config_path: str | None, output: str, fmt: str, **flags: Any) -> None:
    """List the registry's tags (filtered) into a targets file for crawl --targets."""
    from crawler.run.inventory import run_discover

    _unset_empty_multiples(flags)
    flags["discover"] = True
    try:
        config = build_config(flags, config_path=config_path, needs_out=False)
    except ConfigError as exc:
        fail_usage(str(exc))
    configure_logging(config.log_format)
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        result = anyio.run(run_discover, config, output, fmt)
    except ConfigError as exc:
        fail_usage(str(exc))
    except KeyboardInterrupt:
        click.echo("swr-crawler: interrupted", err=True)
        sys.exit(1)
    click.echo(result.summary(output), err=True)
    sys.exit(result.exit_code)


def _unset_empty_multiples(flags: dict[str, Any]) -> None:
    """click gives () for a repeatable option not used: unset, so env and TOML still apply."""
    for name, value in flags.items():
        if value == ():
            flags[name] = None


def _shard_from_job_index(environ: os._Environ[str]) -> str:
    """Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX with SWR_SHARD_COUNT (or JOB_COMPLETIONS)."""
    count = environ.get("SWR_SHARD_COUNT") or environ.get("JOB_COMPLETIONS") or ""
    if not count:
        fail_usage("JOB_COMPLETION_INDEX is set: also set SWR_SHARD_COUNT to the number of shards")
    return f"{environ['JOB_COMPLETION_INDEX']}/{count}"


def _run(config: Any, tell: _Tell) -> int:
    from crawler.crawl.control import UNREACHABLE
    from crawler.http.credentials import refused_hint
    from crawler.output.lock import OutputLocked
    from crawler.run.loop import backend_options
    from crawler.run.runner import STOP_SIGNALS, Interrupted, run_crawl

    # Until the run installs its own handlers (and after it removes them), a
    # signal ends the process quietly with status 1: nothing is written then.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupted)
    try:
        if config.dataset:
            from crawler.run.dataset_run import run_dataset

            try:
                published = anyio.run(run_dataset, config)
            except OSError as exc:
                _say(
                    f"swr-crawler: cannot publish the snapshot: {str(exc).splitlines()[0][:300]}."
                    " The next run of this date finishes it: run again with --resume."
                )
                return 1
            if published is None:
                tell.message("this date's snapshot is already published")
                return 0
            result = published
        else:
            result = anyio.run(run_crawl, config, backend_options=backend_options(config.uvloop))
    except OutputLocked as exc:
        _say(f"swr-crawler: error: {exc}")
        return EXIT_LOCKED
    except ConfigError as exc:
        fail_usage(str(exc))
    except LogOutputLost:
        return 1  # stderr is gone: nothing more can be said; run.json says what happened
    except (KeyboardInterrupt, Interrupted):
        tell.message("interrupted before the crawl started; nothing written")
        return 1
    report = result.report
    for line in report.summary_lines():
        tell.summary(line)
    if not config.dataset and "://" not in config.out:  # a local run directory, still there
        for line in _output_summary(result.out_dir):
            tell.summary(line)
    if report.error is not None:
        tell.message(
            f"cannot write the output: {report.error}. Published files are complete; "
            "free some space."
        )
    if report.stop_reason == "tls":
        tell.message(
            "a TLS certificate did not verify (the crawl.target_failed log line and the"
            " errors rows of kind tls name the host): fix the endpoint or the trusted CAs"
            " (SSL_CERT_FILE)."
        )
    if report.stop_reason == "unauthorized":
        tell.message(
            f"authentication failed ({report.auth_method}): {refused_hint(report.auth_method)}."
        )
    if report.stop_reason == UNREACHABLE:
        tell.message(
            f"the endpoint {report.endpoint} answered none of the first requests (connection"
            " refused or timed out): the run stopped early. Check --endpoint/--region and the"
            " network."
        )
    if not report.complete:
        tell.message("the run is incomplete: run again with --resume to finish")
    return result.exit_code


def _say(line: str) -> None:
    """One line on stderr, unless stderr is gone (its reader exited): run.json has it all."""
    with suppress(OSError):
        click.echo(line, err=True)


def _output_summary(out_dir: Any) -> list[str]:
    """The short report of what the output holds now (best effort: never fails a run)."""
    from pathlib import Path

    import pyarrow as pa

    from crawler.report.short import load_short_summary
    from crawler.report.text import short_lines

    out = Path(out_dir)
    if not (out / "tags").is_dir() and not (out / "errors").is_dir():
        return []  # a --dataset run's staging directory, already published and gone
    try:
        return short_lines(load_short_summary(out))
    except (OSError, pa.ArrowException) as exc:
        return [f"output: cannot summarise ({str(exc).splitlines()[0][:200]})"]


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="swr-crawler")
    except SystemExit:
        # The normal way out (click exits through SystemExit): everything is written and
        # closed, so frozen objects are left out of the garbage collections of the
        # interpreter's teardown, which otherwise walk every object the run left (0.1-0.3 s
        # of a one-off crawl's wall time, measured). Exit handlers still run, buffers
        # are still flushed. Any other exception leaves the collector as it is.
        gc.freeze()
        raise
