"""The command line: usage and configuration errors are one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from crawler import __version__
from crawler.cli import cli
from crawler.config import FIELDS
from tests.e2e_helpers import crawl_args, run_cli

ENV = {"SWR_AUTH_TOKEN": "t"}


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env or ENV, catch_exceptions=False)
    return result.exit_code, result.output


def test_version_and_help() -> None:
    """--version prints the version; crawl --help lists every documented option."""
    code, out = invoke("--version")
    assert code == 0
    assert __version__ in out
    code, out = invoke("crawl", "--help")
    assert code == 0
    for option in (
        "--targets",
        "--out",
        "--endpoint",
        "--region",
        "--concurrency",
        "--rate",
        "--burst",
        "--max-attempts",
        "--backoff-initial",
        "--backoff-max",
        "--timeout",
        "--resume",
        "--config",
        "--log-format",
        "--no-progress",
    ):
        assert option in out


def test_every_setting_is_a_flag_whose_help_shows_the_config_default() -> None:
    """Each CrawlConfig field has a crawl flag, and numeric ones show the config's default."""
    code, out = invoke("crawl", "--help")
    assert code == 0
    text = " ".join(out.split())
    for spec in FIELDS.values():
        flag = spec.metadata["flag"] or "--" + spec.name.replace("_", "-")
        assert flag in text, flag
        if spec.metadata["limits"] is not None:
            assert f"[{spec.default}, range {spec.metadata['limits'].describe()}]" in text


@pytest.mark.parametrize(
    "args",
    [
        ["--rate", "inf"],
        ["--max-attempts", "99999999999999999999"],
        ["--concurrency", "2000000"],
        ["--timeout", "inf"],
    ],
)
def test_out_of_range_numbers_exit_2_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    """A number beyond its documented range is one error line and exit 2, never an exception."""
    (tmp_path / "t.txt").write_text("ns/repo:v1\n")
    code, out = invoke(
        "crawl",
        "--targets",
        str(tmp_path / "t.txt"),
        "--out",
        str(tmp_path / "o"),
        "--endpoint",
        "http://127.0.0.1:9",
        *args,
    )
    assert code == 2, out
    assert [line for line in out.splitlines() if line.startswith("swr-crawler: error:")], out


def test_unknown_flag_is_usage_error() -> None:
    """An unknown flag exits 2 with click's usage line and the flag named."""
    code, out = invoke("crawl", "--concurency", "3")
    assert code == 2
    assert "--concurency" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--out", "o", "--endpoint", "http://127.0.0.1:9"], "--targets is required"),
        (
            ["--targets", "t.txt", "--endpoint", "http://127.0.0.1:9"],
            "give --out DIR or --dataset ROOT",
        ),
        (["--targets", "t.txt", "--out", "o"], "no endpoint"),
        (
            ["--targets", "t.txt", "--out", "o", "--region", "cn-north-4", "--concurrency", "0"],
            "concurrency must be >= 1",
        ),
        (
            ["--targets", "missing.txt", "--out", "o", "--endpoint", "http://127.0.0.1:9"],
            "missing.txt: no such file",
        ),
        (["--targets", "t.txt", "--out", "o", "--region", "cn-north-4", "--shard", "4/4"], "shard"),
    ],
)
def test_configuration_errors_exit_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    """Each configuration problem is one 'swr-crawler: error:' line and exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("ns/repo:v1\n")
    code, out = invoke("crawl", *args)
    assert code == 2, out
    errors = [line for line in out.splitlines() if line.startswith("swr-crawler: error:")]
    assert len(errors) == 1, out
    assert fragment in errors[0], out


def test_bad_config_file_exits_2(tmp_path: Path) -> None:
    """A config file with an unknown key is exit 2 naming the key."""
    config = tmp_path / "c.toml"
    config.write_text("[crawl]\nconcurrenccy = 2\n")
    code, out = invoke(
        "crawl", "--config", str(config), "--targets", "x", "--out", "o", "--region", "cn-north-4"
    )
    assert code == 2
    assert "concurrenccy" in out


@pytest.mark.slow
def test_real_process_prints_no_traceback(tmp_path: Path) -> None:
    """As a real process, a configuration error gives exit 2 and no Python traceback."""
    args = crawl_args(tmp_path / "nope.txt", tmp_path / "o", "http://127.0.0.1:9")
    proc = run_cli(args, {"SWR_AUTH_TOKEN": "t"}, tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "nope.txt" in proc.stderr
