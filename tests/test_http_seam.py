"""The HTTP seam holds: only the sandbox (a server) imports aiohttp, the transport is the one
module that opens connections, the http package has no import cycle, the pure plan imports
no HTTP code, and the pool and the IAM login share the one transport."""

from __future__ import annotations

import ast
from pathlib import Path

import crawler

PACKAGE = Path(crawler.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_no_module_outside_the_sandbox_imports_aiohttp() -> None:
    """The crawler speaks HTTP itself (crawler.http.transport and h1): aiohttp and yarl are
    imported by the sandbox's server only."""
    importers = {
        name
        for name, imported in MODULES.items()
        if any(i == "aiohttp" or i.startswith(("aiohttp.", "yarl")) for i in imported)
    }
    assert importers
    assert {name for name in importers if not name.startswith("crawler.sandbox")} == set()


def test_only_the_transport_opens_connections() -> None:
    """No crawler module outside the sandbox but the transport opens a socket or a connection."""
    openers = {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(
            call in path.read_text(encoding="utf-8")
            for call in ("create_connection(", "open_connection(", "socket.socket(")
        )
        and "sandbox" not in path.parts
    }
    assert openers == {"crawler/http/transport.py"}


def reached(start: str) -> set[str]:
    """The crawler modules importing ``start`` imports, directly or not (itself included)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        todo += [i for i in MODULES[name] if i.startswith("crawler")]
    return seen


def test_importing_the_pool_does_not_import_aiohttp() -> None:
    """No crawler module the pool imports, directly or not, imports aiohttp."""
    seen = reached("crawler.crawl.pool")
    assert "crawler.crawl.pool" in seen
    assert sorted(name for name in seen if "aiohttp" in MODULES[name]) == []


def test_the_plan_imports_no_http_code() -> None:
    """crawler.crawl.plan is pure: no module it imports, directly or not, is crawler.http's."""
    seen = reached("crawler.crawl.plan")
    assert "crawler.crawl.paging" in seen
    assert sorted(name for name in seen if name.startswith("crawler.http")) == []


def test_the_http_package_has_no_import_cycle() -> None:
    """crawler.http's modules import each other in one direction only (lazy imports included)."""
    http = {
        name: {i for i in imported if i in MODULES and i.startswith("crawler.http.")}
        for name, imported in MODULES.items()
        if name.startswith("crawler.http.")
    }

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in http.get(start, set()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(name for name in http if reaches(name, name, {name}))
    assert cycles == []
