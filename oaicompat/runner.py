"""Evaluate one check against one target: the single place that sends a check's probes (or takes the exchanges
given), runs the check and decides the outcome. Free of pytest.

    evaluation = await evaluate(chat.object_is_chat_completion, Target(provider, model), session)
    evaluation = evaluate_exchanges(spec, Target(provider, model), [exchange])     # recorded elsewhere

Callers: the pytest plugin (which maps the outcome to pass / xfail / fail / skip), the evidence runner over
imported third-party recordings, the self-tests' in-process suite runner, and the benchmarks.

The steps, in order:
1. a `needs` feature the provider declares unsupported → "unsupported";
2. the session cannot run at all (no cassette, no key or URL, provider found unreachable) → that outcome;
3. send the probes through the session (a cassette miss or corrupt cassette → "error");
4. `after_send(target, exchanges)`: the caller's hook (the plugin restarts a server that hung);
5. a live exchange that could not connect → "unavailable", and the provider is noted in `down`;
6. run the check; its Finding (or a harness exception) goes through oaicompat.outcomes.decide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .checks.base import PROBES, CheckSpec, Finding, Observation, ProbeContext, spec_of
from .config import Provider
from .errors import CassetteError, CassetteMiss
from .exchange import Exchange
from .outcomes import Outcome, decide
from .scrub import Scrubber
from .session import NotReady
from .transport import RequestSpec


@dataclass(frozen=True)
class Target:
    """One provider and one of its models: what a check is evaluated against."""
    provider: Provider
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider.name}-{self.model}"


@dataclass(frozen=True)
class Evaluation:
    """What evaluating one check against one target gave."""
    spec: CheckSpec
    target: Target
    outcome: Outcome
    exchanges: tuple[Exchange, ...] = ()
    finding: BaseException | None = None     # what the check raised (None when it passed or did not run)

    @property
    def observations(self) -> tuple[Observation, ...]:
        return self.outcome.observations


class ProbeSource(Protocol):
    """What `evaluate` sends probes through: oaicompat.session.ProbeSession, or anything shaped like it."""

    def not_ready(self, down: Mapping[str, str] | None = None) -> NotReady | None: ...
    def prepare(self) -> None: ...
    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc: object) -> Any: ...
    async def send(self, spec: RequestSpec, *, fresh: bool = False) -> Exchange: ...


Check = CheckSpec | Callable[..., Any]
AfterSend = Callable[[Target, Sequence[Exchange]], None]


def as_spec(check: Check) -> CheckSpec:
    return check if isinstance(check, CheckSpec) else spec_of(check)


def unsupported(spec: CheckSpec, target: Target) -> Outcome | None:
    """"unsupported" when the provider declares one of the check's `needs` unsupported, else None. A check that
    only observes what any reply shows (`spec.skip_when_unsupported` False) runs whatever `supports:` says."""
    if not spec.skip_when_unsupported:
        return None
    for need in spec.needs:
        if not target.provider.supports_feature(need):
            return Outcome("unsupported", f"unsupported (declared): {target.provider.name} does not support {need}")
    return None


async def evaluate(check: Check, target: Target, source: ProbeSource | Sequence[Exchange], *,
                   down: MutableMapping[str, str] | None = None,
                   after_send: AfterSend | None = None) -> Evaluation:
    """Evaluate `check` against `target`, sending its probes through `source` (a ProbeSession), or on the
    exchanges given (one per probe, in order). `down`: providers found unreachable in this run (provider →
    why); read before sending, and a provider that refuses connections is added."""
    spec = as_spec(check)
    refused = unsupported(spec, target)
    if refused is not None:
        return Evaluation(spec, target, refused)
    if isinstance(source, (list, tuple)):
        return judge(spec, target, list(source))
    session: ProbeSource = source  # type: ignore[assignment]
    blocked = session.not_ready(down)
    if blocked is not None:
        return Evaluation(spec, target, Outcome(blocked.outcome, blocked.message))
    exchanges: list[Exchange] = []
    try:
        session.prepare()
        ctx = ProbeContext(target.provider, target.model)
        async with session:
            for name in spec.probes:
                probe = PROBES[name]
                exchanges.append(await session.send(probe.build(ctx), fresh=probe.fresh))
    except (CassetteMiss, CassetteError) as exc:
        return Evaluation(spec, target, Outcome("error", str(exc)), tuple(exchanges))
    if after_send is not None:
        after_send(target, exchanges)
    unreachable = _unreachable(target, exchanges)
    if unreachable is not None:
        if down is not None:
            down[target.provider.name] = unreachable
        return Evaluation(spec, target, Outcome("unavailable", f"provider unavailable: {unreachable}"),
                          tuple(exchanges))
    return judge(spec, target, exchanges, scrubber=getattr(session, "scrubber", None))


def evaluate_exchanges(check: Check, target: Target, exchanges: Sequence[Exchange]) -> Evaluation:
    """`evaluate` on exchanges recorded elsewhere (one per probe), without an event loop."""
    spec = as_spec(check)
    refused = unsupported(spec, target)
    if refused is not None:
        return Evaluation(spec, target, refused)
    return judge(spec, target, exchanges)


def judge(spec: CheckSpec, target: Target, exchanges: Sequence[Exchange],
          scrubber: Scrubber | None = None) -> Evaluation:
    """Run the check on its exchanges and decide the outcome: a Finding is what the check found, any other
    exception is a harness bug (outcome "error"), never a quirk."""
    finding: BaseException | None
    try:
        observations = tuple(spec.run(*exchanges))
        finding = None
    except Finding as found:
        # without its traceback: this frame in it would hold the finding in a cycle only the garbage collector
        # breaks, keeping the test's exchanges (and their bodies) alive for later tests
        observations, finding = (), found.with_traceback(None)
    except Exception as exc:  # noqa: BLE001 - a harness bug, reported as outcome "error"
        observations, finding = (), exc
    paths = {ex.request.path for ex in exchanges}
    endpoint = paths.pop() if len(paths) == 1 else None    # an endpoint-scoped expectation needs one path
    outcome = decide(spec, finding, target.provider, target.model, observations, scrubber=scrubber,
                     endpoint=endpoint)
    return Evaluation(spec, target, outcome, tuple(exchanges), finding)


def _unreachable(target: Target, exchanges: Sequence[Exchange]) -> str | None:
    for ex in exchanges:
        if ex.source == "live" and ex.failure is not None and ex.failure.kind == "connect" and ex.status is None:
            return f"cannot connect to {target.provider.base_url}: {ex.failure.message}"
    return None


__all__ = ["AfterSend", "Check", "Evaluation", "ProbeSource", "Target", "as_spec", "evaluate",
           "evaluate_exchanges", "judge", "unsupported"]
