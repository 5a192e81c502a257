"""Run counters: mutated on the hot path (plain ints), read by progress and run.json."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RunStats:
    """What happened so far in this process."""

    targets: int = 0
    """Distinct targets taken from the input (valid and invalid)."""
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    """Input lines dropped because the same target came before."""
    skipped_resume: int = 0
    """Targets already recorded by an earlier run into the same output."""
    skipped_shard: int = 0
    """Targets that belong to another shard."""
    requests: int = 0
    """HTTP requests sent, every API together."""
    requests_by_api: Counter[str] = field(default_factory=Counter)
    """HTTP requests sent per API: namespaces, repositories, tag_pages, tag_details."""
    responses: Counter[tuple[str, str]] = field(default_factory=Counter)
    """HTTP requests sent per (API, HTTP status); the status is ``error`` when no answer came."""
    retries: int = 0
    throttled: int = 0
    """HTTP 429 answers."""
    in_flight: int = 0
    discovery: dict[str, Any] | None = None
    """What registry discovery did (--discover only)."""
    plan: dict[str, int] | None = None
    """What a planned crawl of a targets file did (--mode auto only)."""

    def count_requests(self, api: str, sent: int, code: str) -> None:
        """``sent`` more HTTP requests went to ``api``; the last one ended in ``code``.

        Only a credential renewed after a 401 sends two: the first was answered 401.
        """
        self.requests += sent
        if sent:
            self.requests_by_api[api] += sent
            self.responses[api, code] += 1
            if sent > 1:
                self.responses[api, "401"] += sent - 1

    @property
    def done(self) -> int:
        """Targets that have a row."""
        return self.ok + sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        """The counts for run.json."""
        return {
            "targets": self.targets,
            "ok": self.ok,
            "errors": {str(kind): n for kind, n in sorted(self.errors.items())},
            "errors_total": sum(self.errors.values()),
            "duplicates_dropped": self.duplicates,
            "skipped_resume": self.skipped_resume,
            "skipped_shard": self.skipped_shard,
            "requests": self.requests,
            "requests_by_api": dict(sorted(self.requests_by_api.items())),
            "retries": self.retries,
            "throttled_429": self.throttled,
            **({"discovery": self.discovery} if self.discovery is not None else {}),
            **({"plan": self.plan} if self.plan is not None else {}),
        }
