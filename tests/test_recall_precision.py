"""Recall and precision of the conformance suite, measured against the reference server (tests/support).

- precision: the conformant reference, and each valid protocol variant of its bytes, yields zero quirks across
  every registered check;
- recall: for every catalogued quirk id, the reference with that quirk's emulated behaviour on makes the
  suite raise exactly that id (plus the ids the behaviour declares in `also=`), from the check that owns it.

Data-driven from the quirk catalogue (fixtures/quirks/*.yaml) and the CHECKS registry: a newly catalogued id
fails here until tests/support/behaviours.py emulates it (or lists it in NOT_EMULABLE with a reason).
The suite runs in process (ProbeSession, live only, against one module-scoped server).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from oaicompat.checks.base import CHECKS
from oaicompat.quirks import load_catalogue
from tests.support.behaviours import (
    BEHAVIOURS,
    NOT_EMULABLE,
    Baseline,
    SuiteRun,
    conformant_baseline,
    provider,
    reference,
    run_behaviour,
    run_suite,
)
from tests.support.wire_server import PRECISION_VARIANTS, WireServer

CATALOGUE = load_catalogue()
OWNER = {q: cid for cid, spec in CHECKS.items() for q in spec.quirks}
# outcomes the conformant reference may produce: it declares reasoning unsupported, nothing else
CLEAN = ("pass", "info", "unsupported")


@dataclass
class Detection:
    quirk: str
    raised: dict[str, str]          # quirk id → check that raised it
    problems: dict[str, str]        # check id → violation / harness error
    seconds: float
    sent: int

    @property
    def wanted(self) -> set[str]:
        return {self.quirk, *BEHAVIOURS[self.quirk].also}

    @property
    def detected(self) -> bool:
        return self.raised.get(self.quirk) == OWNER.get(self.quirk)

    @property
    def exact(self) -> bool:
        return self.detected and set(self.raised) == self.wanted and not self.problems


@pytest.fixture(scope="module")
def server():
    s = WireServer(reference()).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def baseline(server) -> Baseline:
    return asyncio.run(conformant_baseline(server))


@pytest.fixture(scope="module")
def recall(server, baseline) -> dict[str, Detection]:
    async def measure() -> dict[str, Detection]:
        out = {}
        for quirk, behaviour in BEHAVIOURS.items():
            t0 = time.perf_counter()
            run = await asyncio.wait_for(run_behaviour(server, behaviour, baseline), timeout=60)
            out[quirk] = Detection(quirk, run.quirks(), problems(run), time.perf_counter() - t0, run.sent)
        return out
    return asyncio.run(measure())


def problems(run: SuiteRun) -> dict[str, str]:
    bad = ("violation", "error", "stale-expectation", "unavailable")
    return {cid: f"{r.outcome.name}: {r.outcome.message[:300]}" for cid, r in run.checks.items()
            if r.outcome.name in bad}


def table(recall: dict[str, Detection]) -> str:
    rows = [f"{'quirk id':48} {'detected':8} {'by check':36} also / other quirks raised"]
    for quirk in sorted(CATALOGUE.quirks):
        if quirk in NOT_EMULABLE:
            rows.append(f"{quirk:48} {'n/a':8} {'(not emulable)':36} {NOT_EMULABLE[quirk]}")
            continue
        d = recall.get(quirk)
        if d is None:
            rows.append(f"{quirk:48} {'MISSING':8} {'(no behaviour)':36}")
            continue
        extra = sorted(set(d.raised) - {quirk})
        mark = "yes" if d.exact else ("partial" if d.detected else "NO")
        rows.append(f"{quirk:48} {mark:8} {d.raised.get(quirk, '-'):36} {', '.join(extra)}"
                    + (f"  PROBLEMS {d.problems}" if d.problems else ""))
    emulable = [q for q in CATALOGUE.quirks if q not in NOT_EMULABLE]
    found = [q for q in emulable if q in recall and recall[q].exact]
    rows.append(f"recall: {len(found)}/{len(emulable)} emulable quirk ids detected exactly "
                f"({100 * len(found) / max(1, len(emulable)):.1f} %); {len(NOT_EMULABLE)} not emulable; "
                f"{sum(d.sent for d in recall.values())} probe requests sent for "
                f"{len(recall)} behaviours in {sum(d.seconds for d in recall.values()):.1f} s")
    return "\n".join(rows)


# -- precision ------------------------------------------------------------------------------------------------

def test_conformant_reference_raises_no_quirk(baseline: Baseline, server):
    """Every registered check passes (or only observes) against the reference; reasoning is declared unsupported."""
    outcomes = {cid: r.outcome for cid, r in baseline.run.checks.items()}
    assert set(outcomes) == set(CHECKS)
    unclean = {cid: f"{o.name}: {o.message[:300]}" for cid, o in outcomes.items() if o.name not in CLEAN}
    assert not unclean, unclean
    unsupported = {cid for cid, o in outcomes.items() if o.name == "unsupported"}
    assert unsupported == {cid for cid, spec in CHECKS.items() if "reasoning" in spec.needs and spec.skip_when_unsupported}
    assert not server.errors, server.errors


@pytest.mark.parametrize("variant", sorted(PRECISION_VARIANTS))
def test_valid_protocol_variant_raises_no_quirk(server, variant):
    """CRLF, `data:` without a space, comments and keep-alives, extension fields, reordered keys and odd chunk
    splits are all valid: the whole suite still finds nothing."""
    framing = PRECISION_VARIANTS[variant]
    server.handler = reference(framing=framing)
    run = asyncio.run(asyncio.wait_for(run_suite(provider(server.base_url)), timeout=120))
    unclean = {cid: f"{r.outcome.name}: {r.outcome.message[:300]}" for cid, r in run.checks.items()
               if r.outcome.name not in CLEAN}
    assert not unclean, unclean
    assert not server.errors, server.errors
    # the variant really went over the wire
    stream = run.checks["stream.done"].exchanges[0]
    plain = run.checks["chat.object"].exchanges[0]
    kinds = {o.kind for o in stream.sse.observations}
    if framing.crlf:
        assert "crlf-line-endings" in kinds
    if framing.no_space:
        assert "no-space-after-colon" in kinds
    if framing.comments:
        assert "comment" in kinds and plain.body.startswith(b"\n")
    if framing.extra_fields:
        assert b"x_ref_extension" in stream.body and "x_ref_extension" in plain.json
        assert run.checks["chat.extension-fields"].outcome.observations
    if framing.reorder_keys:
        assert list(plain.json)[0] == "system_fingerprint"
    if framing.split:
        assert max(len(c.data) for c in stream.chunks) <= framing.split
        assert len(stream.chunks) > len(stream.sse.events)


# -- recall ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quirk", sorted(CATALOGUE.quirks))
def test_quirk_is_detected_by_its_owner(recall, quirk):
    if quirk in NOT_EMULABLE:
        pytest.skip(f"not emulable: {NOT_EMULABLE[quirk]}")
    assert quirk in OWNER, f"{quirk} is catalogued but no registered check owns it"
    assert quirk in BEHAVIOURS, (f"{quirk} has no emulated behaviour in tests/support/behaviours.py: add one, or "
                                 f"list it in NOT_EMULABLE with the reason")
    d = recall[quirk]
    assert d.raised.get(quirk) == OWNER[quirk], \
        f"{quirk} was not raised by {OWNER[quirk]}; the suite raised {d.raised or 'nothing'}"
    assert set(d.raised) == d.wanted, \
        f"{quirk}: other quirks raised {sorted(set(d.raised) - d.wanted)}, declared also= {sorted(d.wanted - {quirk})}"
    assert not d.problems, d.problems


def test_recall_table(recall):
    """100 % of the emulable catalogued quirk ids are detected, each exactly; the table is printed."""
    text = table(recall)
    print("\n" + text)
    emulable = [q for q in CATALOGUE.quirks if q not in NOT_EMULABLE]
    missed = [q for q in emulable if q not in recall or not recall[q].exact]
    assert not missed, f"not detected exactly: {missed}\n{text}"
    assert len(NOT_EMULABLE) <= 10, "few quirks may be declared not emulable"


def test_behaviours_are_labelled_and_cite_a_source():
    for quirk, b in BEHAVIOURS.items():
        assert quirk in CATALOGUE, f"behaviour for unknown quirk {quirk}"
        assert b.doc.startswith("EMULATED"), quirk
        assert "Source:" in b.doc, quirk
        q = CATALOGUE.get(quirk)
        vendors = {v.vendor for v in q.vendors}
        assert any(v in b.doc for v in vendors) or q.rule in b.doc, \
            f"{quirk}: cite a catalogued vendor ({sorted(vendors)}) or its rule {q.rule}"
        for other in b.also:
            assert other in CATALOGUE and other != quirk, (quirk, other)
    for quirk, reason in NOT_EMULABLE.items():
        assert quirk in CATALOGUE and quirk not in BEHAVIOURS and reason, quirk
