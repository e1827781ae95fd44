"""`python -m asynclocal demo`: runs every phase, prints a summary, fails on a mix-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_demo_runs_every_phase_with_zero_mixups() -> None:
    proc = _run("-m", "asynclocal", "demo", "--requests", "150")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.strip()}
    for phase in ("asyncio", "threads", "processes"):
        assert rows[phase][1] == "150"  # requests
        assert int(rows[phase][2]) >= 150 * 3  # store reads checked
        assert rows[phase][3] == "0"  # mix-ups
    assert "OK: zero mix-ups" in proc.stdout
    assert "100.0% 150/150" in proc.stderr  # the progress bar


def test_demo_exits_non_zero_on_a_mixup() -> None:
    script = textwrap.dedent(
        """
        import sys
        from asynclocal._demo import Phase, Tally, main, register

        def broken(requests, seed, progress):
            tally = Tally()
            for rid in range(requests):
                tally.check(rid, rid if rid != 3 else 4, "handler")
                progress.advance()
            return tally, "one wrong read"

        register(Phase("broken", "reports one mix-up", broken))
        sys.exit(main(["demo", "--requests", "5", "--phases", "broken", "--no-progress"]))
        """
    )
    proc = _run("-c", script)
    assert proc.returncode == 1
    assert "handler: expected 3, saw 4" in proc.stderr
    assert "broken" in proc.stdout


def test_demo_rejects_bad_arguments() -> None:
    proc = _run("-m", "asynclocal", "demo", "--phases", "nope")
    assert proc.returncode == 2
    assert "unknown phase" in proc.stderr
