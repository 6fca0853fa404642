"""The plugin end to end, in an inner pytest run (pytester), against the reference test server."""

import json

import pytest
import yaml

from tests.support.wire_server import completion_body

SUITE = """
from oaicompat.checks import chat

async def test_object(run_check):
    await run_check(chat.object_is_chat_completion)

async def test_usage(run_check):
    await run_check(chat.usage_present)
"""


def write_providers(pytester, base_url, expectations=None):
    entry = {"kind": "local", "title": "Ref", "base_url": base_url, "api_key_env": "REF_KEY", "model": "ref-model"}
    if expectations:
        entry["expectations"] = expectations
    path = pytester.path / "providers.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "providers": {"ref": entry}}))
    return path


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--providers-file",
                              str(pytester.path / "providers.yaml"), "--cassette-dir", str(pytester.path / "cassettes"),
                              "--results", str(pytester.path / "results.json"), *args)


@pytest.fixture
def suite(pytester):
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_unknown_provider_is_one_clear_error(suite, wire_server):
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown provider 'nosuch'; configured providers: ref*"])


def test_replay_without_cassette_is_not_recorded_with_command(suite, wire_server):
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*not recorded: no cassette*record it with: pytest*--record-mode=once*"])


def test_live_without_key_is_not_configured_once(suite, wire_server, monkeypatch):
    monkeypatch.delenv("REF_KEY", raising=False)
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "--record-mode=once", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*[[]2[]]*not configured: set REF_KEY*"])


def test_record_then_replay_passes_and_writes_valid_results(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "--record-mode=once")
    result.assert_outcomes(passed=2)
    cassettes = sorted(p.relative_to(suite.path).as_posix() for p in (suite.path / "cassettes").rglob("*.yaml"))
    assert cassettes == ["cassettes/ref/test_suite/test_object.yaml", "cassettes/ref/test_suite/test_usage.yaml"]
    assert "sk-test-key-abcdef123456" not in "".join(p.read_text() for p in (suite.path / "cassettes").rglob("*.yaml"))
    wire_server.stop()
    monkeypatch.delenv("REF_KEY")
    result = run(suite)          # no --provider: every provider that has cassettes
    result.assert_outcomes(passed=2)
    doc = json.loads((suite.path / "results.json").read_text())
    from oaicompat.results import validate_results
    validate_results(doc, "results.json")
    assert doc["mode"] == "replay" and {r["outcome"] for r in doc["records"]} == {"pass"}
    assert doc["records"][0]["evidence"][0]["level"] == "recorded"
    assert doc["records"][0]["test"].endswith("[ref-ref-model]")


async def _wrong_object(req, resp):
    await resp.json(200, completion_body() | {"object": "text_completion"})


def test_undeclared_quirk_fails_with_evidence(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    wire_server.handler = _wrong_object
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "--live", "-k", "object")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines([
        "*unexpected-quirk: [[]chat.object-wrong[]] RESP-2: object is 'text_completion'*",
        "*> POST /chat/completions*",
        "*< HTTP 200 content-type: application/json*",
    ])


def test_declared_quirk_is_xfail_and_stale_expectation_fails(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    wire_server.handler = _wrong_object
    write_providers(suite, wire_server.base_url, {"chat.object-wrong": {"reason": "test", "source": "here"}})
    result = run(suite, "--provider=ref", "--live", "-k", "object")
    result.assert_outcomes(xfailed=1, deselected=1)
    from tests.support.wire_server import conformant
    wire_server.handler = conformant
    result = run(suite, "--provider=ref", "--live", "-k", "object")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*expectation stale: chat.object passed; remove chat.object-wrong from providers.yaml*"])


def test_unavailable_provider_fails_fast(suite, monkeypatch):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, f"http://127.0.0.1:{port}/v1")
    result = run(suite, "--provider=ref", "--live")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*unavailable: provider unavailable: cannot connect*"])


def test_record_mode_is_read_once_into_the_run_mode(suite, wire_server, monkeypatch):
    """--record-mode and --live become one RunMode at configure; results.json names it."""
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, wire_server.base_url)
    suite.makeconftest("""
import pytest
from oaicompat.plugin import STASH
from oaicompat.run_mode import RunMode

def pytest_collection_finish(session):
    mode = session.config.stash[STASH].mode
    assert isinstance(mode, RunMode)
    print(f"RUNMODE {mode.record_mode} {mode.live_only} {mode.name}")
""")
    result = run(suite, "--provider=ref", "--record-mode=new_episodes", "-s", "-k", "object")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*RUNMODE new_episodes False record:new_episodes*"])
    assert json.loads((suite.path / "results.json").read_text())["mode"] == "record:new_episodes"
    result = run(suite, "--provider=ref", "--record-mode=all", "--live", "-s", "-k", "object")
    result.stdout.fnmatch_lines(["*RUNMODE all True live*"])
    assert json.loads((suite.path / "results.json").read_text())["mode"] == "live"


def test_a_hung_server_is_restarted_once_per_timed_out_request(monkeypatch):
    from oaicompat.exchange import TransportFailure
    from oaicompat.servers import for_run
    from oaicompat.servers.pytest_hooks import HungServerWatch
    from tests.exchanges import completion, json_exchange

    calls, said, down = [], [], {}
    monkeypatch.setattr(for_run, "restart_hung", lambda name, key: calls.append(name) or f"{name} restarted")
    timed_out = json_exchange(completion()).__class__(
        request=json_exchange(completion()).request, status=None, failure=TransportFailure("read-timeout", "slow", 0))
    watch = HungServerWatch(down, said.append)
    watch.after_send("srv", "key", [timed_out])
    watch.after_send("srv", "key", [timed_out])          # the same exchange again (a memoised one): not again
    watch.after_send("srv", None, [json_exchange(completion())])
    assert calls == ["srv"] and said == ["oaicompat: srv restarted"] and not down

    def failing(name, key):
        from oaicompat.errors import OaicompatError
        raise OaicompatError("port busy")
    monkeypatch.setattr(for_run, "restart_hung", failing)
    again = json_exchange(completion()).__class__(
        request=timed_out.request, status=None, failure=TransportFailure("timeout", "slow", 0))
    watch.after_send("srv", "key", [again])
    assert down == {"srv": "restart after a timeout failed: port busy"}
