"""The pytest plugin, exercised by running pytest (pytester) on generated test files."""

from __future__ import annotations

import pytest

from asynclocal.request import RequestContext, current_request

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
"""

# Each "leak" file: the first test changes the context the way real tests do, the second
# checks it starts clean. Test names sort in file order, and -p no:randomly keeps it.
SYNC_LEAK = """
from asynclocal import AsyncLocalStorage

als = AsyncLocalStorage(name="t")

def test_1_sets():
    als.enter_with("leaked")
    assert als.get_store() == "leaked"

def test_2_starts_clean():
    assert als.get_store() is None
    with als.scope("own"):
        assert als.get_store() == "own"
    assert als.get_store() is None
"""

# A project that never uses asynclocal: its own context variables behave exactly as
# without the plugin (a value set by one sync test is seen by the next; a token made
# in a test is reset by a fixture's teardown; async tests run in pytest-asyncio's copy).
PLAIN_PROJECT = """
import contextvars
import pytest

raw = contextvars.ContextVar("raw")
other = contextvars.ContextVar("other", default="start")
tokens = []

def test_1_sets():
    raw.set("set-by-test-1")

def test_2_sees_it():
    assert raw.get("clean") == "set-by-test-1"

@pytest.fixture
def resets_after():
    yield
    other.reset(tokens.pop())

def test_3_token_reset_by_fixture(resets_after):
    tokens.append(other.set("changed"))

def test_4_after_reset():
    assert other.get() == "start"

async def test_5_async_sets():
    raw.set("set-by-async-test")

def test_6_async_change_stayed_in_its_copy():
    assert raw.get() == "set-by-test-1"
"""

FIXTURE_SCOPE = """
import pytest
from asynclocal import AsyncLocalStorage

als = AsyncLocalStorage(name="t")

@pytest.fixture
def in_store():
    als.enter_with("from-fixture")
    yield
    assert als.get_store() == "from-fixture"  # teardown runs in the test's context

@pytest.fixture
async def in_store_async():
    als.enter_with("from-async-fixture")
    yield

def test_1_sync_fixture_visible(in_store):
    assert als.get_store() == "from-fixture"

async def test_2_async_test_sees_sync_fixture(in_store):
    assert als.get_store() == "from-fixture"

async def test_3_async_fixture_visible(in_store_async):
    assert als.get_store() == "from-async-fixture"

def test_4_nothing_left():
    assert als.get_store() is None

@pytest.fixture(scope="module")
def module_store():
    als.enter_with("module-wide")
    yield

def test_5_module_fixture(module_store):
    assert als.get_store() == "module-wide"

def test_6_module_fixture_still_there(module_store):
    assert als.get_store() == "module-wide"
"""

ANYIO_SHARED_RUNNER = """
import pytest
import sniffio
from asynclocal import AsyncLocalStorage

als = AsyncLocalStorage(name="t")
pytestmark = pytest.mark.anyio

@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"

@pytest.fixture(scope="module")
async def shared(anyio_backend):
    yield sniffio.current_async_library()

async def test_1(shared):
    assert shared == "asyncio"
    with als.scope("scoped"):
        assert als.get_store() == "scoped"

async def test_2(shared):
    assert als.get_store() is None
"""

ASYNCIO_LEAK = """
import asyncio
import pytest
from asynclocal import AsyncLocalStorage

als = AsyncLocalStorage(name="t")

async def test_1_sets():
    als.enter_with("leaked")
    await asyncio.sleep(0)

def test_2_sync_sets():
    als.enter_with("leaked-sync")

async def test_3_clean():
    assert als.get_store() is None

@pytest.mark.asyncio(loop_scope="module")
async def test_4_shared_loop_sets():
    als.enter_with("leaked-shared-loop")

@pytest.mark.asyncio(loop_scope="module")
async def test_5_shared_loop_clean():
    assert als.get_store() is None
"""

ANYIO_LEAK = """
import pytest
from asynclocal import AsyncLocalStorage

als = AsyncLocalStorage(name="t")
pytestmark = pytest.mark.anyio

@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param

@pytest.fixture
async def async_store(anyio_backend):
    als.enter_with("from-anyio-fixture")
    yield

async def test_1_sets(anyio_backend):
    als.enter_with("leaked")

async def test_2_clean(anyio_backend):
    assert als.get_store() is None

async def test_3_fixture_visible(async_store):
    assert als.get_store() == "from-anyio-fixture"

async def test_4_clean(anyio_backend):
    assert als.get_store() is None
"""

MARKER = """
import asyncio
import pytest
from asynclocal import current_request, request_storage
from asynclocal.patterns.rbac import authorize

@pytest.mark.request_context(user={"id": "u1", "roles": ["admin"]}, request_id="r-1", tenant="acme")
def test_marker_sync():
    ctx = current_request()
    assert (ctx.request_id, ctx.user_id, ctx.get("tenant")) == ("r-1", "u1", "acme")
    assert authorize("admin").id == "u1"

@pytest.mark.request_context(user={"id": "u2"}, access_token="tok")
async def test_marker_async_and_tasks():
    async def child():
        return current_request().user_id
    assert await asyncio.gather(child(), child()) == ["u2", "u2"]
    assert current_request().access_token == "tok"

def test_fixture_without_marker(request_context):
    assert current_request() is request_context
    assert request_context.request_id.startswith("test-")

@pytest.mark.request_context(user={"id": "u3"})
def test_fixture_with_marker(request_context):
    assert request_context.user_id == "u3"

def test_no_request_afterwards():
    assert request_storage.get_store() is None

@pytest.mark.request_context("positional")
def test_bad_marker():
    pass
"""


@pytest.fixture
def run(pytester: pytest.Pytester):  # type: ignore[no-untyped-def]
    pytester.makeini(INI)

    def run(source: str, *args: str) -> pytest.RunResult:
        pytester.makepyfile(test_generated=source)
        return pytester.runpytest("-p", "no:cacheprovider", "-q", *args)

    return run


def test_sync_stores_do_not_leak_between_tests(run) -> None:  # type: ignore[no-untyped-def]
    run(SYNC_LEAK).assert_outcomes(passed=2)


def test_a_plain_projects_context_variables_are_untouched(run) -> None:  # type: ignore[no-untyped-def]
    with_plugin = run(PLAIN_PROJECT, "-rA")
    with_plugin.assert_outcomes(passed=6)
    without = run(PLAIN_PROJECT, "-rA", "-p", "no:asynclocal")
    without.assert_outcomes(passed=6)
    passed = [line for line in with_plugin.outlines if line.startswith("PASSED")]
    assert passed == [line for line in without.outlines if line.startswith("PASSED")]


def test_without_the_plugin_the_leak_is_real(run, pytester: pytest.Pytester) -> None:  # type: ignore[no-untyped-def]
    run(SYNC_LEAK, "-p", "no:asynclocal").assert_outcomes(passed=1, failed=1)
    pytester.makeini(INI + "asynclocal_isolate = false\n")
    run(SYNC_LEAK).assert_outcomes(passed=1, failed=1)


def test_fixtures_are_seen_by_their_test_only(run) -> None:  # type: ignore[no-untyped-def]
    run(FIXTURE_SCOPE).assert_outcomes(passed=6)
    run(FIXTURE_SCOPE, "-p", "no:asynclocal").assert_outcomes(passed=5, failed=1)


def test_pytest_asyncio_tests_start_clean(run) -> None:  # type: ignore[no-untyped-def]
    run(ASYNCIO_LEAK).assert_outcomes(passed=5)
    run(ASYNCIO_LEAK, "-p", "no:asynclocal").assert_outcomes(passed=3, failed=2)


def test_anyio_tests_start_clean(run) -> None:  # type: ignore[no-untyped-def]
    run(ANYIO_LEAK, "-p", "no:asyncio").assert_outcomes(passed=8)


def test_anyio_module_scoped_runner_keeps_working(run) -> None:  # type: ignore[no-untyped-def]
    # A module-scoped async fixture keeps anyio's runner (and its context-variable
    # tokens) alive across tests: fixture setup and teardown must share one context.
    run(ANYIO_SHARED_RUNNER, "-p", "no:asyncio").assert_outcomes(passed=2)


def test_request_context_marker_and_fixture(run) -> None:  # type: ignore[no-untyped-def]
    result = run(MARKER)
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(["*takes keywords only*"])


def test_failures_and_reports_are_unchanged(run) -> None:  # type: ignore[no-untyped-def]
    source = """
import pytest
def test_ok(): pass
def test_fails(): assert 1 == 2
@pytest.fixture
def broken(): raise RuntimeError("setup")
def test_error(broken): pass
@pytest.mark.skip
def test_skipped(): pass
@pytest.mark.xfail
def test_xfail(): assert 0
"""
    result = run(source, "-rA")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    result = run(source, "-x")
    result.assert_outcomes(passed=1, failed=1)


@pytest.mark.request_context(user={"id": "outer"}, request_id="outer-1")
def test_this_suite_uses_the_marker_too(request_context: RequestContext) -> None:
    assert current_request() is request_context
    assert request_context.user_id == "outer"
