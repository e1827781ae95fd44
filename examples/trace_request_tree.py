"""Log the async tree of one request: which task spawned which, and how long each step took.

asyncio alone cannot tell you that `render` ran in a thread started by
`handle_request`, or that `fetch_orders` fanned out into three tasks that each
waited on a timer. A hook sees every resource being created (with the id of
its creator) and every step it runs, so a few lines turn that into a tree::

    python examples/trace_request_tree.py

    Task handle_request  steps=3  busy=0.47ms
    ├── Task fetch_user  steps=2  busy=0.05ms
    │   ├── Future
    │   └── Timeout _set_result_unless_cancelled  steps=1  busy=0.02ms
    ├── Task fetch_orders  steps=2  busy=0.06ms
    │   ├── Task fetch_order  steps=2  busy=0.04ms
    │   │   ├── Future
    │   │   └── Timeout _set_result_unless_cancelled  steps=1  busy=0.03ms
    │   ...
    ├── Executor render  steps=1  busy=0.00ms
    └── Future
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from asynclocal import hooks


@dataclass
class Node:
    label: str
    trigger: int
    children: list[int] = field(default_factory=list)
    steps: int = 0
    busy: float = 0.0


class TreeTracer:
    """Records the resource tree and the time spent in each resource's steps."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self._started: dict[int, list[float]] = defaultdict(list)  # per thread: step starts
        self._lock = threading.Lock()
        self.hook = hooks.create_hook(init=self.init, before=self.before, after=self.after)

    def init(self, async_id: int, type: str, trigger: int, resource: Any) -> None:
        if type == "Task":
            label = f"Task {resource.get_coro().__qualname__}"
        elif isinstance(resource, hooks.CallbackResource):
            label = f"{type} {getattr(resource.callback, '__qualname__', resource.callback)}"
        else:
            label = type
        with self._lock:
            self.nodes[async_id] = Node(label, trigger)
            if trigger in self.nodes:
                self.nodes[trigger].children.append(async_id)

    def before(self, async_id: int) -> None:
        self._started[threading.get_ident()].append(time.perf_counter())

    def after(self, async_id: int) -> None:
        spent = time.perf_counter() - self._started[threading.get_ident()].pop()
        node = self.nodes.get(async_id)
        if node is not None:
            node.steps += 1
            node.busy += spent

    def render(self, root: int) -> str:
        lines: list[str] = []

        def walk(async_id: int, prefix: str, connector: str, child_prefix: str) -> None:
            node = self.nodes[async_id]
            timing = f"  steps={node.steps}  busy={node.busy * 1e3:.2f}ms" if node.steps else ""
            lines.append(f"{prefix}{connector}{node.label}{timing}")
            for i, child in enumerate(node.children):
                last = i == len(node.children) - 1
                walk(
                    child,
                    prefix + child_prefix,
                    "└── " if last else "├── ",
                    "    " if last else "│   ",
                )

        walk(root, "", "", "")
        return "\n".join(lines)


# -- a request handler to trace ---------------------------------------------------


async def fetch_user() -> str:
    await asyncio.sleep(0.002)
    return "ada"


async def fetch_order(n: int) -> int:
    await asyncio.sleep(0.001 * n)
    return n


async def fetch_orders() -> list[int]:
    return list(await asyncio.gather(*(fetch_order(n) for n in (1, 2, 3))))


def render(user: str, orders: list[int]) -> str:
    return f"{user}: {sum(orders)}"


async def handle_request() -> tuple[int, str]:
    root = hooks.execution_async_id()
    user_task = asyncio.create_task(fetch_user())
    orders = await asyncio.create_task(fetch_orders())
    page = await asyncio.get_running_loop().run_in_executor(None, render, await user_task, orders)
    return root, page


def trace_one_request() -> tuple[str, str]:
    """Run one request under the tracer; return (page, rendered tree)."""
    tracer = TreeTracer()
    tracer.hook.enable()
    try:
        root, page = asyncio.run(handle_request())
    finally:
        tracer.hook.disable()
    return page, tracer.render(root)


if __name__ == "__main__":
    page, tree = trace_one_request()
    print(page)
    print(tree)
