"""Draft providers.yaml expectations from results (recorded runs and imported evidence), and write them in.

    drafts = draft_expectations(records, providers_config, catalogue)
    text = apply_drafts(providers_yaml_text, drafts)      # the file's comments and order kept

For every quirk a provider's records show, and every quirk it declares, the records of the check that owns
the quirk are split into exchanges that show it and exchanges where the check passed (outcome "pass" or
"stale-expectation"; other outcomes say nothing about the quirk). Then:

- seen and never clean → a plain expectation;
- seen in every judged exchange of some models and in none of others → `models: [those]`;
- what is left clean in scope, tried the same way by request path → `endpoints: [those]`;
- still clean somewhere in scope → `intermittent: true` (kept with the model scope when there is one).

A new expectation cites the file that shows it (the imported file, or the cassette) as `source`, and takes
the quirk catalogue's title as `reason`. A declared expectation that the records do not fit (a model outside
its scope shows it, or clean exchanges in scope without `intermittent`) is re-scoped, keeping its reason and
source. A declared expectation no exchange shows, whose source is a repository file that no longer exists or
whose own exchanges now pass, is drafted for removal; one whose source is a document stays (a note says
the evidence does not show it).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .checks.base import CHECKS
from .config import Expectation, ProvidersConfig
from .errors import ConfigError
from .paths import PROJECT_ROOT
from .quirks import Catalogue

SHOWS = ("unexpected-quirk", "expected-quirk")
CLEAN = ("pass", "stale-expectation")      # the owning check ran and found nothing
ENTRY_ORDER = ("reason", "source", "models", "endpoints", "intermittent", "origin")

Action = Literal["add", "update", "remove"]


@dataclass(frozen=True)
class Draft:
    provider: str
    quirk: str
    action: Action
    entry: Mapping[str, Any] = field(default_factory=dict)   # empty for "remove"
    note: str = ""                                           # what the records showed, for the reviewer


@dataclass
class Proposal:
    drafts: list[Draft] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)           # declared quirks kept although nothing shows them


# -- reading records -------------------------------------------------------------------------------------------

def record_endpoint(record: Mapping[str, Any]) -> str | None:
    """The request path of a record's exchanges ("POST /chat/completions {…}" → "/chat/completions"), None when
    they differ or are unknown (as oaicompat.runner.judge decides it)."""
    paths = set()
    for ev in record.get("evidence", []):
        parts = str(ev.get("request", "")).split(" ", 2)
        if len(parts) < 2 or not parts[1].startswith("/"):
            return None
        paths.add(parts[1].split("?", 1)[0])
    return paths.pop() if len(paths) == 1 else None


def record_source(record: Mapping[str, Any]) -> str | None:
    """The repository path of the file a record's exchange came from: the imported file or the cassette."""
    for ev in record.get("evidence", []):
        where = ev.get("imported_file") or ev.get("cassette")
        if where:
            return str(where).split("#", 1)[0]
    return None


def _owner_quirks() -> dict[str, tuple[str, ...]]:
    import oaicompat.checks  # noqa: F401  (registers every check)
    return {spec.id: tuple(spec.quirks) for spec in CHECKS.values()}


def _label(record: Mapping[str, Any]) -> str:
    return f"{record.get('model')} {record_endpoint(record) or '?'}"


# -- drafting --------------------------------------------------------------------------------------------------

def _scope(shown: Sequence[Mapping[str, Any]], clean: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """models / endpoints / intermittent that cover every exchange in `shown` and as few in `clean` as can be."""
    scope: dict[str, Any] = {}
    models = {str(r.get("model")) for r in shown}
    if {str(r.get("model")) for r in clean} - models:
        scope["models"] = sorted(models)
        clean = [r for r in clean if str(r.get("model")) in models]
    endpoints = {record_endpoint(r) for r in shown}
    if clean and None not in endpoints and {record_endpoint(r) for r in clean} - endpoints:
        scope["endpoints"] = sorted(e for e in endpoints if e)
        clean = [r for r in clean if record_endpoint(r) in endpoints]
    if clean:
        scope["intermittent"] = True
    return scope


def _widened(exp: Expectation, shown: Sequence[Mapping[str, Any]],
             clean: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A declared expectation's scope, widened to every exchange that shows the quirk (never narrowed: its
    source may document more than these records show), and intermittent if clean exchanges fall in it."""
    scope: dict[str, Any] = {}
    endpoints = [record_endpoint(r) for r in shown]
    if exp.models:
        extra = sorted(m for m in _models(shown) if not _in(m, exp.models))
        scope["models"] = [*exp.models, *extra]
    if exp.endpoints and None not in endpoints:
        extra = sorted({str(e) for e in endpoints if not _in(str(e), exp.endpoints)})
        scope["endpoints"] = [*exp.endpoints, *extra]
    wide = Expectation("", "", "", models=tuple(scope.get("models", ())), endpoints=tuple(scope.get("endpoints", ())))
    if exp.intermittent or any(wide.applies_to(str(r.get("model")), record_endpoint(r)) for r in clean):
        scope["intermittent"] = True
    return scope


def _models(records: Sequence[Mapping[str, Any]]) -> set[str]:
    return {str(r.get("model")) for r in records}


def _in(value: str, patterns: Sequence[str]) -> bool:
    return value in patterns or any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _fits(exp: Expectation, shown: Sequence[Mapping[str, Any]], clean: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the declared expectation already turns these records into expected quirks and passes."""
    if not all(exp.applies_to(str(r.get("model")), record_endpoint(r)) for r in shown):
        return False
    return exp.intermittent or not any(exp.applies_to(str(r.get("model")), record_endpoint(r)) for r in clean)


def _ordered(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ENTRY_ORDER if k in entry}


def _is_repo_path(source: str) -> bool:
    return source.startswith(("fixtures/", "reports/")) and " " not in source.strip()


def _source_exists(source: str, root: Path) -> bool:
    return (root / source.split("#", 1)[0]).exists()


def draft_for(provider: str, quirk: str, exp: Expectation | None, shown: Sequence[Mapping[str, Any]],
              clean: Sequence[Mapping[str, Any]], catalogue: Catalogue,
              root: Path = PROJECT_ROOT) -> Draft | str | None:
    """One quirk of one provider: a Draft, a note (str) for a declared quirk kept without evidence, or None."""
    seen = f"seen in {len(shown)} of {len(shown) + len(clean)} judged exchange(s)"
    if not shown:
        if exp is None or not clean:
            return None
        if _is_repo_path(exp.source):
            cited = exp.source.split("#", 1)[0]
            if not _source_exists(cited, root):
                return Draft(provider, quirk, "remove", note=f"{len(clean)} exchange(s) passed, none shows it, "
                                                             f"and its source {cited} is gone")
            if any(record_source(r) == cited for r in clean):
                return Draft(provider, quirk, "remove", note=f"{len(clean)} exchange(s) passed, none shows it, "
                                                             f"including those of its source {cited}")
        if exp.intermittent:
            return None          # declared as seen in some exchanges only: passes are passes
        return (f"{provider}: {quirk} is declared ({exp.source}) but {len(clean)} judged exchange(s) passed and none "
                f"shows it; kept (documented); scope it or mark it intermittent if the document says it is rare")
    if exp is not None and _fits(exp, shown, clean):
        return None
    models = sorted({str(r.get("model")) for r in shown})
    note = f"{seen}; model(s) {', '.join(models)}"
    if exp is not None:
        # an expectation drafted from evidence is re-scoped from the evidence; a documented one only widened
        scope = _scope(shown, clean) if _is_repo_path(exp.source) else _widened(exp, shown, clean)
        entry: dict[str, Any] = {"reason": exp.reason, "source": exp.source, **scope}
        if exp.origin != "server":
            entry["origin"] = exp.origin
        return Draft(provider, quirk, "update", _ordered(entry), note)
    scope = _scope(shown, clean)
    first = sorted(shown, key=lambda r: (record_source(r) or "~", str(r.get("test"))))[0]
    title = catalogue.quirks[quirk].title if quirk in catalogue else quirk
    entry = {"reason": title, "source": record_source(first) or str(first.get("test")), **scope}
    if first.get("kind") == "capability":
        entry["origin"] = "model"
    return Draft(provider, quirk, "add", _ordered(entry), note)


def draft_expectations(records: Iterable[Mapping[str, Any]], config: ProvidersConfig, catalogue: Catalogue,
                       providers: Sequence[str] | None = None, *, root: Path = PROJECT_ROOT,
                       owners: Mapping[str, Sequence[str]] | None = None) -> Proposal:
    """Drafts for every provider in `providers` (default: every provider the records name and config knows)."""
    owners = owners if owners is not None else _owner_quirks()
    by_check: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        by_check.setdefault((str(r.get("provider")), str(r.get("check"))), []).append(r)
    wanted = list(providers) if providers else sorted({p for p, _ in by_check if p in config.providers})
    proposal = Proposal()
    for name in wanted:
        provider = config.get(name)
        for check_id in sorted({c for p, c in by_check if p == name}):
            rs = by_check[(name, check_id)]
            clean = [r for r in rs if r.get("outcome") in CLEAN]
            quirks = set(owners.get(check_id, ())) | {q for r in rs if r.get("outcome") in SHOWS for q in r["quirks"]}
            for quirk in sorted(quirks):
                shown = [r for r in rs if r.get("outcome") in SHOWS and quirk in r.get("quirks", ())]
                got = draft_for(name, quirk, provider.expectations.get(quirk), shown, clean, catalogue, root)
                if isinstance(got, Draft):
                    proposal.drafts.append(got)
                elif got:
                    proposal.notes.append(got)
    return proposal


# -- writing ---------------------------------------------------------------------------------------------------

def flow_entry(entry: Mapping[str, Any]) -> str:
    """`{reason: "…", source: …}` on one line, as providers.yaml writes its expectations."""
    text = yaml.safe_dump(dict(_ordered(entry)), default_flow_style=True, sort_keys=False, allow_unicode=True,
                          width=1_000_000)
    return text.strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """Index after the last content line of the block opened at `start` (children indented more than `indent`)."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        if _is_content(lines[i]):
            if _indent(lines[i]) <= indent:
                break
            end = i + 1
    return end


def _find_key(lines: Sequence[str], lo: int, hi: int, indent: int, key: str) -> int | None:
    pattern = re.compile(rf"^ {{{indent}}}{re.escape(key)}:(\s|$)")
    return next((i for i in range(lo, hi) if pattern.match(lines[i])), None)


def _child_indent(lines: Sequence[str], lo: int, hi: int, parent: int) -> int:
    return next((_indent(lines[i]) for i in range(lo, hi) if _is_content(lines[i]) and _indent(lines[i]) > parent),
                parent + 2)


def apply_drafts(text: str, drafts: Sequence[Draft]) -> str:
    """providers.yaml text with the drafts written in: a new expectation is a line appended to the provider's
    `expectations:` (created after the provider's last line if missing); an update replaces the entry's line;
    a removal deletes it. Every other line is kept as it is. Raises ConfigError where the text has a shape this
    cannot edit safely (an entry over several lines, a provider not found)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for d in drafts:
        top = _find_key(lines, 0, len(lines), 0, "providers")
        if top is None:
            raise ConfigError("providers.yaml has no top-level `providers:` key")
        p_indent = _child_indent(lines, top + 1, len(lines), 0)
        p_at = _find_key(lines, top + 1, len(lines), p_indent, d.provider)
        if p_at is None:
            raise ConfigError(f"providers.yaml: provider {d.provider!r} not found as a block key; add it first")
        p_end = _block_end(lines, p_at, p_indent)
        f_indent = _child_indent(lines, p_at + 1, p_end, p_indent)
        e_at = _find_key(lines, p_at + 1, p_end, f_indent, "expectations")
        if e_at is None:
            if d.action != "add":
                raise ConfigError(f"providers.yaml: provider {d.provider!r} has no expectations to {d.action}")
            new = [" " * f_indent + "expectations:\n", " " * (f_indent + 2) + f"{d.quirk}: {flow_entry(d.entry)}\n"]
            lines[p_end:p_end] = new
            continue
        if lines[e_at].split(":", 1)[1].strip() not in ("", "{}"):
            raise ConfigError(f"providers.yaml: provider {d.provider!r}: `expectations:` is written inline; "
                              f"write it as a block to let propose --write edit it")
        if lines[e_at].split(":", 1)[1].strip() == "{}":
            lines[e_at] = lines[e_at].split(":", 1)[0] + ":\n"
        e_end = _block_end(lines, e_at, f_indent)
        q_indent = _child_indent(lines, e_at + 1, e_end, f_indent)
        q_at = _find_key(lines, e_at + 1, e_end, q_indent, d.quirk)
        if d.action == "add":
            if q_at is not None:
                raise ConfigError(f"providers.yaml: provider {d.provider!r} already declares {d.quirk!r}")
            lines[e_end:e_end] = [" " * q_indent + f"{d.quirk}: {flow_entry(d.entry)}\n"]
            continue
        if q_at is None:
            raise ConfigError(f"providers.yaml: provider {d.provider!r} does not declare {d.quirk!r}")
        if _block_end(lines, q_at, q_indent) != q_at + 1 or not lines[q_at].rstrip().endswith("}"):
            raise ConfigError(f"providers.yaml: provider {d.provider!r}, {d.quirk!r} spans several lines; "
                              f"edit it by hand")
        if d.action == "remove":
            del lines[q_at]
        else:
            lines[q_at] = " " * q_indent + f"{d.quirk}: {flow_entry(d.entry)}\n"
    return "".join(lines)


def check_applied(text: str, drafts: Sequence[Draft]) -> None:
    """Parse the edited text and confirm each draft reads back as drafted. Raises ConfigError otherwise."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"the edited providers.yaml is not valid YAML ({exc}); nothing written") from None
    for d in drafts:
        got = ((doc.get("providers") or {}).get(d.provider) or {}).get("expectations") or {}
        want = None if d.action == "remove" else dict(d.entry)
        if got.get(d.quirk) != want:
            raise ConfigError(f"the edited providers.yaml reads {d.provider}.{d.quirk} as {got.get(d.quirk)!r}, "
                              f"not the draft {want!r}; nothing written")


def render(proposal: Proposal) -> str:
    """The drafts as YAML a human can paste, grouped by provider, with what the records showed as comments."""
    out: list[str] = []
    current = None
    for d in proposal.drafts:
        if d.provider != current:
            out.append(f"{d.provider}:\n  expectations:\n")
            current = d.provider
        if d.action == "remove":
            out.append(f"    # remove {d.quirk}: {d.note}\n")
        else:
            out.append(f"    # {d.action}: {d.note}\n    {d.quirk}: {flow_entry(d.entry)}\n")
    return "".join(out)
