"""Overhead of `asynclocal.hooks` and `asynclocal.debug` on asyncio workloads.

Run: ``.venv/bin/python benchmarks/bench_hooks.py [--quick] [--uvloop]``

Workloads (per operation):
  * task create+await: ``gather`` of 100 tasks that each ``await asyncio.sleep(0)``
    (two steps per task), in batches;
  * call_soon: callbacks scheduled with ``loop.call_soon`` and run by the loop;
  * executor job: ``loop.run_in_executor(None, int)`` round trips.

Configurations:
  * stdlib: a child process that never imports `asynclocal`, run once per repeat,
    interleaved with the others;
  * no hook: `asynclocal` imported, a hook enabled and disabled again (everything restored);
  * tracking: one hook without callbacks (ids and execution resources only);
  * empty hook: one hook with all five callbacks as no-op functions;
  * detector: `asynclocal.debug.enable()`, no hook.

Each figure is process CPU time (less sensitive to a loaded machine than wall
time), the minimum over interleaved repeats; ratios are against stdlib.
Peers: neither CPython nor any library we know of offers async lifecycle hooks
for asyncio, so there is no peer row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

Workload = Callable[[int], Coroutine[Any, Any, None]]


async def _child() -> None:
    await asyncio.sleep(0)


async def tasks(n: int) -> None:
    for _ in range(n // 100):
        await asyncio.gather(*[asyncio.create_task(_child()) for _ in range(100)])


async def call_soon(n: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = n

    def callback() -> None:
        nonlocal left
        left -= 1
        if not left:
            done.set_result(None)

    for _ in range(n):
        loop.call_soon(callback)
    await done


async def executor(n: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(n // 50):
        await asyncio.gather(*[loop.run_in_executor(None, int) for _ in range(50)])


WORKLOADS: dict[str, tuple[Workload, int]] = {
    "task create+await": (tasks, 20_000),
    "call_soon": (call_soon, 50_000),
    "executor job": (executor, 2_000),
}


def measure(workload: Workload, n: int, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> float:
    """Seconds per operation for one run of `workload` on a fresh loop."""
    loop = new_loop()
    try:
        loop.run_until_complete(workload(n // 10))  # warm up (and start the executor)
        start = time.process_time()
        loop.run_until_complete(workload(n))
        return (time.process_time() - start) / n
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def measure_all(
    sizes: dict[str, int], new_loop: Callable[[], asyncio.AbstractEventLoop]
) -> dict[str, float]:
    return {name: measure(WORKLOADS[name][0], n, new_loop) for name, n in sizes.items()}


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    if use_uvloop:
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop


def child(sizes: dict[str, int], use_uvloop: bool) -> None:
    """The stdlib baseline: this process never imports asynclocal."""
    result = measure_all(sizes, loop_factory(use_uvloop))
    assert "asynclocal" not in sys.modules
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller runs")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop loops")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        child(json.loads(opts.child), opts.uvloop)
        return
    repeat = 3 if opts.quick else 7
    scale = 0.2 if opts.quick else 1.0
    new_loop = loop_factory(opts.uvloop)
    sizes = {name: max(100, int(n * scale)) for name, (_, n) in WORKLOADS.items()}
    child_cmd = [sys.executable, __file__, "--child", json.dumps(sizes)]
    if opts.uvloop:
        child_cmd.append("--uvloop")

    from asynclocal import debug, hooks

    hooks.create_hook(init=lambda *a: None).enable().disable()
    assert not hooks.installed()

    def noop(*args: object) -> None:
        pass

    tracking = hooks.create_hook()
    empty = hooks.create_hook(
        init=noop, before=noop, after=noop, destroy=noop, promise_resolve=noop
    )
    configs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "no hook": (lambda: None, lambda: None),
        "tracking": (tracking.enable, tracking.disable),
        "empty hook": (empty.enable, empty.disable),
        "detector": (debug.enable, debug.disable),
    }

    stdlib: dict[str, float] = {}
    best: dict[tuple[str, str], float] = {}
    for _ in range(repeat):
        out = subprocess.run(child_cmd, capture_output=True, text=True, check=True).stdout
        for name, t in json.loads(out).items():
            stdlib[name] = min(stdlib.get(name, t), t)
        for config, (on, off) in configs.items():
            on()
            try:
                for name, t in measure_all(sizes, new_loop).items():
                    key = (config, name)
                    best[key] = min(best.get(key, t), t)
            finally:
                off()
    assert not hooks.installed()
    assert not debug.enabled()

    loop_name = "uvloop" if opts.uvloop else "asyncio"
    print(f"Python {platform.python_version()} on {platform.machine()}, {loop_name} loop")
    print(f"CPU time per operation, min of {repeat} interleaved repeats; ratio = config / stdlib")
    header = f"{'workload':<20}{'stdlib':>10}" + "".join(f"{c:>17}" for c in configs)
    print(header)
    print("-" * len(header))
    for name in WORKLOADS:
        base = stdlib[name]
        cells = "".join(
            f"{best[(c, name)] * 1e6:>9.2f}µs {best[(c, name)] / base:>4.2f}x" for c in configs
        )
        print(f"{name:<20}{base * 1e6:>8.2f}µs{cells}")


if __name__ == "__main__":
    main()
