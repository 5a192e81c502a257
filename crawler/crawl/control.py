"""The run's one stop switch, shared by every task of a crawl."""

from __future__ import annotations

import anyio

#: A run whose first this many requests in a row got no answer at all (connection
#: refused or reset, timed out) stops: the endpoint is down or wrong, and spending
#: every attempt of every target on it would only take long.
UNREACHABLE_AFTER = 20
UNREACHABLE = "endpoint unreachable"


class RunControl:
    """The run's one stop switch, with the reason it was thrown.

    :meth:`stop` asks every task to stop taking work (a signal, a refused
    credential); requests in flight may finish. :meth:`halt` stops at once (a
    second signal, an output that cannot be written, an unexpected error):
    scopes given to :meth:`cancel_on_halt` are cancelled. The first reason
    wins, except that a halt's reason replaces a graceful stop's: the run did
    not get to stop gracefully.
    """

    def __init__(self, unreachable_after: int = UNREACHABLE_AFTER) -> None:
        self.stop_reason: str | None = None
        self.halted = False
        self._unreachable_after = unreachable_after
        self._unanswered = 0
        self._answered = False
        self._stopped = anyio.Event()
        self._scopes: list[anyio.CancelScope] = []
        self._halt_scopes: list[anyio.CancelScope] = []

    def note_request(self, answered: bool) -> None:
        """One request ended, with an HTTP answer or without: the dead-endpoint check.

        Only the start of a run counts: once any answer came, a later outage is
        the retries' business.
        """
        if self._answered:
            return
        if answered:
            self._answered = True
            return
        self._unanswered += 1
        if self._unanswered >= self._unreachable_after:
            self.stop(UNREACHABLE)

    def stopping(self) -> bool:
        """True once a stop was asked for: take no new target, send no new request."""
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Ask every task to stop taking work (the first reason wins)."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stopped.set()
            for scope in self._scopes:
                scope.cancel()

    def halt(self, reason: str) -> None:
        """Stop at once: cancel the scopes given to :meth:`cancel_on_halt`."""
        if not self.halted:
            self.halted = True
            self.stop_reason = None
            self.stop(reason)
            for scope in self._halt_scopes:
                scope.cancel()

    def cancel_on_stop(self, scope: anyio.CancelScope) -> anyio.CancelScope:
        """Have a stop cancel ``scope`` (for waits that must not outlast a stop)."""
        self._scopes.append(scope)
        if self.stopping():
            scope.cancel()
        return scope

    def cancel_on_halt(self, scope: anyio.CancelScope) -> anyio.CancelScope:
        """Have a halt cancel ``scope`` (work that must not outlast a halt)."""
        self._halt_scopes.append(scope)
        if self.halted:
            scope.cancel()
        return scope

    async def wait(self) -> None:
        """Return once a stop was asked for."""
        await self._stopped.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is asked for."""
        with anyio.move_on_after(seconds):
            await self._stopped.wait()
