"""``swr-crawler sandbox``: serve the sandbox until SIGINT/SIGTERM.

The first line on stdout is ``sandbox listening on http://HOST:PORT`` (flushed),
so a parent process can start it with ``--port 0`` and read the URL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import click

from crawler.sandbox.auth import VERIFIER
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.faults import FaultConfig
from crawler.sandbox.server import DEFAULT_TOKEN, SandboxConfig, running_sandbox


def _load_scripts(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="--scripts") from None
    if not isinstance(data, dict) or not all(
        isinstance(actions, list) and all(isinstance(action, str) for action in actions)
        for actions in data.values()
    ):
        raise click.BadParameter(
            "a JSON object of target key -> list of actions", param_hint="--scripts"
        )
    return data


def _iam_user(text: str) -> tuple[str, str, str]:
    domain, _, rest = text.partition(":")
    name, _, password = rest.partition(":")
    if not (domain and name and password):
        raise click.BadParameter("DOMAIN:USER:PASSWORD", param_hint="--iam-user")
    return domain, name, password


def _tag_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = (-1,)
    if counts and (min(counts) < 0 or max(counts) < 1):
        raise click.BadParameter(
            "comma-separated counts >= 0, at least one > 0", param_hint="--tag-counts"
        )
    return counts


F = TypeVar("F", bound=Callable[..., Any])
_AT_LEAST_ONE = click.IntRange(min=1)
_SHARE = click.FloatRange(0, 1)
#: The fields of the two configs by name (``seed``, in both, has its own option).
_FIELDS = {spec.name: spec for config in (FaultConfig, SandboxConfig) for spec in fields(config)}


def _field_option(flag: str, name: str, kind: Any, text: str) -> Callable[[F], F]:
    """An option that sets the config field ``name`` as it is, by default to the config's
    default; the command gets it in ``**as_is`` (see :func:`_fields_of`)."""
    default = _FIELDS[name].default
    return click.option(
        flag, name, default=default, show_default=default is not None, type=kind, help=text
    )


def _fields_of(config: type, as_is: dict[str, Any]) -> dict[str, Any]:
    """The values in ``as_is`` that are fields of ``config``."""
    names = {spec.name for spec in fields(config)}
    return {name: value for name, value in as_is.items() if name in names}


def _write_targets(path: Path, catalogue: Catalogue) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        for namespace, repository, tag in catalogue.targets():
            out.write(f"{namespace}/{repository}:{tag}\n")
    temporary.replace(path)


async def _serve(config: SandboxConfig, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_sandbox(config, host, port) as sandbox:
        # A parent process waits for this line: flush it now, not at exit.
        print(f"sandbox listening on {sandbox.url}", flush=True)
        if config.credentials and VERIFIER != "huaweicloudsdkcore":
            print(
                "sandbox: huaweicloudsdkcore is not installed: AK/SK signatures are checked"
                " with the crawler's own signer, so a signer bug would go unnoticed",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()


@click.command(
    "sandbox",
    epilog="\b\nExample:\n  swr-crawler sandbox --port 8080 --error-rate 0.02 --rate-limit 50 &\n"
    "  SWR_AUTH_TOKEN=sandbox-token swr-crawler crawl --endpoint http://127.0.0.1:8080 "
    "--discover --out out/sandbox",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="0 = any free port.")
@click.option("--seed", default=0, show_default=True, type=int, help="Catalogue and fault seed.")
@_field_option("--namespaces", "namespaces", _AT_LEAST_ONE, "Namespaces in the catalogue.")
@_field_option("--repos", "repos_per_namespace", _AT_LEAST_ONE, "Per namespace.")
@_field_option("--tags", "tags_per_repo", _AT_LEAST_ONE, "Per repository.")
@click.option(
    "--tag-counts",
    default="",
    metavar="N,N,...",
    help="Tags of each namespace's repositories in turn (cycled; 0 = empty); overrides --tags.",
)
@click.option(
    "--extreme-sizes",
    is_flag=True,
    help="About 3% of tags report size 0 or 2^63-1 (for tests; default: realistic sizes).",
)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help=f"Accepted X-Auth-Token (repeatable; default {DEFAULT_TOKEN}).",
)
@click.option("--ak", default=None, help="Access key accepted for AK/SK signatures (with --sk).")
@click.option("--sk", default=None, help="Secret key of --ak.")
@click.option(
    "--iam-user",
    "iam_users",
    multiple=True,
    metavar="DOMAIN:USER:PASSWORD",
    help="IAM password login (repeatable).",
)
@_field_option("--token-ttl", "token_ttl", float, "Seconds an IAM token lives.")
@click.option("--no-auth", is_flag=True, help="Accept requests without credentials.")
@_field_option("--latency", "latency", float, "Seconds added to every answer.")
@_field_option(
    "--rate-limit", "rate_limit", float, "Server-side limit, requests/s (429 APIG.0308 above it)."
)
@_field_option(
    "--rate-burst", "rate_burst", _AT_LEAST_ONE, "Requests the rate limit lets through at once."
)
@click.option(
    "--stated-window",
    type=click.Choice(["minute", "second", "none"]),
    default="minute",
    show_default=True,
    help="The window a 429's message states the limit in (none: no limit in the message).",
)
@_field_option("--error-rate", "error_rate", _SHARE, "Random 5xx.")
@_field_option("--reset-rate", "reset_rate", _SHARE, "TCP resets.")
@_field_option("--slow-rate", "slow_rate", _SHARE, "Share of answers delayed by --slow-seconds.")
@_field_option("--slow-seconds", "slow_seconds", float, "Delay of a slow answer.")
@_field_option("--truncated-rate", "truncated_rate", _SHARE, "200 with invalid JSON.")
@_field_option("--retry-after-rate", "retry_after_rate", _SHARE, "429 with Retry-After.")
@click.option(
    "--scripts",
    "scripts_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON: target key -> list of actions.",
)
@_field_option(
    "--cache-size",
    "cache_size",
    click.IntRange(min=0),
    "Tag-details answers kept built (an LRU; the benchmark keeps its whole catalogue).",
)
@click.option(
    "--all-fields",
    is_flag=True,
    help="Every tag has all 15 ShowRepoTag fields, as the SDKs document (default: ~4% lack"
    " `updated`, so list mode fetches those one by one).",
)
@click.option(
    "--targets-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write every target, one a line, then serve.",
)
def sandbox_command(
    host: str,
    port: int,
    seed: int,
    tag_counts: str,
    extreme_sizes: bool,
    tokens: tuple[str, ...],
    ak: str | None,
    sk: str | None,
    iam_users: tuple[str, ...],
    no_auth: bool,
    stated_window: Literal["minute", "second", "none"],
    scripts_path: Path | None,
    all_fields: bool,
    targets_out: Path | None,
    **as_is: Any,
) -> None:
    """Serve a local SWR look-alike (tag details, list APIs, IAM) with injectable faults."""
    if (ak is None) != (sk is None):
        raise click.UsageError("--ak and --sk go together")
    counts = _tag_counts(tag_counts)
    try:
        faults = FaultConfig(
            stated_window=None if stated_window == "none" else stated_window,
            seed=seed,
            scripts=_load_scripts(scripts_path),
            **_fields_of(FaultConfig, as_is),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config = SandboxConfig(
        seed=seed,
        tag_counts=counts,
        extreme_sizes=extreme_sizes,
        tokens=frozenset(tokens or (DEFAULT_TOKEN,)),
        credentials={ak: sk} if ak is not None and sk is not None else {},
        iam_users=tuple(_iam_user(user) for user in iam_users),
        require_auth=not no_auth,
        faults=faults,
        absent_fields=not all_fields,
        **_fields_of(SandboxConfig, as_is),
    )
    if targets_out is not None:
        catalogue = Catalogue(
            seed,
            config.namespaces,
            config.repos_per_namespace,
            config.tags_per_repo,
            tag_counts=counts,
        )
        _write_targets(targets_out, catalogue)
    asyncio.run(_serve(config, host, port))
