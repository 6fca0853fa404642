"""The front page's view model (pure): which provider has which quirk.

Rows are quirks (grouped by area) that some provider was seen to have or declares in providers.yaml; columns
are providers grouped by kind (local and gateway in the first table, hosted in the second), one column per
model where a provider has several in the results. A cell is one of:

    seen         the quirk occurred and the provider does not declare it
    expected     the quirk occurred and the provider declares it
    documented   the provider declares it, and no check that can find it has judged this provider
    not seen     a check that can find it judged this provider, and it did not occur
    no evidence  nothing either way

Which checks can find a quirk comes from the checks' own `quirks=` declarations, and from the records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..config import Provider, ProvidersConfig
from ..quirks import Catalogue
from .basics import QUIRK_OUTCOMES, Entry, area_rank, day, levels, slug, text
from .pages import quirk_ref
from .views import (
    Column,
    HeaderGroup,
    QuirkArea,
    QuirkCell,
    QuirkColumn,
    QuirkMatrix,
    QuirkRow,
    QuirkTable,
)

STATES: dict[str, tuple[str, str]] = {       # state → (css class, words)
    "seen": ("q-seen", "seen"),
    "expected": ("q-exp", "expected"),
    "documented": ("q-doc", "documented"),
    "not-seen": ("q-not", "not seen"),
    "no-evidence": ("q-none", "no evidence"),
}
STATE_MEANING: dict[str, str] = {
    "seen": "the quirk occurred and providers.yaml does not declare it",
    "expected": "the quirk occurred, as providers.yaml declares",
    "documented": "providers.yaml declares it; no recorded evidence either way",
    "not-seen": "a check that finds this quirk judged this provider and it did not occur",
    "no-evidence": "no check that finds this quirk judged this provider, and nothing declares it",
}
# outcomes that judged a record: the quirk either occurred there or did not
JUDGED = frozenset({"pass", "expected-quirk", "unexpected-quirk", "stale-expectation", "violation"})
TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Local servers and gateways", "local", ("local", "gateway")),
    ("Hosted APIs", "hosted", ("hosted",)),
)
LABEL_LIMIT = 22
_T = TypeVar("_T")
MAX_COLUMNS = 18        # a table wider than this splits (between providers): each fits a 1366-pixel screen


def registry_quirks() -> dict[str, set[str]]:
    """quirk id → the checks that can report it, from the checks' `quirks=` declarations."""
    from ..checks import base  # importing the package registers every check
    found: dict[str, set[str]] = {}
    for spec in base.CHECKS.values():
        for q in spec.quirks:
            found.setdefault(q, set()).add(spec.id)
    return found


def abbreviate(name: str, limit: int = LABEL_LIMIT) -> str:
    """A header label: a model id without its `org/` prefix, cut to `limit` characters (the full name is kept)."""
    short = name.rsplit("/", 1)[-1] or name
    return short if len(short) <= limit else short[: limit - 1] + "…"


def _evidence_label(group: Sequence[Entry]) -> str:
    seen: dict[str, list[str]] = {}
    for e in group:
        for lv in levels(e.rec):
            when = e.run.started_at if lv == "live" else max(
                (text(ev.get("recorded_at"), 40) for ev in e.rec.get("evidence") or [] if ev.get("recorded_at")),
                default=e.run.started_at)
            seen.setdefault(lv, []).append(when)
    order = [lv for lv in ("live", "recorded", "third-party") if lv in seen] + sorted(set(seen) - {
        "live", "recorded", "third-party"})
    return "; ".join(" ".join(p for p in (lv, day(max(seen[lv]))) if p) for lv in order)


def _declared(prov: Provider | None, group: Sequence[Entry], model: str | None,
              provider_models: Sequence[str]) -> dict[str, str]:
    """quirk id → a note, for every quirk declared for this provider (and model)."""
    out: dict[str, str] = {}
    for e in group:
        decl = e.rec.get("declared")
        for q in decl if isinstance(decl, dict) else ():
            out.setdefault(str(q), "")
    if prov is None:
        return out
    for q, exp in prov.expectations.items():
        models = tuple(exp.models)
        if not models or model is None or model in models:
            out[q] = ""
        elif not any(m in provider_models for m in models):
            # declared for a model without results here: shown on every column of the provider, saying which
            out.setdefault(q, f"declared for {', '.join(models)}")
    return out


def _cell(q: str, column: QuirkColumn, group: Sequence[Entry], can_find: set[str], declared: Mapping[str, str],
          qslug: str) -> QuirkCell:
    page = column.href
    mine = [e for e in group if str(e.rec.get("check")) in can_find]
    hits = [e for e in mine if e.outcome in QUIRK_OUTCOMES and q in (e.rec.get("quirks") or ())]
    judged = [e for e in mine if e.outcome in JUDGED]

    def third(es: Sequence[Entry]) -> bool:
        return bool(es) and all(levels(e.rec) == ("third-party",) for e in es)

    def make(state: str, href: str, note: str, third_party: bool = False) -> QuirkCell:
        css, label = STATES[state]
        what = f"{column.full}: {q}: {label} ({STATE_MEANING[state]})"
        return QuirkCell(state=state, label=label, css=css, href=href,
                         note=f"{what}; {note}" if note else what, third_party=third_party)

    if hits:
        state = "expected" if any(e.outcome == "expected-quirk" for e in hits) else "seen"
        checks = sorted({str(e.rec.get("check")) for e in hits})
        return make(state, f"{page}#{hits[0].anchor}", f"{len(hits)} of {len(mine)} records, in {', '.join(checks)}",
                    third(hits))
    if q in declared and not judged:
        return make("documented", f"{page}#d-{qslug}", declared[q])
    if judged:
        note = f"{len(judged)} judged records"
        if q in declared:
            note += "; declared in providers.yaml, so the expectation is stale" if not declared[q] else \
                f"; {declared[q]}"
        return make("not-seen", f"{page}#{judged[0].anchor}", note, third(judged))
    return make("no-evidence", f"quirks/{qslug}.html", "")


NOT_A_MODEL = "(imported)"


def _columns(col: Column, groups: Mapping[str, Sequence[Entry]]) -> list[tuple[QuirkColumn, list[Entry]]]:
    flat = [e for g in groups.values() for e in g]
    # the evidence runner's grouped "not applicable" records carry the model "(imported)": not a model of the
    # vendor's, so no column of its own beside real ones
    real = [m for m in col.models if m != NOT_A_MODEL] or list(col.models)
    models: list[str | None] = list(real) if len(real) > 1 else [None]
    out = []
    for model in models:
        group = [e for e in flat if model is None or e.rec.get("model") == model]
        full = col.provider if model is None else f"{col.provider} · {model}"
        if model is None and real:
            full += f" ({real[0]})"
        label = col.provider if model is None else abbreviate(model)
        evidence = _evidence_label(group) or (col.state_label or "no evidence")
        lv = {lv for e in group for lv in levels(e.rec)}
        out.append((QuirkColumn(provider=col.provider, provider_title=col.title, slug=col.slug, kind=col.kind,
                                model=model, label=label, full=full, evidence=evidence,
                                third_party=lv == {"third-party"}, note_id=col.note_id), group))
    return out


def _chunks(items: Sequence[_T], provider: Callable[[_T], str], limit: int) -> list[list[_T]]:
    """Split columns into runs of at most `limit`, between providers (a provider with more models than `limit`
    is split too)."""
    runs: list[list[_T]] = []
    for item in items:
        if runs and provider(runs[-1][0]) == provider(item):
            runs[-1].append(item)
        else:
            runs.append([item])
    parts: list[list[_T]] = [[]]
    for run in runs:
        if parts[-1] and len(parts[-1]) + len(run) > limit:
            parts.append([])
        while len(run) > limit:
            parts[-1].extend(run[:limit])
            parts.append([])
            run = run[limit:]
        parts[-1].extend(run)
    return [p for p in parts if p]


def _header(columns: Sequence[QuirkColumn]) -> tuple[tuple[HeaderGroup, ...], tuple[HeaderGroup, ...]]:
    kinds: list[HeaderGroup] = []
    provs: list[HeaderGroup] = []
    for c in columns:
        kind = c.kind or "other"
        if kinds and kinds[-1].label == kind:
            kinds[-1] = HeaderGroup(kind, kinds[-1].span + 1)
        else:
            kinds.append(HeaderGroup(kind, 1))
        if provs and provs[-1].label == c.provider:
            provs[-1] = HeaderGroup(c.provider, provs[-1].span + 1, c.href, c.provider_title)
        else:
            provs.append(HeaderGroup(c.provider, 1, c.href, c.provider_title))
    return tuple(kinds), tuple(provs)


@dataclass(frozen=True, eq=False)
class _Built:
    column: QuirkColumn
    group: list[Entry]              # the column's records
    declared: dict[str, str]        # quirk id → note, for every quirk declared for the column


def _can_find(by_provider: Mapping[str, Mapping[str, Sequence[Entry]]]) -> dict[str, set[str]]:
    """quirk id → checks that can report it: the registry, plus any check whose records name the quirk."""
    found = registry_quirks()
    for groups in by_provider.values():
        for check, group in groups.items():
            for e in group:
                decl = e.rec.get("declared")
                for q in [*(e.rec.get("quirks") or ()), *(decl if isinstance(decl, dict) else ())]:
                    found.setdefault(str(q), set()).add(check)
    return found


def _table(caption: str, anchor: str, built: Sequence[_Built], candidates: Sequence[str],
           can_find: Mapping[str, set[str]], catalogue: Catalogue | None, counts: dict[str, int]) -> QuirkTable:
    areas: list[QuirkArea] = []
    for q in candidates:
        qslug = slug(q)
        cells = tuple(_cell(q, b.column, b.group, can_find.get(q, set()), b.declared, qslug) for b in built)
        if not any(c.state in ("seen", "expected", "documented") or (c.state == "not-seen" and q in b.declared)
                   for c, b in zip(cells, built)):
            continue                # nobody in this table has it
        for c in cells:
            counts[c.state] += 1
        qdef = catalogue.quirks.get(q) if catalogue is not None else None
        area = qdef.area if qdef else text(q.split(".")[0], 80)
        row = QuirkRow(quirk=quirk_ref(q, catalogue), area=area, impact=qdef.impact if qdef else None, cells=cells)
        if areas and areas[-1].area == area:
            areas[-1] = QuirkArea(area, areas[-1].rows + (row,))
        else:
            areas.append(QuirkArea(area, (row,)))
    columns = tuple(b.column for b in built)
    kinds, providers = _header(columns)
    return QuirkTable(caption=caption, anchor=anchor, kinds=kinds, providers=providers, columns=columns,
                      areas=tuple(areas))


def build_matrix(columns: Sequence[Column], by_provider: Mapping[str, Mapping[str, Sequence[Entry]]],
                 config: ProvidersConfig | None, catalogue: Catalogue | None) -> QuirkMatrix:
    can_find = _can_find(by_provider)
    built: list[_Built] = []
    idle: list[tuple[str, str, str]] = []
    for col in columns:
        prov = config.providers.get(col.provider) if config is not None else None
        groups = by_provider.get(col.provider, {})
        if not groups and not (prov and prov.expectations):
            idle.append((col.provider, col.title, col.href))
            continue
        for qc, group in _columns(col, groups):
            model = qc.model or (col.models[0] if len(col.models) == 1 else None)
            built.append(_Built(qc, group, _declared(prov, group, model, col.models)))

    def area_of(q: str) -> str:
        return catalogue.quirks[q].area if catalogue is not None and q in catalogue.quirks else q.split(".")[0]

    candidates = sorted({q for b in built for q in b.declared} | {
        str(q) for b in built for e in b.group if e.outcome in QUIRK_OUTCOMES for q in e.rec.get("quirks") or ()},
        key=lambda q: (area_rank(area_of(q)), area_of(q), q))
    counts: dict[str, int] = dict.fromkeys(STATES, 0)
    tables: list[QuirkTable] = []
    rest = list(built)
    for caption, anchor, kinds in [*TABLES, ("Other providers", "other", ())]:
        mine = [b for b in rest if not kinds or b.column.kind in kinds]
        taken = {id(b) for b in mine}
        rest = [b for b in rest if id(b) not in taken]
        mine.sort(key=lambda b: kinds.index(b.column.kind) if b.column.kind in kinds else len(kinds))   # stable
        parts = _chunks(mine, lambda b: b.column.provider, MAX_COLUMNS)
        for n, part in enumerate(parts, 1):
            tables.append(_table(caption + (f" ({n} of {len(parts)})" if len(parts) > 1 else ""),
                                 anchor + (f"-{n}" if n > 1 else ""), part, candidates, can_find, catalogue, counts))
    return QuirkMatrix(tables=tuple(tables), idle=tuple(idle), counts=tuple(counts.items()))
