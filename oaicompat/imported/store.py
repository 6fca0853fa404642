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
        framing: joined                # chunk boundaries unknown: no source keeps them
        excluded: null | "why"         # kept for the record, never run as evidence
        notes: [...]                   # what the recorder / the import did to this interaction
        request:  {method, url, path, headers: [[k, v]…], body_form, body | body_base64 | body_parsed}
        response: {status, http_version, headers, body_form, body | body_base64 | body_parsed}

The bytes are the source file's bytes (gzip/base64 forms decoded). The only change is secret scrubbing
(credential headers → [REDACTED], key-like strings → [REDACTED]), listed per interaction in `notes` and in
PROVENANCE.yaml. Every write is atomic (temp file + os.replace) and verified by reading it back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ..exchange import Chunk, Exchange, Framing, Request
from ..fileio import atomic_write_text, dump_yaml
from ..scrub import REDACTED, SECRET_HEADERS, redact_keylike
from .formats import (
    MAX_FILE_BYTES,
    Body,
    RawInteraction,
    RecordingError,
    load_yaml,
    read_recording,
)
from .vendors import model_of, relative_path, sniff_vendor, vendor_for_url

FORMAT_VERSION = 1
PROVENANCE_VERSION = 1
PERMISSIVE_LICENSES = ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause")

# headers whose values are secrets or account identifiers, beyond oaicompat.scrub.SECRET_HEADERS
IMPORT_SECRET_HEADERS = SECRET_HEADERS | frozenset({
    "anthropic-organization-id", "x-organization-id", "openai-organization-id", "x-api-token", "api-token",
    "x-goog-user-project", "x-amz-security-token", "x-auth-token",
})
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


# -- what each source project's recorder is known to change (public-recordings.md §0) ---------------------

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


_RUBY_LLM_PLACEHOLDERS = (
    "<MASSIVE_TEXT>", "<GOOGLE_CLOUD_LOCATION>", "<GOOGLE_CLOUD_PROJECT>", "<AWS_REGION>", "<OLLAMA_API_BASE>",
    "<GPUSTACK_API_BASE>", "<X_REQUEST_ID>", "<REQUEST_ID>", "<CF_RAY>", "<OPENAI_ORGANIZATION>", "<OPENAI_PROJECT>",
    "<ANTHROPIC_ORGANIZATION_ID>", "<GOOGLE_REFRESH_TOKEN>", "<GOOGLE_CLIENT_ID>", "<GOOGLE_CLIENT_SECRET>",
    "<GOOGLE_ACCESS_TOKEN>", "<GOOGLE_ID_TOKEN>", "<GOOGLE_BEARER_TOKEN>", "<AWS_SIGV4_SIGNATURE>", "<COOKIE>",
    "<AUTH_TOKEN>",
)

PROFILES: dict[str, RecorderProfile] = {p.repo.lower(): p for p in (
    RecorderProfile(
        "pydantic/pydantic-ai", "vcrpy (pytest-recording) with a custom serializer",
        "tests/json_body_serializer.py, tests/conftest.py (vcr_config)",
        (("JSON bodies (content-type application/json) are parsed and stored as a YAML mapping `parsed_body`: "
         "the original bytes, key order and spacing are lost and every string is smart-quote→ASCII and NFKC "
         "normalised. oaicompat keeps such responses for the record but excludes them from evidence."),
         "gzip/br bodies are decompressed; content-encoding is removed and content-length recomputed.",
         "text/event-stream bodies are kept verbatim as one decoded string (chunk boundaries lost).",
         ("Header names are lower-cased; every x-*, cf-*, anthropic-* header and date, server, request-id, "
         "set-cookie, user-agent, via, authorization, cookie, openai-organization, openai-project and api-key "
         "are dropped.")),
        dropped_headers=("x-*", "cf-*", "anthropic-*", "date", "server", "request-id", "set-cookie", "user-agent",
                         "via", "authorization", "cookie", "openai-organization", "openai-project", "api-key",
                         "content-encoding", "content-length")),
    RecorderProfile(
        "crmne/ruby_llm", "Ruby VCR (webmock)", "spec/support/vcr_configuration.rb",
        ("Bodies are kept verbatim; non-UTF-8 bodies (most streams) as `!binary` base64, i.e. exact bytes.",
         ("filter_sensitive_data replaces these strings everywhere in an interaction, bodies included: API keys "
         "→ <VENDOR_API_KEY>, the X-Request-Id / Request-Id / Cf-Ray values, 'a'×1,000,000 → <MASSIVE_TEXT>, "
         "and the *default* values 'global' → <GOOGLE_CLOUD_LOCATION>, 'us-west-2' → <AWS_REGION>, "
         "'test-project' → <GOOGLE_CLOUD_PROJECT>, the Ollama/GPUStack base URLs. oaicompat excludes any "
         "interaction whose body holds such a placeholder."),
         "Authorization becomes 'Bearer <AUTH_TOKEN>'; Set-Cookie values become <COOKIE>.",
         "All other headers (Date, Server, X-Ppl-Region, rate limits…) are kept."),
        rewritten_headers=("set-cookie", "cf-ray", "x-request-id", "request-id", "openai-organization",
                           "openai-project", "anthropic-organization-id"),
        body_placeholders=_RUBY_LLM_PLACEHOLDERS, placeholder_pattern=r"<[A-Z][A-Z0-9_]*_API_(?:KEY|BASE)>"),
    RecorderProfile(
        "traceloop/openllmetry", "vcrpy (pytest-recording)", "packages/*/tests/conftest.py (vcr_config)",
        (("Only the authorization (and in some packages api-key) request header is filtered; response headers "
         "are complete."),
         ("Some packages keep gzip bodies as raw !!binary bytes (decompressed on import), others set "
         "decode_compressed_response (vcrpy then drops content-encoding). Bodies are otherwise untouched."),
         "localhost:5002 cassettes come from an Express mock, not a vendor (never imported)."),
        rewritten_headers=()),
    RecorderProfile(
        "simonw/llm", "vcrpy (pytest-recording)", "tests/conftest.py (vcr_config)",
        ("filter_headers removes Authorization only; bodies and response headers are untouched.",
         ("The test_tools_streaming_variant_* cassettes carry an api.openai.com URI over OpenRouter traffic: "
         "the host was rewritten; oaicompat files them under openrouter (see notes).")),),
    RecorderProfile(
        "tmc/langchaingo", "Go httprr (internal/httprr)", "internal/httprr/rr.go",
        ("Whole request and response as HTTP/1.1 text; body bytes exact.",
         ("The response is re-emitted by Go's http.Response.Write: header names canonicalised, Content-Length "
         "replaces chunked framing, Cf-Ray and Set-Cookie removed, Openai-Organization → lcgo-tst."),
         "Request Authorization → 'Bearer test-api-key'; User-Agent → langchaingo-httprr."),
        dropped_headers=("cf-ray", "set-cookie", "transfer-encoding", "content-length"),
        rewritten_headers=("openai-organization",)),
    RecorderProfile(
        "Mirascope/mirascope", "vcrpy (pytest-recording)", "python/tests/e2e/conftest.py (sanitize_request)",
        (("before_record_request replaces the request headers authorization, x-api-key, x-goog-api-key, "
         "anthropic-organization-id, cookie, http-referer, x-title with <filtered>."),
         "Responses are stored as received: raw gzip bytes (decompressed on import) and full headers."),),
    RecorderProfile(
        "crewAIInc/crewAI", "vcrpy (pytest-recording)", "lib/crewai/tests/conftest.py",
        ("before_record_response drops every response with status >= 400 and decodes gzip.",
         "Rate-limit, request-id, cf-ray and other headers are replaced with …-XXX placeholders."),
        all_header_values_rewritten=True),
    RecorderProfile(
        "langchain-ai/langchain", "vcrpy, gzip-compressed cassettes (.yaml.gz)", "libs/partners/*/tests/conftest.py",
        ("Every header value is replaced with **REDACTED**; bodies are untouched.",),
        all_header_values_rewritten=True),
)}


def profile_for(repo: str) -> RecorderProfile:
    found = PROFILES.get(repo.lower())
    if found is not None:
        return found
    return RecorderProfile(repo, "unknown", "", (("What this project's recorder changes is not known to oaicompat: "
                                                 "header-dependent checks do not run on it."),), known=False)


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
        if yaml.load(dump_yaml(text), Loader=yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader) == text:
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
    if raw.response_body.is_parsed:
        return ("the recorder re-serialised the response body (parsed_body: key order, spacing and string "
                "normalisation are not the vendor's)")
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


def build_stored(raw_interactions: list[RawInteraction], *, source: Source, vendor_override: str | None,
                 recorded_at: str | None) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Group interactions by vendor as stored dicts. Returns (vendor → interactions, skipped messages)."""
    by_vendor: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    profile = source.profile
    for raw in raw_interactions:
        notes: list[str] = []
        url_vendor = vendor_for_url(raw.url)
        vendor = vendor_override or url_vendor
        if vendor_override is None:
            text = "" if raw.response_body.is_parsed else raw.response_body.data[:200_000].decode("utf-8", "replace")
            vendor, sniff_note = sniff_vendor(url_vendor, text)
            if sniff_note:
                notes.append(sniff_note)
        if vendor is None:
            skipped.append(f"interaction {raw.index}: {raw.method} {redact_text(raw.url)} is not a hosted vendor "
                           f"oaicompat knows; skipped (pass --vendor to file it)")
            continue
        excluded = _exclusion(raw, profile)
        url = redact_text(raw.url)
        if url != raw.url:
            notes.append("scrubbed: secret in the request URL")
        request = {"method": raw.method, "url": url, "path": relative_path(url, vendor),
                   "headers": _scrub_headers(raw.request_headers, "request", notes),
                   **_body_fields(raw.request_body, "request", notes)}
        response = {"status": raw.status, "http_version": raw.http_version,
                    "headers": _scrub_headers(raw.response_headers, "response", notes),
                    **_body_fields(raw.response_body, "response", notes)}
        if raw.request_body.is_parsed:
            notes.append("request body: only its parsed structure survives; request features are read from it")
        when, when_from = _recording_date(raw, recorded_at)
        by_vendor.setdefault(vendor, []).append({
            "index": raw.index,
            "recorded_at": when,
            "recorded_at_from": when_from,
            "framing": "joined",
            "excluded": excluded,
            "notes": notes,
            "request": request,
            "response": response,
        })
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
                now: str | None = None, data: bytes | None = None) -> ImportResult:
    """Import one source file: read, scrub, flag, write per vendor + provenance + licence. Never half-writes."""
    result = ImportResult(str(path), source_path)
    now = now or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        if data is None:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise RecordingError(f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,} cap")
            data = path.read_bytes()
        recording = read_recording(path.name, data)
        sha = hashlib.sha256(data).hexdigest()
        by_vendor, skipped = build_stored(recording.interactions, source=source,
                                          vendor_override=vendor_override, recorded_at=recorded_at)
        result.skipped = skipped
        if not by_vendor:
            raise RecordingError("no interaction with a hosted vendor oaicompat knows")
        # prepare every file first, then write: a failure before the first write leaves nothing behind
        plans: list[tuple[Path, str, dict[str, Any], dict[str, Any]]] = []
        for vendor, interactions in sorted(by_vendor.items()):
            folder = out_root / vendor / source.slug
            prov_path = folder / "PROVENANCE.yaml"
            prov = read_provenance(prov_path) or new_provenance(source)
            twin = next((f.get("path") for f in prov.get("files", [])
                         if f.get("sha256") == sha and f.get("path") != source_path), None)
            if twin:   # test suites often commit the same cassette under several names: count it once
                result.duplicate_of = twin
                return result
            name = _unique_name(prov, source_path)
            doc = {
                "oaicompat_imported": FORMAT_VERSION,
                "vendor": vendor,
                "source": {"repo": source.repo, "commit": source.commit, "path": source_path,
                           "license": source.license, "format": recording.format, "sha256": sha,
                           "compressed": recording.compressed},
                "imported_at": now,
                "interactions": interactions,
            }
            unchanged = _same_import(folder / name, doc)
            if unchanged:
                doc["imported_at"] = unchanged
            text = dump_yaml(doc)
            _verify_roundtrip(text, doc, folder / name)
            entry = _provenance_entry(doc, name, skipped)
            prov = _merge_provenance(prov, source, entry)
            plans.append((folder, name, doc, prov))
            result.interactions += len(interactions)
            result.excluded += sum(1 for i in interactions if i["excluded"])
        for folder, name, doc, prov in plans:
            write_license(folder, source)
            _write_if_changed(folder / name, dump_yaml(doc))
            _write_if_changed(folder / "PROVENANCE.yaml", dump_yaml(prov))
            result.written.append(folder / name)
    except RecordingError as exc:
        result.error = str(exc)
    except OSError as exc:
        result.error = f"cannot read or write: {exc.strerror or exc}"
    return result


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
        "recorder": {"name": p.recorder, "config": p.config, "known": p.known, "changes": list(p.changes)},
        "oaicompat_changes": [
            ("Nothing but secrets: credential headers (oaicompat.scrub.SECRET_HEADERS and account-id headers) "
            "are replaced by [REDACTED] and key-like strings (oaicompat.scrub.redact_keylike plus further key "
            "shapes and secret URL parameters) by [REDACTED]; each such change is listed in the interaction's "
            "notes and under scrubbed below."),
            ("gzip / base64 / !binary bodies are decoded to their bytes; a body the source kept as a parsed "
            "structure stays a structure (body_parsed) and such responses are excluded from evidence."),
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
    strip = lambda d: {k: v for k, v in d.items() if k != "imported_at"}
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
    return {
        "path": doc["source"]["path"],
        "commit": doc["source"]["commit"],
        "sha256": doc["source"]["sha256"],
        "format": doc["source"]["format"],
        "stored_as": name,
        "interactions": len(inters),
        "recorded_at": (dates[0] if len(dates) == 1 else {"first": dates[0], "last": dates[-1]}) if dates else None,
        "excluded": excluded,
        "scrubbed": scrubbed,
        "skipped": list(skipped),
        "imported_at": doc["imported_at"],
    }


def _merge_provenance(prov: dict[str, Any], source: Source, entry: dict[str, Any]) -> dict[str, Any]:
    if prov.get("repository", "").lower() != source.repo.lower():
        raise RecordingError(f"provenance belongs to {prov.get('repository')!r}, not {source.repo!r}")
    if prov.get("license") != source.license:
        raise RecordingError(f"this source was imported under {prov.get('license')}, now {source.license}: "
                             f"remove the folder and re-import")
    prov = dict(prov)
    p = source.profile
    prov["recorder"] = {"name": p.recorder, "config": p.config, "known": p.known, "changes": list(p.changes)}
    prov["license_origin"] = source.license_origin or prov.get("license_origin")
    if source.notice_text:
        prov["notice_file"] = f"NOTICE.{source.slug}"
    files = [f for f in prov.get("files", []) if f.get("path") != entry["path"]]
    files.append(entry)
    prov["files"] = sorted(files, key=lambda f: f["path"])
    return prov


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") == text:
        return
    atomic_write_text(path, text, mode=0o644)


def write_license(folder: Path, source: Source) -> None:
    for name, text in ((f"LICENSE.{source.slug}", source.license_text), (f"NOTICE.{source.slug}", source.notice_text)):
        if text is None:
            continue
        target = folder / name
        if not target.exists() or target.read_text(encoding="utf-8", errors="replace") != text:
            atomic_write_text(target, text, mode=0o644)


# -- reading stored files back ---------------------------------------------------------------------------------

@dataclass
class StoredInteraction:
    vendor: str
    file: Path
    index: int
    exchange: Exchange | None     # None when excluded or unreadable
    excluded: str | None
    profile: RecorderProfile
    model: str


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


def _stored_to_exchange(inter: dict[str, Any], vendor: str, path: Path, shown: str, src: dict[str, Any],
                        recorder: str, profile: RecorderProfile) -> StoredInteraction:
    rq, rs = inter["request"], inter["response"]
    index = int(inter["index"])
    rq_bytes = body_bytes(rq)
    if rq_bytes is None:   # the source kept only the parsed request: features come from it
        rq_bytes = json.dumps(rq["body_parsed"], ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request = Request(method=str(rq["method"]).upper(), url=str(rq["url"]), path=str(rq["path"]),
                      headers=tuple((str(k), str(v)) for k, v in rq.get("headers", [])), body=rq_bytes)
    excluded = inter.get("excluded")
    rs_bytes = body_bytes(rs)
    model = model_of(rq_bytes, (rs_bytes or b"")[:4000].decode("utf-8", "replace"))
    short = str(src.get("commit", ""))[:12]
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
    }
    if rs_bytes is None:
        excluded = excluded or "the response body is a parsed structure, not bytes"
        return StoredInteraction(vendor, path, index, None, excluded, profile, model)
    chunks_raw = rs.get("chunks")
    framing: Framing
    if chunks_raw:   # only if a source ever kept chunk boundaries
        chunks = tuple(Chunk(float(c["t"]), base64.b64decode(c["base64"], validate=True) if "base64" in c
                             else str(c.get("text", "")).encode("utf-8")) for c in chunks_raw)
        framing = "raw"
    else:
        chunks = (Chunk(0.0, rs_bytes),) if rs_bytes else ()
        framing = "joined"
    status = rs.get("status")
    headers, untrusted = _view_headers(rs, rs_bytes)
    untrusted += [k.lower() for k, v in headers if profile.placeholder_in(v)]   # a recorder placeholder value
    meta["untrusted_headers"] = sorted(set(untrusted))
    ex = Exchange(request=request, status=int(status) if status is not None else None,
                  headers=headers, chunks=chunks,
                  source="imported", framing=framing, http_version=rs.get("http_version"), meta=meta)
    return StoredInteraction(vendor, path, index, ex, excluded, profile, model)
