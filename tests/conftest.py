import importlib.util

import pytest

from tests.support.wire_server import WireServer, conformant

pytest_plugins = ["pytester"]
TEST_EXTRA = ("hypothesis",)        # imported by the harness's tests at collection time; not a main dependency


def pytest_configure(config: pytest.Config) -> None:
    """`pytest tests` without the test extra: one line saying what to install, not a collection error per file."""
    missing = [name for name in TEST_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(f"the harness's own tests need {', '.join(missing)}: pip install -e '.[test]'")


@pytest.fixture
def wire_server():
    """The conformant reference server on a free loopback port (test equipment, not a provider)."""
    server = WireServer(conformant).start()
    yield server
    server.stop()
