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


def write_providers(pytester, base_url, expectations=None, **extra):
    entry = {"kind": "local", "title": "Ref", "base_url": base_url, "api_key_env": "REF_KEY", "model": "ref-model"}
    if expectations:
        entry["expectations"] = expectations
    entry.update(extra)
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
    # the summary: one command that records the whole provider, and an empty run is not a success
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    summary = [line for line in result.outlines if "--provider=ref --record-mode=once" in line]
    assert any("not-recorded: 2 check(s) have no cassette; record the provider: pytest" in line for line in summary)
    result.stdout.fnmatch_lines(["oaicompat: nothing ran for ref: exit status 1 (pass --allow-empty*"])
    allowed = run(suite, "--provider=ref", "--allow-empty")
    assert allowed.ret == pytest.ExitCode.OK
    allowed.stdout.fnmatch_lines(["oaicompat: nothing ran for ref (accepted: --allow-empty)"])


def test_live_without_key_is_not_configured_once(suite, wire_server, monkeypatch):
    monkeypatch.delenv("REF_KEY", raising=False)
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "--record-mode=once", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*[[]2[]]*not configured: set REF_KEY*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert [line for line in result.outlines if line.startswith("    not-configured:")] == [
        "    not-configured: set REF_KEY"]
    assert not wire_server.requests


def test_a_provider_with_some_checks_run_is_not_empty(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, wire_server.base_url, supports={"stream_usage": True})
    suite.makepyfile(test_more="""
from oaicompat.checks import chat

async def test_object_again(run_check):
    await run_check(chat.object_is_chat_completion)
""")
    assert run(suite, "--provider=ref", "--record-mode=once", "test_suite.py").ret == pytest.ExitCode.OK
    result = run(suite, "--provider=ref")      # test_more.py has no cassette; test_suite.py's replay
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*nothing ran*")


# -- one usage error for a bad providers file, whatever the entry point ----------------------------------

def _error_lines(result, needle):
    return [line for line in result.outlines + result.errlines if needle in line]


def _assert_one_usage_error(result, needle):
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.outlines + result.errlines
    text = "\n".join(result.outlines + result.errlines)
    assert "Traceback" not in text and "errors during collection" not in text and "ERROR collecting" not in text
    assert 1 <= len(_error_lines(result, needle)) <= 3, text


def test_missing_providers_file_is_one_usage_error(suite):
    suite.makepyfile(test_other=SUITE)
    result = suite.runpytest("-p", "no:cacheprovider", "--providers-file", "missing.yaml")
    _assert_one_usage_error(result, "missing.yaml")
    result.stderr.fnmatch_lines(["ERROR: missing.yaml: cannot read*"])


def test_typo_in_the_default_providers_file_is_one_usage_error(suite, wire_server, monkeypatch):
    """Plain `pytest` (no --provider, no --providers-file): providers.yaml is read at collection, and a bad
    key gives one error after it, not one per test module."""
    path = write_providers(suite, wire_server.base_url, modle="typo")
    suite.makepyfile(test_other=SUITE)
    monkeypatch.setattr("oaicompat.plugin.PROVIDERS_FILE", path)
    result = suite.runpytest("-p", "no:cacheprovider")
    _assert_one_usage_error(result, "modle")


def test_unknown_model_is_one_usage_error(suite, wire_server):
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "--model=nosuch")
    _assert_one_usage_error(result, "nosuch")


def test_the_real_suites_with_a_missing_providers_file(tmp_path):
    import subprocess
    import sys

    from oaicompat.paths import PROJECT_ROOT
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider",
                           f"--providers-file={tmp_path / 'missing.yaml'}", f"--results={tmp_path / 'r.json'}"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and len([line for line in out.splitlines() if "missing.yaml" in line]) == 1
    assert not (tmp_path / "r.json").exists()


# -- what a live run spends ------------------------------------------------------------------------------

def test_live_run_prints_tokens_and_cost(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, wire_server.base_url,
                    pricing={"input_per_mtok": 1000000, "output_per_mtok": 2000000, "currency": "USD"})
    result = run(suite, "--provider=ref", "--live")
    result.assert_outcomes(passed=2)
    lines = [line for line in result.outlines if "live tokens:" in line]
    assert len(lines) == 1, result.outlines
    import re
    m = re.search(r"live tokens: (\d+) prompt \+ (\d+) completion = (\d+) over (\d+) repl.*cost ([\d.]+) USD", lines[0])
    assert m, lines[0]
    prompt, completion, total, replies, cost = int(m[1]), int(m[2]), int(m[3]), int(m[4]), float(m[5])
    assert replies == len(wire_server.requests) == 1         # the two checks share one memoised request
    assert prompt > 0 and total == prompt + completion and cost == prompt * 1 + completion * 2


def test_budget_skips_what_would_exceed_it(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, wire_server.base_url)
    result = run(suite, "--provider=ref", "--live", "--budget=5", "-rs")
    result.assert_outcomes(skipped=2)
    assert not wire_server.requests
    result.stdout.fnmatch_lines(["*budget exhausted: 0 tokens used of 5 tokens, this probe may use ~*"])
    result.stdout.fnmatch_lines(["ref: 2 budget-exhausted", "*budget exhausted: 2 check(s) skipped before sending*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    bare = suite.runpytest("-p", "no:cacheprovider", "--providers-file", str(suite.path / "providers.yaml"),
                           "--provider=ref", "--live", "--budget=5")           # no --results: the same exit
    assert bare.ret == pytest.ExitCode.TESTS_FAILED
    bare.stdout.fnmatch_lines(["ref: 2 budget-exhausted", "oaicompat: nothing ran for ref: exit status 1*"])
    assert run(suite, "--provider=ref", "--live", "--budget=100k").ret == pytest.ExitCode.OK
    assert len(wire_server.requests) == 1


def test_budget_needs_a_live_run_and_a_valid_amount(suite, wire_server):
    write_providers(suite, wire_server.base_url, kind="hosted")
    assert run(suite, "--provider=ref", "--budget=5").ret == pytest.ExitCode.USAGE_ERROR
    assert run(suite, "--provider=ref", "--live", "--budget=lots").ret == pytest.ExitCode.USAGE_ERROR
    result = run(suite, "--provider=ref", "--live", "--budget=$1")     # hosted, no pricing
    _assert_one_usage_error(result, "needs pricing")


def test_dry_run_shows_the_estimate_and_sends_nothing(suite, wire_server, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key-abcdef123456")
    write_providers(suite, wire_server.base_url)
    suite.makepyfile(test_ctx="""
from oaicompat.checks import context

async def test_overflow_status(run_check):
    await run_check(context.overflow_is_400)
""")
    result = run(suite, "--provider=ref", "--live", "--dry-run", "--budget=100")
    assert result.ret == pytest.ExitCode.OK
    assert not wire_server.requests
    result.stdout.fnmatch_lines([
        "*oaicompat: estimated tokens (nothing sent)*",
        "ref: 2 request(s), ~* prompt + at most * completion = ~* tokens",
        "    context.overflow: ~* prompt tokens",
        "all providers: ~* tokens, over --budget 100 tokens",
    ])
    run(suite, "--provider=ref", "--dry-run").stdout.fnmatch_lines(["oaicompat: --dry-run: a replay sends nothing*"])
    # live, the big probe says what it sends before it is sent
    live = run(suite, "--provider=ref", "--live", "-k", "overflow")
    live.stdout.fnmatch_lines(["oaicompat: ref: sending ~* prompt tokens (test_ctx.py::test_overflow_status*)"])
    assert len(wire_server.requests) == 1


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
