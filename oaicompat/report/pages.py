"""The provider pages and quirk pages of the view model (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import Provider
from ..quirks import Catalogue
from .basics import (
    FAILING,
    LINE_LIMIT,
    QUIRK_OUTCOMES,
    Entry,
    area_rank,
    evidence_view,
    levels,
    provenances,
    record_cell,
    safe_url,
    slug,
    text,
)
from .views import (
    Column,
    DeclaredBy,
    DeclaredView,
    ModelSummary,
    Occurrence,
    ProviderPage,
    ProviderQuirk,
    QuirkPage,
    QuirkRef,
    RecordView,
    VendorView,
)

# outcomes shown with their evidence; the others (pass, unsupported, not applicable, not recorded) get one line
DETAILED = frozenset({"expected-quirk", "unexpected-quirk", "stale-expectation", "violation", "error", "unavailable",
                      "info", "blocked"})


def quirk_ref(qid: str, catalogue: Catalogue | None) -> QuirkRef:
    title = catalogue.quirks[qid].title if catalogue is not None and qid in catalogue else None
    return QuirkRef(id=text(qid, 200), slug=slug(qid), title=title)


TIMING_LABELS = {"ttft": "time to first token", "total": "total time", "completion_tokens": "completion",
                 "gap_p50": "gap between chunks, median", "gap_p95": "gap between chunks, 95th percentile",
                 "level": "evidence"}


def duration(seconds: float) -> str:
    """A duration with its unit: milliseconds below ten seconds, else seconds."""
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def timing_view(timing: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A record's timing as (what, value with its unit): durations in ms or s, tokens, tokens/s."""
    out: list[tuple[str, str]] = []
    for key, value in timing.items():
        if value is None:
            continue
        label = TIMING_LABELS.get(key, text(key, 40))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append((label, text(value, 40)))
        elif key == "completion_tokens":
            out.append((label, f"{value} token{'s' if value != 1 else ''}"))
        elif key in ("ttft", "total") or key.startswith("gap_"):
            out.append((label, duration(float(value))))
        else:
            out.append((label, text(value, 40)))
    ttft, total, tokens = timing.get("ttft"), timing.get("total"), timing.get("completion_tokens")
    if isinstance(timing.get("gap_p50"), (int, float)) and isinstance(tokens, int) and tokens > 1 \
            and isinstance(ttft, (int, float)) and isinstance(total, (int, float)) and 0 <= ttft < total:
        out.append(("decode rate", f"{(tokens - 1) / (total - ttft):.1f} tokens/s"))
    return tuple(out)


def record_view(e: Entry, catalogue: Catalogue | None) -> RecordView:
    rec = e.rec
    raw_timing = rec.get("timing")
    timing: dict[str, Any] = raw_timing if isinstance(raw_timing, dict) else {}
    return RecordView(
        anchor=e.anchor, check=text(rec.get("check"), 200), title=text(rec.get("title"), 300),
        rule=text(rec.get("rule"), 60), kind=text(rec.get("kind"), 20), area=text(rec.get("area"), 80),
        model=text(rec.get("model"), 300), cell=record_cell(rec), message=text(rec.get("message")),
        lines=tuple(text(x, LINE_LIMIT) for x in (rec.get("lines") or [])[:60]),
        quirks=tuple(quirk_ref(str(q), catalogue) for q in rec.get("quirks") or []),
        observations=tuple((text(o.get("key"), 200), text(o.get("value"), 400))
                           for o in rec.get("observations") or [] if isinstance(o, dict)),
        evidence=tuple(evidence_view(ev) for ev in rec.get("evidence") or [] if isinstance(ev, dict)),
        timing=timing_view(timing),
        run=e.run, levels=levels(rec), provenance="; ".join(p.short() for p in provenances(rec)) or None,
    )


def _model_summaries(all_entries: Sequence[Entry], models: Sequence[str]) -> tuple[ModelSummary, ...]:
    out = []
    for model in models:
        mine = [e for e in all_entries if e.rec.get("model") == model]
        out.append(ModelSummary(
            model=text(model, 300), records=len(mine), passed=sum(e.outcome == "pass" for e in mine),
            quirks=tuple(sorted({text(q, 200) for e in mine if e.outcome in QUIRK_OUTCOMES
                                 for q in e.rec.get("quirks") or []})),
            failing=sum(e.outcome in FAILING for e in mine),
            levels=tuple(dict.fromkeys(lv for e in mine for lv in levels(e.rec)))))
    return tuple(out)


def provider_page(column: Column, groups: Mapping[str, Sequence[Entry]], ordered: Sequence[str],
                  checks: Mapping[str, Mapping[str, Any]], info: Mapping[str, Any], prov: Provider | None,
                  catalogue: Catalogue | None) -> ProviderPage:
    detailed: list[RecordView] = []
    brief: list[RecordView] = []
    missing: list[tuple[str, str]] = []
    occ: dict[str, list[Occurrence]] = {}
    stale: set[str] = set()
    declared_src: dict[str, dict[str, Any]] = {}
    all_entries: list[Entry] = []
    for check in ordered:
        group = groups.get(check, ())
        if not group and column.has_results:
            missing.append((check, text(checks[check].get("title"), 300)))
        for e in group:
            all_entries.append(e)
            view = record_view(e, catalogue)
            (detailed if e.outcome in DETAILED else brief).append(view)
            rec_decl = e.rec.get("declared")
            for qid, d in (rec_decl.items() if isinstance(rec_decl, dict) else ()):
                if isinstance(d, dict):
                    declared_src.setdefault(str(qid), {**d, "models": ()})
            if e.outcome == "stale-expectation":
                stale.update(str(q) for q in e.rec.get("quirks") or [])
            if e.outcome in QUIRK_OUTCOMES:
                for q in e.rec.get("quirks") or []:
                    occ.setdefault(str(q), []).append(Occurrence(
                        provider=column.provider, provider_title=column.title, provider_slug=column.slug,
                        model=view.model, check=view.check, anchor=e.anchor,
                        expected=e.outcome == "expected-quirk", levels=view.levels, provenance=provenances(e.rec)))
    if prov is not None:
        for qid, exp in prov.expectations.items():
            declared_src[qid] = {"reason": exp.reason, "source": exp.source, "origin": exp.origin,
                                 "models": exp.models}
    declared: dict[str, DeclaredView] = {}
    for qid, d in declared_src.items():
        status = ("observed" if any(o.expected for o in occ.get(qid, ())) else
                  "stale" if qid in stale else "not observed")
        declared[qid] = DeclaredView(
            quirk=quirk_ref(qid, catalogue), reason=text(d.get("reason")), source=text(d.get("source"), 500),
            source_url=safe_url(d.get("source")), models=tuple(text(m, 200) for m in d.get("models") or ()),
            origin=text(d.get("origin") or "server", 20), status=status)
    quirks = tuple(ProviderQuirk(quirk=quirk_ref(q, catalogue),
                                 definition=catalogue.quirks.get(q) if catalogue is not None else None,
                                 declared=declared.get(q), occurrences=tuple(o))
                   for q, o in sorted(occ.items()))
    raw_software = info.get("software")
    software = raw_software if isinstance(raw_software, dict) else (dict(prov.software) if prov else {})
    software_text = " ".join(text(software.get(k), 200) for k in ("name", "version") if software.get(k)) or None
    docs = info.get("docs") or (prov.docs if prov else None)
    return ProviderPage(
        name=text(column.provider, 200), slug=column.slug, title=column.title, kind=column.kind,
        state=text(info.get("state"), 300) or None,
        software=software_text,
        docs_url=safe_url(docs), docs_text=text(docs, 500) or None,
        notes=text(prov.notes) if prov is not None and prov.notes else None,
        column=column, models=_model_summaries(all_entries, column.models), quirks=quirks,
        declared=tuple(sorted(declared.values(), key=lambda d: d.quirk.id)),
        undeclared=tuple(pq for pq in quirks if any(not o.expected for o in pq.occurrences)),
        detailed=tuple(detailed), brief=tuple(brief), missing=tuple(missing),
    )


def quirk_pages(pages: Sequence[ProviderPage], catalogue: Catalogue | None) -> tuple[QuirkPage, ...]:
    """One page per catalogued quirk, and per quirk id that results or providers.yaml name outside the catalogue."""
    ids: dict[str, None] = {}
    if catalogue is not None:
        ids.update(dict.fromkeys(sorted(catalogue.quirks, key=lambda q: (area_rank(catalogue.quirks[q].area), q))))
    occ: dict[str, list[Occurrence]] = {}
    decl: dict[str, list[DeclaredBy]] = {}
    for page in pages:
        for pq in page.quirks:
            ids.setdefault(pq.quirk.id, None)
            occ.setdefault(pq.quirk.id, []).extend(pq.occurrences)
        for d in page.declared:
            ids.setdefault(d.quirk.id, None)
            decl.setdefault(d.quirk.id, []).append(DeclaredBy(page.name, page.title, page.slug, d))
    out: list[QuirkPage] = []
    for qid in ids:
        qdef = catalogue.quirks.get(qid) if catalogue is not None else None
        vendors = (tuple(VendorView(v.vendor, v.level, v.source, safe_url(v.source)) for v in qdef.vendors)
                   if qdef else ())
        out.append(QuirkPage(ref=quirk_ref(qid, catalogue), area=qdef.area if qdef else text(qid.split(".")[0], 80),
                             definition=qdef, occurrences=tuple(occ.get(qid, ())), declared_by=tuple(decl.get(qid, ())),
                             vendors=vendors))
    return tuple(out)
