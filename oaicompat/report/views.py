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


@dataclass(frozen=True)
class Report:
    title: str
    sources: tuple[RunInfo, ...]
    columns: tuple[Column, ...]
    groups: tuple[AreaGroup, ...]
    providers: tuple[ProviderPage, ...]
    quirks: tuple[QuirkPage, ...]
    catalogue_size: int

    @property
    def third_party_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.provenance)

    @property
    def rows(self) -> int:
        return sum(len(g.rows) for g in self.groups)
