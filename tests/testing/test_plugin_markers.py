"""The pytest plugin's marker and fixture (README "pytest plugin"), run with pytester."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def _run(pytester: pytest.Pytester, source: str, ini: str = INI) -> pytest.RunResult:
    pytester.makeini(ini)
    pytester.makepyfile(test_generated=source)
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=50)


def test_marker_runs_sync_and_async_tests_inside_a_request(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
import asyncio
import pytest
from asynclocal import NoRequestContext, current_request, request_storage

@pytest.mark.request_context(user={"id": "u1", "roles": ["admin"]}, request_id="r-1", tenant="acme")
def test_sync():
    ctx = current_request()
    assert (ctx.request_id, ctx.user_id, ctx.get("tenant")) == ("r-1", "u1", "acme")

@pytest.mark.request_context(request_id="r-2", plan="pro")
async def test_async_and_its_tasks():
    async def child():
        await asyncio.sleep(0)
        return current_request().request_id, current_request().get("plan")
    assert await asyncio.create_task(child()) == ("r-2", "pro")

@pytest.mark.request_context(request_id="r-3")
def test_fixture_is_the_marker_context(request_context):
    assert request_context is current_request()
    assert request_context.request_id == "r-3"
    request_context.set("plan", "gold")

def test_no_request_without_marker_or_fixture():
    with pytest.raises(NoRequestContext):
        current_request()
    assert request_storage.get_store() is None

def test_fixture_without_marker_has_a_fresh_id(request_context):
    assert request_context.request_id
    assert request_context.get("plan") is None   # nothing kept from the test above

@pytest.mark.request_context(user={"id": "admin-1", "roles": ["admin"]})
def test_with_rbac():
    from asynclocal.patterns.rbac import authorize
    assert authorize("admin").id == "admin-1"
""",
    )
    result.assert_outcomes(passed=6)


LEAKY = """
import pytest
from asynclocal import AsyncLocalStorage, RequestContext, request_storage

store = AsyncLocalStorage(name="plugin-leak")

def test_a_leaves_junk():
    store.enter_with("junk")
    request_storage.enter_with(RequestContext("leaked"))

def test_b_sees_nothing():
    assert store.get_store() is None
    assert request_storage.get_store() is None

async def test_c_async_leaves_junk():
    store.enter_with("async-junk")

async def test_d_async_sees_nothing():
    assert store.get_store() is None
"""


def test_no_store_leaks_between_tests(pytester: pytest.Pytester) -> None:
    _run(pytester, LEAKY).assert_outcomes(passed=4)


def test_opting_out_shows_the_leak(pytester: pytest.Pytester) -> None:
    result = _run(pytester, LEAKY, INI + "asynclocal_isolate = false\n")
    result.assert_outcomes(passed=2, failed=2)  # the sync junk reaches both later tests
    result.stdout.fnmatch_lines(["*test_b_sees_nothing*", "*test_d_async_sees_nothing*"])


def test_fixture_stores_are_seen_by_the_test_and_undone_after(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
import pytest
from asynclocal import AsyncLocalStorage

store = AsyncLocalStorage(name="plugin-fixture")

@pytest.fixture
def tenant():
    store.enter_with("from-fixture")
    yield "from-fixture"

@pytest.fixture
async def async_tenant():
    store.enter_with("from-async-fixture")
    return "from-async-fixture"

def test_sees_fixture(tenant):
    assert store.get_store() == tenant

async def test_sees_async_fixture(async_tenant):
    assert store.get_store() == async_tenant

def test_after():
    assert store.get_store() is None
""",
    )
    result.assert_outcomes(passed=3)
