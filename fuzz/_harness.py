"""Run one fuzz target under atheris when it is installed, else with a plain random loop.

Every ``fuzz_*.py`` file defines ``one_input(data: bytes) -> None`` (raises on a
broken property) and ``SEEDS`` (a few interesting inputs), then calls
`main`. Usage::

    python fuzz/fuzz_cookies.py                       # atheris if installed, else plain
    python fuzz/fuzz_cookies.py -atheris_runs=1000000 # any libFuzzer option, with atheris
    python fuzz/fuzz_cookies.py --plain --seconds 60  # the random loop, any interpreter
    python fuzz/run_all.py --seconds 5                # every target, plain, a few seconds each

The plain loop mutates the seeds (byte flips, inserts from an alphabet of
separators, quotes, backslashes and control characters, chunk duplication so
long repetitive inputs appear) and fails on the first input that raises or
takes longer than ``--timeout`` seconds. It prints the input to reproduce.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence

OneInput = Callable[[bytes], None]

ALPHABET = b";=\",:\\ \t\r\n\x00\x7f\x80\xe9\xff{}[]-_./+~%&?#@!$'()*0123456789abcdefABCDEFxyzXYZ"
MAX_LEN = 16384


def _use_atheris(argv: Sequence[str]) -> bool:
    # Only a target run as a script uses atheris (not run_all.py, not pytest).
    if "--plain" in argv or not os.path.basename(argv[0] if argv else "").startswith("fuzz_"):
        return False
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Import the code under test inside this block (coverage for atheris, else nothing)."""
    if _use_atheris(sys.argv):
        import atheris

        with atheris.instrument_imports(include=["asynclocal"]):
            yield
    else:
        yield


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random edit of `data` (insert, delete, flip, duplicate a chunk, splice)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        pos = rng.randint(0, len(buf))
        if choice < 0.35:
            buf[pos:pos] = bytes(rng.choice(ALPHABET) for _ in range(rng.randint(1, 8)))
        elif choice < 0.5 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif choice < 0.65 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif choice < 0.85 and buf:
            start = rng.randrange(len(buf))
            chunk = bytes(buf[start : start + rng.randint(1, 32)])
            buf[pos:pos] = chunk * rng.choice((2, 8, 64, 512))
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(buf[:MAX_LEN])


def plain_loop(
    one_input: OneInput,
    seeds: Sequence[bytes],
    *,
    seconds: float | None = None,
    iterations: int | None = None,
    seed: int = 0,
    timeout: float = 2.0,
) -> int:
    """Feed mutated seeds to `one_input` until time or iterations run out; return the count."""
    rng = random.Random(seed)
    pool = [bytes(s) for s in seeds] or [b""]
    deadline = None if seconds is None else time.monotonic() + seconds
    count = 0
    while True:
        if iterations is not None and count >= iterations:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        data = mutate(rng, rng.choice(pool))
        start = time.perf_counter()
        try:
            one_input(data)
        except Exception:
            print(f"failing input ({len(data)} bytes): {data!r}", file=sys.stderr)
            raise
        took = time.perf_counter() - start
        if took > timeout:
            raise AssertionError(f"input of {len(data)} bytes took {took:.2f}s: {data[:200]!r}")
        if len(pool) < 256 and rng.random() < 0.05:
            pool.append(data)
        count += 1
    return count


def main(one_input: OneInput, seeds: Sequence[bytes]) -> None:
    """The command line of every target (see the module docstring)."""
    if _use_atheris(sys.argv):
        import atheris

        argv = [a for a in sys.argv if a != "--plain"]
        atheris.Setup(argv, one_input)
        atheris.Fuzz()
        return
    parser = argparse.ArgumentParser(description="plain random fuzz loop (atheris not used)")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args, _ = parser.parse_known_args()
    count = plain_loop(
        one_input,
        seeds,
        seconds=args.seconds,
        iterations=args.iterations,
        seed=args.seed,
        timeout=args.timeout,
    )
    print(f"{sys.argv[0]}: {count} inputs, no failure")
