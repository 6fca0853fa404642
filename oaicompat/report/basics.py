"""Pure helpers of the report model: text and names, safe links, merging results, one cell from its records.

Everything taken from a results document is data to show, never markup: the templates escape it. The only URLs
handed out as links come from `safe_url`, and only for fields that providers.yaml or the quirk catalogue filled
in (a provider's docs, an expectation's source, a catalogue vendor's source); nothing from a response
(messages, lines, evidence, headers) ever becomes a link.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from .views import Cell, EvidenceView, Provenance, RunInfo

AREA_GROUPS: tuple[tuple[str, ...], ...] = (
    ("chat",), ("streaming", "stream"), ("sdk",), ("tools",), ("json",), ("image", "multimodal"), ("context",),
    ("reasoning",), ("errors",), ("models",), ("params",), ("endpoints",),
)
FAILING = frozenset({"unexpected-quirk", "stale-expectation", "violation", "error", "unavailable"})
QUIRK_OUTCOMES = frozenset({"expected-quirk", "unexpected-quirk"})
# When several records stand behind one cell (several models, or one per imported exchange), the cell shows
# the first of these outcomes that any of them has: a quirk seen once is a quirk of the provider.
SEVERITY = ("error", "unavailable", "unexpected-quirk", "violation", "stale-expectation", "expected-quirk", "pass",
            "info", "blocked", "unsupported", "not-applicable", "not-recorded", "not-configured")
_RANK = {name: i for i, name in enumerate(SEVERITY)}
TEXT_LIMIT = 2000
LINE_LIMIT = 400

# outcome → (css class, symbol, label). The label is always shown: colour is never the only signal.
CELL_STYLE: dict[str, tuple[str, str, str]] = {
    "pass": ("pass", "✓", "pass"),
    "info": ("info", "i", "info"),
    "expected-quirk": ("exp", "≈", "expected"),
    "unexpected-quirk": ("unexp", "✗", "unexpected"),
    "stale-expectation": ("stale", "✗", "stale expectation"),
    "violation": ("fail", "✗", "fail"),
    "error": ("err", "!", "error"),
    "unavailable": ("err", "!", "unavailable"),
    "blocked": ("skip", "–", "blocked"),
    "unsupported": ("skip", "–", "unsupported"),
    "not-applicable": ("skip", "–", "not applicable"),
    "not-recorded": ("none", "○", "not recorded"),
    "not-configured": ("none", "○", "not configured"),
    "missing": ("miss", "?", "missing"),
    "documented": ("doc", "≈", "documented, not recorded"),
    "absent": ("none", "○", "not recorded"),
}


# -- text and names -----------------------------------------------------------------------------------

def text(value: Any, limit: int = TEXT_LIMIT) -> str:
    """Any JSON value as display text, clipped."""
    s = value if isinstance(value, str) else ("" if value is None else str(value))
    return s if len(s) <= limit else s[:limit] + f"… [{len(s) - limit} more chars]"


@lru_cache(maxsize=65536)
def slug(name: str) -> str:
    """A file-name-safe, collision-free stem: the name itself when already safe, else a cleaned name plus a hash."""
    clean = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip(".-")[:60]
    if clean == name and clean:
        return clean
    return f"{clean or 'x'}-{hashlib.sha1(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def anchor(model: str, check: str, index: int = 0) -> str:
    """The fragment id of a record on its provider's page (index > 0: a further record of the same model and check)."""
    return f"ev-{slug(model)}--{slug(check)}" + (f"--{index + 1}" if index else "")


_URL = re.compile(r"^https?://[^\s<>\"'`\\]+$", re.IGNORECASE)


def safe_url(value: Any) -> str | None:
    """`value` if it is a plain http(s) URL with a host, else None (never javascript:, data:, relative paths…)."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    if not _URL.match(v) or any(ord(c) < 33 or ord(c) == 127 for c in v):
        return None
    parts = urlsplit(v)
    return v if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def area_rank(area: str) -> tuple[int, str]:
    for i, names in enumerate(AREA_GROUPS):
        if area in names:
            return (i, "")
    return (len(AREA_GROUPS), area)


def day(stamp: Any) -> str | None:
    return stamp[:10] if isinstance(stamp, str) and len(stamp) >= 10 else None


# -- merging ------------------------------------------------------------------------------------------

Key = tuple[str, str, str]   # provider, model, check


@dataclass
class Merged:
    """Several results documents as one. A later document's records for a (provider, model, check) replace all
    earlier ones; within one document every record is kept (imported evidence has one per exchange)."""
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[Key, list[dict[str, Any]]] = field(default_factory=dict)
    runs: dict[Key, RunInfo] = field(default_factory=dict)
    sources: list[RunInfo] = field(default_factory=list)


def merge_runs(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> Merged:
    """(file name, results document) pairs → the report's Merged view, each record with the run it came from.
    (oaicompat.nightly.merge_documents instead writes one new results document.)"""
    merged = Merged()
    for name, doc in docs:
        run = RunInfo(name=name, mode=text(doc.get("mode"), 80), started_at=text(doc.get("started_at"), 40),
                      finished_at=text(doc.get("finished_at"), 40), version=text(doc.get("oaicompat_version"), 40))
        merged.sources.append(run)
        for pname, info in (doc.get("providers") or {}).items():
            old = merged.providers.get(pname, {})
            models = list(old.get("models", []))
            models += [m for m in info.get("models", []) if m not in models]
            entry = {**old, **info, "models": models}
            if "recorded" in old or "recorded" in info:
                entry["recorded"] = bool(old.get("recorded")) or bool(info.get("recorded"))
            merged.providers[pname] = entry
        fresh: dict[Key, list[dict[str, Any]]] = {}
        for rec in doc.get("records") or []:
            fresh.setdefault((rec["provider"], rec["model"], rec["check"]), []).append(rec)
        for key, recs in fresh.items():
            merged.records[key] = recs
            merged.runs[key] = run
    return merged


# -- records ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One record with the run it came from and its fragment id on its provider's page."""
    rec: Mapping[str, Any]
    run: RunInfo
    anchor: str

    @property
    def outcome(self) -> str:
        return str(self.rec.get("outcome"))


def entries(merged: Merged) -> dict[Key, list[Entry]]:
    return {key: [Entry(rec, merged.runs[key], anchor(key[1], key[2], i)) for i, rec in enumerate(recs)]
            for key, recs in merged.records.items()}


def aggregate(outcomes: Sequence[str]) -> str:
    """The outcome a cell shows for several records (see SEVERITY); an unknown outcome counts as an error."""
    return min(outcomes, key=lambda o: _RANK.get(o, 0)) if outcomes else "missing"


def levels(rec: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text(e.get("level"), 20) for e in rec.get("evidence") or []))


def provenance_of(ev: Mapping[str, Any]) -> Provenance:
    def f(key: str) -> str | None:
        return text(ev.get(key), 300) or None
    return Provenance(f("source_repo"), f("source_path"), f("source_commit"), f("license"),
                      f("provenance") or f("imported_file"))


def provenances(rec: Mapping[str, Any]) -> tuple[Provenance, ...]:
    """Where a record's third-party evidence comes from, per source file (the per-interaction note left out)."""
    found = (provenance_of(e) for e in rec.get("evidence") or [] if e.get("level") == "third-party")
    return tuple(dict.fromkeys(Provenance(p.source_repo, p.source_path, p.source_commit, p.license, None)
                               for p in found))


def evidence_view(ev: Mapping[str, Any]) -> EvidenceView:
    body = text(ev.get("body_head"), TEXT_LIMIT)
    ctype = text(ev.get("content_type"), 200) or None
    is_sse = bool(ctype and "event-stream" in ctype.lower()) or body.lstrip().startswith(("data:", "event:"))
    lines = tuple(text(line, LINE_LIMIT) for line in body.splitlines()) if is_sse else ((body,) if body else ())
    level = text(ev.get("level"), 20)
    status = ev.get("status")
    return EvidenceView(
        level=level, request=text(ev.get("request")), status="no response" if status is None else text(status, 20),
        content_type=ctype, is_sse=is_sse, body_lines=lines, failure=text(ev.get("failure")) or None,
        cassette=text(ev.get("cassette"), 300) or None, recorded_at=text(ev.get("recorded_at"), 40) or None,
        provenance=provenance_of(ev) if level == "third-party" else None,
    )


def styled(outcome: str, **kw: Any) -> Cell:
    css, symbol, label = CELL_STYLE.get(outcome, CELL_STYLE["error"])
    return Cell(outcome=outcome, css=css, symbol=symbol, label=label, **kw)


def record_cell(rec: Mapping[str, Any]) -> Cell:
    """The badge of a single record."""
    return styled(text(rec.get("outcome"), 40), quirks=tuple(text(q, 200) for q in rec.get("quirks") or []),
                  third_party="third-party" in levels(rec))


def matrix_cell(group: Sequence[Entry], page: str, note_id: str) -> Cell:
    """The matrix cell of one provider and check: the most telling outcome of its records, linked to the first."""
    outcome = aggregate([e.outcome for e in group])
    chosen = [e for e in group if e.outcome == outcome]
    quirks = tuple(dict.fromkeys(text(q, 200) for e in chosen for q in e.rec.get("quirks") or []))
    third = any("third-party" in levels(e.rec) for e in chosen)
    return styled(outcome, quirks=quirks, href=None if outcome == "pass" else f"{page}#{chosen[0].anchor}",
                  third_party=third, note_id=note_id if third else None, count=len(chosen), total=len(group))
