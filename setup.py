"""Build the optional C accelerator; all other metadata lives in pyproject.toml.

`optional=True`: where the extension cannot be compiled (no C compiler, an
unsupported interpreter), the install still succeeds and asynclocal runs on its
pure-Python implementation, with the same behaviour.
"""

import platform

from setuptools import Extension, setup

ext_modules = []
if platform.python_implementation() == "CPython":
    ext_modules.append(
        Extension("asynclocal._speedups", ["src/asynclocal/_speedups.c"], optional=True)
    )

setup(ext_modules=ext_modules)
