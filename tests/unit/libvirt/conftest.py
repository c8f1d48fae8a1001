"""The hook against the real API server on a temporary socket, with the fake service behind it."""

from tests.unit.api.conftest import agent, serve, service, socket_dir  # noqa: F401  (fixtures)
