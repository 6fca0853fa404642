"""results.json documents → the report's view model. Pure: no files, no rendering, no network.

The matrix: one row per check (grouped by area, in AREA_GROUPS order), one column per provider (its models and
the date of its evidence in the header). A cell stands for every record of that provider and check: several
models, or one record per imported exchange; it shows the most telling outcome (basics.SEVERITY) and links to
the first record that has it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any

from ..config import Provider, ProvidersConfig
from ..quirks import Catalogue
from .basics import (
    CELL_STYLE,
    FAILING,
    QUIRK_OUTCOMES,
    Entry,
    Merged,
    aggregate,
    anchor,
    area_rank,
    day,
    entries,
    evidence_view,
    matrix_cell,
    merge_runs,
    provenances,
    safe_url,
    slug,
    styled,
    text,
)
from .front import build_matrix
from .pages import provider_page, quirk_pages
from .views import AreaGroup, Cell, Column, Report, Row, Summary

__all__ = [
    "CELL_STYLE",
    "FAILING",
    "QUIRK_OUTCOMES",
    "Entry",
    "Merged",
    "aggregate",
    "anchor",
    "area_rank",
    "build_from_merged",
    "build_report",
    "evidence_view",
    "merge_runs",
    "safe_url",
    "slug",
    "text",
]

DEFAULT_TITLE = "OpenAI-compatible API conformance"
STATE_LABEL = {"results": "", "not-recorded": "not recorded", "no-results": "no results",
               "documented": "documented, not recorded", "configured": "configured, not recorded"}


def _timing_summary(group: Sequence[Entry]) -> tuple[float | None, float | None, int, str | None]:
    ttfts: list[float] = []
    rates: list[float] = []
    when_by_level: dict[str, list[str]] = {}
    for e in group:
        t = e.rec.get("timing")
        if not isinstance(t, dict):
            continue
        ttft, total, tokens = t.get("ttft"), t.get("total"), t.get("completion_tokens")
        if isinstance(ttft, (int, float)) and ttft >= 0:
            ttfts.append(float(ttft))
        # decode rate only where it shows: a stream (it has inter-chunk gaps), tokens after the first one
        streamed = isinstance(t.get("gap_p50"), (int, float))
        if streamed and isinstance(tokens, int) and tokens > 1 and isinstance(total, (int, float)) \
                and isinstance(ttft, (int, float)) and 0 <= ttft < total:
            rates.append((tokens - 1) / (total - ttft))
        level = text(t.get("level"), 20) or "recorded"
        when = e.run.started_at if level == "live" else max(
            (text(ev.get("recorded_at"), 40) for ev in e.rec.get("evidence") or [] if ev.get("recorded_at")),
            default=e.run.started_at)
        when_by_level.setdefault(level, []).append(when)
    timed = sum(len(v) for v in when_by_level.values())
    if not timed:
        return None, None, 0, None
    level = next(lv for lv in ("live", "recorded", "third-party", *when_by_level) if lv in when_by_level)
    label = " ".join(p for p in (level, day(max(when_by_level[level]))) if p)
    if len(when_by_level) > 1:
        label += " (mixed: " + ", ".join(sorted(when_by_level)) + ")"
    return (round(median(ttfts) * 1000, 1) if ttfts else None,
            round(median(rates), 1) if rates else None, timed, label)


def _summary(cells: Sequence[Cell], group: Sequence[Entry]) -> Summary:
    quirks = sorted({text(q, 200) for e in group if e.outcome in QUIRK_OUTCOMES for q in e.rec.get("quirks") or []})
    ttft, rate, timed, label = _timing_summary(group)
    return Summary(
        total=len(cells), passed=sum(c.outcome == "pass" for c in cells), quirks=tuple(quirks),
        expected=sum(c.outcome == "expected-quirk" for c in cells),
        unexpected=sum(c.outcome == "unexpected-quirk" for c in cells),
        failing=sum(c.outcome in FAILING for c in cells), missing=sum(c.outcome == "missing" for c in cells),
        not_recorded=sum(c.outcome in ("not-recorded", "not-configured", "absent", "documented") for c in cells),
        ttft_ms=ttft, tokens_per_s=rate, timed=timed, timing_label=label,
    )


def _date_label(group: Sequence[Entry]) -> tuple[str | None, tuple[str, ...]]:
    seen: dict[str, list[str]] = {}
    for e in group:
        for ev in e.rec.get("evidence") or []:
            level = text(ev.get("level"), 20)
            when = e.run.started_at if level == "live" else (text(ev.get("recorded_at"), 40) or e.run.started_at)
            seen.setdefault(level, []).append(when)
    if not seen:
        return None, ()
    known = ("live", "recorded", "third-party")
    order = [lv for lv in known if lv in seen] + sorted(set(seen) - set(known))
    return "; ".join(" ".join(p for p in (lv, day(max(seen[lv]))) if p) for lv in order), tuple(order)


def _state(groups: Mapping[str, Sequence[Entry]], info: Mapping[str, Any], prov: Provider | None,
           configured_only: bool) -> str:
    if groups:
        unrecorded = all(e.outcome in ("not-recorded", "not-configured") for g in groups.values() for e in g)
        return "not-recorded" if unrecorded else "results"
    if configured_only:
        return "documented" if prov is not None and prov.expectations else "configured"
    return "not-recorded" if info.get("recorded") is False else "no-results"


def _column(name: str, models: Sequence[str], groups: Mapping[str, Sequence[Entry]], ordered: Sequence[str],
            info: Mapping[str, Any], prov: Provider | None, configured_only: bool,
            check_quirks: Mapping[str, set[str]]) -> tuple[Column, list[Cell]]:
    pslug = slug(name)
    page = f"providers/{pslug}.html"
    note_id = f"prov-{pslug}"
    state = _state(groups, info, prov, configured_only)
    cells: list[Cell] = []
    for check in ordered:
        if check in groups:
            cells.append(matrix_cell(groups[check], page, note_id))
        elif state == "documented" and prov is not None:
            declared = tuple(sorted(q for q in check_quirks.get(check, ()) if q in prov.expectations))
            cells.append(styled("documented" if declared else "absent", quirks=declared, href=f"{page}#declared"))
        elif state in ("results", "no-results"):
            cells.append(styled("missing", href=f"{page}#missing"))
        else:
            cells.append(styled("absent", href=page))
    flat = [e for g in groups.values() for e in g]
    date_label, seen_levels = _date_label(flat)
    column = Column(
        provider=name, models=tuple(text(m, 300) for m in models),
        title=text(info.get("title") or (prov.title if prov else name), 200),
        kind=text(info.get("kind") or (prov.kind if prov else ""), 20), slug=pslug, state=state,
        state_label=STATE_LABEL[state], date_label=date_label, levels=seen_levels,
        provenance=tuple(dict.fromkeys(p for e in flat for p in provenances(e.rec))), note_id=note_id,
        summary=_summary(cells, flat))
    return column, cells


def build_report(docs: Sequence[tuple[str, Mapping[str, Any]]], catalogue: Catalogue | None = None,
                 config: ProvidersConfig | None = None, title: str = DEFAULT_TITLE) -> Report:
    """The whole site's view model from (file name, results document) pairs, later files winning."""
    return build_from_merged(merge_runs(docs), catalogue, config, title)


def build_from_merged(merged: Merged, catalogue: Catalogue | None = None, config: ProvidersConfig | None = None,
                      title: str = DEFAULT_TITLE) -> Report:
    by_key = entries(merged)
    order: dict[str, None] = dict.fromkeys(merged.providers)
    for pname, _, _ in by_key:
        order.setdefault(pname)
    configured_only = [p for p in (config.providers if config else {}) if p not in order]
    if config is not None:      # providers.yaml's order, then providers it does not know
        order = {**{p: None for p in config.providers}, **order}

    models: dict[str, dict[str, None]] = {p: dict.fromkeys(merged.providers.get(p, {}).get("models") or [])
                                          for p in order}
    by_provider: dict[str, dict[str, list[Entry]]] = {p: {} for p in order}
    checks: dict[str, Mapping[str, Any]] = {}
    check_quirks: dict[str, set[str]] = {}
    for (pname, model, check), group in by_key.items():
        models[pname].setdefault(model)
        by_provider[pname].setdefault(check, []).extend(group)
        for e in group:
            checks[check] = e.rec
            check_quirks.setdefault(check, set()).update(str(q) for q in e.rec.get("quirks") or [])
            declared = e.rec.get("declared")
            check_quirks[check].update(str(q) for q in (declared if isinstance(declared, dict) else ()))
    for pname in configured_only:
        models[pname] = {config.providers[pname].model: None} if config else {}
    def area_key(c: str) -> tuple[tuple[int, str], str]:
        area = text(checks[c].get("area"), 80)
        return area_rank(area), area

    ordered = sorted(checks, key=area_key)

    columns: list[Column] = []
    cells_by_col: list[list[Cell]] = []
    for pname in order:
        prov = config.providers.get(pname) if config is not None else None
        col, cells = _column(pname, list(models[pname]), by_provider[pname], ordered,
                             merged.providers.get(pname, {}), prov, pname in configured_only, check_quirks)
        columns.append(col)
        cells_by_col.append(cells)

    groups: list[AreaGroup] = []
    for i, check in enumerate(ordered):
        rec = checks[check]
        row = Row(check=check, title=text(rec.get("title"), 300), rule=text(rec.get("rule"), 60),
                  kind=text(rec.get("kind"), 20), cells=tuple(col[i] for col in cells_by_col))
        area = text(rec.get("area"), 80)
        if groups and groups[-1].area == area:
            groups[-1] = AreaGroup(area, groups[-1].rows + (row,))
        else:
            groups.append(AreaGroup(area, (row,)))

    pages = tuple(provider_page(col, by_provider[col.provider], ordered, checks,
                                merged.providers.get(col.provider, {}),
                                config.providers.get(col.provider) if config is not None else None, catalogue)
                  for col in columns)
    return Report(title=title, sources=tuple(merged.sources), columns=tuple(columns), groups=tuple(groups),
                  providers=pages, quirks=quirk_pages(pages, catalogue),
                  catalogue_size=len(catalogue.quirks) if catalogue else 0,
                  matrix=build_matrix(columns, by_provider, config, catalogue))
