"""Logging set-up: called once, by the CLI. Every other module only emits events.

On a terminal: structlog's console renderer. Otherwise (cron, pipelines):
one JSON object a line on stderr. Events are named ``crawl.*``/``auth.*``
with key/value fields.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=str).decode()


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write, so that a
    progress bar that redirects stderr keeps log lines above the bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    fmt: str = "auto", *, level: int = logging.INFO, stream: TextIO | None = None
) -> str:
    """Configure structlog for this process; returns the format chosen (json|console)."""
    tty = (stream or sys.stderr).isatty()
    if fmt == "auto":
        fmt = "console" if tty else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=tty)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_color_message,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    return fmt
