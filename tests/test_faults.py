"""Faults the harness must survive, served by the reference server: every one ends as a named finding (the
owning check's quirk, or Blocked naming the check that reports it), never as a harness error, never as a hang
past the configured timeout, and a faulty re-record never loses what a cassette already holds.

Each test is bounded (asyncio.wait_for, or a subprocess timeout for the end-to-end run): a hang fails the test
with a TimeoutError. No test asserts how long anything took — on a loaded machine that fails by chance — they
assert behaviour instead: the failure kind, the retry count, the sleep the transport chose, the cut exchange.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from oaicompat.checks.base import CHECKS, PROBES, ProbeContext
from oaicompat.checks.sdk import INSTALL_OWNER
from oaicompat.scrub import Scrubber
from oaicompat.session import LiveMemo, ProbeSession
from tests.support.behaviours import (
    HTML_PAGE,
    KEY,
    KEY_ENV,
    Baseline,
    Behaviour,
    SuiteRun,
    conformant_baseline,
    provider,
    provider_entry,
    reference,
    run_behaviour,
    text_stream,
)
from tests.support.wire_server import Reply, Req, WireServer

BOUND = 60.0                      # seconds any one test may take


@pytest.fixture(scope="module")
def server():
    s = WireServer(reference()).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def baseline(server) -> Baseline:
    return asyncio.run(conformant_baseline(server))


def fault(name: str, hook: str, fn: Any, **provider_overrides: Any) -> Behaviour:
    return Behaviour(f"fault.{name}", f"FAULT: {name}", {hook: [fn]}, provider=provider_overrides)


def run(server: WireServer, behaviour: Behaviour, base: Baseline, bound: float = BOUND) -> SuiteRun:
    """The suite against `behaviour`; a hang past `bound` raises TimeoutError (a guard, not a measurement)."""
    return asyncio.run(asyncio.wait_for(run_behaviour(server, behaviour, base), timeout=bound))


def assert_named(run: SuiteRun, server: WireServer, *quirks: str) -> None:
    """No harness error; every finding is a catalogued quirk or Blocked with a registered owner; `quirks` raised
    by the checks that own them."""
    errors = {cid: r.outcome.message for cid, r in run.checks.items() if r.outcome.name in ("error", "unavailable")}
    assert not errors, errors
    assert not server.errors, server.errors
    for cid, r in run.checks.items():
        if r.outcome.name == "blocked":
            owner = r.outcome.message.rsplit("(reported by ", 1)[-1].rstrip(")")
            assert owner in CHECKS or owner == INSTALL_OWNER, (cid, r.outcome.message)
        if r.outcome.name == "unexpected-quirk":
            assert r.outcome.quirks and r.outcome.quirks[0] in CHECKS[cid].quirks, (cid, r.outcome.quirks)
    raised = run.quirks()
    for q in quirks:
        owner = next(cid for cid, spec in CHECKS.items() if q in spec.quirks)
        assert raised.get(q) == owner, f"{q} not raised by {owner}; raised: {raised}"


def stream_exchange(run: SuiteRun) -> Any:
    return run.checks["stream.truncated"].exchanges[0]


# -- the faults -------------------------------------------------------------------------------------------------

def test_stream_truncated_mid_event(server, baseline):
    """The connection closes in the middle of the third event (no chunked terminator)."""
    def cut(reply: Reply, req: Req) -> None:
        if reply.kind == "stream" and text_stream(req):
            reply.cut, reply.after = len(b"".join(reply.events[:2])) + 25, "close"
    result = run(server, fault("truncated", "reply", cut), baseline)
    assert_named(result, server, "stream.truncated")
    ex = stream_exchange(result)
    assert ex.status == 200 and ex.failure is not None and ex.failure.after_bytes > 0
    assert len(ex.sse.events) == 2         # what arrived before the cut is kept and judged


def test_connection_reset_mid_stream(server, baseline):
    def reset(reply: Reply, req: Req) -> None:
        if reply.kind == "stream" and text_stream(req):
            reply.events, reply.after = reply.events[:3], "reset"
    result = run(server, fault("reset", "reply", reset), baseline)
    assert_named(result, server, "stream.truncated")
    ex = stream_exchange(result)
    assert ex.failure is not None and ex.failure.kind in ("reset", "protocol")
    assert result.checks["sdk.stream-parses"].outcome.name == "blocked"   # the SDK saw the transport failure


def test_invalid_utf8(server, baseline):
    """Invalid UTF-8 in a non-streamed body and inside a streamed content delta."""
    def bad(reply: Reply, req: Req) -> None:
        if reply.kind == "completion" and req.is_probe("chat.basic"):
            reply.raw = req.ref.encode(reply.payload).replace(b"Hello", b"Hel\xfflo")
        elif reply.kind == "stream" and text_stream(req):
            reply.events = [ev.replace(b'"content": "Hello', b'"content": "Hel\xc3(lo') for ev in reply.events]
    result = run(server, fault("utf8", "reply", bad), baseline)
    assert_named(result, server, "chat.body-not-json", "stream.invalid-utf8")


def test_non_json_body(server, baseline):
    def text(reply: Reply, req: Req) -> None:
        if reply.kind == "completion" and req.is_probe("chat.basic"):
            reply.raw, reply.content_type = b"upstream said: everything is fine", "text/plain"
    result = run(server, fault("non-json", "reply", text), baseline)
    assert_named(result, server, "chat.body-not-json")


def test_ten_megabyte_body(server, baseline):
    """A 10 MB body is read whole, judged, and shown clipped in the evidence."""
    size = 10 * 1024 * 1024

    def huge(reply: Reply, req: Req) -> None:
        if reply.kind == "completion" and req.is_probe("chat.basic"):
            reply.raw = (HTML_PAGE * (size // len(HTML_PAGE) + 1))[:size]
            reply.content_type = "text/html"
    result = run(server, fault("ten-megabytes", "reply", huge), baseline)
    assert_named(result, server, "chat.body-not-json")
    r = result.checks["chat.body-json"]
    assert len(r.exchanges[0].body) == size and r.exchanges[0].failure is None
    assert all(len(line) < 1000 for line in r.outcome.lines)


def test_drip_fed_stream_slower_than_the_timeout(server, baseline):
    """One byte every 0.2 s against a 1 s total timeout: the stream is cut at the timeout and named."""
    def drip(reply: Reply, req: Req) -> None:
        if reply.kind == "stream" and text_stream(req):
            reply.piece, reply.pace = 1, 0.2
    total = 1.0
    result = run(server, fault("drip", "reply", drip, timeouts={"total": total, "read": 5}), baseline)
    assert_named(result, server, "stream.never-ends")
    ex = stream_exchange(result)
    assert ex.failure is not None and ex.failure.kind == "timeout"   # the total timeout cut it, not the read one
    assert b"[DONE]" not in ex.body      # cut before the stream ended (a drip-fed stream needs far longer)


@pytest.mark.parametrize("status,retry_after", [(429, "30"), (503, "2")])
def test_retry_after_is_honoured_and_capped(server, baseline, status, retry_after):
    """The first try of the plain request gets `status` with Retry-After; the transport retries, records the
    attempt and sleeps no longer than the provider's max_delay."""
    cap = 0.05

    def busy(req: Req) -> Reply | None:
        if req.is_probe("chat.basic") and req.conn["requests"] == 1:
            return Reply(status, {"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                            "code": "rate_limit_exceeded"}}, kind="error", tag="busy",
                         headers=[("retry-after", retry_after)])
        return None
    result = run(server, fault(f"busy-{status}", "request", busy, retries={"max_delay": cap}), baseline)
    assert_named(result, server)
    assert not result.quirks(), result.quirks()
    ex = result.checks["chat.object"].exchanges[0]
    assert ex.status == 200
    assert [a.status for a in ex.attempts] == [status]
    attempt = ex.attempts[0]
    assert attempt.retry_after == retry_after and attempt.slept == pytest.approx(cap)
    assert len(ex.attempts) == 1          # one retry, after the capped sleep — not the 30 s the server asked for


def test_retry_after_beyond_the_sdk_limit_is_not_retried(server, baseline):
    """openai-python does not retry when Retry-After exceeds 120 s: neither does the harness, and the 429 is
    reported as the plain request's rejection."""
    def busy(req: Req) -> Reply | None:
        if req.is_probe("chat.basic"):
            return Reply(429, {"error": {"message": "quota", "type": "rate_limit_error", "param": None,
                                         "code": "rate_limit_exceeded"}}, kind="error", tag="busy",
                         headers=[("retry-after", "600")])
        return None
    result = run(server, fault("quota", "request", busy), baseline)
    assert_named(result, server, "chat.basic-rejected")
    assert result.checks["chat.status"].exchanges[0].attempts == ()


def test_html_error_page(server, baseline):
    """Every error reply is a proxy's HTML page (same status)."""
    def html(reply: Reply, req: Req) -> None:
        if reply.kind == "error":
            reply.raw, reply.content_type = HTML_PAGE, "text/html; charset=utf-8"
    result = run(server, fault("html-errors", "reply", html), baseline)
    assert_named(result, server, "errors.non-json-body", "errors.content-type-not-json",
                 "context.overflow-not-enveloped")


# -- nothing already recorded is lost ------------------------------------------------------------------------

def record(server: WireServer, path: Path, mode: str, names: list[str]) -> list[Any]:
    prov = provider(server.base_url)
    ctx = ProbeContext(prov, prov.model)

    async def go() -> list[Any]:
        s = ProbeSession(provider=prov, model=prov.model, path=path, mode=mode, live_only=False, api_key=KEY,
                         scrubber=Scrubber.from_env([KEY_ENV], {KEY_ENV: KEY}), memo=LiveMemo(),
                         test_id="tests/test_faults.py::recorded", rerecord="pytest … --record-mode=rewrite")
        s.prepare()
        async with s:
            return [await s.send(PROBES[n].build(ctx)) for n in names]
    return asyncio.run(asyncio.wait_for(go(), timeout=BOUND))


def reset_everything(reply: Reply, req: Req) -> Reply:
    return Reply(drop=True)


def test_faulty_rerecord_in_once_mode_keeps_the_cassette(server, tmp_path):
    path = tmp_path / "ref" / "test_x" / "test_y.yaml"
    names = ["chat.basic", "stream.basic"]
    server.handler = reference()
    first = record(server, path, "once", names)
    assert path.exists() and all(ex.status == 200 for ex in first)
    saved = path.read_bytes()
    server.handler = reference(fault("reset-all", "reply", reset_everything))
    before = len(server.requests)
    again = record(server, path, "once", names)
    assert len(server.requests) == before            # once + an existing cassette: nothing is sent
    assert path.read_bytes() == saved
    assert [ex.body for ex in again] == [ex.body for ex in first]
    assert all(ex.source == "cassette" for ex in again)


def test_faulty_new_episode_keeps_recorded_interactions(server, tmp_path):
    """new_episodes against a server that now resets: the recorded interactions stay, the failure is added as
    data (a transport failure), and the file still loads."""
    from oaicompat.cassette import Cassette
    path = tmp_path / "c.yaml"
    server.handler = reference()
    record(server, path, "once", ["chat.basic"])
    kept = Cassette.load(path).interactions
    server.handler = reference(fault("reset-all", "reply", reset_everything))
    [ex] = record(server, path, "new_episodes", ["chat.system-role"])
    assert ex.status is None and ex.failure is not None
    now = Cassette.load(path).interactions
    assert now[:len(kept)] == kept and len(now) == len(kept) + 1


def test_end_to_end_faulty_rerecord_once_leaves_cassettes_intact(pytester, server, monkeypatch):
    """The pytest plugin: record once, then re-run `--record-mode=once` against a server that resets every
    connection: the cassettes are byte-identical and the outcomes replay unchanged."""
    pytester.makepyfile(test_suite="""
from oaicompat.checks import chat, stream

async def test_object(run_check):
    await run_check(chat.object_is_chat_completion)

async def test_done(run_check):
    await run_check(stream.ends_with_done)
""")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    import yaml
    entry = provider_entry(server.base_url)
    (pytester.path / "providers.yaml").write_text(yaml.safe_dump({"version": 1, "providers": {"ref": entry}}))
    monkeypatch.setenv(KEY_ENV, KEY)
    args = ["-p", "no:cacheprovider", "--providers-file", str(pytester.path / "providers.yaml"),
            "--cassette-dir", str(pytester.path / "cassettes"), "--provider=ref", "--record-mode=once",
            "--results", str(pytester.path / "results.json")]
    server.handler = reference()
    first = pytester.runpytest_subprocess(*args, timeout=BOUND)
    first.assert_outcomes(passed=2)
    files = sorted((pytester.path / "cassettes").rglob("*.yaml"))
    saved = {f: f.read_bytes() for f in files}
    assert len(saved) == 2
    server.handler = reference(fault("reset-all", "reply", reset_everything))
    again = pytester.runpytest_subprocess(*args, timeout=BOUND)
    again.assert_outcomes(passed=2)
    assert {f: f.read_bytes() for f in sorted((pytester.path / "cassettes").rglob("*.yaml"))} == saved
    records = json.loads((pytester.path / "results.json").read_text())["records"]
    assert {r["outcome"] for r in records} == {"pass"}
