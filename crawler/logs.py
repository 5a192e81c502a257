"""Logging set-up: called once, by the CLI. Every other module only emits events.

On a terminal: structlog's console renderer. Otherwise (cron, pipelines):
one JSON object a line on stderr. Events are named ``crawl.*``/``auth.*``
with key/value fields.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Final, TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=str).decode()


def _drop_color_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


#: C0 and C1 control characters and DEL: what a terminal would act on (ESC, BEL, CR...).
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(text: str) -> str:
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def escape_control_characters(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Show control characters in text values as ``\\xNN``: a console line must not
    carry a target file's ESC sequences, BELs or CRs to the terminal as they are."""
    for key, value in event_dict.items():
        if isinstance(value, str) and _CONTROL_RE.search(value):
            event_dict[key] = _escape(value)
    return event_dict


class LogOutputLost(Exception):
    """The log stream cannot be written any more (its reader went away, e.g. ``| head``)."""


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write, so that a
    progress bar that redirects stderr keeps log lines above the bar.

    The first write that fails raises :class:`LogOutputLost`, so that the run
    records why it stopped; every later log line is dropped (there is nowhere
    left to write it).
    """

    def __init__(self) -> None:
        self.lost = False

    def write(self, text: str) -> int:
        if self.lost:
            return 0
        try:
            return sys.stderr.write(text)
        except OSError as exc:
            self._lose(exc)
        return 0

    def flush(self) -> None:
        if self.lost:
            return
        try:
            sys.stderr.flush()
        except OSError as exc:
            self._lose(exc)

    def _lose(self, exc: OSError) -> None:
        self.lost = True
        raise LogOutputLost(f"cannot write the log: {exc.strerror or exc}") from None


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
        # structlog's default console traceback is rich's, which prints every frame's
        # local variables (a token, an SK): a plain traceback names no value.
        renderer = structlog.dev.ConsoleRenderer(
            colors=tty, exception_formatter=structlog.dev.plain_traceback
        )
    # JSON escapes control characters itself; the console needs it done.
    escaping = [escape_control_characters] if fmt != "json" else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_color_message,
            *escaping,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    return fmt
