"""Testing helpers for code that uses asynclocal.

* `make_request_context(**values)`: a `RequestContext` for tests (no pytest needed).
* The pytest plugin (`asynclocal.testing.plugin`, registered through the ``pytest11``
  entry point): the ``@pytest.mark.request_context(...)`` marker, the
  ``request_context`` fixture, and no asynclocal store leaking from one test into the
  next. It touches only asynclocal's own storages.
"""

from ._factory import make_request_context

__all__ = ["make_request_context"]
