"""What each source project's recorder changes, as data: fixtures/imported/recorders.yaml, validated on load.

One entry per source repository (public-recordings.md §0), each with the source it was read from (a file at a
commit, or a URL). An entry says, for the whole repository:

    recorder, config, sources            what records the traffic, where it is configured, where we read that
    format                               vcrpy | ruby-vcr | httprr | body-files (raw JSON / SSE bodies)
    changes                              plain sentences for PROVENANCE.yaml
    bodies                               verbatim | parsed-json (JSON re-serialised from a parsed mapping)
    gzip                                 decoded | kept | mixed (the recorder decompressed, or kept raw bytes)
    dropped_headers / rewritten_headers  response header names (a trailing '*' is a prefix)
    all_header_values_rewritten          every header value is a placeholder
    drops_status_at_least                responses with this status or more were never recorded
    body_placeholders / placeholder_pattern   strings the recorder substitutes into bodies

and, per path pattern (`paths`, fnmatch on the path inside the repository, first match wins):

    body_edited       the recorder (or a persister) edited bodies of matching files: kept as provenance, never read
    body_reserialised the bytes are re-serialised (JSON meaning kept): no check of exact bytes reads them
    synthetic         matching files are hand-made, not vendor traffic: the importer refuses them
    host_rewritten    the recorded host is not the one that answered (a note; the vendor is sniffed from the body)
    headers_rewritten the source's own scrubbing rewrote response header values of matching files: no header of
                      theirs is trusted (checks that read one record "not applicable")
    framing           data-lines-only: one SSE data JSON per line, envelope gone (vercel/ai *.chunks.txt)
    gzip              overrides the repository's gzip for matching files

A repository that is not in the table gets the `unknown` profile: it is imported, header-reading checks do
not run on it, and a body that contradicts its own Content-Length is still caught (store.py).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..errors import OaicompatError
from ..paths import IMPORTED
from ..scrub import SECRET_HEADERS

RECORDERS_FILE = IMPORTED / "recorders.yaml"
TABLE_VERSION = 1

# headers whose values are secrets or account identifiers, beyond oaicompat.scrub.SECRET_HEADERS
IMPORT_SECRET_HEADERS = SECRET_HEADERS | frozenset({
    "anthropic-organization-id", "x-organization-id", "openai-organization-id", "x-api-token", "api-token",
    "x-goog-user-project", "x-amz-security-token", "x-auth-token",
})

FORMATS = ("vcrpy", "ruby-vcr", "httprr", "body-files", "mixed")
BODIES = ("verbatim", "parsed-json")
GZIP = ("decoded", "kept", "mixed", "n/a")
FRAMINGS = ("joined", "data-lines-only")


class RecorderTableError(OaicompatError):
    """fixtures/imported/recorders.yaml is malformed: the message names the entry and the field to fix."""


@dataclass(frozen=True)
class PathRule:
    pattern: str
    body_edited: str | None = None
    synthetic: str | None = None
    host_rewritten: str | None = None
    framing: str | None = None
    gzip: str | None = None
    body_reserialised: str | None = None
    headers_rewritten: str | None = None

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.pattern)


@dataclass(frozen=True)
class RecorderProfile:
    repo: str
    recorder: str
    config: str                                 # where the recorder's configuration lives in the source repo
    changes: tuple[str, ...]                    # for PROVENANCE.yaml
    dropped_headers: tuple[str, ...] = ()       # response header names (or prefixes ending in '*') not kept
    rewritten_headers: tuple[str, ...] = ()     # response header names whose values were replaced
    all_header_values_rewritten: bool = False
    body_placeholders: tuple[str, ...] = ()     # strings the recorder substitutes into bodies
    placeholder_pattern: str | None = None      # regex of such strings
    known: bool = True
    sources: tuple[str, ...] = ()               # where these facts were read (file@commit or URL)
    format: str = "vcrpy"
    bodies: str = "verbatim"
    gzip: str = "n/a"
    drops_status_at_least: int | None = None
    paths: tuple[PathRule, ...] = ()

    def header_trustworthy(self, name: str) -> bool:
        """Whether a response header, as stored, says what the vendor sent (name and value)."""
        lname = name.lower()
        if self.all_header_values_rewritten or lname in IMPORT_SECRET_HEADERS:
            return False
        if lname in self.rewritten_headers:
            return False
        for d in self.dropped_headers:
            if (d.endswith("*") and lname.startswith(d[:-1])) or lname == d:
                return False
        return True

    @property
    def header_names_complete(self) -> bool:
        return not self.dropped_headers and not self.all_header_values_rewritten and self.known

    def placeholder_in(self, text: str) -> str | None:
        for p in self.body_placeholders:
            if p in text:
                return p
        if self.placeholder_pattern:
            m = re.search(self.placeholder_pattern, text)
            if m:
                return m.group(0)
        return None

    def rule_for(self, path: str) -> PathRule | None:
        """The first path rule whose pattern matches a path inside the source repository."""
        return next((r for r in self.paths if r.matches(path)), None)


# -- loading and validation ------------------------------------------------------------------------------------

_REQUIRED = ("repo", "recorder", "config", "sources", "format", "changes")
_OPTIONAL = ("bodies", "gzip", "dropped_headers", "rewritten_headers", "all_header_values_rewritten",
             "drops_status_at_least", "body_placeholders", "placeholder_pattern", "paths")
_RULE_KEYS = ("pattern", "body_edited", "synthetic", "host_rewritten", "framing", "gzip", "body_reserialised",
              "headers_rewritten")
_SOURCE = re.compile(r"^(https://\S+|[\w./*\[\]-]+@[0-9a-f]{12,40})$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _strings(entry: dict[str, Any], key: str, where: str, *, required: bool = False) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RecorderTableError(f"{where}: '{key}' must be a list of non-empty strings")
    if required and not value:
        raise RecorderTableError(f"{where}: '{key}' must name at least one")
    return tuple(value)


def _text(entry: dict[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RecorderTableError(f"{where}: '{key}' must be a non-empty string")
    return value


def _choice(entry: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, where: str) -> str:
    value = entry.get(key, default)
    if value not in allowed:
        raise RecorderTableError(f"{where}: '{key}' is {value!r}; use one of {', '.join(allowed)}")
    return str(value)


def _rule(raw: Any, where: str) -> PathRule:
    if not isinstance(raw, dict):
        raise RecorderTableError(f"{where}: a path rule must be a mapping with 'pattern'")
    unknown = sorted(set(raw) - set(_RULE_KEYS))
    if unknown:
        raise RecorderTableError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_RULE_KEYS)}")
    pattern = _text(raw, "pattern", where)
    assert pattern is not None
    rule = PathRule(pattern=pattern,
                    body_edited=_text(raw, "body_edited", where, required=False),
                    synthetic=_text(raw, "synthetic", where, required=False),
                    host_rewritten=_text(raw, "host_rewritten", where, required=False),
                    headers_rewritten=_text(raw, "headers_rewritten", where, required=False),
                    framing=_choice(raw, "framing", FRAMINGS, "joined", where) if "framing" in raw else None,
                    gzip=_choice(raw, "gzip", GZIP, "n/a", where) if "gzip" in raw else None,
                    body_reserialised=_text(raw, "body_reserialised", where, required=False))
    if not any((rule.body_edited, rule.synthetic, rule.host_rewritten, rule.framing, rule.gzip,
                rule.body_reserialised, rule.headers_rewritten)):
        raise RecorderTableError(f"{where}: rule {pattern!r} says nothing (give body_edited, synthetic, "
                                 f"host_rewritten, framing, gzip, body_reserialised or headers_rewritten)")
    return rule


def _profile(raw: Any, where: str) -> RecorderProfile:
    if not isinstance(raw, dict):
        raise RecorderTableError(f"{where}: an entry must be a mapping")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise RecorderTableError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise RecorderTableError(f"{where}: unknown key(s) {', '.join(unknown)}")
    repo = _text(raw, "repo", where)
    assert repo is not None
    if not _REPO.match(repo):
        raise RecorderTableError(f"{where}: repo {repo!r} is not owner/name")
    where = f"{where} ({repo})"
    sources = _strings(raw, "sources", where, required=True)
    bad = [s for s in sources if not _SOURCE.match(s)]
    if bad:
        raise RecorderTableError(f"{where}: source {bad[0]!r} is neither an https URL nor path@commit (12-40 hex)")
    pattern = _text(raw, "placeholder_pattern", where, required=False)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise RecorderTableError(f"{where}: placeholder_pattern is not a regex: {exc}") from None
    status = raw.get("drops_status_at_least")
    if status is not None and (not isinstance(status, int) or not 100 <= status <= 599):
        raise RecorderTableError(f"{where}: drops_status_at_least must be an HTTP status (100-599)")
    flag = raw.get("all_header_values_rewritten", False)
    if not isinstance(flag, bool):
        raise RecorderTableError(f"{where}: all_header_values_rewritten must be true or false")
    rules = raw.get("paths", [])
    if not isinstance(rules, list):
        raise RecorderTableError(f"{where}: 'paths' must be a list of rules")
    return RecorderProfile(
        repo=repo, recorder=str(_text(raw, "recorder", where)), config=str(_text(raw, "config", where)),
        changes=_strings(raw, "changes", where, required=True),
        dropped_headers=tuple(h.lower() for h in _strings(raw, "dropped_headers", where)),
        rewritten_headers=tuple(h.lower() for h in _strings(raw, "rewritten_headers", where)),
        all_header_values_rewritten=flag,
        body_placeholders=_strings(raw, "body_placeholders", where), placeholder_pattern=pattern,
        sources=sources, format=_choice(raw, "format", FORMATS, "vcrpy", where),
        bodies=_choice(raw, "bodies", BODIES, "verbatim", where), gzip=_choice(raw, "gzip", GZIP, "n/a", where),
        drops_status_at_least=status,
        paths=tuple(_rule(r, f"{where} paths[{i}]") for i, r in enumerate(rules)))


def parse_table(text: str, origin: str = "recorders.yaml") -> dict[str, RecorderProfile]:
    """Validate a recorder table's text. Raises RecorderTableError naming the entry and field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecorderTableError(f"{origin}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(doc, dict) or doc.get("version") != TABLE_VERSION or not isinstance(doc.get("recorders"), list):
        raise RecorderTableError(f"{origin}: needs 'version: {TABLE_VERSION}' and a 'recorders' list")
    out: dict[str, RecorderProfile] = {}
    for i, raw in enumerate(doc["recorders"]):
        profile = _profile(raw, f"{origin}: recorders[{i}]")
        if profile.repo.lower() in out:
            raise RecorderTableError(f"{origin}: recorders[{i}]: {profile.repo} is listed twice")
        out[profile.repo.lower()] = profile
    return out


@lru_cache(maxsize=4)
def load_table(path: Path = RECORDERS_FILE) -> dict[str, RecorderProfile]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecorderTableError(f"cannot read the recorder table {path}: {exc.strerror or exc}") from None
    return parse_table(text, str(path))


def unknown_profile(repo: str) -> RecorderProfile:
    return RecorderProfile(repo, "unknown", "", (("What this project's recorder changes is not known to oaicompat "
                                                 "(it is not in fixtures/imported/recorders.yaml): header-"
                                                 "dependent checks do not run on it."),), known=False)


def profile_for(repo: str, table: dict[str, RecorderProfile] | None = None) -> RecorderProfile:
    found = (load_table() if table is None else table).get(repo.lower())
    return found if found is not None else unknown_profile(repo)


class _LazyTable(Mapping[str, RecorderProfile]):
    """PROFILES: the recorder table as a read-only mapping, read on first use (importing this module never
    fails on a bad table; the first lookup raises RecorderTableError)."""

    def __getitem__(self, key: str) -> RecorderProfile:
        return load_table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(load_table())

    def __len__(self) -> int:
        return len(load_table())


PROFILES: Mapping[str, RecorderProfile] = _LazyTable()
