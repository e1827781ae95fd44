"""The plugin tests run pytest itself (pytester) on small generated test files."""

pytest_plugins = ["pytester"]
