import pytest

from tests.support.wire_server import WireServer, conformant

pytest_plugins = ["pytester"]


@pytest.fixture
def wire_server():
    """The conformant reference server on a free loopback port (test equipment, not a provider)."""
    server = WireServer(conformant).start()
    yield server
    server.stop()
