"""Single-exchange forms, proved on the reference server (tests/support, emulated behaviours).

A check that takes any number of exchanges (`*exchanges`) and declares `requires=` judges one exchange from
anywhere, e.g. one imported stream: for each rule issue 16 names (delta index / id / name, argument fragments
that join to JSON, the finish reason of a stream or reply carrying tool calls, the error envelope) the
reference's conformant reply to ONE probe passes, and the emulated deviation on that one reply is found by its
owner. The exchange meets the check's declared needs, so the evidence runner would apply it.
"""

from __future__ import annotations

import asyncio

import pytest

from oaicompat.checks.base import CHECKS, PROBES, Finding, ProbeContext, QuirkFound, quirks_of
from oaicompat.checks.requires import unmet
from oaicompat.exchange import Exchange
from oaicompat.session import LiveMemo
from tests.support.behaviours import BEHAVIOURS, provider, reference, session
from tests.support.wire_server import WireServer

# quirk → its owner, a check with a single-exchange form
SINGLE = {
    "tools.delta-missing-index": "tools.delta-index",
    "tools.delta-index-collision": "tools.delta-index-sequence",
    "tools.delta-index-gap": "tools.delta-index-sequence",
    "tools.delta-first-incomplete": "tools.delta-first-complete",
    "tools.delta-repeats-id-name": "tools.delta-no-repeat",
    "tools.delta-continuation-extras": "tools.delta-no-repeat",
    "tools.delta-arguments-not-string": "tools.delta-arguments-string",
    "tools.delta-arguments-invalid-json": "tools.delta-arguments-json",
    "tools.call-id-missing": "tools.call-id",
    "tools.call-type-wrong": "tools.call-type",
    "tools.call-name-missing": "tools.call-name",
    "tools.arguments-not-string": "tools.arguments-string",
    "tools.arguments-invalid-json": "tools.arguments-valid",
    "tools.finish-reason-stop": "tools.finish-reason",
    "tools.finish-reason-wrong": "tools.finish-reason",
    "errors.string-error": "errors.envelope",
    "errors.non-openai-shape": "errors.envelope",
}


@pytest.fixture(scope="module")
def server():
    s = WireServer(reference()).start()
    yield s
    s.stop()


def one(server: WireServer, probe: str) -> Exchange:
    prov = provider(server.base_url)

    async def send() -> Exchange:
        s = session(prov, LiveMemo(), f"single::{probe}")
        s.prepare()
        async with s:
            return await s.send(PROBES[probe].build(ProbeContext(prov, prov.model)), fresh=True)
    return asyncio.run(send())


def judge(check: str, ex: Exchange) -> tuple[str, ...]:
    """The quirks the check finds on this one exchange (() when it passes); it must apply to the exchange."""
    spec = CHECKS[check]
    assert spec.accepts_one and spec.requires is not None, check
    assert unmet(spec.requires, ex) == [], (check, unmet(spec.requires, ex))
    try:
        spec.run(ex)
    except QuirkFound as found:
        return quirks_of(found)
    except Finding as other:
        pytest.fail(f"{check} on one {ex.request.path} exchange: {type(other).__name__}: {other}")
    return ()


def single(server: WireServer, check: str) -> set[str]:
    """Every quirk `check` finds on the reply to each of its probes, one exchange at a time; at least one
    reply must meet the check's declared needs."""
    found: set[str] = set()
    judged = 0
    for probe in CHECKS[check].probes:
        ex = one(server, probe)
        if unmet(CHECKS[check].requires, ex):        # e.g. tools.auto answered without a call
            continue
        judged += 1
        found |= set(judge(check, ex))
    assert judged, f"no probe of {check} gave an exchange that meets its needs"
    return found


@pytest.mark.parametrize("quirk", sorted(SINGLE))
def test_single_exchange_form_passes_and_fails(server, quirk):
    check = SINGLE[quirk]
    assert quirk in CHECKS[check].quirks
    server.handler = reference()
    assert single(server, check) == set()
    server.handler = reference(BEHAVIOURS[quirk])
    assert quirk in single(server, check)
