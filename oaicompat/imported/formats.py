"""Readers for other projects' HTTP recordings: vcrpy YAML, Ruby VCR YAML, `.yaml.gz`, Go httprr traces.

Each reader turns one source file into `RawInteraction`s holding the bytes the source file holds:
string bodies are encoded back to UTF-8, `!!binary`/`!binary`/`base64_string` bodies are base64-decoded,
gzip bodies are decompressed, and a body the recorder parsed into a YAML mapping (pydantic-ai's
`parsed_body`) is kept as that structure, never re-serialised into bytes we would have to invent.
Nothing else is changed here; scrubbing and vendor assignment happen in store.py.

Untrusted input: the YAML loader refuses cyclic documents and documents whose aliases expand past
a node budget (billion laughs), every size is capped, and every problem is a `RecordingError` with
a message naming what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import yaml

from ..errors import OaicompatError

MAX_FILE_BYTES = 64 * 1024 * 1024        # a source file (after gunzip)
MAX_BODY_BYTES = 8 * 1024 * 1024         # one request or response body (after decoding)
MAX_YAML_NODES = 2_000_000               # nodes after expanding every alias
MAX_YAML_ALIASES = 1_000


class RecordingError(OaicompatError):
    """A source recording is unreadable, malformed, truncated, over a size cap, or of an unknown format."""


# -- what a reader produces ---------------------------------------------------------------------------

BodyForm = str   # "empty" | "string" | "binary" | "gzip" | "parsed" | "wire"


@dataclass
class Body:
    form: BodyForm
    data: bytes = b""               # the bytes (every form except "parsed")
    parsed: Any = None              # form "parsed": the structure the source stored instead of bytes
    note: str = ""                  # e.g. "gzip-compressed in the source; stored decompressed"
    source_len: int | None = None   # bytes as the source file holds them (before gunzip): what Content-Length counts

    @property
    def is_parsed(self) -> bool:
        return self.form == "parsed"


@dataclass
class RawInteraction:
    index: int
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: Body
    status: int | None
    response_headers: list[tuple[str, str]]
    response_body: Body
    http_version: str | None = None
    recorded_at: str | None = None           # ISO 8601 UTC, when the source says
    recorded_from: str | None = None         # where recorded_at comes from
    lacks: tuple[str, ...] = ()              # what the source never recorded: request, status, response-headers…
    framing: str = "joined"                  # joined | data-lines-only (one SSE data JSON per line, no envelope)

    def response_header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.response_headers:
            if k.lower() == lname:
                return v
        return None

    def request_header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.request_headers:
            if k.lower() == lname:
                return v
        return None


@dataclass
class SourceRecording:
    format: str                              # vcrpy | ruby-vcr | httprr | json-body | sse-body | chunk-lines
    interactions: list[RawInteraction]
    compressed: bool = False                 # the file itself was .gz


# -- guarded YAML ---------------------------------------------------------------------------------------

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml absent
    _BaseLoader = yaml.SafeLoader


class _RecordingLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """SafeLoader plus Ruby Psych's `!binary` tag (base64 bytes). No Python or Ruby object tags."""


def _ruby_binary(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(None, None, "!binary must be a scalar", node.start_mark)
    text = loader.construct_scalar(node)
    try:
        return base64.b64decode("".join(str(text).split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise yaml.constructor.ConstructorError(None, None, f"!binary is not base64: {exc}", node.start_mark) from exc


_RecordingLoader.add_constructor("!binary", _ruby_binary)


def _check_graph(root: yaml.Node) -> None:
    """Refuse cycles and alias expansion past MAX_YAML_NODES (aliases are shared nodes after composing)."""
    sizes: dict[int, int] = {}
    seen_twice = 0
    in_progress: set[int] = set()

    def size(node: yaml.Node) -> int:
        nonlocal seen_twice
        key = id(node)
        if key in sizes:
            seen_twice += 1
            if seen_twice > MAX_YAML_ALIASES:
                raise RecordingError(f"YAML uses more than {MAX_YAML_ALIASES} aliases; refusing it (YAML bomb?)")
            return sizes[key]
        if key in in_progress:
            raise RecordingError("YAML alias refers to itself (a cyclic document); refusing it")
        in_progress.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        in_progress.discard(key)
        if total > MAX_YAML_NODES:
            raise RecordingError(f"YAML expands to more than {MAX_YAML_NODES:,} nodes; refusing it (YAML bomb?)")
        sizes[key] = total
        return total

    # iterative guard against deep recursion: Python's limit is the backstop
    try:
        size(root)
    except RecursionError:
        raise RecordingError("YAML is nested too deeply; refusing it") from None


def load_yaml(text: str, loader_cls: type = _RecordingLoader) -> Any:
    """yaml safe_load with the alias/cycle/expansion guard. Raises RecordingError."""
    if len(text) > MAX_FILE_BYTES:
        raise RecordingError(f"file is {len(text):,} characters, over the {MAX_FILE_BYTES:,} cap")
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise RecordingError(f"not valid YAML (truncated or edited?): {_one_line(exc)}") from None
    finally:
        loader.dispose()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# -- byte helpers -------------------------------------------------------------------------------------------

def gunzip_capped(data: bytes, cap: int = MAX_BODY_BYTES, what: str = "body") -> bytes:
    """Decompress gzip (possibly multi-member) without ever holding more than cap+1 bytes."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(rest, cap + 1 - len(out))
            if len(out) > cap:
                raise RecordingError(f"gzip {what} decompresses to more than {cap:,} bytes (cap)")
            if not d.eof:
                if d.unconsumed_tail:
                    raise RecordingError(f"gzip {what} decompresses to more than {cap:,} bytes (cap)")
                raise RecordingError(f"gzip {what} is truncated")
        except zlib.error as exc:
            raise RecordingError(f"gzip {what} is corrupt: {exc}") from None
        rest = d.unused_data.lstrip(b"\x00")
    return bytes(out)


def _cap(data: bytes, what: str) -> bytes:
    if len(data) > MAX_BODY_BYTES:
        raise RecordingError(f"{what} is {len(data):,} bytes, over the {MAX_BODY_BYTES:,}-byte cap")
    return data


def _header_list(raw: Any, what: str) -> list[tuple[str, str]]:
    """vcrpy/Ruby VCR headers: {name: [values]} or {name: value}."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise RecordingError(f"{what} headers are {type(raw).__name__}, not a mapping")
    out: list[tuple[str, str]] = []
    for name, values in raw.items():
        if not isinstance(values, list):
            values = [values]
        for v in values:
            if isinstance(v, bytes):
                v = v.decode("latin-1")
            out.append((str(name), "" if v is None else str(v)))
    return out


def _content_encoding(headers: list[tuple[str, str]]) -> str:
    for k, v in headers:
        if k.lower() == "content-encoding":
            return v.strip().lower()
    return ""


def _decode_body(value: Any, headers: list[tuple[str, str]], what: str) -> Body:
    """A body value as a YAML loader gives it: None, str, bytes. gzip bytes are decompressed."""
    if value is None or value == "" or value == b"":
        return Body("empty")
    if isinstance(value, str):
        data = value.encode("utf-8")
        return Body("string", _cap(data, what), source_len=len(data))
    if isinstance(value, bytes):
        encoding = _content_encoding(headers)
        if value[:2] == b"\x1f\x8b" and ("gzip" in encoding or not encoding):
            return Body("gzip", gunzip_capped(value, what=what),
                        note="gzip-compressed in the source; stored decompressed", source_len=len(value))
        if encoding in ("br", "deflate", "zstd"):
            return Body("binary", _cap(value, what), note=f"still {encoding}-encoded: not decodable here",
                        source_len=len(value))
        return Body("binary", _cap(value, what), source_len=len(value))
    raise RecordingError(f"{what} is {type(value).__name__}, not text or bytes")


def http_date_to_iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(raw: Any, what: str) -> int | None:
    if isinstance(raw, dict):
        raw = raw.get("code")
    if raw is None:
        return None
    try:
        code = int(raw)
    except (TypeError, ValueError):
        raise RecordingError(f"{what}: status {raw!r} is not a number") from None
    if not 100 <= code <= 999:
        raise RecordingError(f"{what}: status {code} is not an HTTP status")
    return code


# -- vcrpy (Python) --------------------------------------------------------------------------------------

class _VcrInteraction(NamedTuple):
    """One well-formed interaction of a VCR-shaped cassette (vcrpy and Ruby VCR share the shape)."""
    position: int                       # its index in the cassette
    raw: dict[str, Any]
    where: str                          # "interaction N", for messages
    request: dict[str, Any]
    response: dict[str, Any]
    request_headers: list[tuple[str, str]]
    response_headers: list[tuple[str, str]]


def _interactions(doc: dict[str, Any], key: str, label: str) -> Iterator[_VcrInteraction]:
    """Each interaction under `key`; the first malformed one raises RecordingError naming it."""
    interactions = doc.get(key)
    if not isinstance(interactions, list):
        raise RecordingError(f"{label} has no '{key}' list")
    for i, inter in enumerate(interactions):
        where = f"interaction {i}"
        if not isinstance(inter, dict) or not isinstance(inter.get("request"), dict) \
                or not isinstance(inter.get("response"), dict):
            raise RecordingError(f"{where}: needs a 'request' and a 'response' mapping (truncated?)")
        rq, rs = inter["request"], inter["response"]
        if not isinstance(rq.get("uri"), str) or not isinstance(rq.get("method"), str):
            raise RecordingError(f"{where}: request needs 'method' and 'uri'")
        yield _VcrInteraction(i, inter, where, rq, rs, _header_list(rq.get("headers"), f"{where} request"),
                              _header_list(rs.get("headers"), f"{where} response"))


def read_vcrpy(doc: dict[str, Any]) -> list[RawInteraction]:
    out: list[RawInteraction] = []
    for i, _inter, where, rq, rs, rq_headers, rs_headers in _interactions(doc, "interactions", "vcrpy cassette"):
        if "parsed_body" in rq:
            rq_body = Body("parsed", parsed=rq["parsed_body"],
                           note="the recorder parsed the JSON body and stored the structure, not the bytes")
        else:
            rq_body = _decode_body(rq.get("body"), rq_headers, f"{where} request body")
        if "parsed_body" in rs:
            rs_body = Body("parsed", parsed=rs["parsed_body"],
                           note="the recorder parsed the JSON body and stored the structure, not the bytes")
        else:
            body = rs.get("body")
            if isinstance(body, dict):
                body = body.get("string")
            rs_body = _decode_body(body, rs_headers, f"{where} response body")
        status = _status(rs.get("status"), where)
        http_version = rs.get("http_version") if isinstance(rs.get("http_version"), str) else None
        recorded = None
        for k, v in rs_headers:
            if k.lower() == "date":
                recorded = http_date_to_iso(v)
                break
        out.append(RawInteraction(i, rq["method"].upper(), rq["uri"], rq_headers, rq_body, status, rs_headers,
                                  rs_body, http_version, recorded, "response Date header" if recorded else None))
    return out


# -- Ruby VCR ------------------------------------------------------------------------------------------------

def _ruby_body(raw: Any, headers: list[tuple[str, str]], what: str) -> Body:
    if raw is None:
        return Body("empty")
    if not isinstance(raw, dict):
        raise RecordingError(f"{what} is {type(raw).__name__}, not a mapping with 'string'")
    if "base64_string" in raw:
        try:
            data = base64.b64decode("".join(str(raw["base64_string"]).split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RecordingError(f"{what}: base64_string is not base64: {exc}") from None
        return (_decode_body(data, headers, what) if data[:2] == b"\x1f\x8b"
                else Body("binary", _cap(data, what), source_len=len(data)))
    body = _decode_body(raw.get("string"), headers, what)
    encoding = str(raw.get("encoding") or "").upper()
    if body.form == "string" and encoding not in ("", "UTF-8", "US-ASCII", "ASCII-8BIT"):
        # Psych wrote the string in another encoding's characters; the UTF-8 bytes are not the original
        body.note = f"source body encoding {encoding}; stored as UTF-8 text"
    return body


def read_ruby_vcr(doc: dict[str, Any]) -> list[RawInteraction]:
    out: list[RawInteraction] = []
    for i, inter, where, rq, rs, rq_headers, rs_headers in _interactions(doc, "http_interactions", "Ruby VCR cassette"):
        rq_body = _ruby_body(rq.get("body"), rq_headers, f"{where} request body")
        rs_body = _ruby_body(rs.get("body"), rs_headers, f"{where} response body")
        recorded = inter.get("recorded_at")
        recorded_iso = http_date_to_iso(recorded) if isinstance(recorded, str) else None
        http_version = rs.get("http_version") if isinstance(rs.get("http_version"), str) else None
        out.append(RawInteraction(i, rq["method"].upper(), rq["uri"], rq_headers, rq_body,
                                  _status(rs.get("status"), where), rs_headers, rs_body, http_version,
                                  recorded_iso, "Ruby VCR recorded_at" if recorded_iso else None))
    return out


# -- Go httprr (tmc/langchaingo, rsc.io/httprr) -----------------------------------------------------------

HTTPRR_MAGIC = b"httprr trace v1"


def _parse_head(block: bytes, what: str) -> tuple[str, list[tuple[str, str]], bytes]:
    sep = block.find(b"\r\n\r\n")
    if sep < 0:
        raise RecordingError(f"{what}: no end of headers (truncated?)")
    head, body = block[:sep], block[sep + 4:]
    lines = head.split(b"\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if b":" not in line:
            raise RecordingError(f"{what}: malformed header line {line[:80]!r}")
        k, _, v = line.partition(b":")
        headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
    return lines[0].decode("latin-1"), headers, body


def _dechunk(body: bytes, what: str) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise RecordingError(f"{what}: chunked body is truncated")
        try:
            size = int(body[pos:end].split(b";")[0], 16)
        except ValueError:
            raise RecordingError(f"{what}: bad chunk size {body[pos:end][:20]!r}") from None
        pos = end + 2
        if size == 0:
            return bytes(out)
        out += body[pos:pos + size]
        if len(out) > MAX_BODY_BYTES:
            raise RecordingError(f"{what} is over the {MAX_BODY_BYTES:,}-byte cap")
        pos += size + 2


def _wire_body(headers: list[tuple[str, str]], body: bytes, what: str) -> Body:
    te = next((v.lower() for k, v in headers if k.lower() == "transfer-encoding"), "")
    if "chunked" in te:
        body = _dechunk(body, what)
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    if length is not None and length.isdigit() and int(length) != len(body):
        raise RecordingError(f"{what}: Content-Length {length} but {len(body)} bytes recorded (truncated?)")
    if not body:
        return Body("empty")
    if body[:2] == b"\x1f\x8b" and "gzip" in _content_encoding(headers):
        return Body("gzip", gunzip_capped(body, what=what), note="gzip-compressed in the source; stored decompressed")
    return Body("wire", _cap(body, what))


def read_httprr(data: bytes) -> list[RawInteraction]:
    line, _, rest = data.partition(b"\n")
    if line.rstrip(b"\r") != HTTPRR_MAGIC:
        raise RecordingError("not an httprr trace (first line is not 'httprr trace v1')")
    out: list[RawInteraction] = []
    i = 0
    while rest:
        line, nl, rest = rest.partition(b"\n")
        where = f"record {i}"
        parts = line.rstrip(b"\r").split(b" ")
        if not nl or len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise RecordingError(f"{where}: bad length line {line[:40]!r} (corrupt or truncated trace)")
        n1, n2 = int(parts[0]), int(parts[1])
        if n1 + n2 > len(rest):
            raise RecordingError(f"{where}: says {n1 + n2} bytes but only {len(rest)} remain (truncated)")
        req, resp, rest = rest[:n1], rest[n1:n1 + n2], rest[n1 + n2:]
        start, rq_headers, rq_raw = _parse_head(req, f"{where} request")
        m = re.match(r"^([A-Z]+) (\S+) HTTP/\d(?:\.\d)?$", start)
        if not m:
            raise RecordingError(f"{where}: bad request line {start[:80]!r}")
        method, target = m.groups()
        if target.startswith("/"):
            host = next((v for k, v in rq_headers if k.lower() == "host"), "")
            target = f"https://{host}{target}"
        status_line, rs_headers, rs_raw = _parse_head(resp, f"{where} response")
        sm = re.match(r"^(HTTP/\d(?:\.\d)?) (\d{3})", status_line)
        if not sm:
            raise RecordingError(f"{where}: bad status line {status_line[:80]!r}")
        recorded = next((http_date_to_iso(v) for k, v in rs_headers if k.lower() == "date"), None)
        out.append(RawInteraction(
            i, method, target, rq_headers, _wire_body(rq_headers, rq_raw, f"{where} request body"),
            int(sm.group(2)), rs_headers, _wire_body(rs_headers, rs_raw, f"{where} response body"),
            sm.group(1), recorded, "response Date header" if recorded else None))
        i += 1
    if not out:
        raise RecordingError("httprr trace holds no records")
    return out


# -- body-only files (prism-php/prism *.json / *.sse, vercel/ai *.chunks.txt / *.json) -----------------------

BODY_ONLY_LACKS = ("request", "request-headers", "status", "response-headers")
CHUNK_LINES_SUFFIX = ".chunks.txt"
BODY_SUFFIXES = (".json", ".sse", CHUNK_LINES_SUFFIX)


def _body_only(data: bytes, lacks: tuple[str, ...], framing: str) -> RawInteraction:
    """One interaction whose only recorded part is the response body: request, status and headers unknown."""
    body = Body("string", _cap(data, "body"), source_len=len(data)) if data else Body("empty")
    return RawInteraction(0, "POST", "", [], Body("empty"), None, [], body, None, None, None,
                          lacks=lacks, framing=framing)


def read_json_body(data: bytes) -> list[RawInteraction]:
    """A raw JSON response body (prism-php/prism *.json, vercel/ai *.json): must parse as a JSON object."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecordingError(f"JSON body file is not UTF-8 (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise RecordingError(f"JSON body file does not parse: {_one_line(exc)}") from None
    if not isinstance(doc, dict):
        raise RecordingError(f"JSON body file holds a {type(doc).__name__}, not a response object")
    return [_body_only(data, BODY_ONLY_LACKS, "joined")]


def read_sse_body(data: bytes) -> list[RawInteraction]:
    """A raw streamed body (prism-php/prism *.sse): SSE text with at least one `data:` line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"SSE body file is not UTF-8 (byte {exc.start})") from None
    if not re.search(r"(?m)^data:", text):
        raise RecordingError("SSE body file has no 'data:' line: not a streamed body")
    return [_body_only(data, BODY_ONLY_LACKS, "joined")]


def read_chunk_lines(data: bytes) -> list[RawInteraction]:
    """vercel/ai *.chunks.txt: one chunk JSON object per line, the SSE envelope gone. Every line must parse."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"chunk file is not UTF-8 (byte {exc.start})") from None
    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        raise RecordingError("chunk file holds no chunk")
    for n, line in lines:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise RecordingError(f"line {n} is not a JSON chunk: {_one_line(exc)}") from None
        if not isinstance(obj, dict):
            raise RecordingError(f"line {n} holds a {type(obj).__name__}, not a chunk object")
    return [_body_only(data, (*BODY_ONLY_LACKS, "sse-envelope"), "data-lines-only")]


def chunk_lines(body: bytes) -> list[bytes]:
    """The non-empty lines of a data-lines-only body (each one chunk's JSON)."""
    return [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]


def read_body_file(name: str, data: bytes) -> SourceRecording:
    if name.endswith(CHUNK_LINES_SUFFIX):
        return SourceRecording("chunk-lines", read_chunk_lines(data))
    if name.endswith(".sse"):
        return SourceRecording("sse-body", read_sse_body(data))
    return SourceRecording("json-body", read_json_body(data))


# -- entry point ------------------------------------------------------------------------------------------------

def read_recording(name: str, data: bytes) -> SourceRecording:
    """Parse one source file's bytes (name decides .gz). Raises RecordingError with the reason."""
    compressed = False
    if name.endswith(".gz") or data[:2] == b"\x1f\x8b":
        data = gunzip_capped(data, MAX_FILE_BYTES, "file")
        compressed = True
    if len(data) > MAX_FILE_BYTES:
        raise RecordingError(f"file is {len(data):,} bytes, over the {MAX_FILE_BYTES:,} cap")
    if name.removesuffix(".gz").endswith(BODY_SUFFIXES):
        return read_body_file(name.removesuffix(".gz"), data)
    if data.startswith(HTTPRR_MAGIC):
        return SourceRecording("httprr", read_httprr(data), compressed)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(f"not UTF-8 text (byte {exc.start}): not a YAML recording") from None
    doc = load_yaml(text)
    if isinstance(doc, dict) and "http_interactions" in doc:
        return SourceRecording("ruby-vcr", read_ruby_vcr(doc), compressed)
    if isinstance(doc, dict) and "interactions" in doc:
        return SourceRecording("vcrpy", read_vcrpy(doc), compressed)
    raise RecordingError("unknown recorder: not a recording this importer reads (vcrpy 'interactions', Ruby VCR "
                         "'http_interactions', an httprr trace, or a *.json / *.sse / *.chunks.txt body file)")


def url_parts(url: str) -> tuple[str, str]:
    """(host, path) of a URL; ('', url) when it has no host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", url
    return (parts.hostname or "").lower(), parts.path or "/"

