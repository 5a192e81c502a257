"""Configuration: precedence, validation and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crawler.config import (
    FIELDS,
    CrawlConfig,
    build_config,
    effective_endpoint,
    endpoint_for_region,
    parse_shard,
)
from crawler.errors import ConfigError

BASE = {"out": "o", "endpoint": "http://127.0.0.1:1"}
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_defaults_match_the_design_table() -> None:
    """With no config, env or flag, the defaults are the documented ones (README)."""
    config = build_config(BASE, environ={})
    assert (config.concurrency, config.rate, config.burst, config.max_attempts) == (16, 20.0, 1, 5)
    assert (config.backoff_initial, config.backoff_max, config.timeout) == (0.5, 30.0, 30.0)
    assert config.resume is False


def test_precedence_defaults_config_env_flags(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the TOML file, which beats the default."""
    toml = tmp_path / "c.toml"
    toml.write_text("[crawl]\nconcurrency = 3\nrate = 7\nburst = 4\n")
    env = {"SWR_RATE": "9", "SWR_BURST": "5"}
    config = build_config({**BASE, "burst": 6}, config_path=str(toml), environ=env)
    assert (config.concurrency, config.rate, config.burst) == (3, 9.0, 6)


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"concurrency": 0}, "concurrency must be >= 1"),
        ({"rate": -1}, "rate must be >= 0"),
        ({"burst": 0}, "burst must be >= 1"),
        ({"max_attempts": 0}, "max-attempts"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"endpoint": "ftp://x"}, "must start with http"),
        ({"shard": "3/2"}, "shard"),
        ({"log_format": "xml"}, "log-format"),
    ],
)
def test_bad_values_are_one_line_config_errors(flags: dict[str, object], fragment: str) -> None:
    """Each unusable setting is rejected with a message naming it."""
    with pytest.raises(ConfigError) as info:
        build_config({**BASE, **flags}, environ={})
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"concurrency": 2_000_000}, "concurrency must be <= 1024"),
        ({"burst": 10**6}, "burst must be <= 1000"),
        ({"max_attempts": 99999999999999999999}, "max-attempts must be <= 100"),
        ({"rate": float("inf")}, "rate must be a finite number"),
        ({"rate": float("nan")}, "rate must be a finite number"),
        ({"timeout": float("inf")}, "timeout must be a finite number"),
        ({"backoff_max": 10**9}, "backoff-max must be <= 3600"),
        ({"commit_seconds": 0}, "commit-seconds must be > 0"),
        ({"file_rows": 0}, "file-rows must be >= 1"),
    ],
)
def test_numbers_outside_their_documented_range_are_refused(
    flags: dict[str, object], fragment: str
) -> None:
    """Every numeric setting has a range; beyond it (or infinite, or NaN) is a one-line error."""
    with pytest.raises(ConfigError) as info:
        build_config({**BASE, **flags}, environ={})
    assert fragment in str(info.value)


def test_infinite_integer_in_a_config_file_is_a_config_error(tmp_path: Path) -> None:
    """``max_attempts = inf`` in TOML is a ConfigError naming the file, not an OverflowError."""
    toml = tmp_path / "c.toml"
    toml.write_text("max_attempts = inf\n")
    with pytest.raises(ConfigError, match="max_attempts"):
        build_config(BASE, config_path=str(toml), environ={})


def test_bad_environment_value_names_the_variable() -> None:
    """A non-numeric SWR_CONCURRENCY is reported with the variable's name."""
    with pytest.raises(ConfigError, match="SWR_CONCURRENCY"):
        build_config(BASE, environ={"SWR_CONCURRENCY": "many"})


def test_unknown_config_key_and_bad_toml_are_errors(tmp_path: Path) -> None:
    """A typo in the TOML file or broken TOML is an error, not silently ignored."""
    typo = tmp_path / "typo.toml"
    typo.write_text("concurency = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'concurency'"):
        build_config(BASE, config_path=str(typo), environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("rate = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config(BASE, config_path=str(broken), environ={})
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        build_config(BASE, config_path=str(tmp_path / "missing.toml"), environ={})


def test_region_gives_the_endpoint() -> None:
    """--region maps to the public endpoint, with the .eu exception."""
    config = build_config({"out": "o", "region": "cn-north-4"}, environ={})
    assert effective_endpoint(config) == "https://swr-api.cn-north-4.myhuaweicloud.com"
    assert endpoint_for_region("eu-west-101").endswith("myhuaweicloud.eu")
    with pytest.raises(ConfigError, match="no endpoint"):
        build_config({"out": "o"}, environ={})


def test_shard_parsing() -> None:
    """I/N parses to a pair and rejects out-of-range indexes."""
    assert parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "-1/2", "a/b", "1", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_public_dict_has_no_credential_field() -> None:
    """The config that run.json shows has no field that could hold a secret."""
    keys = set(CrawlConfig(out="o").as_public_dict())
    assert not {k for k in keys if any(s in k for s in ("token", "sk", "password", "secret"))}


def test_shipped_configs_load(tmp_path: Path) -> None:
    """Every TOML file under configs/ loads and validates."""
    files = sorted(CONFIGS.glob("*.toml"))
    assert files, "configs/ should ship TOML examples"
    for path in files:
        build_config(
            {"out": str(tmp_path), "endpoint": "http://h"}, config_path=str(path), environ={}
        )


def test_k8s_cronjob_is_consistent() -> None:
    """The shipped Indexed Job has completions == parallelism == SWR_SHARD_COUNT, takes
    credentials from a Secret, and its crawl arguments are valid for our CLI."""
    doc = yaml.safe_load((CONFIGS / "k8s-cronjob.yaml").read_text())
    job = doc["spec"]["jobTemplate"]["spec"]
    (container,) = job["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    shards = int(env["SWR_SHARD_COUNT"]["value"])
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == shards
    for secret in ("CLOUD_SDK_AK", "CLOUD_SDK_SK"):
        assert "secretKeyRef" in env[secret]["valueFrom"]
    args = container["args"]
    assert args[0] == "crawl"
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in args[1:] if "=" in arg)
    build_config({k.replace("-", "_"): v for k, v in flags.items()} | {"out": "o"}, environ={})


def test_default_toml_lists_every_setting_with_its_default() -> None:
    """configs/default.toml names every setting a file may hold (commented out when it has
    no default), and each value given equals the built-in default."""
    import tomllib

    text = (CONFIGS / "default.toml").read_text()
    table = tomllib.loads(text)["crawl"]
    for name, spec in FIELDS.items():
        if spec.metadata["per_run"]:
            continue
        assert name in table or f"# {name} = " in text, name
        if name in table:
            value = table[name]
            default = spec.default
            if name == "shard":
                default = "0/1"
            if isinstance(default, tuple):
                default = list(default)
            assert value == default, name
