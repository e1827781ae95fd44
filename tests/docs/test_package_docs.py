"""The docs ship in the sdist, and the README reads correctly on a package index page.

A package index shows README.md alone: links relative to the repository (``docs/x.md``)
would be broken there, so the README names the guides in text (they ship in the sdist)
and links only to absolute URLs. The sdist is built from the tracked files with
setuptools' own PEP 517 hook, in a temporary copy (the checkout is not touched).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.timeout(180)


def test_readme_links_are_absolute() -> None:
    links = re.findall(r"\]\(([^)]+)\)", README) + re.findall(r'(?:href|src)="([^"]+)"', README)
    relative = [link for link in links if not re.match(r"https?://", link)]
    assert relative == [], f"links a package index page cannot follow: {relative}"


def test_readme_has_no_test_counts() -> None:
    counts = re.findall(r"\b[\d,]+\s+tests\b", README)
    assert counts == [], counts


def test_readme_starts_with_install() -> None:
    first_sections = re.findall(r"^## (.+)$", README, re.M)[:2]
    assert first_sections[0] == "Install"
    assert 'pip install "asynclocal[fastapi]"' in README.split("## Recipes")[0]


def test_the_sdist_carries_the_docs(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list the tracked files")
    tracked = subprocess.run(
        [git, "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    tree = tmp_path / "tree"
    for name in tracked:
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    out = tmp_path / "dist"
    out.mkdir()
    code = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    built = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=tree, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-3000:]
    with tarfile.open(out / built.stdout.strip().splitlines()[-1]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    docs = {n for n in tracked if n.startswith("docs/") and n.endswith(".md")}
    assert docs, "no docs tracked"
    assert docs <= names, sorted(docs - names)
    assert "README.md" in names
    assert "docs/api.md" in names
