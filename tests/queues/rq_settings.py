"""Settings module for `rq worker -c`: installs the context propagation in the worker."""

from asynclocal.integrations.rq import install

install(fields=["plan"])
