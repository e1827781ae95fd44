"""Core overhead, measured against the raw standard library doing the same work.

Run: ``.venv/bin/python benchmarks/bench_core.py [--quick]``

Each row is the minimum over many short, interleaved ``timeit`` runs, for asynclocal and for the
stdlib baseline, inside a context that holds 1, 10 or 100 other context variables.
The ratio is ours / baseline; the target is the budget for that row.

The rows are measured twice: in this process, with the C accelerator (``asynclocal._speedups``)
when it is built, and in a subprocess with ``ASYNCLOCAL_PURE_PYTHON=1`` (the pure-Python
fallback); the table shows both ratios side by side.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextvars
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import timeit
from collections.abc import Callable
from typing import Any

from asynclocal import AsyncLocalStorage
from asynclocal._accel import PURE_PYTHON_ENV, SPEEDUPS
from asynclocal.threads import ThreadPoolExecutor as PropagatingThreadPoolExecutor

OTHER_VARS = (1, 10, 100)


def target(a: int, k: int = 0) -> int:
    return a + k


def _compare(
    ours: str, base: str, env: dict[str, Any], number: int, repeat: int
) -> tuple[float, float]:
    """Seconds per operation for both statements: min over `repeat` interleaved runs."""
    t_ours = timeit.Timer(ours, globals=env)
    t_base = timeit.Timer(base, globals=env)
    best_ours = best_base = float("inf")
    for _ in range(repeat):  # interleaved, so a noisy neighbour hits both alike
        best_ours = min(best_ours, t_ours.timeit(number))
        best_base = min(best_base, t_base.timeit(number))
    return best_ours / number, best_base / number


def wrapper_floor(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """The cheapest possible Python-level wrapper: one frame, *args/**kwargs forwarding."""
    return fn(*args, **kwargs)


Row = tuple[str, float, float, float | None]


_MANUAL = "t = raw.set(s)\ntry:\n    f({})\nfinally:\n    raw.reset(t)"

#: (name, our statement, the stdlib statement, target ratio or None)
STATEMENTS: list[tuple[str, str, str, float | None]] = [
    ("get_store() vs ContextVar.get()", "als.get_store()", "raw.get()", 1.1),
    ("run(s, f, 1) vs set/try/finally/reset", "als.run(s, f, 1)", _MANUAL.format("1"), 1.8),
    (
        "run(s, f, 1, k=2) vs set/try/finally/reset",
        "als.run(s, f, 1, k=2)",
        _MANUAL.format("1, k=2"),
        1.8,
    ),
    ("snapshot()(f, 1) vs Context.run(f, 1)", "runner(f, 1)", "ctx.run(f, 1)", 1.5),
    ("bind(f)(1) vs Context.run(f, 1)", "bound(1)", "ctx.run(f, 1)", 1.5),
    ("snapshot()(f, 1) vs ctx.copy().run(f, 1) [a]", "runner(f, 1)", "ctx.copy().run(f, 1)", None),
    ("floor: w(f, 1) vs f(1) [b]", "w(f, 1)", "f(1)", None),
]


def _env(others: int) -> dict[str, Any]:
    """Set `others` extra vars in the current context; the names the statements use."""
    for i in range(others):
        contextvars.ContextVar(f"other-{i}").set(i)
    als: AsyncLocalStorage[dict[str, int]] = AsyncLocalStorage(name="bench")
    raw: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("raw", default=None)
    store = {"id": 1}
    als.enter_with(store)
    raw.set(store)
    return {
        "als": als,
        "raw": raw,
        "s": store,
        "f": target,
        "runner": AsyncLocalStorage.snapshot(),
        "bound": AsyncLocalStorage.bind(target),
        "ctx": contextvars.copy_context(),
        "w": wrapper_floor,
    }


def _rows(others: int, scale: float, repeat: int) -> list[Row]:
    """Measure every row inside the current context (which holds `others` extra vars)."""
    env = _env(others)
    n = max(1000, int(5_000 * scale))
    rows: list[Row] = []

    def row(name: str, ours: str, base: str, budget: float | None, number: int = n) -> None:
        rows.append((name, *_compare(ours, base, env, number, repeat), budget))

    for statement in STATEMENTS:
        row(*statement)

    jobs = max(50, int(200 * scale))
    plain = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    ours = PropagatingThreadPoolExecutor(max_workers=1)
    env.update(plain=plain, ours=ours, wait=concurrent.futures.wait, jobs=jobs)
    try:
        row(
            f"ThreadPoolExecutor: {jobs} x submit, then wait",
            "wait([ours.submit(f, 1) for _ in range(jobs)])",
            "wait([plain.submit(f, 1) for _ in range(jobs)])",
            1.2,
            number=1,
        )
    finally:
        plain.shutdown()
        ours.shutdown()
    return rows


def measure(
    scale: float = 1.0, repeat: int = 60
) -> list[tuple[int, str, float, float, float | None]]:
    """Every row for every count of other context variables."""
    table: list[tuple[int, str, float, float, float | None]] = []
    for others in OTHER_VARS:
        rows = contextvars.Context().run(_rows, others, scale, repeat)
        table.extend((others, *r) for r in rows)
    return table


Table = list[tuple[int, str, float, float, float | None]]


def measure_pure(quick: bool, repeat: int) -> Table | None:
    """The same table from a subprocess running the pure-Python fallback (None if it fails)."""
    argv = [sys.executable, os.path.abspath(__file__), "--json", "--repeat", str(repeat)]
    if quick:
        argv.append("--quick")
    env = {**os.environ, PURE_PYTHON_ENV: "1"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        print(f"pure-Python run failed:\n{proc.stderr}", file=sys.stderr)
        return None
    return [tuple(row) for row in json.loads(proc.stdout)]  # type: ignore[misc]


# -- instruction counts (valgrind): deterministic, unlike timings on a shared machine ----

INSTR_LOOPS = 2_000


def _instructions_child(loops: int) -> None:
    """Under callgrind: each loop is run once to warm up, then once between two markers.

    ``--dump-before=getppid`` dumps (and zeroes) the counters at each `os.getppid()`, so
    every second dump holds exactly one measured loop. An empty loop is measured too and
    subtracted, which leaves the instructions of one statement.
    """

    def body() -> None:
        env = _env(1)
        for _name, ours, base, _budget in STATEMENTS:
            for stmt in ("pass", ours, base):
                src = f"for _ in range({loops}):\n" + "".join(
                    f"    {line}\n" for line in stmt.splitlines()
                )
                code = compile(src, "<bench>", "exec")
                exec(code, env)  # warm-up: lets the interpreter specialise
                os.getppid()
                exec(code, env)
                os.getppid()

    contextvars.Context().run(body)


def measure_instructions(pure: bool) -> list[tuple[str, float, float]] | None:
    """(name, our instructions, stdlib instructions) per statement, or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    env = {**os.environ, PURE_PYTHON_ENV: "1" if pure else "0"}
    with tempfile.TemporaryDirectory() as tmp:
        argv = [
            valgrind,
            "--tool=callgrind",
            "--dump-before=getppid",
            f"--callgrind-out-file={tmp}/cg.%p",
            sys.executable,
            os.path.abspath(__file__),
            "--instructions-child",
        ]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            print(f"valgrind run failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        dumps = sorted(
            (int(m.group(1)), path)
            for path in os.listdir(tmp)
            if (m := re.fullmatch(r"cg\.\d+\.(\d+)", path))
        )
        totals = []
        for _, path in dumps[1::2]:  # the measured loops
            with open(os.path.join(tmp, path)) as fh:
                found = re.search(r"^totals: (\d+)", fh.read(), re.M)
            totals.append(int(found.group(1)) if found else 0)
    if len(totals) != 3 * len(STATEMENTS):
        print(f"valgrind: expected {3 * len(STATEMENTS)} dumps, got {len(totals)}", file=sys.stderr)
        return None
    rows = []
    for i, (name, *_rest) in enumerate(STATEMENTS):
        empty, ours, base = totals[3 * i : 3 * i + 3]
        rows.append((name, (ours - empty) / INSTR_LOOPS, (base - empty) / INSTR_LOOPS))
    return rows


def render_instructions(
    accel: list[tuple[str, float, float]] | None, pure: list[tuple[str, float, float]] | None
) -> str:
    lines = [
        "",
        "Instructions per operation (valgrind --tool=callgrind, 1 other var; noise-free):",
        f"{'operation (ours vs stdlib)':<46} {'C':>7} {'pure':>7} {'stdlib':>7} "
        f"{'C':>6} {'pure':>6}",
    ]
    lines.append("-" * len(lines[-1]))
    main = accel or pure or []
    for i, (name, _ours, base) in enumerate(main):
        c = accel[i][1] if accel else float("nan")
        p = pure[i][1] if pure else float("nan")
        lines.append(
            f"{name:<46} {c:>7.0f} {p:>7.0f} {base:>7.0f} {c / base:>5.2f}x {p / base:>5.2f}x"
        )
    return "\n".join(lines)


def render(table: Table, pure: Table | None = None) -> str:
    impl = "C accelerator" if SPEEDUPS else "pure Python"
    head = (
        f"{'operation (ours vs stdlib)':<46} {'others':>6} {'ours':>9} {'stdlib':>9} "
        f"{'ratio':>6} {'pure':>6} {'target':>7}"
    )
    lines = [f"ours = {impl}; pure = the pure-Python fallback, measured in a subprocess", head]
    lines.append("-" * len(head))
    for i, (others, name, ours, base, budget) in enumerate(table):
        ratio = ours / base
        verdict = "" if budget is None else (" ok" if ratio <= budget else " MISS")
        target_text = "-" if budget is None else f"<={budget:.1f}x"
        pure_text = "-"
        if pure is not None and i < len(pure):
            pure_text = f"{pure[i][2] / pure[i][3]:>5.2f}x"
        lines.append(
            f"{name:<46} {others:>6} {ours * 1e9:>7.0f}ns {base * 1e9:>7.0f}ns "
            f"{ratio:>5.2f}x {pure_text:>6} {target_text:>7}{verdict}"
        )
    lines += [
        "others: how many other context variables are set in the context.",
        "[a] the same guarantee as a snapshot (a fresh copy per call, re-entrant, thread-safe).",
        "[b] reference: what one Python frame forwarding *args/**kwargs costs on this machine.",
        f"python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None, out: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer loops (a rough look)")
    parser.add_argument(
        "--repeat", type=int, default=60, help="timing runs per row; the minimum is kept"
    )
    parser.add_argument(
        "--no-pure", action="store_true", help="skip the pure-Python run in a subprocess"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per operation with valgrind (if installed; ~1 minute)",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instructions-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instructions_child:
        _instructions_child(INSTR_LOOPS)
        return 0
    repeat = 10 if args.quick else args.repeat
    table = measure(scale=0.2 if args.quick else 1.0, repeat=repeat)
    if args.json:
        out(json.dumps(table))
        return 0
    pure = None if args.no_pure or not SPEEDUPS else measure_pure(args.quick, args.repeat)
    out(render(table, pure))
    if args.instructions:
        if shutil.which("valgrind") is None:
            out("(--instructions: valgrind is not installed; skipped)")
        else:
            accel = measure_instructions(pure=False) if SPEEDUPS else None
            out(render_instructions(accel, measure_instructions(pure=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
