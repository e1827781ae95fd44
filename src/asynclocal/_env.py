"""`enable_from_env`: the one explicit place where environment variables turn tools on.

Importing asynclocal never reads these variables; an application (or a
``sitecustomize``/entry point it controls) calls `enable_from_env()` when it wants
them honoured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["ENV_VARS", "enable_from_env"]

#: The variables `enable_from_env` reads, with the values each accepts.
ENV_VARS: Mapping[str, str] = {
    "ASYNCLOCAL_HOOKS": "1 (track async ids and resources), trace (also log every event), 0",
    "ASYNCLOCAL_DEBUG": "1 (enable the context-loss detector), 0",
}


def enable_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """Turn on what ``ASYNCLOCAL_HOOKS`` and ``ASYNCLOCAL_DEBUG`` ask for; return what it enabled.

    `environ` defaults to `os.environ`. The result names each tool turned on:
    ``"hooks"`` (an empty hook: ids and execution resources are tracked),
    ``"hooks:trace"`` (`asynclocal.hooks.trace_hook()`), ``"debug"``
    (`asynclocal.debug.enable()`). Unset, empty or ``0`` variables enable nothing.

    Never raises because of the environment: a value it does not understand is
    reported with a `asynclocal.errors.ConfigurationWarning` naming the variable and
    the accepted values, and that tool stays off. Each call is an explicit request:
    calling it again enables another hook (`asynclocal.hooks.enabled_hooks()` lists them).
    """
    env = os.environ if environ is None else environ
    enabled: list[str] = []
    if env.get("ASYNCLOCAL_HOOKS", "").strip():
        from .hooks import enable_from_env as enable_hooks

        hook = enable_hooks(env)
        if hook is not None:
            trace = env["ASYNCLOCAL_HOOKS"].strip().lower() == "trace"
            enabled.append("hooks:trace" if trace else "hooks")
    if env.get("ASYNCLOCAL_DEBUG", "").strip():
        from .debug import enable_from_env as enable_debug

        if enable_debug(env):
            enabled.append("debug")
    return enabled
