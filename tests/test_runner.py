"""oaicompat.runner.evaluate (the one place a check is run and its outcome decided) and oaicompat.run_mode.RunMode."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oaicompat import runner
from oaicompat.checks import chat
from oaicompat.checks.base import PROBES, ProbeContext, spec_of
from oaicompat.config import parse_providers
from oaicompat.errors import CassetteMiss
from oaicompat.exchange import Exchange, TransportFailure
from oaicompat.run_mode import RECORD_MODES, REPLAY, RunMode, RunModeError
from oaicompat.session import NotReady
from oaicompat.transport import RequestSpec
from tests.exchanges import completion, json_exchange

SPEC = spec_of(chat.object_is_chat_completion)
ROOT = Path(__file__).resolve().parent.parent


def provider(expectations=None, supports=None):
    entry = {"kind": "hosted", "title": "P", "base_url": "https://p.invalid/v1", "model": "m"}
    if expectations:
        entry["expectations"] = expectations
    if supports:
        entry["supports"] = supports
    return parse_providers({"version": 1, "providers": {"p": entry}}, Path("p.yaml"), {}).get("p")


def target(**kw) -> runner.Target:
    return runner.Target(provider(**kw), "m")


GOOD = json_exchange(completion())
WRONG = json_exchange(completion(object="chat.completions"))


# -- on given exchanges -----------------------------------------------------------------------------------------

async def test_given_exchanges_pass_and_quirks():
    ev = await runner.evaluate(chat.object_is_chat_completion, target(), [GOOD])
    assert ev.outcome.name == "pass" and ev.exchanges == (GOOD,) and ev.finding is None
    ev = await runner.evaluate(SPEC, target(), [WRONG])
    assert ev.outcome.name == "unexpected-quirk" and ev.outcome.quirks == ("chat.object-wrong",)
    declared = target(expectations={"chat.object-wrong": {"reason": "r", "source": "s"}})
    assert (await runner.evaluate(SPEC, declared, [WRONG])).outcome.name == "expected-quirk"
    assert (await runner.evaluate(SPEC, declared, [GOOD])).outcome.name == "stale-expectation"


def test_evaluate_exchanges_is_the_same_without_an_event_loop():
    for ex in (GOOD, WRONG):
        assert runner.evaluate_exchanges(SPEC, target(), [ex]).outcome == runner.judge(SPEC, target(), [ex]).outcome
    assert runner.evaluate_exchanges(SPEC, target(), [WRONG]).outcome.name == "unexpected-quirk"


def test_a_harness_exception_is_an_error_never_a_quirk():
    def broken(ex: Exchange) -> None:
        raise KeyError("boom")
    spec = dataclasses.replace(SPEC, func=broken)
    ev = runner.evaluate_exchanges(spec, target(), [GOOD])
    assert ev.outcome.name == "error" and "KeyError" in ev.outcome.message and isinstance(ev.finding, KeyError)


def test_an_unsupported_need_is_not_run():
    ran = []
    spec = dataclasses.replace(SPEC, needs=("tools",), func=lambda ex: ran.append(ex))
    ev = runner.evaluate_exchanges(spec, target(supports={"tools": False}), [GOOD])
    assert ev.outcome.name == "unsupported" and "does not support tools" in ev.outcome.message and not ran
    assert runner.evaluate_exchanges(spec, target(supports={"tools": True}), [GOOD]).outcome.name == "pass"


# -- through a probe source -------------------------------------------------------------------------------------

class FakeSource:
    """Stands in for a ProbeSession: answers each probe with the next exchange given (or raises it)."""

    def __init__(self, answers, not_ready=None):
        self.answers = list(answers)
        self.blocked = not_ready
        self.sent: list[tuple[RequestSpec, bool]] = []
        self.prepared = self.closed = False

    def not_ready(self, down=None):
        return self.blocked

    def prepare(self):
        self.prepared = True

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.closed = True

    async def send(self, spec, *, fresh=False):
        self.sent.append((spec, fresh))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_probes_are_sent_in_order_and_the_check_judged():
    source = FakeSource([WRONG])
    seen = []
    ev = await runner.evaluate(SPEC, target(), source, after_send=lambda t, exs: seen.append((t.id, list(exs))))
    probe = PROBES[SPEC.probes[0]]
    assert [s for s, _ in source.sent] == [probe.build(ProbeContext(provider(), "m"))]
    assert source.prepared and source.closed and seen == [("p-m", [WRONG])]
    assert ev.outcome.name == "unexpected-quirk" and ev.exchanges == (WRONG,)


async def test_a_session_that_cannot_run_gives_its_outcome_and_sends_nothing():
    source = FakeSource([GOOD], NotReady("not-recorded", "not recorded: no cassette x"))
    ev = await runner.evaluate(SPEC, target(), source)
    assert (ev.outcome.name, ev.outcome.message) == ("not-recorded", "not recorded: no cassette x")
    assert not source.sent and not source.prepared


async def test_a_cassette_miss_is_an_error():
    ev = await runner.evaluate(SPEC, target(), FakeSource([CassetteMiss("c.yaml", "POST /x", "pytest …")]))
    assert ev.outcome.name == "error" and "c.yaml" in ev.outcome.message


async def test_a_refused_connection_marks_the_provider_down():
    refused = dataclasses.replace(GOOD, status=None, chunks=(), headers=(),
                                  failure=TransportFailure("connect", "connection refused", 0))
    down: dict[str, str] = {}
    ev = await runner.evaluate(SPEC, target(), FakeSource([refused]), down=down)
    assert ev.outcome.name == "unavailable" and "connection refused" in down["p"]
    # a replayed (recorded) refusal is the provider's answer, judged like any other
    replayed = dataclasses.replace(refused, source="cassette")
    assert (await runner.evaluate(SPEC, target(), FakeSource([replayed]), down={})).outcome.name != "unavailable"


# -- the run mode -----------------------------------------------------------------------------------------------

# (record mode, --live) → live, loads cassette, writes (no cassette / cassette), needs credentials (no / yes
# cassette), replays (no cassette; cassette with / without the request), name
TABLE = {
    ("none", False): (False, True, (False, False), (False, False), (True, True, True), "replay"),
    ("once", False): (True, True, (True, False), (True, False), (False, True, True), "record:once"),
    ("new_episodes", False): (True, True, (True, True), (True, True), (False, True, False), "record:new_episodes"),
    ("all", False): (True, False, (True, True), (True, True), (False, False, False), "record:all"),
    ("rewrite", False): (True, False, (True, True), (True, True), (False, False, False), "record:rewrite"),
}
for _m in RECORD_MODES:
    TABLE[(_m, True)] = (True, False, (False, False), (True, True), (False, False, False), "live")


@pytest.mark.parametrize("record_mode,live", sorted(TABLE))
def test_run_mode_answers(record_mode, live):
    mode = RunMode.parse(record_mode, live=live)
    is_live, loads, writes, creds, replays, name = TABLE[(record_mode, live)]
    assert mode.live == is_live and mode.replay_only == (not is_live) and mode.requires_cassette == (not is_live)
    assert mode.loads_cassette == loads
    assert (mode.writes(cassette_loaded=False), mode.writes(cassette_loaded=True)) == writes
    assert (mode.needs_credentials(cassette_exists=False), mode.needs_credentials(cassette_exists=True)) == creds
    # a cassette is only ever loaded when the mode loads one
    loaded = mode.loads_cassette
    assert (mode.replays(cassette_loaded=False, recorded=False), mode.replays(cassette_loaded=loaded, recorded=True),
            mode.replays(cassette_loaded=loaded, recorded=False)) == replays
    assert mode.name == name
    assert mode.merges == (record_mode == "new_episodes" and not live)


def test_run_mode_parses_once_and_is_frozen():
    assert RunMode.parse(None) == RunMode.parse("none") == REPLAY
    assert RunMode.parse("all", live=True).pytest_args() == ["--live"]
    assert RunMode.parse("once").pytest_args() == ["--record-mode=once"] and REPLAY.pytest_args() == []
    with pytest.raises(RunModeError, match="use one of none, once, new_episodes, all, rewrite"):
        RunMode.parse("sometimes")
    with pytest.raises(dataclasses.FrozenInstanceError):
        REPLAY.live_only = True  # type: ignore[misc]


# -- one place ---------------------------------------------------------------------------------------------------

def test_only_the_runner_runs_checks_and_decides():
    """No module but oaicompat/runner.py calls decide() or runs a check (`.run(*exchanges)`)."""
    calls = re.compile(r"(?<![\w.])decide\(|\bspec\.run\(|\.run\(\*")
    offenders = []
    for path in sorted((ROOT / "oaicompat").rglob("*.py")) + [ROOT / "tests" / "support" / "behaviours.py"]:
        rel = path.relative_to(ROOT).as_posix()
        if rel in ("oaicompat/runner.py", "oaicompat/outcomes.py", "oaicompat/retry.py", "oaicompat/transport.py"):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if calls.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_record_modes_are_compared_only_in_run_mode():
    literal = re.compile(r"""[=!]=\s*["'](none|once|new_episodes|all|rewrite)["']|in \(["']none["']""")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "oaicompat").rglob("*.py")) if p.name != "run_mode.py"
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if literal.search(line) and "record" in line.lower() + p.name]
    assert not hits, hits


def test_layers_below_the_plugin_import_no_pytest_and_the_transport_no_cassette():
    code = ("import sys, oaicompat.runner, oaicompat.run_mode; "
            "assert 'pytest' not in sys.modules, 'runner imports pytest'; "
            "import oaicompat.transport as t, inspect; src = inspect.getsource(t); "
            "code = src.split('\"\"\"', 2)[2]; assert 'scrub' not in code and 'cassette' not in code")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
