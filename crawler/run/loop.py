"""Which event loop a run gets: uvloop's where it is installed and wanted, else asyncio's.

uvloop (libuv under asyncio's interface) was expected to spend less CPU a request
than the standard loop; ``make bench`` (scenario ``cpu``, both in one run,
alternating) measured no gain for this crawler, so asyncio's loop is the default
and ``--uvloop`` / ``SWR_UVLOOP=true`` opts in. uvloop is an optional dependency
(``pip install 'swr-crawler[uvloop]'``); asked for but not installed, the run
is on asyncio's own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when ``use_uvloop`` and uvloop imports; None: asyncio's loop."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def backend_options(use_uvloop: bool) -> dict[str, Any]:
    """``anyio.run``'s ``backend_options`` for the loop :func:`loop_factory` picks."""
    factory = loop_factory(use_uvloop)
    return {} if factory is None else {"loop_factory": factory}
