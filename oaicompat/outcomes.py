"""From what a check did to an outcome, web-platform-tests style: expectations come from providers.yaml.

`decide` is pure: (check spec, finding or None, provider, model) → Outcome. The pytest plugin turns an
Outcome into pass / xfail / fail / skip; results.json records it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .checks.base import Blocked, CheckSpec, Finding, NotApplicable, Observation, QuirkFound, Violation, quirks_of
from .config import Expectation, Provider
from .scrub import Scrubber

OutcomeName = Literal[
    "pass",                # the rule holds
    "expected-quirk",      # a quirk providers.yaml declares (xfail)
    "unexpected-quirk",    # a catalogued quirk providers.yaml does not declare (fail)
    "stale-expectation",   # declared, but the owning check passed (fail: remove it)
    "violation",           # broke the rule in a way no quirk names yet (fail)
    "blocked",             # could not evaluate: an earlier step failed and another check reports it
    "unsupported",         # provider declares the needed feature unsupported (skip)
    "not-recorded",        # replay without a cassette (skip)
    "not-configured",      # live without key or URL (skip)
    "not-applicable",      # imported evidence whose request does not meet the check's needs
    "unavailable",         # live: could not connect to the provider
    "error",               # the harness itself failed
    "info",                # informational check: observations only
]

PYTEST_ACTION: dict[str, str] = {
    "pass": "pass", "info": "pass",
    "expected-quirk": "xfail",
    "unexpected-quirk": "fail", "stale-expectation": "fail", "violation": "fail",
    "unavailable": "fail", "error": "fail",
    "blocked": "skip", "unsupported": "skip", "not-recorded": "skip", "not-configured": "skip",
    "not-applicable": "skip",
}


@dataclass(frozen=True)
class Outcome:
    name: OutcomeName
    message: str = ""
    quirks: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    observations: tuple[Observation, ...] = ()
    declared: dict[str, Any] = field(default_factory=dict)   # quirk → {reason, source, origin}

    @property
    def action(self) -> str:
        return PYTEST_ACTION[self.name]


def decide(spec: CheckSpec, finding: BaseException | None, provider: Provider, model: str,
           observations: tuple[Observation, ...] = (), scrubber: Scrubber | None = None,
           endpoint: str | None = None) -> Outcome:
    """The outcome, its message and evidence lines scrubbed of every key (a check may quote what a vendor
    echoed): the keys named in the environment, plus `scrubber`'s. `endpoint`: the request path of the
    exchange judged (relative to base_url); expectations scoped with `endpoints:` apply only there, those
    scoped with `models:` only to those models."""
    outcome = _decide(spec, finding, provider, model, observations, endpoint)
    clean = Scrubber.from_environment().merged(scrubber)
    message, lines = clean.text(outcome.message), tuple(clean.text(line) for line in outcome.lines)
    if message == outcome.message and lines == outcome.lines:
        return outcome
    return replace(outcome, message=message, lines=lines)


def _decide(spec: CheckSpec, finding: BaseException | None, provider: Provider, model: str,
            observations: tuple[Observation, ...] = (), endpoint: str | None = None) -> Outcome:
    declared: dict[str, Expectation] = {}
    for q in spec.quirks:
        exp = provider.expectation_for(q, model, endpoint)
        if exp is not None:
            declared[q] = exp
    declared_info = {q: _declared_info(e) for q, e in declared.items()}

    if finding is None:
        if spec.kind == "info":
            return Outcome("info", "observed", observations=observations)
        if declared and all(e.intermittent for e in declared.values()):
            return Outcome("pass", f"passed; the intermittent {', '.join(sorted(declared))} did not show this run",
                           observations=observations, declared=declared_info)
        if declared:
            names = ", ".join(sorted(declared))
            return Outcome("stale-expectation",
                           f"expectation stale: {spec.id} passed; remove {names} from providers.yaml "
                           f"(provider {provider.name})", tuple(sorted(declared)), declared=declared_info)
        return Outcome("pass", observations=observations)
    if isinstance(finding, QuirkFound):
        # several quirks (QuirksFound): expected only when every one is declared, so none hides another
        quirks = quirks_of(finding)
        head = (f"[{finding.quirk}] {spec.rule}: {finding.detail}" if len(quirks) == 1
                else f"{spec.rule}: {finding.detail}")
        undeclared = [q for q in quirks if q not in declared]
        if not undeclared:
            reasons = "; ".join(declared[q].reason for q in quirks)
            return Outcome("expected-quirk", f"{head} (declared: {reasons})", quirks,
                           finding.lines, observations, declared_info)
        also = ""
        if declared:
            also = f"; providers.yaml declares {', '.join(sorted(declared))} for this check instead"
        return Outcome("unexpected-quirk",
                       f"{head} — not declared for {provider.name}"
                       f"{'' if len(quirks) == 1 else ': ' + ', '.join(undeclared)}; if this is known, add "
                       f"it under expectations in providers.yaml with a reason and a source{also}",
                       quirks, finding.lines, observations, declared_info)
    if isinstance(finding, Violation):
        return Outcome("violation", f"{finding.rule}: {finding.detail} (no catalogued quirk names this yet)",
                       (), finding.lines, observations)
    if isinstance(finding, Blocked):
        return Outcome("blocked", f"blocked: {finding.detail} (reported by {finding.owner})")
    if isinstance(finding, NotApplicable):
        return Outcome("not-applicable", str(finding))
    if isinstance(finding, Finding):  # pragma: no cover - every subclass is handled above
        return Outcome("error", f"unhandled finding {type(finding).__name__}: {finding}")
    return Outcome("error", f"harness error in {spec.id}: {type(finding).__name__}: {finding}")


def _declared_info(e: Expectation) -> dict[str, Any]:
    info: dict[str, Any] = {"reason": e.reason, "source": e.source, "origin": e.origin}
    if e.intermittent:
        info["intermittent"] = True
    if e.models:
        info["models"] = list(e.models)
    if e.endpoints:
        info["endpoints"] = list(e.endpoints)
    return info
