"""gunicorn settings for the server-log tests: its loggers through logging_config(json=True)."""

from asynclocal.logging import logging_config

logconfig_dict = logging_config(json=True, server_access_logs=False)
workers = 2
threads = 4
worker_class = "gthread"
accesslog = None
