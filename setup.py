"""Build the optional C accelerator; all other metadata lives in pyproject.toml.

`optional=True`: where the extension cannot be compiled (no C compiler, an
unsupported interpreter), the install still succeeds and asynclocal runs on its
pure-Python implementation, with the same behaviour.

``ASYNCLOCAL_PURE_WHEEL=1`` builds without the extension at all: the result is the
pure-Python ``py3-none-any`` wheel (scripts/build_wheels.sh builds it next to the
binary ones).
"""

import os
import platform
import sys

from setuptools import Extension, setup

ext_modules = []
if platform.python_implementation() == "CPython" and os.environ.get(
    "ASYNCLOCAL_PURE_WHEEL", ""
) in ("", "0"):
    # Linux: record libc as a dependency even though the module calls none of it
    # directly (--as-needed would drop it), so auditwheel can tell which libc, and so
    # which manylinux tag, the wheel is for.
    link_args = ["-Wl,--no-as-needed,-lc"] if sys.platform.startswith("linux") else []
    ext_modules.append(
        Extension(
            "asynclocal._speedups",
            ["src/asynclocal/_speedups.c"],
            optional=True,
            extra_link_args=link_args,
        )
    )

setup(ext_modules=ext_modules)
