"""Role, permission and object-level checks that read the user from the request context.

The service layer no longer needs a ``user`` argument: the check finds the
user of the request it serves::

    def created_the_room(principal, room, new_name):     # object-level rule
        return room.created_by == principal.id

    @requires("agent", policy=created_the_room)
    async def rename_room(room, new_name): ...

    authorize("admin")                                    # plain check, anywhere

The user is ``RequestContext.user``; roles and permissions come from the app
fields ``"roles"`` / ``"permissions"`` when set (``ctx.set("roles", [...])``),
else from the user's ``roles`` / ``permissions`` attribute or key. A denied
check raises `Forbidden` (HTTP 403 through every web integration); no user
raises `Unauthenticated` (401).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from ..errors import Forbidden, Unauthenticated
from ..request._context import RequestContext, request_storage
from ._user import as_name_set, user_attr

__all__ = [
    "Forbidden",
    "Policy",
    "Principal",
    "Unauthenticated",
    "authorize",
    "authorize_async",
    "current_principal",
    "requires",
]

P = ParamSpec("P")
R = TypeVar("R")

#: An object-level rule: ``policy(principal, *args, **kwargs) -> bool`` (or an awaitable of bool
#: in async code). With `requires`, it receives the decorated function's arguments.
Policy = Callable[..., "bool | Awaitable[bool]"]


@dataclass(frozen=True)
class Principal:
    """Who the current request acts for: the user object, its id, roles and permissions."""

    user: Any
    id: str
    roles: frozenset[str]
    permissions: frozenset[str]

    def has_role(self, *roles: str) -> bool:
        """True when the principal has at least one of `roles`."""
        return not self.roles.isdisjoint(roles)

    def has_permission(self, *permissions: str) -> bool:
        """True when the principal has every one of `permissions`."""
        return self.permissions.issuperset(permissions)


def _principal_of(ctx: RequestContext) -> Principal:
    user = ctx.user
    if user is None:
        raise Unauthenticated(
            f"request {ctx.request_id} has no user; set ctx.user in the middleware's on_request "
            "hook (after verifying the token) before calling code that checks permissions"
        )
    roles = ctx.get("roles") if "roles" in ctx else user_attr(user, "roles")
    perms = ctx.get("permissions") if "permissions" in ctx else user_attr(user, "permissions")
    user_id = ctx.user_id
    assert user_id is not None
    return Principal(
        user=user,
        id=user_id,
        roles=as_name_set(roles, "roles"),
        permissions=as_name_set(perms, "permissions"),
    )


def current_principal() -> Principal:
    """The `Principal` of the request being served.

    Raises:
        Unauthenticated: there is no request context, or the request has no user.
    """
    ctx = request_storage.get_store()
    if ctx is None:
        raise Unauthenticated(
            "permission check outside a request: no request context is active here (install "
            "the request middleware, or run the code inside with_request_context)"
        )
    return _principal_of(ctx)


class _Requirement:
    __slots__ = ("permissions", "policy", "roles")

    def __init__(
        self, roles: tuple[str, ...], permissions: Iterable[str], policy: Policy | None
    ) -> None:
        for role in roles:
            if not isinstance(role, str) or not role:
                raise TypeError(f"roles must be non-empty strings, got {role!r:.40}")
        self.roles = frozenset(roles)
        self.permissions = as_name_set(permissions, "permissions")
        if policy is not None and not callable(policy):
            raise TypeError(
                f"policy must be a callable(principal, *args) -> bool, got {type(policy).__name__}"
            )
        self.policy = policy

    def check_static(self) -> Principal:
        principal = current_principal()
        if self.roles and principal.roles.isdisjoint(self.roles):
            raise Forbidden(
                f"needs one of the roles {sorted(self.roles)}, has {sorted(principal.roles)}",
                user_id=principal.id,
            )
        missing = self.permissions - principal.permissions
        if missing:
            raise Forbidden(f"missing permissions {sorted(missing)}", user_id=principal.id)
        return principal

    def deny_policy(self, principal: Principal, verdict: object) -> None:
        if verdict is True:
            return
        name = getattr(self.policy, "__qualname__", None) or repr(self.policy)
        if verdict is not False:
            raise TypeError(
                f"policy {name} returned {type(verdict).__name__}, expected True or False"
            )
        raise Forbidden(f"policy {name} denied the action", user_id=principal.id)

    def check(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Principal:
        principal = self.check_static()
        if self.policy is not None:
            verdict = self.policy(principal, *args, **kwargs)
            if inspect.isawaitable(verdict):
                if inspect.iscoroutine(verdict):
                    verdict.close()
                raise TypeError(
                    "an async policy needs an async caller: decorate an `async def` or use "
                    "`await authorize_async(...)`"
                )
            self.deny_policy(principal, verdict)
        return principal

    async def check_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Principal:
        principal = self.check_static()
        if self.policy is not None:
            verdict = self.policy(principal, *args, **kwargs)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            self.deny_policy(principal, verdict)
        return principal


_NO_RESOURCE: Any = object()


def authorize(
    *roles: str,
    permissions: Iterable[str] = (),
    policy: Policy | None = None,
    resource: Any = _NO_RESOURCE,
) -> Principal:
    """Check the current request's user; return its `Principal` when allowed.

    Allowed when the user has at least one of `roles` (if any are given), all
    of `permissions`, and `policy(principal, resource)` (or `policy(principal)`
    without a resource) returns True.

    Raises:
        Unauthenticated: no request, or no user on it.
        Forbidden: a rule denied the action; `reason` names it.
        TypeError: bad arguments, or an async policy (use `authorize_async`).
    """
    args = () if resource is _NO_RESOURCE else (resource,)
    return _Requirement(roles, permissions, policy).check(args, {})


async def authorize_async(
    *roles: str,
    permissions: Iterable[str] = (),
    policy: Policy | None = None,
    resource: Any = _NO_RESOURCE,
) -> Principal:
    """`authorize` for async code: `policy` may be sync or ``async``."""
    args = () if resource is _NO_RESOURCE else (resource,)
    return await _Requirement(roles, permissions, policy).check_async(args, {})


def requires(
    *roles: str, permissions: Iterable[str] = (), policy: Policy | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync or ``async`` function so it runs only when the request's user may.

    The rules are those of `authorize`; `policy` receives the principal and
    then exactly the arguments of each call (``policy(principal, *args,
    **kwargs)``), which is how object-level rules see the object. Checks run
    before the function body, on every call.

    Raises:
        TypeError: (at decoration) bad roles/permissions/policy, or (at call) an async
            policy on a sync function.
        Unauthenticated, Forbidden: (at call) as `authorize`.
    """
    requirement = _Requirement(roles, permissions, policy)
    if not roles and not requirement.permissions and policy is None:
        raise TypeError(
            "requires() needs at least one role, permission or policy; "
            "e.g. @requires('admin') or @requires(policy=is_owner)"
        )

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise TypeError(f"@requires(...) decorates functions, got {type(fn).__name__}")
        if inspect.iscoroutinefunction(fn):
            async_fn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                await requirement.check_async(args, kwargs)
                return await async_fn(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            requirement.check(args, kwargs)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
