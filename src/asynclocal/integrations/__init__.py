"""Integrations with third-party libraries, one module per library, each behind an extra.

Importing a module whose library is missing raises `ImportError` naming the
extra to install. Nothing in the core imports this package.

- `asynclocal.integrations.opentelemetry`: trace ids from the active span, a
  `TextMapPropagator`, optional server spans (extra ``opentelemetry``).
- `asynclocal.integrations.httpx` / `.requests` / `.aiohttp_client`: outgoing
  requests carry the propagated headers to allow-listed targets.
- `asynclocal.integrations.celery` / `.rq`: the publisher's context travels in task
  messages and is restored in the worker (extras ``celery`` / ``rq``).
- `asynclocal.integrations.gevent`: greenlets start in their starter's context
  (extra ``gevent``).
- `asynclocal.integrations.aws_lambda`: a request context per Lambda invocation
  (standard library only).
"""
