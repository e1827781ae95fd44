"""`python -m asynclocal demo | bench`."""

from __future__ import annotations

import argparse
import runpy
import sys
import time
from pathlib import Path
from typing import TextIO

from ._base import PhaseResult, Progress, phases


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    names = [p.name for p in phases()]
    parser = argparse.ArgumentParser(
        prog="python -m asynclocal",
        description="asynclocal: request-scoped context with Node.js AsyncLocalStorage semantics",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="simulate a burst of concurrent requests and check every store read",
        description="Phases: " + "; ".join(f"{p.name}: {p.description}" for p in phases()),
    )
    demo.add_argument("--requests", type=_positive, default=3000, help="requests per phase")
    demo.add_argument(
        "--phases",
        default=",".join(names),
        help=f"comma-separated phases to run (default: all of {','.join(names)})",
    )
    demo.add_argument("--seed", type=int, default=2, help="seed for the random delays")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    bench = sub.add_parser("bench", help="run benchmarks/bench_core.py (needs a source checkout)")
    bench.add_argument("--quick", action="store_true", help="fewer loops (a rough look)")
    return parser


def run_demo(
    requests: int, names: list[str], seed: int, progress: bool, out: TextIO
) -> list[PhaseResult]:
    """Run the named phases in order and return their results."""
    results: list[PhaseResult] = []
    for phase in phases():
        if phase.name not in names:
            continue
        reason = phase.unavailable()
        if reason is not None:
            results.append(PhaseResult(phase.name, 0, 0, (), 0.0, f"skipped: {reason}"))
            continue
        bar = Progress(phase.name, requests, enabled=progress)
        started = time.perf_counter()
        tally, note = phase.run(requests, seed, bar)
        seconds = time.perf_counter() - started
        bar.finish()
        results.append(
            PhaseResult(phase.name, requests, tally.checks, tuple(tally.mixups), seconds, note)
        )
    return results


def render(results: list[PhaseResult]) -> str:
    head = f"{'phase':<10} {'requests':>9} {'reads checked':>14} {'mix-ups':>8} {'time':>8}  notes"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<10} {r.requests:>9} {r.checks:>14} {len(r.mixups):>8} "
            f"{r.seconds:>7.2f}s  {r.note}"
        )
    total = PhaseResult(
        "total",
        sum(r.requests for r in results),
        sum(r.checks for r in results),
        tuple(m for r in results for m in r.mixups),
        sum(r.seconds for r in results),
    )
    lines.append("-" * len(head))
    lines.append(
        f"{total.name:<10} {total.requests:>9} {total.checks:>14} {len(total.mixups):>8} "
        f"{total.seconds:>7.2f}s"
    )
    return "\n".join(lines)


def _bench(quick: bool) -> int:
    here = Path(__file__).resolve()
    candidates = [Path.cwd() / "benchmarks" / "bench_core.py"]
    candidates += [parent / "benchmarks" / "bench_core.py" for parent in here.parents[:4]]
    for script in candidates:
        if script.is_file():
            sys.argv = [str(script), *(["--quick"] if quick else [])]
            runpy.run_path(str(script), run_name="__main__")
            return 0
    print(
        "benchmarks/bench_core.py not found: run `python -m asynclocal bench` from a source "
        "checkout of asynclocal",
        file=sys.stderr,
    )
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (1 when any mix-up was seen)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args.quick)
    known = [p.name for p in phases()]
    names = [n.strip() for n in args.phases.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        parser.error(f"unknown phase(s) {', '.join(unknown) or '(none given)'}; pick from {known}")
    print(
        f"asynclocal demo: {args.requests} concurrent requests per phase, "
        "each checking every store read against its own request",
        flush=True,
    )
    results = run_demo(args.requests, names, args.seed, not args.no_progress, sys.stdout)
    print(render(results))
    mixups = [m for r in results for m in r.mixups]
    if mixups:
        print(f"FAILED: {len(mixups)} mix-up(s); first ones:", file=sys.stderr)
        for m in mixups[:10]:
            print(f"  {m}", file=sys.stderr)
        return 1
    print("OK: zero mix-ups")
    return 0
