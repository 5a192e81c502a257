"""The sandbox: a local SWR look-alike for the demo, the end-to-end tests and the benchmarks.

In-process::

    async with running_sandbox(SandboxConfig(faults=FaultConfig(error_rate=0.1))) as sandbox:
        ...  # crawl sandbox.url with X-Auth-Token "sandbox-token"; read sandbox.stats

As a process: ``swr-crawler sandbox --port 0`` prints
``sandbox listening on http://HOST:PORT`` on its first line of stdout.
"""

from crawler.sandbox.auth import IamUser
from crawler.sandbox.catalogue import Catalogue
from crawler.sandbox.faults import Action, FaultConfig, parse_action
from crawler.sandbox.server import (
    DEFAULT_TOKEN,
    RunningSandbox,
    SandboxConfig,
    Stats,
    create_app,
    running_sandbox,
    sandbox_in_thread,
)

__all__ = [
    "DEFAULT_TOKEN",
    "Action",
    "Catalogue",
    "FaultConfig",
    "IamUser",
    "RunningSandbox",
    "SandboxConfig",
    "Stats",
    "create_app",
    "parse_action",
    "running_sandbox",
    "sandbox_in_thread",
]
