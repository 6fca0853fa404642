"""The report's view model: plain frozen dataclasses the templates read. Built by model.py and pages.py."""

from __future__ import annotations

from dataclasses import dataclass

from ..quirks import QuirkDef


@dataclass(frozen=True)
class RunInfo:
    name: str
    mode: str
    started_at: str
    finished_at: str
    version: str


@dataclass(frozen=True)
class Provenance:
    source_repo: str | None
    source_path: str | None
    source_commit: str | None
    license: str | None
    note: str | None           # the importer's per-interaction note, if any

    def short(self) -> str:
        parts = [p for p in (self.source_repo, self.source_path) if p]
        where = ":".join(parts) or "unknown source"
        if self.source_commit:
            where += f" @ {self.source_commit[:12]}"
        return where + (f" ({self.license})" if self.license else " (licence not recorded)")


@dataclass(frozen=True)
class EvidenceView:
    level: str
    request: str
    status: str
    content_type: str | None
    is_sse: bool
    body_lines: tuple[str, ...]     # SSE: one entry per line; otherwise the body as one entry
    failure: str | None
    cassette: str | None
    recorded_at: str | None
    provenance: Provenance | None


@dataclass(frozen=True)
class Cell:
    outcome: str
    css: str
    symbol: str
    label: str
    quirks: tuple[str, ...] = ()
    href: str | None = None          # relative to the site root
    third_party: bool = False
    note_id: str | None = None       # footnote anchor for third-party provenance
    count: int = 1                   # records with this outcome …
    total: int = 1                   # … of the records behind the cell (several models or imported exchanges)


@dataclass(frozen=True)
class Summary:
    total: int
    passed: int
    quirks: tuple[str, ...]
    expected: int
    unexpected: int
    failing: int
    missing: int
    not_recorded: int
    ttft_ms: float | None
    tokens_per_s: float | None
    timed: int
    timing_label: str | None


@dataclass(frozen=True)
class Column:
    provider: str
    models: tuple[str, ...]
    title: str
    kind: str
    slug: str
    state: str                  # results | not-recorded | no-results | documented | configured
    state_label: str
    date_label: str | None
    levels: tuple[str, ...]
    provenance: tuple[Provenance, ...]
    note_id: str
    summary: Summary

    @property
    def href(self) -> str:
        return f"providers/{self.slug}.html"

    @property
    def has_results(self) -> bool:
        return self.state in ("results", "no-results")

    @property
    def model_label(self) -> str:
        return self.models[0] if len(self.models) == 1 else f"{len(self.models)} models"

    @property
    def sources(self) -> tuple[tuple[str, str | None, str, int], ...]:
        """Third-party provenance per source repository: (repository, commit, licence, number of files)."""
        count: dict[tuple[str, str | None, str], int] = {}
        for p in self.provenance:
            key = (p.source_repo or "an unrecorded repository", p.source_commit, p.license or "not recorded")
            count[key] = count.get(key, 0) + 1
        return tuple((repo, commit, lic, n) for (repo, commit, lic), n in count.items())


@dataclass(frozen=True)
class Row:
    check: str
    title: str
    rule: str
    kind: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class AreaGroup:
    area: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class QuirkRef:
    id: str
    slug: str
    title: str | None


@dataclass(frozen=True)
class DeclaredView:
    quirk: QuirkRef
    reason: str
    source: str
    source_url: str | None
    models: tuple[str, ...]
    origin: str
    status: str                 # observed | stale | not observed


@dataclass(frozen=True)
class RecordView:
    anchor: str
    check: str
    title: str
    rule: str
    kind: str
    area: str
    model: str
    cell: Cell
    message: str
    lines: tuple[str, ...]
    quirks: tuple[QuirkRef, ...]
    observations: tuple[tuple[str, str], ...]
    evidence: tuple[EvidenceView, ...]
    timing: tuple[tuple[str, str], ...]
    run: RunInfo
    levels: tuple[str, ...]
    provenance: str | None       # third-party provenance, short form


@dataclass(frozen=True)
class Occurrence:
    provider: str
    provider_title: str
    provider_slug: str
    model: str
    check: str
    anchor: str
    expected: bool
    levels: tuple[str, ...]
    provenance: tuple[Provenance, ...]

    @property
    def href(self) -> str:
        return f"providers/{self.provider_slug}.html#{self.anchor}"


@dataclass(frozen=True)
class ProviderQuirk:
    quirk: QuirkRef
    definition: QuirkDef | None
    declared: DeclaredView | None
    occurrences: tuple[Occurrence, ...]


@dataclass(frozen=True)
class ModelSummary:
    model: str
    records: int
    passed: int
    quirks: tuple[str, ...]
    failing: int
    levels: tuple[str, ...]


@dataclass(frozen=True)
class ProviderPage:
    name: str
    slug: str
    title: str
    kind: str
    state: str | None           # the run's note on the provider (results' providers map), if any
    software: str | None
    docs_url: str | None
    docs_text: str | None
    notes: str | None
    column: Column
    models: tuple[ModelSummary, ...]
    quirks: tuple[ProviderQuirk, ...]
    declared: tuple[DeclaredView, ...]
    undeclared: tuple[ProviderQuirk, ...]
    detailed: tuple[RecordView, ...]     # quirks, failures, errors, info, blocked: with their evidence
    brief: tuple[RecordView, ...]        # passes, unsupported, not applicable, not recorded: one line each
    missing: tuple[tuple[str, str], ...]   # check, title

    @property
    def has(self) -> tuple[tuple[QuirkRef, str], ...]:
        """Every quirk this provider was seen to have or declares, with what is known of it in a few words."""
        found = {pq.quirk.id: pq for pq in self.quirks}
        declared = {d.quirk.id: d for d in self.declared}
        out: list[tuple[QuirkRef, str]] = []
        for qid in sorted(set(found) | set(declared)):
            pq, d = found.get(qid), declared.get(qid)
            if pq is not None:
                unexpected = any(not o.expected for o in pq.occurrences)
                status = ("seen, not declared" if d is None else "seen; declared for some models only") \
                    if unexpected else "expected: declared and seen"
                if all(o.levels == ("third-party",) for o in pq.occurrences):
                    status += " (third-party evidence)"
                out.append((pq.quirk, status))
            elif d is not None:
                out.append((d.quirk, "declared, but its check passed: the expectation is stale" if d.status == "stale"
                            else "documented: declared in providers.yaml, not seen in these results"))
        return tuple(out)


@dataclass(frozen=True)
class VendorView:
    vendor: str
    level: str
    source: str
    url: str | None


@dataclass(frozen=True)
class DeclaredBy:
    provider: str
    provider_title: str
    provider_slug: str
    declared: DeclaredView


@dataclass(frozen=True)
class QuirkPage:
    ref: QuirkRef
    area: str
    definition: QuirkDef | None
    occurrences: tuple[Occurrence, ...]
    declared_by: tuple[DeclaredBy, ...]
    vendors: tuple[VendorView, ...]

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.provider for o in self.occurrences))

    @property
    def seen_at(self) -> tuple[SeenAt, ...]:
        """The occurrences summarised per provider (imported evidence has one per exchange)."""
        out = []
        for provider in self.providers:
            occ = [o for o in self.occurrences if o.provider == provider]
            unexpected = sum(not o.expected for o in occ)
            status = ("expected" if not unexpected else "unexpected, not declared" if unexpected == len(occ)
                      else "expected for some models, not declared for others")
            out.append(SeenAt(
                provider=provider, models=tuple(dict.fromkeys(o.model for o in occ)),
                checks=tuple(dict.fromkeys(o.check for o in occ)), status=status,
                levels=tuple(dict.fromkeys(lv for o in occ for lv in o.levels)),
                provenance=tuple(dict.fromkeys(p for o in occ for p in o.provenance))))
        return tuple(out)


@dataclass(frozen=True)
class SeenAt:
    provider: str
    models: tuple[str, ...]
    checks: tuple[str, ...]
    status: str
    levels: tuple[str, ...]
    provenance: tuple[Provenance, ...]


@dataclass(frozen=True)
class Report:
    title: str
    sources: tuple[RunInfo, ...]
    columns: tuple[Column, ...]
    groups: tuple[AreaGroup, ...]
    providers: tuple[ProviderPage, ...]
    quirks: tuple[QuirkPage, ...]
    catalogue_size: int
    matrix: QuirkMatrix

    @property
    def third_party_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.provenance)

    @property
    def rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)

    @property
    def quirks_had(self) -> tuple[QuirkPage, ...]:
        """Quirks some provider was seen to have or declares, in catalogue order."""
        return tuple(q for q in self.quirks if q.occurrences or q.declared_by)

    @property
    def quirks_not_had(self) -> tuple[QuirkPage, ...]:
        return tuple(q for q in self.quirks if not (q.occurrences or q.declared_by))


# -- the front page: which provider has which quirk ---------------------------------------------------

@dataclass(frozen=True)
class QuirkColumn:
    """One column of the quirk matrix: a provider, or one model of a provider with several in the results."""
    provider: str
    provider_title: str
    slug: str
    kind: str
    model: str | None
    label: str                  # the (possibly abbreviated) header text; the full name is `full`
    full: str
    evidence: str               # "recorded 2026-11-28", "third-party 2025-04-02", "declared only", …
    third_party: bool           # all of its evidence is imported from another project
    note_id: str                # the provenance footnote

    @property
    def href(self) -> str:
        return f"providers/{self.slug}.html"


@dataclass(frozen=True)
class QuirkCell:
    state: str                  # seen | expected | documented | not-seen | no-evidence
    label: str
    css: str
    href: str                   # relative to the site root: the evidence, the declaration or the quirk page
    note: str                   # the title attribute: what the cell stands for, in a sentence
    third_party: bool = False


@dataclass(frozen=True)
class QuirkRow:
    quirk: QuirkRef
    area: str
    impact: str | None
    cells: tuple[QuirkCell, ...]


@dataclass(frozen=True)
class QuirkArea:
    area: str
    rows: tuple[QuirkRow, ...]


@dataclass(frozen=True)
class HeaderGroup:
    """A run of adjacent columns under one heading (a kind, or a provider with several models)."""
    label: str
    span: int
    href: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class QuirkTable:
    caption: str
    anchor: str
    kinds: tuple[HeaderGroup, ...]
    providers: tuple[HeaderGroup, ...]      # span 1: a single-model provider (its column's own header says it)
    columns: tuple[QuirkColumn, ...]
    areas: tuple[QuirkArea, ...]

    @property
    def rows(self) -> int:
        return sum(len(a.rows) for a in self.areas)


@dataclass(frozen=True)
class QuirkMatrix:
    tables: tuple[QuirkTable, ...]
    idle: tuple[tuple[str, str, str], ...]  # providers with no evidence and nothing declared: name, title, href
    counts: tuple[tuple[str, int], ...]     # cells per state, for the summary line

    @property
    def columns(self) -> tuple[QuirkColumn, ...]:
        return tuple(c for t in self.tables for c in t.columns)
