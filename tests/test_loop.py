"""The event loop a run gets: uvloop's where installed and wanted, asyncio's otherwise."""

from __future__ import annotations

import asyncio
import sys

import anyio
import pytest
import uvloop

from crawler.config import build_config
from crawler.run.loop import backend_options, loop_factory


def test_asyncio_is_the_default_loop() -> None:
    """The default configuration runs on asyncio's own loop (uvloop measured no gain)."""
    config = build_config({"targets": "t", "out": "o", "region": "cn-north-4"}, environ={})
    assert config.uvloop is False
    assert loop_factory(config.uvloop) is None
    assert backend_options(config.uvloop) == {}


def test_the_switch_turns_uvloop_on() -> None:
    """--uvloop and SWR_UVLOOP=true both mean uvloop's loop factory."""
    from_flag = build_config(
        {"targets": "t", "out": "o", "region": "cn-north-4", "uvloop": True}, environ={}
    )
    assert from_flag.uvloop is True
    from_env = build_config(
        {"targets": "t", "out": "o", "region": "cn-north-4"}, environ={"SWR_UVLOOP": "true"}
    )
    assert from_env.uvloop is True
    assert loop_factory(True) is uvloop.new_event_loop


def test_without_uvloop_installed_the_run_falls_back_to_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvloop wanted but not importable: asyncio's loop, no error."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` raise ImportError
    assert loop_factory(True) is None
    assert backend_options(True) == {}


@pytest.mark.parametrize(("use_uvloop", "module"), [(True, "uvloop"), (False, "asyncio")])
def test_anyio_runs_on_the_loop_chosen(use_uvloop: bool, module: str) -> None:
    """anyio.run with these options really runs the coroutine on that loop."""

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert anyio.run(loop_module, backend_options=backend_options(use_uvloop)) == module
