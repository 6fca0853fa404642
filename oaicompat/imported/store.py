"""Write imported recordings as oaicompat's own YAML, with provenance and the source's licence; read them back.

Layout (one directory per vendor and source repository):

    fixtures/imported/<vendor>/<source-slug>/<file>.yaml      one per source file, every interaction
    fixtures/imported/<vendor>/<source-slug>/PROVENANCE.yaml  repository, licence, recorder, per-file commit…
    fixtures/imported/<vendor>/<source-slug>/LICENSE.<slug>   the source repository's licence notice
    fixtures/imported/<vendor>/<source-slug>/NOTICE.<slug>    its NOTICE file, when it has one (Apache-2.0)

A data file (format `oaicompat_imported: 1`):

    vendor, source: {repo, commit, path, license, format, sha256}, imported_at
    interactions:
      - index: 3                       # position in the source file
        recorded_at: 2026-06-08T18:45:36Z | null
        framing: joined | data-lines-only   # chunk boundaries unknown; data-lines-only: one chunk JSON per line
        excluded: null | "why"         # kept for the record, never run as evidence
    body_edited: null | "why"      # the body is not what the vendor sent (Content-Length, recorder table)
    body_reserialised: null | "why"  # the JSON's meaning is the vendor's, its bytes are not
    lacks: [request, request-headers, status, response-headers, sse-envelope]   # what the source never kept
    status_assumed: {status, why}  # body-only files: the status their source replays them with
        notes: [...]                   # what the recorder / the import did to this interaction
        request:  {method, url, path, headers: [[k, v]…], body_form, body | body_base64 | body_parsed}
        response: {status, http_version, headers, body_form, body | body_base64 | body_parsed}

The bytes are the source file's bytes (gzip/base64 forms decoded). The only change is secret scrubbing
(credential headers → [REDACTED], key-like strings → [REDACTED]), listed per interaction in `notes` and in
PROVENANCE.yaml. Every file of an import is staged in a temporary folder, verified by reading it back, and
renamed into place only when all of them are ready. What each source's recorder changes: profiles.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..exchange import Chunk, Exchange, Framing, Request
from ..fileio import atomic_write_text, dump_yaml
from ..scrub import REDACTED, redact_keylike
from .formats import (
    MAX_FILE_BYTES,
    Body,
    RawInteraction,
    RecordingError,
    chunk_lines,
    load_yaml,
    read_recording,
)
from .profiles import IMPORT_SECRET_HEADERS, PROFILES, PathRule, RecorderProfile, profile_for
from .vendors import API_ENDPOINTS, model_of, relative_path, sniff_vendor, vendor_for_url

__all__ = ["IMPORT_SECRET_HEADERS", "PROFILES", "RecorderProfile", "profile_for"]   # re-exported (profiles.py)

FORMAT_VERSION = 1
PROVENANCE_VERSION = 1
PERMISSIVE_LICENSES = ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause")

# key shapes redact_keylike does not know (Perplexity, Cerebras, Fireworks, Hugging Face, NVIDIA, AWS, Google
# OAuth), and account identifiers (OpenAI org-/proj_ ids, OpenRouter/Clerk user_ ids in error bodies)
_EXTRA_KEYLIKE = re.compile(
    r"\b(pplx-[A-Za-z0-9]{20,}|csk-[A-Za-z0-9]{20,}|fw_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}"
    r"|nvapi-[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|ya29\.[A-Za-z0-9_\-]{20,}"
    r"|org-[A-Za-z0-9]{20,}|proj_[A-Za-z0-9]{20,}|user_[A-Za-z0-9]{24,})")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:key|api_key|api-key|apikey|token|access_token|auth)=)[^&#\s]+")


def redact_text(text: str) -> str:
    """oaicompat.scrub.redact_keylike, plus more vendors' key shapes and secret query parameters."""
    text = redact_keylike(text)
    text = _EXTRA_KEYLIKE.sub(REDACTED, text)
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)


# -- licences -------------------------------------------------------------------------------------------------

LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENSE.rst", "LICENCE", "LICENCE.md", "COPYING",
                 "COPYING.md")
NOTICE_NAMES = ("NOTICE", "NOTICE.md", "NOTICE.txt")


def detect_spdx(text: str) -> str | None:
    """The SPDX id of a licence text, for the permissive licences oaicompat accepts; None otherwise."""
    t = " ".join(text.split()).lower()
    if "apache license" in t and "version 2.0" in t:
        return "Apache-2.0"
    if "permission is hereby granted, free of charge" in t and "without restriction" in t:
        return "MIT"
    if "redistribution and use in source and binary forms" in t:
        if "gnu" in t:
            return None
        return "BSD-3-Clause" if ("neither the name" in t or "names of its contributors" in t) else "BSD-2-Clause"
    return None


def slug_of(repo: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", repo.lower().replace("/", "-")).strip("-")


# -- source description -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    repo: str                 # owner/name
    commit: str               # as given or resolved to 40 hex
    license: str              # SPDX, verified against license_text
    license_text: str
    notice_text: str | None = None
    license_origin: str = ""  # e.g. "LICENSE@<commit>"

    @property
    def slug(self) -> str:
        return slug_of(self.repo)

    @property
    def profile(self) -> RecorderProfile:
        return profile_for(self.repo)


def parse_source(spec: str) -> tuple[str, str]:
    """'owner/repo@commit' → (repo, commit)."""
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)@([0-9a-fA-F]{7,40})", spec.strip())
    if not m:
        raise RecordingError(f"--source {spec!r} is not owner/repo@commit (commit: 7 to 40 hex digits)")
    return m.group(1), m.group(2).lower()


# -- scrubbing ------------------------------------------------------------------------------------------------------

def _scrub_bytes(data: bytes) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # latin-1 maps every byte to one character and back: only the ASCII key matches can change
        return redact_text(data.decode("latin-1")).encode("latin-1")
    return redact_text(text).encode("utf-8")


def _scrub_parsed(obj: Any) -> Any:
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {(redact_text(k) if isinstance(k, str) else k): _scrub_parsed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub_parsed(v) for v in obj]
    return obj


def _scrub_headers(headers: Iterable[tuple[str, str]], where: str, notes: list[str]) -> list[list[str]]:
    out: list[list[str]] = []
    for k, v in headers:
        if k.lower() in IMPORT_SECRET_HEADERS:
            if v != REDACTED:
                notes.append(f"scrubbed: {where} header {k} replaced by {REDACTED}")
            out.append([k, REDACTED])
        else:
            clean = redact_text(v)
            if clean != v:
                notes.append(f"scrubbed: key-like string in {where} header {k}")
            out.append([k, clean])
    return out


def _body_fields(body: Body, where: str, notes: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"body_form": body.form}
    if body.note:
        notes.append(f"{where} body: {body.note}")
    if body.form == "empty":
        return fields
    if body.is_parsed:
        clean_parsed = _scrub_parsed(body.parsed)
        if clean_parsed != body.parsed:
            notes.append(f"scrubbed: key-like string in {where} body")
        fields["body_parsed"] = clean_parsed
        return fields
    clean = _scrub_bytes(body.data)
    if clean != body.data:
        notes.append(f"scrubbed: key-like string in {where} body")
    fields.update(_encode_bytes(clean))
    return fields


def _encode_bytes(data: bytes) -> dict[str, str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(data).decode("ascii")}
    # YAML cannot carry every code point faithfully (e.g. lone C1 controls are fine, but be safe): verify
    try:
        loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
        if yaml.load(dump_yaml(text), Loader=loader) == text:
            return {"body": text}
    except yaml.YAMLError:
        pass
    return {"body_base64": base64.b64encode(data).decode("ascii")}


def body_bytes(d: dict[str, Any]) -> bytes | None:
    """The bytes a stored request/response holds; None when the source kept a parsed structure instead."""
    if "body_base64" in d:
        return base64.b64decode(d["body_base64"], validate=True)
    if "body_parsed" in d:
        return None
    value = d.get("body", "")
    if not isinstance(value, str):
        raise RecordingError(f"'body' must be a string, found {type(value).__name__}")
    return value.encode("utf-8")


# -- one source file → stored interactions ----------------------------------------------------------------------

@dataclass
class ImportResult:
    path: str                       # source path as given
    source_path: str                # path inside the source repository
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # per-interaction messages
    error: str | None = None
    duplicate_of: str | None = None  # an already imported file of this source with the same bytes
    interactions: int = 0
    excluded: int = 0


def _exclusion(raw: RawInteraction, profile: RecorderProfile) -> str | None:
    """Why an interaction can never stand for what the vendor sent (kept for the record only)."""
    if raw.response_body.form == "binary" and "not decodable" in raw.response_body.note:
        return f"response body {raw.response_body.note}"
    for where, body in (("request", raw.request_body), ("response", raw.response_body)):
        if body.is_parsed:
            text = json.dumps(body.parsed, ensure_ascii=False)
        elif body.form != "empty":
            text = body.data.decode("utf-8", "replace")
        else:
            continue
        hit = profile.placeholder_in(text)
        if hit:
            return f"the recorder substituted {hit} into the {where} body, so it is not what was sent"
    return None


# gzip adds at most a header, a trailer and 5 bytes per 16 KiB stored block to what it compresses
def _gzip_ceiling(decoded_len: int) -> int:
    return decoded_len + 64 + 5 * (decoded_len // 16384 + 1)


def length_contradiction(raw: RawInteraction) -> str | None:
    """A response body whose length contradicts the recorded Content-Length (after content-encoding)."""
    body = raw.response_body
    declared = (raw.response_header("content-length") or "").strip()
    if not declared.isdigit() or raw.method == "HEAD" or raw.status in (204, 304) or body.is_parsed:
        return None
    if body.note.startswith("source body encoding"):   # Psych re-encoded the text: byte counts differ anyway
        return None
    want = int(declared)
    stored = body.source_len if body.source_len is not None else len(body.data)
    encoding = (raw.response_header("content-encoding") or "").strip().lower()
    still_encoded = body.form == "gzip" or "encoded" in body.note
    if encoding and encoding != "identity" and not still_encoded:
        # the source keeps the decoded bytes but the header counts the encoded ones: only a body too small to
        # have been compressed to that length is a contradiction
        if encoding == "gzip" and _gzip_ceiling(len(body.data)) < want:
            return (f"content-length says {want} bytes ({encoding}), stored body is {len(body.data)} decoded "
                    f"bytes: no gzip of it is that long")
        return None
    if want != stored:
        return f"content-length says {want} bytes, stored body is {stored}"
    return None


def body_edited(raw: RawInteraction, rule: PathRule | None) -> str | None:
    """Why the stored response body is not the one the vendor sent: a profile rule, or its own Content-Length."""
    found = length_contradiction(raw)
    if rule is not None and rule.body_edited:
        return f"{rule.body_edited}; {found}" if found else rule.body_edited
    return found


def body_reserialised(raw: RawInteraction, framing: str, rule: PathRule | None = None) -> str | None:
    """Why the body's bytes are not the vendor's although its JSON meaning is (a recorder re-serialised it)."""
    if rule is not None and rule.body_reserialised:
        return rule.body_reserialised
    if raw.response_body.is_parsed:
        return ("the recorder parsed the JSON body and stored the structure (parsed_body): key order, spacing and "
                "string normalisation are not the vendor's; only the JSON's meaning is")
    if framing == "data-lines-only":
        return ("one chunk JSON per line, written back out by the source's fixture script: the SSE envelope "
                "(data: prefixes, blank lines, comments, [DONE]) is gone")
    return None


_CHAT_OBJECTS = {"chat.completion": "/chat/completions", "chat.completion.chunk": "/chat/completions"}


def _body_only_path(raw: RawInteraction) -> str:
    """The endpoint a body-only file answered, read from the response's `object` (the only thing recorded)."""
    text = raw.response_body.data.decode("utf-8", "replace")
    lines = [text] if raw.framing == "joined" and not text.lstrip().startswith(("data:", ":")) else []
    if not lines:
        lines = [ln[5:].strip() if ln.startswith("data:") else ln for ln in text.split("\n")]
    for line in lines:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and obj.get("object") in _CHAT_OBJECTS:
            return _CHAT_OBJECTS[obj["object"]]
        if isinstance(obj, dict) and "choices" in obj:
            return "/chat/completions"
    raise RecordingError("a body-only file that is not a chat completion (no `object: chat.completion[.chunk]` "
                         "or `choices`): the endpoint it answered is unknown; not imported")


def _api_call_of(url: str, url_vendor: str | None, vendor: str) -> bool:
    """With --vendor: a request to another known vendor, or to no API endpoint (a licence page, an image
    download the test fetched) is not that vendor's traffic."""
    if url_vendor is not None and url_vendor != vendor:
        return False
    return relative_path(url, vendor) in API_ENDPOINTS or relative_path(url, vendor).startswith("/models/")


STATUS_ASSUMED = ("not recorded; the source's tests replay this body as an HTTP 200 reply, and its recorder "
                  "saves successful replies")


def build_stored(raw_interactions: list[RawInteraction], *, source: Source, vendor_override: str | None,
                 recorded_at: str | None, source_path: str = "") -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Group interactions by vendor as stored dicts. Returns (vendor → interactions, skipped messages)."""
    by_vendor: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    profile = source.profile
    rule = profile.rule_for(source_path)
    for raw in raw_interactions:
        notes: list[str] = []
        body_only = "request" in raw.lacks
        if body_only and vendor_override is None:
            raise RecordingError("a body-only file records no host: pass --vendor to name the vendor it answered")
        url_vendor = None if body_only else vendor_for_url(raw.url)
        if vendor_override and not body_only and not _api_call_of(raw.url, url_vendor, vendor_override):
            skipped.append(f"interaction {raw.index}: {raw.method} {redact_text(raw.url)} is not an API call of "
                           f"{vendor_override} (another host, or no API endpoint); skipped")
            continue
        vendor = vendor_override or url_vendor
        if vendor_override is None:
            text = "" if raw.response_body.is_parsed else raw.response_body.data[:200_000].decode("utf-8", "replace")
            vendor, sniff_note = sniff_vendor(url_vendor, text)
            if sniff_note:
                notes.append(sniff_note)
        if rule is not None and rule.host_rewritten:
            notes.append(f"recorder profile: {rule.host_rewritten}")
        if vendor is None:
            skipped.append(f"interaction {raw.index}: {raw.method} {redact_text(raw.url)} is not a hosted vendor "
                           f"oaicompat knows; skipped (pass --vendor to file it)")
            continue
        framing = (rule.framing if rule is not None and rule.framing else None) or raw.framing
        excluded = _exclusion(raw, profile)
        url = redact_text(raw.url)
        if url != raw.url:
            notes.append("scrubbed: secret in the request URL")
        if body_only:
            path = _body_only_path(raw)
            notes.append(f"body-only file: no request, status or headers were recorded; the endpoint {path} is "
                         f"read from the response's object")
            request: dict[str, Any] = {"method": None, "url": None, "path": path, "headers": [], "body_form": "unknown"}
        else:
            request = {"method": raw.method, "url": url, "path": relative_path(url, vendor),
                       "headers": _scrub_headers(raw.request_headers, "request", notes),
                       **_body_fields(raw.request_body, "request", notes)}
        response = {"status": raw.status, "http_version": raw.http_version,
                    "headers": _scrub_headers(raw.response_headers, "response", notes),
                    **_body_fields(raw.response_body, "response", notes)}
        if raw.request_body.is_parsed:
            notes.append("request body: only its parsed structure survives; request features are read from it")
        when, when_from = _recording_date(raw, recorded_at)
        item: dict[str, Any] = {
            "index": raw.index,
            "recorded_at": when,
            "recorded_at_from": when_from,
            "framing": framing,
            "excluded": excluded,
            "body_edited": body_edited(raw, rule),
            "body_reserialised": body_reserialised(raw, framing, rule),
            "lacks": list(raw.lacks),
            "notes": notes,
            "request": request,
            "response": response,
        }
        if body_only:
            item["status_assumed"] = {"status": 200, "why": STATUS_ASSUMED}
        by_vendor.setdefault(vendor, []).append(item)
    return by_vendor, skipped


_CREATED = re.compile(rb'"created"\s*:\s*(1[5-9]\d{8})\b')


def _recording_date(raw: RawInteraction, given: str | None) -> tuple[str | None, str | None]:
    """When the interaction was recorded, and how we know: the source, --recorded-at, or the vendor's clock."""
    if raw.recorded_at:
        return raw.recorded_at, raw.recorded_from
    if given:
        return given, "--recorded-at"
    if not raw.response_body.is_parsed:
        m = _CREATED.search(raw.response_body.data[:20_000])
        if m:
            when = datetime.fromtimestamp(int(m.group(1)), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return when, "the response's created field (the vendor's clock)"
    return None, None


def stored_name(source_path: str) -> str:
    base = source_path.rsplit("/", 1)[-1]
    for suffix in (".gz", ".yaml", ".yml", ".httprr", ".json"):
        base = base.removesuffix(suffix)
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "recording"
    if len(base) > 150:
        base = base[:140] + "-" + hashlib.sha1(base.encode()).hexdigest()[:8]
    return base + ".yaml"


def _verify_roundtrip(text: str, doc: dict[str, Any], path: Path) -> None:
    back = load_yaml(text)
    for before, after in zip(doc["interactions"], back["interactions"], strict=True):
        for part in ("request", "response"):
            b, a = before[part], after[part]
            if body_bytes(b) != body_bytes(a) or b.get("body_parsed") != a.get("body_parsed") \
                    or b["headers"] != a["headers"]:
                raise RecordingError(f"refusing to write {path}: the YAML round trip changed the {part}")


def import_file(path: Path, *, source: Source, source_path: str, out_root: Path,
                vendor_override: str | None = None, recorded_at: str | None = None,
                now: str | None = None, data: bytes | None = None, selection: str | None = None) -> ImportResult:
    """Import one source file: read, scrub, flag, write per vendor + provenance + licence. Never half-writes:
    every file is staged in a temporary folder under out_root and renamed into place only when all are ready."""
    result = ImportResult(str(path), source_path)
    now = now or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        rule = source.profile.rule_for(source_path)
        if rule is not None and rule.synthetic:
            raise RecordingError(f"the recorder profile of {source.repo} marks this file synthetic "
                                 f"({rule.synthetic}): not vendor traffic")
        if data is None:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise RecordingError(f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,} cap")
            data = path.read_bytes()
        recording = read_recording(path.name, data)
        sha = hashlib.sha256(data).hexdigest()
        by_vendor, skipped = build_stored(recording.interactions, source=source, vendor_override=vendor_override,
                                          recorded_at=recorded_at, source_path=source_path)
        result.skipped = skipped
        if not by_vendor:
            raise RecordingError("no interaction with a hosted vendor oaicompat knows")
        plans = _plan(by_vendor, source=source, source_path=source_path, out_root=out_root, sha=sha,
                      fmt=recording.format, compressed=recording.compressed, now=now, skipped=skipped,
                      selection=selection, result=result)
        if plans is None:
            return result
        _commit_staged(plans, out_root, source)
        result.written.extend(folder / name for folder, name, _doc, _prov in plans)
    except RecordingError as exc:
        result.error = str(exc)
    except OSError as exc:
        result.error = f"cannot read or write: {exc.strerror or exc}"
    return result


def _plan(by_vendor: dict[str, list[dict[str, Any]]], *, source: Source, source_path: str, out_root: Path,
          sha: str, fmt: str, compressed: bool, now: str, skipped: list[str], selection: str | None,
          result: ImportResult) -> list[tuple[Path, str, dict[str, Any], dict[str, Any]]] | None:
    """Every file to write, verified; None when the source file is a byte-identical twin of an imported one."""
    plans: list[tuple[Path, str, dict[str, Any], dict[str, Any]]] = []
    for vendor, interactions in sorted(by_vendor.items()):
        folder = out_root / vendor / source.slug
        prov_path = folder / "PROVENANCE.yaml"
        prov = read_provenance(prov_path) or new_provenance(source)
        twin = next((f.get("path") for f in prov.get("files", [])
                     if f.get("sha256") == sha and f.get("path") != source_path), None)
        if twin:   # test suites often commit the same cassette under several names: count it once
            result.duplicate_of = twin
            return None
        name = _unique_name(prov, source_path)
        doc = {
            "oaicompat_imported": FORMAT_VERSION,
            "vendor": vendor,
            "source": {"repo": source.repo, "commit": source.commit, "path": source_path,
                       "license": source.license, "format": fmt, "sha256": sha, "compressed": compressed},
            "imported_at": now,
            "interactions": interactions,
        }
        unchanged = _same_import(folder / name, doc)
        if unchanged:
            doc["imported_at"] = unchanged
        _verify_roundtrip(dump_yaml(doc), doc, folder / name)
        prov = _merge_provenance(prov, source, _provenance_entry(doc, name, skipped), selection)
        plans.append((folder, name, doc, prov))
        result.interactions += len(interactions)
        result.excluded += sum(1 for i in interactions if i["excluded"] or i.get("body_edited"))
    return plans


def _commit_staged(plans: list[tuple[Path, str, dict[str, Any], dict[str, Any]]], out_root: Path,
                   source: Source) -> None:
    """Write every planned file into a staging folder, then rename each into place (nothing half-written)."""
    out_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_root))
    try:
        moves: list[tuple[Path, Path]] = []
        for folder, name, doc, prov in plans:
            rel = folder.relative_to(out_root)
            files = {name: dump_yaml(doc), "PROVENANCE.yaml": dump_yaml(prov),
                     f"LICENSE.{source.slug}": source.license_text}
            if source.notice_text is not None:
                files[f"NOTICE.{source.slug}"] = source.notice_text
            for fname, text in files.items():
                target = folder / fname
                if target.exists() and target.read_text(encoding="utf-8", errors="replace") == text:
                    continue
                staged = staging / rel / fname
                atomic_write_text(staged, text, mode=0o644)
                moves.append((staged, target))
        for staged, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    finally:
        for p in sorted(staging.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        staging.rmdir()


# -- provenance ---------------------------------------------------------------------------------------------

def new_provenance(source: Source) -> dict[str, Any]:
    p = source.profile
    return {
        "oaicompat_provenance": PROVENANCE_VERSION,
        "repository": source.repo,
        "url": f"https://github.com/{source.repo}",
        "license": source.license,
        "license_file": f"LICENSE.{source.slug}",
        "license_origin": source.license_origin,
        "notice_file": f"NOTICE.{source.slug}" if source.notice_text else None,
        "recorder": _recorder_info(p),
        "oaicompat_changes": [
            ("Nothing but secrets: credential headers (oaicompat.scrub.SECRET_HEADERS and account-id headers) "
            "are replaced by [REDACTED] and key-like strings (oaicompat.scrub.redact_keylike plus further key "
            "shapes and secret URL parameters) by [REDACTED]; each such change is listed in the interaction's "
            "notes and under scrubbed below."),
            ("gzip / base64 / !binary bodies are decoded to their bytes; a body the source kept as a parsed "
            "structure stays a structure (body_parsed, marked body_reserialised: only checks of the JSON's "
            "meaning read it)."),
            ("A response body whose length contradicts its recorded Content-Length, or that the recorder profile "
            "(fixtures/imported/recorders.yaml) says was edited, is kept with body_edited: why; checks that read "
            "the body do not run on it."),
        ],
        "files": [],
    }


def read_provenance(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    doc = load_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("oaicompat_provenance") != PROVENANCE_VERSION:
        raise RecordingError(f"{path} is not an oaicompat PROVENANCE.yaml of version {PROVENANCE_VERSION}")
    return doc


def _unique_name(prov: dict[str, Any], source_path: str) -> str:
    """The source file's name; with its folder's name in front when another source file has that name."""
    files = prov.get("files", [])
    for f in files:
        if f.get("path") == source_path and f.get("stored_as"):
            return str(f["stored_as"])
    taken = {f.get("stored_as") for f in files}
    name = stored_name(source_path)
    if name in taken:
        parts = source_path.rsplit("/", 2)
        name = stored_name(f"{parts[-2]}__{parts[-1]}") if len(parts) > 1 else name
    if name in taken:
        name = f"{name[:-5]}--{hashlib.sha1(source_path.encode()).hexdigest()[:8]}.yaml"
    return name


def _same_import(path: Path, doc: dict[str, Any]) -> str | None:
    """The imported_at of an existing file that holds exactly this import (a refresh changes nothing)."""
    if not path.exists():
        return None
    try:
        old = load_yaml(path.read_text(encoding="utf-8"))
    except (RecordingError, OSError, UnicodeDecodeError):
        return None
    if not isinstance(old, dict):
        return None
    def strip(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k != "imported_at"}

    return old.get("imported_at") if strip(old) == strip(doc) else None


def _provenance_entry(doc: dict[str, Any], name: str, skipped: list[str]) -> dict[str, Any]:
    inters = doc["interactions"]
    dates = sorted({i["recorded_at"] for i in inters if i.get("recorded_at")})
    counts: dict[str, list[int]] = {}
    for i in inters:
        for n in dict.fromkeys(n for n in i["notes"] if n.startswith("scrubbed: ")):
            counts.setdefault(n[len("scrubbed: "):], []).append(i["index"])
    scrubbed = [f"{what} (interaction{'s' if len(ix) > 1 else ''} {', '.join(map(str, ix))})"
                for what, ix in counts.items()]
    excluded = [f"interaction {i['index']}: {i['excluded']}" for i in inters if i["excluded"]]
    edited = [f"interaction {i['index']}: {i['body_edited']}" for i in inters if i.get("body_edited")]
    return {
        "path": doc["source"]["path"],
        "commit": doc["source"]["commit"],
        "sha256": doc["source"]["sha256"],
        "format": doc["source"]["format"],
        "stored_as": name,
        "interactions": len(inters),
        "recorded_at": (dates[0] if len(dates) == 1 else {"first": dates[0], "last": dates[-1]}) if dates else None,
        "excluded": excluded,
        "body_edited": edited,
        "scrubbed": scrubbed,
        "skipped": list(skipped),
        "imported_at": doc["imported_at"],
    }


def _recorder_info(p: RecorderProfile) -> dict[str, Any]:
    return {"name": p.recorder, "config": p.config, "known": p.known, "sources": list(p.sources),
            "changes": list(p.changes)}


def _merge_provenance(prov: dict[str, Any], source: Source, entry: dict[str, Any],
                      selection: str | None = None) -> dict[str, Any]:
    if prov.get("repository", "").lower() != source.repo.lower():
        raise RecordingError(f"provenance belongs to {prov.get('repository')!r}, not {source.repo!r}")
    if prov.get("license") != source.license:
        raise RecordingError(f"this source was imported under {prov.get('license')}, now {source.license}: "
                             f"remove the folder and re-import")
    prov = dict(prov)
    p = source.profile
    prov["recorder"] = _recorder_info(p)
    if selection and selection not in prov.get("selection", []):
        prov["selection"] = [*prov.get("selection", []), selection]
    prov["license_origin"] = source.license_origin or prov.get("license_origin")
    if source.notice_text:
        prov["notice_file"] = f"NOTICE.{source.slug}"
    files = [f for f in prov.get("files", []) if f.get("path") != entry["path"]]
    files.append(entry)
    prov["files"] = sorted(files, key=lambda f: f["path"])
    return prov


# -- reading stored files back ---------------------------------------------------------------------------------

@dataclass
class StoredInteraction:
    """One imported exchange as the evidence runner reads it. Field names are stable (evidence.py reads them).

    excluded           why the exchange can stand for nothing (a recorder placeholder in it): never run
    body_edited        why the response body is not what the vendor sent (trimmed by a persister, a Content-Length
                       it contradicts, a profile rule): kept as provenance; checks that read the body do not run
    body_reserialised  why the body's bytes are not the vendor's although its JSON meaning is (parsed_body,
                       one chunk per line): checks of exact bytes / spacing / key order do not run
    framing            joined (one string, chunk boundaries lost) | data-lines-only (chunk JSON per line, no
                       SSE envelope: no data: prefixes, comments, blank lines or [DONE])
    lacks              what the source never recorded: request, request-headers, status, response-headers,
                       sse-envelope. A check that needs one of them does not apply
    model              the model the request names, else the response; "(none)" when neither does
    """
    vendor: str
    file: Path
    index: int
    exchange: Exchange | None     # None when unreadable
    excluded: str | None
    profile: RecorderProfile
    model: str
    body_edited: str | None = None
    body_reserialised: str | None = None
    framing: str = "joined"
    lacks: tuple[str, ...] = ()

    @property
    def status_known(self) -> bool:
        return "status" not in self.lacks

    @property
    def request_known(self) -> bool:
        return "request" not in self.lacks


def load_stored_file(path: Path, provenance: dict[str, Any] | None, project_root: Path | None = None
                     ) -> list[StoredInteraction]:
    """A data file's interactions as Exchanges (source imported, framing joined). Raises RecordingError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RecordingError(f"{path} is not UTF-8") from None
    doc = load_yaml(text)
    if not isinstance(doc, dict) or doc.get("oaicompat_imported") != FORMAT_VERSION:
        raise RecordingError(f"{path} is not an oaicompat imported file of format {FORMAT_VERSION}")
    src = doc.get("source") or {}
    vendor = str(doc.get("vendor") or "")
    if not vendor or not isinstance(doc.get("interactions"), list):
        raise RecordingError(f"{path} has no vendor or no interactions list")
    profile = profile_for(str(src.get("repo", "")))
    shown = str(path.relative_to(project_root)) if project_root and path.is_relative_to(project_root) else str(path)
    recorder = (provenance or {}).get("recorder", {}).get("name") or profile.recorder
    out: list[StoredInteraction] = []
    for inter in doc["interactions"]:
        try:
            out.append(_stored_to_exchange(inter, vendor, path, shown, src, recorder, profile))
        except (KeyError, TypeError, ValueError, RecordingError) as exc:
            raise RecordingError(f"{path}: interaction {inter.get('index', '?') if isinstance(inter, dict) else '?'}"
                                 f" is malformed: {type(exc).__name__}: {exc}") from None
    return out


def _view_headers(rs: dict[str, Any], body: bytes) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The response headers as a client sees them with the stored (decoded) body.

    A body the source kept gzip-compressed is stored decompressed, so its Content-Encoding no longer
    describes it; a Content-Length that does not match the stored body is a leftover of decoding. Both are
    left out of the Exchange (the stored file keeps them) and named untrusted for header-reading checks.
    """
    out: list[tuple[str, str]] = []
    untrusted: list[str] = []
    for k, v in rs.get("headers", []):
        name, value = str(k), str(v)
        lname = name.lower()
        if lname == "content-encoding" and rs.get("body_form") == "gzip":
            untrusted.append(lname)
            continue
        if lname == "content-length" and value.strip() != str(len(body)):
            untrusted.append(lname)
            continue
        out.append((name, value))
    return tuple(out), sorted(set(untrusted))


def _response_view(rs: dict[str, Any], framing: str) -> tuple[bytes | None, str | None]:
    """The body bytes the Exchange shows, and how they differ from the stored ones (None: they are the same).

    A parsed body is shown as compact JSON of the stored structure; a data-lines-only body as one SSE event per
    line (`data: <line>` and a blank line, no [DONE]), so SSE-reading checks see the chunks. The stored file
    keeps what the source holds; the view is labelled in the Exchange's meta.
    """
    raw = body_bytes(rs)
    if raw is None:
        return (json.dumps(rs["body_parsed"], ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                "compact JSON of the structure the recorder stored (parsed_body)")
    if framing == "data-lines-only":
        return (b"".join(b"data: " + line + b"\n\n" for line in chunk_lines(raw)),
                "SSE view of one-chunk-per-line data: 'data: ' and a blank line around each stored line; the "
                "source has no envelope, so no comments, no [DONE], and the vendor's line ends are unknown")
    return raw, None


def _stored_to_exchange(inter: dict[str, Any], vendor: str, path: Path, shown: str, src: dict[str, Any],
                        recorder: str, profile: RecorderProfile) -> StoredInteraction:
    rq, rs = inter["request"], inter["response"]
    index = int(inter["index"])
    framing = str(inter.get("framing") or "joined")
    lacks = tuple(str(x) for x in inter.get("lacks") or ())
    rq_bytes = body_bytes(rq)
    if rq_bytes is None:   # the source kept only the parsed request: features come from it
        rq_bytes = json.dumps(rq["body_parsed"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request = Request(method=str(rq.get("method") or "POST").upper(), url=str(rq.get("url") or ""),
                      path=str(rq["path"]), headers=tuple((str(k), str(v)) for k, v in rq.get("headers", [])),
                      body=rq_bytes)
    excluded = inter.get("excluded")
    rs_bytes, view = _response_view(rs, framing)
    model = model_of(rq_bytes, body_bytes(rs) or rs_bytes or b"", framing)
    short = str(src.get("commit", ""))[:12]
    edited, reserialised = inter.get("body_edited"), inter.get("body_reserialised")
    meta = {
        "source_repo": src.get("repo"),
        "source_path": src.get("path"),
        "source_commit": src.get("commit"),
        "license": src.get("license"),
        "provenance": f"{src.get('repo')}@{short} {src.get('path')} interaction {index}; recorder: {recorder}",
        "imported_file": f"{shown}#{index}",
        "recorded_at": inter.get("recorded_at"),
        "vendor": vendor,
        "request_body_form": rq.get("body_form"),
        "response_body_form": rs.get("body_form"),
        "notes": list(inter.get("notes") or []),
        "framing": framing,
        "lacks": list(lacks),
        "body_edited": edited,
        "body_reserialised": reserialised,
    }
    if view:
        meta["body_view"] = view
    assumed = inter.get("status_assumed")
    status = rs.get("status")
    if status is None and isinstance(assumed, dict) and assumed.get("status") is not None:
        status = assumed["status"]
        meta["status_assumed"] = f"HTTP {status}: {assumed.get('why')}"
    chunks_raw = rs.get("chunks")
    ex_framing: Framing
    if chunks_raw:   # only if a source ever kept chunk boundaries
        chunks = tuple(Chunk(float(c["t"]), base64.b64decode(c["base64"], validate=True) if "base64" in c
                             else str(c.get("text", "")).encode("utf-8")) for c in chunks_raw)
        ex_framing = "raw"
    else:
        chunks = (Chunk(0.0, rs_bytes),) if rs_bytes else ()
        ex_framing = "joined"
    headers, untrusted = _view_headers(rs, (rs_bytes or b"") if view is None else b"")
    if view is not None:   # the shown bytes are not the stored ones: length/encoding headers describe neither
        untrusted += [k.lower() for k, _ in headers if k.lower() in ("content-length", "content-encoding")]
        headers = tuple((k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding"))
    untrusted += [k.lower() for k, v in headers if profile.placeholder_in(v)]   # a recorder placeholder value
    rule = profile.rule_for(str(src.get("path") or ""))
    if rule is not None and rule.headers_rewritten:   # the source's scrubbing rewrote this file's header values
        untrusted += [k.lower() for k, _ in headers]
        meta["notes"].append(f"recorder profile: {rule.headers_rewritten}")
    meta["untrusted_headers"] = sorted(set(untrusted))
    ex = Exchange(request=request, status=int(status) if status is not None else None,
                  headers=headers, chunks=chunks,
                  source="imported", framing=ex_framing, http_version=rs.get("http_version"), meta=meta)
    if edited and not excluded:
        # until the runner reads body_edited per check, an edited response body stands for nothing
        excluded = f"body edited by the recorder ({edited})"
    return StoredInteraction(vendor, path, index, ex, excluded, profile, model, body_edited=edited,
                             body_reserialised=reserialised, framing=framing, lacks=lacks)
