"""results.json: one record per provider × model × check, plus run metadata. Validated by its schema."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from . import __version__
from .checks.base import CheckSpec, clip
from .config import Provider
from .errors import ResultsError
from .exchange import Exchange
from .fileio import atomic_write_text
from .outcomes import Outcome
from .paths import SCHEMAS
from .scrub import Scrubber
from .timing import timing_of

RESULTS_FORMAT = 1
BODY_HEAD = 500


def evidence_level(ex: Exchange) -> str:
    return {"live": "live", "cassette": "recorded", "imported": "third-party"}[ex.source]


def exchange_evidence(ex: Exchange) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "level": evidence_level(ex),
        "request": clip(f"{ex.request.method} {ex.request.path} {ex.request.body.decode('utf-8', 'replace')}",
                        BODY_HEAD),
        "status": ex.status,
        "content_type": ex.header("content-type"),
        "body_head": ex.body[:BODY_HEAD].decode("utf-8", errors="replace"),
        "failure": f"{ex.failure.kind}: {ex.failure.message}" if ex.failure else None,
    }
    for key in ("cassette", "recorded_at", "provenance", "source_repo", "source_path", "source_commit",
                "license", "imported_file"):
        if ex.meta.get(key) is not None:
            ev[key] = ex.meta[key]
    return ev


def make_record(*, test: str, spec: CheckSpec, provider: Provider, model: str, outcome: Outcome,
                exchanges: list[Exchange]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "test": test,
        "check": spec.id,
        "area": spec.area,
        "rule": spec.rule,
        "kind": spec.kind,
        "title": spec.title,
        "provider": provider.name,
        "model": model,
        "outcome": outcome.name,
        "quirks": list(outcome.quirks),
        "message": outcome.message,
        "lines": list(outcome.lines),
        "declared": outcome.declared,
        "observations": [{"key": o.key, "value": o.value} for o in outcome.observations],
        "evidence": [exchange_evidence(ex) for ex in exchanges],
    }
    timed = [ex for ex in exchanges if ex.status == 200 and ex.failure is None]
    if timed:
        record["timing"] = {**timing_of(timed[0]).as_dict(), "level": evidence_level(timed[0])}
    return record


@dataclass
class ResultsLog:
    mode: str
    started_at: str = field(default_factory=lambda: _now())
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)

    def note_provider(self, provider: Provider, model: str, **state: Any) -> None:
        entry = self.providers.setdefault(provider.name, {
            "title": provider.title, "kind": provider.kind, "models": [],
            "software": dict(provider.software) or None, "docs": provider.docs,
        })
        if model not in entry["models"]:
            entry["models"].append(model)
        entry.update(state)

    def document(self) -> dict[str, Any]:
        return {
            "oaicompat_results": RESULTS_FORMAT,
            "oaicompat_version": __version__,
            "mode": self.mode,
            "started_at": self.started_at,
            "finished_at": _now(),
            "providers": self.providers,
            "records": self.records,
        }

    def write(self, path: Path, scrubber: Scrubber | None = None) -> None:
        """Validate and write the document. A record the schema refuses becomes an `error` record saying why, so
        one bad record never costs the run its results file."""
        doc = self.document()
        try:
            validate_results(doc, str(path))
        except ResultsError:
            doc["records"] = repaired_records(doc["records"], str(path))
            validate_results(doc, str(path))
        write_json_atomic(path, doc, scrubber)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json_atomic(path: Path, doc: Any, scrubber: Scrubber | None = None) -> None:
    """`doc` as indented JSON, atomically; a value JSON has no type for is written as its clipped repr. Every
    string is scrubbed at write time (the keys in the environment, plus `scrubber`'s)."""
    doc = Scrubber.from_environment().merged(scrubber).value(doc)
    text = json.dumps(doc, indent=1, ensure_ascii=False, default=lambda value: clip(repr(value), 200))
    atomic_write_text(path, text + "\n", mode=0o644)   # results are published


_RECORD_TEXT = ("test", "check", "area", "rule", "title", "provider", "model")


def _record_problems(records: list[Any]) -> dict[int, str]:
    """Index of each record the results schema refuses → its first problem."""
    schema = results_schema()
    validator = jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/record"})
    problems: dict[int, str] = {}
    for i, rec in enumerate(records):
        error = next(iter(validator.iter_errors(rec)), None)
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "the record"
            problems[i] = f"{where}: {clip(error.message, 200)}"
    return problems


def error_record(rec: Any, problem: str) -> dict[str, Any]:
    """An `error` record standing for a record that cannot be written as it is (what can be kept of it is)."""
    old = rec if isinstance(rec, dict) else {}
    fixed: dict[str, Any] = {key: old[key] if isinstance(old.get(key), str) else "?" for key in _RECORD_TEXT}
    if not re.fullmatch(r"[a-z0-9-]+\.[a-z0-9.-]+", fixed["check"]):
        fixed["check"] = "results.unwritable-record"
    fixed.update(kind=old.get("kind") if old.get("kind") in ("protocol", "capability", "info") else "protocol",
                 outcome="error", quirks=[], evidence=[],
                 message=f"this check's record could not be written as it was ({problem}); "
                         f"the outcome is lost: re-run the check and report the problem with this message",
                 lines=[clip(old["message"], 500)] if isinstance(old.get("message"), str) else [])
    return fixed


def repaired_records(records: list[Any], name: str) -> list[Any]:
    """`records` with each one the results schema refuses replaced by its `error_record` (warned on stderr)."""
    problems = _record_problems(records)
    for i, problem in problems.items():
        print(f"oaicompat: {name}: record {i} is not valid ({problem}); written as an error record",
              file=sys.stderr)
    return [error_record(rec, problems[i]) if i in problems else rec for i, rec in enumerate(records)]


def results_schema() -> dict[str, Any]:
    return json.loads((SCHEMAS / "results.schema.json").read_text(encoding="utf-8"))


def validate_results(doc: Any, name: str) -> None:
    errors = list(jsonschema.Draft202012Validator(results_schema()).iter_errors(doc))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.absolute_path)) or "top level"
        raise ResultsError(f"{name} does not match fixtures/schemas/results.schema.json at {where}: {e.message}")


def load_results(path: Path) -> dict[str, Any]:
    """Read and validate a results file; a clear ResultsError names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        raise ResultsError(f"{path} is empty: run the suite first (pytest --results {path})")
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{path} is not JSON: {exc}") from None
    if isinstance(doc, dict) and doc.get("oaicompat_results") not in (None, RESULTS_FORMAT):
        raise ResultsError(f"{path} has results format {doc.get('oaicompat_results')!r}; this oaicompat reads "
                           f"format {RESULTS_FORMAT}: re-run the suite with this version")
    validate_results(doc, str(path))
    return doc


def _records_by_key(doc: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(provider, model, check) → its record."""
    return {(r["provider"], r["model"], r["check"]): r for r in doc["records"]}


def outcome_table(doc: dict[str, Any]) -> dict[tuple[str, str, str], tuple[str, tuple[str, ...]]]:
    """(provider, model, check) → (outcome, quirks)."""
    return {key: (r["outcome"], tuple(r["quirks"])) for key, r in _records_by_key(doc).items()}


def intermittent_only(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """True when two records of a check differ only by an intermittent quirk showing in one run and not the
    other (expected-quirk vs pass, the quirk declared `intermittent: true`)."""
    if {one["outcome"], other["outcome"]} != {"expected-quirk", "pass"}:
        return False
    quirked = one if one["outcome"] == "expected-quirk" else other
    declared = quirked.get("declared") or {}
    return bool(quirked["quirks"]) and all((declared.get(q) or {}).get("intermittent") for q in quirked["quirks"])


def compare_outcomes(recorded: dict[str, Any], live: dict[str, Any]) -> list[str]:
    """Checks whose outcome or quirks differ between two runs of the same providers (live vs replay).
    Checks present in only one run are listed too; providers present in only one run are ignored; a quirk
    declared intermittent that shows in one run only is not a difference."""
    ra, rb = _records_by_key(recorded), _records_by_key(live)
    a = {key: (r["outcome"], tuple(r["quirks"])) for key, r in ra.items()}
    b = {key: (r["outcome"], tuple(r["quirks"])) for key, r in rb.items()}
    common = {k[0] for k in a} & {k[0] for k in b}
    lines = []
    for key in sorted(set(a) | set(b)):
        if key[0] not in common:
            continue
        if a.get(key) != b.get(key) and not (key in a and key in b and intermittent_only(ra[key], rb[key])):
            was, now = a.get(key, ("absent",)), b.get(key, ("absent",))
            lines.append(f"{key[0]} {key[1]} {key[2]}: recorded {was} vs live {now}")
    return lines
