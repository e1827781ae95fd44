"""Smoke-run every fuzz target with the plain loop: ``python fuzz/run_all.py --seconds 5``."""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _harness import plain_loop  # noqa: E402  (atheris runs one target per process)

TARGETS = sorted(p.stem for p in HERE.glob("fuzz_*.py"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("targets", nargs="*", default=TARGETS)
    args = parser.parse_args()
    for name in args.targets:
        module = importlib.import_module(name)
        count = plain_loop(
            module.one_input,
            module.SEEDS,
            seconds=None if args.iterations else args.seconds,
            iterations=args.iterations,
            seed=args.seed,
        )
        print(f"{name}: {count} inputs, no failure", flush=True)


if __name__ == "__main__":
    main()
