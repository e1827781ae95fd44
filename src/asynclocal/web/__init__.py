"""Request scope for web frameworks: one module per server interface or framework.

`asgi` and `wsgi` need nothing but the standard library; `starlette`,
`fastapi`, `flask`, `django` and `aiohttp` each need their framework (an
optional extra). All of them build the `RequestContext` through
`asynclocal.request.RequestContextFactory`, so ids, hooks and headers behave
the same everywhere.
"""
