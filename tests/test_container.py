"""The Dockerfile and configs/k8s-cronjob.yaml agree (the image cannot be built here)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from crawler.cli import cli
from crawler.config import FIELDS, env_name
from crawler.http import credentials

ROOT = Path(__file__).resolve().parent.parent


def instructions(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's (INSTRUCTION, arguments), continuations joined, comments dropped."""
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    return steps[starts[-1] :]


def cronjob_container() -> tuple[dict[str, Any], dict[str, Any]]:
    doc = yaml.safe_load((ROOT / "configs" / "k8s-cronjob.yaml").read_text())
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


DOCKERFILE = (ROOT / "Dockerfile").read_text()
STEPS = instructions(DOCKERFILE)
FINAL = final_stage(STEPS)


def test_final_image_is_slim_python_meeting_requires_python() -> None:
    """The runtime stage is a python:X.Y-slim image with X.Y allowed by pyproject."""
    image = FINAL[0][1].split()[0]
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", image)
    assert match, image
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(p) for p in project["requires-python"].removeprefix(">=").split("."))
    assert (int(match[1]), int(match[2])) >= minimum


def test_runs_as_the_non_root_user_the_cronjob_expects() -> None:
    """USER is a numeric non-root uid, the same as the pod's runAsUser/fsGroup."""
    users = [args for word, args in FINAL if word == "USER"]
    assert users, "the image must not run as root"
    uid, _, gid = users[-1].partition(":")
    pod, _ = cronjob_container()
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert int(uid) != 0
    assert int(uid) == security["runAsUser"]
    assert int(gid) == security["fsGroup"]


def test_entrypoint_is_the_console_script_and_the_args_are_a_command() -> None:
    """ENTRYPOINT is swr-crawler (the project's script); the CronJob's args start with a
    command that CLI has."""
    (entrypoint,) = [json.loads(args) for word, args in FINAL if word == "ENTRYPOINT"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert entrypoint == ["swr-crawler"]
    assert "swr-crawler" in project["scripts"]
    _, container = cronjob_container()
    assert "command" not in container  # the entrypoint is used as it is
    assert container["args"][0] in cli.list_commands(None)  # type: ignore[arg-type]


def test_only_runtime_dependencies_are_installed() -> None:
    """The image installs the project's wheel, never its dev extra or test tools."""
    runs = " ".join(args for word, args in STEPS if word == "RUN")
    assert "pip wheel" in runs
    assert "pip install" in runs
    assert "[dev]" not in runs
    for tool in ("pytest", "hypothesis", "mypy", "ruff", "duckdb", "huaweicloudsdk"):
        assert tool not in runs


def test_what_the_image_copies_exists_and_is_not_ignored() -> None:
    """Every COPY source is in the repository and let through by .dockerignore."""
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    sources = [
        src
        for word, args in STEPS
        if word == "COPY" and "--from=" not in args
        for src in args.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert src.rstrip("/") in allowed, src


def test_the_cronjob_names_the_image_the_dockerfile_builds() -> None:
    """The CronJob's image is the tag the Dockerfile's build instructions give."""
    _, container = cronjob_container()
    tags = re.findall(r"docker build -t (\S+) \.", DOCKERFILE)
    assert tags == [container["image"]]
    assert f"docker build -t {container['image']} ." in (ROOT / "README.md").read_text()


def test_the_cronjob_sets_only_variables_the_crawler_reads() -> None:
    """Each env name in the CronJob is a credential, a SWR_<setting>, SWR_SHARD_COUNT, or
    a variable its args use as $(NAME)."""
    _, container = cronjob_container()
    known = {env_name(name) for name in FIELDS} | {"SWR_SHARD_COUNT"}
    known |= set(credentials.CREDENTIAL_VARIABLES)
    used_in_args = set(re.findall(r"\$\((\w+)\)", " ".join(container["args"])))
    for variable in container["env"]:
        name = variable["name"]
        assert name in known or name in used_in_args, name
