"""What changed between two results, per provider: quirks that appeared or disappeared, checks that started or
stopped failing, providers added or lost. A pure comparison, plus text, markdown and HTML renderings.

Each (provider, model, check) is compared by the outcome its records add up to (basics.SEVERITY). A regression
is a check that fails now and did not before (the checks of a newly added provider included) or a quirk that is
unexpected now and was not before. Coverage lost is reported apart from regressions: a check that was judged
(pass, info, a quirk) and now is not (blocked, not recorded, not applicable, not configured, unsupported, an
error, or no record at all — its provider lost included). An error counts as both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .basics import FAILING, QUIRK_OUTCOMES, Merged, aggregate, slug, text
from .render import html_environment, md
from .views import RunInfo

# outcomes that judged the check against the provider; losing one of these is lost coverage
JUDGED = frozenset({"pass", "info", "expected-quirk", "unexpected-quirk"})
# outcomes that say nothing about the provider (None: the check has no record at all)
NOT_JUDGED = frozenset({"blocked", "not-recorded", "not-applicable", "not-configured", "unsupported", "error",
                        "unavailable", "missing"})
SHOWN = 10          # ids listed per provider and kind of change in the text and markdown renderings


@dataclass(frozen=True)
class CheckChange:
    check: str
    model: str
    where: str          # the check, with its model when the provider has several
    title: str
    old: str | None     # outcome before (None: no record)
    new: str | None


@dataclass(frozen=True)
class QuirkChange:
    quirk: str
    where: tuple[str, ...]
    expected: bool      # declared wherever it is observed


@dataclass(frozen=True)
class ProviderDiff:
    provider: str
    status: str                             # both | added | lost
    appeared: tuple[QuirkChange, ...]
    disappeared: tuple[QuirkChange, ...]
    new_unexpected: tuple[str, ...]         # quirk ids unexpected now and not before
    started_failing: tuple[CheckChange, ...]
    stopped_failing: tuple[CheckChange, ...]
    not_recorded_now: tuple[CheckChange, ...]   # had a record before, has none now
    lost_coverage: tuple[CheckChange, ...] = ()  # judged before (JUDGED), not judged now (NOT_JUDGED or no record)

    @property
    def regressed(self) -> bool:
        return bool(self.started_failing or self.new_unexpected)

    @property
    def changed(self) -> bool:
        return bool(self.appeared or self.disappeared or self.started_failing or self.stopped_failing
                     or self.not_recorded_now or self.lost_coverage or self.status != "both")

    @property
    def anchor(self) -> str:
        return f"d-{slug(self.provider)}"


@dataclass(frozen=True)
class ResultsDiff:
    old_sources: tuple[RunInfo, ...]
    new_sources: tuple[RunInfo, ...]
    added: tuple[str, ...]
    lost: tuple[str, ...]
    providers: tuple[ProviderDiff, ...]     # changed providers only, added ones included

    @property
    def regressed(self) -> bool:
        return any(p.regressed for p in self.providers)

    @property
    def lost_coverage(self) -> int:
        return sum(len(p.lost_coverage) for p in self.providers)

    @property
    def counts(self) -> dict[str, int]:
        return {"started failing": sum(len(p.started_failing) for p in self.providers),
                "new unexpected quirks": sum(len(p.new_unexpected) for p in self.providers),
                "stopped failing": sum(len(p.stopped_failing) for p in self.providers),
                "coverage lost": self.lost_coverage}

    @property
    def sources(self) -> tuple[RunInfo, ...]:   # for the shared page footer
        return self.old_sources + self.new_sources


@dataclass(frozen=True)
class _State:
    outcome: str
    title: str
    quirks: dict[str, bool]         # quirk → expected (from the records with a quirk outcome)


def _states(merged: Merged) -> dict[str, dict[tuple[str, str], _State]]:
    out: dict[str, dict[tuple[str, str], _State]] = {p: {} for p in merged.providers}
    for (pname, model, check), recs in merged.records.items():
        quirks: dict[str, bool] = {}
        for r in recs:
            if r.get("outcome") in QUIRK_OUTCOMES:
                for q in r.get("quirks") or []:
                    quirks[str(q)] = quirks.get(str(q), True) and r.get("outcome") == "expected-quirk"
        out.setdefault(pname, {})[(model, check)] = _State(
            aggregate([str(r.get("outcome")) for r in recs]), text(recs[-1].get("title"), 300), quirks)
    return out


def _quirk_map(states: dict[tuple[str, str], _State], label: dict[tuple[str, str], str]) -> dict[str, QuirkChange]:
    where: dict[str, list[str]] = {}
    expected: dict[str, bool] = {}
    for key, st in states.items():
        for q, exp in st.quirks.items():
            where.setdefault(q, []).append(label[key])
            expected[q] = expected.get(q, True) and exp
    return {q: QuirkChange(q, tuple(w), expected[q]) for q, w in sorted(where.items())}


def _provider_diff(name: str, status: str, before: dict[tuple[str, str], _State],
                   after: dict[tuple[str, str], _State]) -> ProviderDiff:
    keys = list(dict.fromkeys([*before, *after]))
    several = len({m for m, _ in keys}) > 1
    label = {k: f"{k[1]} [{k[0]}]" if several else k[1] for k in keys}
    started, stopped, gone, lost = [], [], [], []
    for key in keys:
        o = before[key].outcome if key in before else None
        n = after[key].outcome if key in after else None
        change = CheckChange(key[1], key[0], label[key], (after.get(key) or before[key]).title, o, n)
        if n in FAILING and o not in FAILING:
            started.append(change)
        elif o in FAILING and n is not None and n not in FAILING:
            stopped.append(change)
        if n is None and o is not None:
            gone.append(change)
        if o in JUDGED and (n is None or n in NOT_JUDGED):
            lost.append(change)
    qa, qb = _quirk_map(after, label), _quirk_map(before, label)
    unexpected_now = {q for q, c in qa.items() if not c.expected}
    unexpected_before = {q for q, c in qb.items() if not c.expected}
    return ProviderDiff(
        provider=name, status=status,
        appeared=tuple(c for q, c in qa.items() if q not in qb),
        disappeared=tuple(c for q, c in qb.items() if q not in qa),
        new_unexpected=tuple(sorted(unexpected_now - unexpected_before)),
        started_failing=tuple(started), stopped_failing=tuple(stopped), not_recorded_now=tuple(gone),
        lost_coverage=tuple(lost))


def diff_results(old: Merged, new: Merged) -> ResultsDiff:
    before, after = _states(old), _states(new)
    diffs = [_provider_diff(p, "both" if p in before else "added", before.get(p, {}), states)
             for p, states in after.items()]
    diffs += [_provider_diff(p, "lost", states, {}) for p, states in before.items() if p not in after]
    return ResultsDiff(old_sources=tuple(old.sources), new_sources=tuple(new.sources),
                       added=tuple(p for p in after if p not in before),
                       lost=tuple(p for p in before if p not in after),
                       providers=tuple(d for d in diffs if d.changed))


def _names(runs: Iterable[RunInfo]) -> str:
    return ", ".join(r.name for r in runs)


def _lost_phrase(d: ResultsDiff) -> str:
    n = d.lost_coverage
    where = sum(1 for p in d.providers if p.lost_coverage)
    return f"coverage lost: {n} check(s) in {where} provider(s) no longer judged"


def verdict(d: ResultsDiff) -> str:
    c = d.counts
    if d.regressed:
        return (f"REGRESSED: {c['started failing']} check(s) started failing, "
                f"{c['new unexpected quirks']} new unexpected quirk(s)"
                + (f"; {_lost_phrase(d)}" if d.lost_coverage else ""))
    if d.lost_coverage:
        return f"no regressions, but {_lost_phrase(d)}"
    return "no regressions" + ("" if d.providers or d.lost else " (no changes)")


def _first(changes: tuple[CheckChange, ...], arrow: str) -> str:
    shown = ", ".join(f"{ch.where} ({ch.old} {arrow} {ch.new or 'no record'})" for ch in changes[:SHOWN])
    return shown + (f", … ({len(changes) - SHOWN} more)" if len(changes) > SHOWN else "")


def _lines(p: ProviderDiff, arrow: str, emph: str = "") -> list[str]:
    out = [f"✗ started failing: {ch.where} ({ch.old or 'no record'} {arrow} {ch.new})" for ch in p.started_failing]
    out += [f"+ quirk {q.quirk} ({'expected' if q.expected else emph + 'unexpected' + emph}) in {', '.join(q.where)}"
            for q in p.appeared]
    out += [f"− quirk {q.quirk} gone (was in {', '.join(q.where)})" for q in p.disappeared]
    out += [f"✓ stopped failing: {ch.where} ({ch.old} {arrow} {ch.new})" for ch in p.stopped_failing]
    if p.lost_coverage:
        out.append(f"↓ coverage lost: {len(p.lost_coverage)} check(s) judged before, not now: "
                   + _first(p.lost_coverage, arrow))
    lost = {(ch.model, ch.check) for ch in p.lost_coverage}
    gone = tuple(ch for ch in p.not_recorded_now if (ch.model, ch.check) not in lost)
    if gone:
        shown = ", ".join(ch.where for ch in gone[:SHOWN])
        out.append(f"? no record now for {len(gone)} check(s): {shown}" + (" …" if len(gone) > SHOWN else ""))
    return out


def diff_text(d: ResultsDiff) -> str:
    out = [f"oaicompat diff: {_names(d.old_sources)} -> {_names(d.new_sources)}"]
    for p in d.providers:
        out.append(f"{p.provider}{f' [{p.status}]' if p.status != 'both' else ''}:")
        out += ["  " + line for line in _lines(p, "->")]
    if d.added:
        out.append("providers added: " + ", ".join(d.added))
    if d.lost:
        out.append("providers lost: " + ", ".join(d.lost))
    out.append(verdict(d))
    return "\n".join(out) + "\n"


def diff_markdown(d: ResultsDiff) -> str:
    out = ["# oaicompat diff", "",
           f"From {md(_names(d.old_sources))} to {md(_names(d.new_sources))}: **{md(verdict(d))}**", ""]
    if d.added:
        out.append("**Providers added:** " + ", ".join(md(p) for p in d.added))
    if d.lost:
        out.append("**Providers lost:** " + ", ".join(md(p) for p in d.lost))
    for p in d.providers:
        out += ["", f"## {md(p.provider)}{f' ({p.status})' if p.status != 'both' else ''}", ""]
        out += [f"- {md(line)}" for line in _lines(p, "→")]
    return "\n".join(out) + "\n"


def diff_html(d: ResultsDiff) -> str:
    return html_environment().get_template("diff.html.j2").render(diff=d, report=d, root="", nav=False,
                                                                  verdict=verdict(d))
