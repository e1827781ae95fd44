"""The README recipe tests reuse the task-queue tests' private Redis server."""

from tests.queues.conftest import redis_server as redis_server
