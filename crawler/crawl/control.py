"""The run's stop switch, shared by every task of a crawl."""

from __future__ import annotations

import anyio


class RunControl:
    """Shared stop switch: set by a signal or by an authentication failure."""

    def __init__(self) -> None:
        self.stop_reason: str | None = None
        self._stopped = anyio.Event()
        self._scopes: list[anyio.CancelScope] = []

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

    def cancel_on_stop(self, scope: anyio.CancelScope) -> anyio.CancelScope:
        """Have a stop cancel ``scope`` (for waits that must not outlast a stop)."""
        self._scopes.append(scope)
        if self.stopping():
            scope.cancel()
        return scope

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when a stop is asked for."""
        with anyio.move_on_after(seconds):
            await self._stopped.wait()
