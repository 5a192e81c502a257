"""``make bench`` = ``python -m bench``: swr-crawler against the official SDK and the ceiling.

Options: ``--quick`` (smaller catalogues, one run), ``--scenario NAME``
(repeatable: cpu, latency, rate, one-off, converge, converge-blind, startup, memory, inventory),
``--runs N``,
``--contenders a,b``, ``--out FILE``. Writes JSON (``bench/results/latest.json`` for a full run,
``bench/results/quick.json`` otherwise) and prints a table.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

import crawler
from bench.inventory import Inventory, inventory_scenario, run_inventory
from bench.scenarios import (
    CONTENDERS,
    Memory,
    Scenario,
    Startup,
    Throughput,
    figures,
    run_memory,
    run_startup,
    run_throughput,
    scenarios,
)

RESULTS = Path(__file__).parent / "results"


def byte_compile() -> None:
    """Byte-compile the crawler and the bench's contenders, as installing a wheel does.

    Where PYTHONDONTWRITEBYTECODE is set (this machine's environment does), an editable
    install never caches bytecode, so every spawned crawler would compile each module
    from source again: 40% more instructions to the first request, measured, a cost
    no installed user pays and that only ours would (the SDKs are installed compiled).
    """
    for package in (Path(crawler.__file__).parent, Path(__file__).parent):
        compileall.compile_dir(package, quiet=1)


def machine() -> dict[str, Any]:
    """Where the figures come from."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def table(results: dict[str, Any]) -> str:
    """The results as a plain-text table, then the figures against their targets."""
    lines = [
        f"{'scenario':10s} {'contender':12s} {'rows/s':>8s} {'CPU s/10k':>9s} "
        f"{'peak RSS MB':>11s} {'429s':>6s} {'sandbox core':>12s}"
    ]
    verdicts = []
    for name, scenario in results["scenarios"].items():
        for contender, summary in scenario.get("contenders", {}).items():
            lines.append(
                f"{name:10s} {contender:12s} {summary['rows_per_second']:8.0f} "
                f"{summary['cpu_per_10k_rows']:9.2f} {summary['peak_rss_mb']:11.0f} "
                f"{summary['throttled_429']:6.0f} {summary['sandbox_core_share']:11.0%}"
            )
        for label, run in scenario.get("runs", {}).items() if name == "inventory" else ():
            lines.append(
                f"{name:10s} {label:16s} {run['rows']:7,} rows {run['requests']:7,} requests "
                f"{run['wall']:8.1f} s {run['peak_rss_mb']:4.0f} MB {run['throttled_429']} 429s"
            )
        for size, summary in scenario.get("sizes", {}).items():
            lines.append(
                f"{name:10s} {int(size):>12,} {summary['rows_per_second']:8.0f} "
                f"{summary['cpu_per_10k_rows']:9.2f} {summary['peak_rss_mb']:11.0f} "
                f"{summary['throttled_429']:6.0f} {'':>12s}"
            )
        for figure in scenario["figures"]:
            if figure["target"] is None:
                verdict = "(for reference)"
            else:
                mark = "met" if figure["met"] else "NOT MET"
                verdict = f"target {figure['target']:g}  {mark}"
            verdicts.append(f"{name:10s} {figure['figure']:42s} {figure['value']:8.2f}  {verdict}")
    return "\n".join([*lines, "", *verdicts])


def refigure(path: Path) -> None:
    """Recompute the figures of a results file (after the figures code changed)."""
    results = orjson.loads(path.read_bytes())
    for name, scenario in results["scenarios"].items():
        if "contenders" in scenario:
            spec = next(s for s in scenarios(results["quick"]) if s.name == name)
            assert isinstance(spec, Throughput)
            scenario["figures"] = figures(spec, scenario["contenders"])
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(results))


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios and report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="Smaller catalogues, one run.")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=[*(s.name for s in scenarios(quick=False)), "inventory"],
        help="Run only these (repeatable).",
    )
    parser.add_argument("--runs", type=int, default=None, help="Alternating runs [3; quick 1].")
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"Comma-separated subset of {','.join(CONTENDERS)}.",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results file.")
    parser.add_argument(
        "--refigure",
        type=Path,
        metavar="JSON",
        help="Only recompute the figures of a results file.",
    )
    args = parser.parse_args(argv)
    if args.refigure:
        refigure(args.refigure)
        return 0
    runs = args.runs or (1 if args.quick else 3)
    contenders = tuple(c for c in args.contenders.split(",") if c)
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    every: list[Scenario | Inventory] = [*scenarios(args.quick), inventory_scenario(args.quick)]
    selected = [s for s in every if not args.scenario or s.name in args.scenario]
    full = not args.quick and not args.scenario and set(contenders) == set(CONTENDERS)
    out = args.out or RESULTS / ("latest.json" if full else "quick.json")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    byte_compile()
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": args.quick,
        "runs": runs,
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="swr-bench-") as tmp:
        for scenario in selected:
            say(f"{scenario.name}: {scenario.title}")
            if isinstance(scenario, Throughput):
                outcome = run_throughput(scenario, Path(tmp), runs, contenders, say)
            elif isinstance(scenario, Startup):
                outcome = run_startup(scenario, Path(tmp), runs, say)
            elif isinstance(scenario, Inventory):
                # Once: request counts do not vary, and detail mode takes ~17 minutes.
                outcome = run_inventory(scenario, Path(tmp), say)
            else:
                assert isinstance(scenario, Memory)
                # Once: peak RSS is not noisy, and a million targets take minutes.
                outcome = run_memory(scenario, Path(tmp), 1, say)
            results["scenarios"][scenario.name] = outcome
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(table(results))
    print(f"\n{results['machine']['cpu_model']}, {results['machine']['nproc']} cores, ", end="")
    print(f"Python {results['machine']['python']}; {results['bench_seconds']:.0f}s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
