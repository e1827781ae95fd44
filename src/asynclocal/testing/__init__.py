"""Testing helpers for code that uses asynclocal (the pytest plugin lives in `.plugin`)."""
