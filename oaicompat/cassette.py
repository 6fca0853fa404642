"""Cassettes: one YAML file per provider and test, holding the exchanges as the server sent them.

Format (version 1), readable on a code host:

    oaicompat_cassette: 1
    provider, model, test, oaicompat_version, recorded_at (UTC), record_mode, server: {...}
    interactions:
      - request:  {method, path, url, headers, body}            # body verbatim text, or body_base64
        response: {status, http_version, headers, chunks: [{t, text} | {t, base64}], failure}
        attempts: [...]                                          # retries made before this response
        elapsed: seconds

Bodies keep their original chunk boundaries and arrival times. Writes are atomic, streamed and verified: the
YAML is emitted straight into a temp file, which is read back event by event and must give back the same document
before it replaces the old one (see `Cassette.save`: saving costs a small multiple of the largest chunk, not ten
times the file). Reads are strict: every field is checked (oaicompat.cassette_schema) and anything else is a
CassetteError naming the file and the field. A parsed cassette is kept in a cache under the user's cache
directory (see `_cache_get`), never used for writes; a large one is parsed as it is read and not cached.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from . import __version__
from .cassette_schema import FORMAT_VERSION, check_document
from .errors import CassetteError, CassetteMiss
from .exchange import Attempt, Chunk, Exchange, Request, TransportFailure
from .fileio import atomic_write_bytes, atomic_writer, dump_yaml, dump_yaml_to, remove_stale_temps, yaml_loader
from .paths import shown_path
from .scrub import Scrubber

# the recorded metadata of a replayed interaction: on the response (httpx extension), or on the exception a
# replayed "no response" raises; the session reads it back (oaicompat.session)
RECORDED_EXTENSION = "oaicompat_recorded"
RECORDED_ATTRIBUTE = "oaicompat_recorded"

_SKIP_REPLAY_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding"})
CACHE_ENV = "OAICOMPAT_CACHE"       # the cache root, as for the local servers; default ~/.cache/oaicompat
CACHE_FORMAT = 1                    # bump when the cached form or the format's checks change
CACHE_ENTRIES = 5000                # at most this many cached cassettes (the repository has under a thousand)
LOAD_STREAMED_BYTES = 4 * 1024 * 1024   # a larger cassette is parsed as it is read, and not cached
_swept: set[Path] = set()           # directories whose leftover temp files this process removed


# -- canonical request key ------------------------------------------------------------------------

def canonical_body(body: bytes) -> str:
    """Key-order-independent form of a JSON body; non-JSON bodies match on their exact bytes."""
    if not body:
        return ""
    try:
        return "json:" + json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, UnicodeDecodeError):
        return "raw:" + base64.b64encode(body).decode("ascii")


def request_key(method: str, path: str, body: bytes) -> tuple[str, str, str]:
    return (method.upper(), path, canonical_body(body))


# -- (de)serialising exchanges ----------------------------------------------------------------------

def _encode_bytes(data: bytes, text_key: str, b64_key: str) -> dict[str, str]:
    try:
        return {text_key: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {b64_key: base64.b64encode(data).decode("ascii")}


def _decode_bytes(d: dict[str, Any], text_key: str, b64_key: str) -> bytes:
    if b64_key in d:
        return base64.b64decode(d[b64_key], validate=True)
    value = d.get(text_key, "")
    if not isinstance(value, str):
        raise CassetteError(f"{text_key!r} must be a string, found {type(value).__name__}")
    return value.encode("utf-8")


def exchange_to_interaction(ex: Exchange) -> dict[str, Any]:
    req = ex.request
    request = {"method": req.method, "path": req.path, "url": req.url,
               "headers": [list(h) for h in req.headers], **_encode_bytes(req.body, "body", "body_base64")}
    chunks = [{"t": round(c.t, 6), **_encode_bytes(c.data, "text", "base64")} for c in ex.chunks]
    response = {
        "status": ex.status,
        "http_version": ex.http_version,
        "headers": [list(h) for h in ex.headers],
        "chunks": chunks,
        "failure": asdict(ex.failure) if ex.failure else None,
    }
    return {
        "request": request,
        "response": response,
        "attempts": [asdict(a) for a in ex.attempts],
        "elapsed": round(ex.elapsed, 6) if ex.elapsed is not None else None,
    }


def interaction_to_exchange(d: dict[str, Any], *, source: str = "cassette",
                            meta: dict[str, Any] | None = None) -> Exchange:
    try:
        rq, rs = d["request"], d["response"]
        request = Request(method=rq["method"], url=rq.get("url", rq["path"]), path=rq["path"],
                          headers=tuple((str(k), str(v)) for k, v in rq.get("headers", [])),
                          body=_decode_bytes(rq, "body", "body_base64"))
        chunks = tuple(Chunk(float(c["t"]), _decode_bytes(c, "text", "base64")) for c in rs.get("chunks", []))
        failure = TransportFailure(**rs["failure"]) if rs.get("failure") else None
        return Exchange(
            request=request, status=rs.get("status"),
            headers=tuple((str(k), str(v)) for k, v in rs.get("headers", [])),
            chunks=chunks, failure=failure,
            attempts=tuple(Attempt(**a) for a in d.get("attempts", [])),
            elapsed=d.get("elapsed"), source=source,  # type: ignore[arg-type]
            http_version=rs.get("http_version"), meta=meta or {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CassetteError(f"malformed interaction: {type(exc).__name__}: {exc}") from None


# -- the file --------------------------------------------------------------------------------------

@dataclass
class Cassette:
    path: Path
    header: dict[str, Any] = field(default_factory=dict)
    interactions: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Cassette:
        """Read and check a cassette; a copy of its parsed form in the cassette cache spares parsing it again.

        A cassette over LOAD_STREAMED_BYTES (a hostile reply recorded whole) is parsed from the file as it is
        read and never cached: its bytes, its text and its parsed form are not all held at once."""
        try:
            if path.stat().st_size > LOAD_STREAMED_BYTES:
                return cls._load_streamed(path)
            raw = path.read_bytes()
        except OSError as exc:
            raise CassetteError(f"cannot read cassette {shown_path(path)}: {exc.strerror}") from None
        digest = hashlib.sha256(raw).hexdigest()
        data = _cache_get(digest)
        if data is not None:
            try:
                header, interactions = check_document(data, shown_path(path))
                return cls(path=path, header=header, interactions=interactions)
            except CassetteError:
                pass                 # a damaged cache entry: read the YAML, which says what is wrong if anything
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CassetteError(f"cassette {shown_path(path)} is not UTF-8 text; re-record it") from None
        del raw
        cassette = cls.parse(text, path)
        _cache_put(digest, {"oaicompat_cassette": FORMAT_VERSION, **cassette.header,
                            "interactions": cassette.interactions})
        return cassette

    @classmethod
    def _load_streamed(cls, path: Path) -> Cassette:
        """`load` for a large file: libyaml reads it in small pieces (UTF-8 only, as `load` requires)."""
        shown = shown_path(path)
        not_utf8 = CassetteError(f"cassette {shown} is not UTF-8 text; re-record it")
        with path.open("rb") as fh:
            if fh.read(2) in (b"\xff\xfe", b"\xfe\xff"):      # libyaml would read UTF-16: load does not
                raise not_utf8
            fh.seek(0)
            try:
                data = yaml.load(fh, Loader=yaml_loader())
            except yaml.reader.ReaderError:
                raise not_utf8 from None
            except yaml.YAMLError as exc:
                raise CassetteError(f"cassette {shown} is not valid YAML (truncated or edited?): {exc}; "
                                    f"re-record it with --record-mode=rewrite") from None
            except RecursionError:
                raise CassetteError(f"cassette {shown} nests too deeply to be a cassette; re-record it") from None
        header, interactions = check_document(data, shown)
        return cls(path=path, header=header, interactions=interactions)

    @classmethod
    def parse(cls, text: str, path: Path) -> Cassette:
        """Parse and check cassette text (never cached); CassetteError names the file and the bad field."""
        try:
            data = yaml.load(text, Loader=yaml_loader())
        except yaml.YAMLError as exc:
            raise CassetteError(f"cassette {shown_path(path)} is not valid YAML (truncated or edited?): {exc}; "
                                f"re-record it with --record-mode=rewrite") from None
        except RecursionError:
            raise CassetteError(f"cassette {shown_path(path)} nests too deeply to be a cassette; re-record it") \
                from None
        header, interactions = check_document(data, shown_path(path))
        return cls(path=path, header=header, interactions=interactions)

    def exchanges(self) -> list[Exchange]:
        meta = {"cassette": shown_path(self.path), "recorded_at": self.header.get("recorded_at")}
        return [interaction_to_exchange(i, meta=meta) for i in self.interactions]

    def document(self, scrubber: Scrubber) -> dict[str, Any]:
        """The YAML document to write, every string in it scrubbed (keys too). Only strings holding a secret
        are copied: the document shares the bodies' text with the interactions."""
        doc = {"oaicompat_cassette": FORMAT_VERSION, **self.header, "interactions": self.interactions}
        return scrubber.value(doc)  # type: ignore[return-value]

    def dump(self, scrubber: Scrubber) -> str:
        """The cassette's text (as `save` writes it), as one string: for small cassettes and tests."""
        return dump_yaml(self.document(scrubber))

    def save(self, scrubber: Scrubber) -> None:
        """Atomic, verified write, streamed: the scrubbed document must pass the strict reader's checks, is
        emitted straight into a temp file, and the temp file, parsed again event by event, must give back the
        same document before os.replace puts it in place (otherwise CassetteError and the old file stays).

        What it costs in memory is the document it was given plus a few times its largest string (one scalar
        being emitted, one being read back), never the whole text: no YAML string, no re-parsed copy."""
        doc = self.document(scrubber)
        shown = shown_path(self.path)
        check_document(doc, shown)
        if self.path.parent not in _swept:     # what a killed recording left beside the cassettes
            remove_stale_temps(self.path.parent)
            _swept.add(self.path.parent)
        # cassettes are committed: readable by all
        with atomic_writer(self.path, mode=0o644, check=lambda tmp: verify_written(doc, tmp, shown)) as fh:
            dump_yaml_to(doc, fh)


# -- the written file, read back ----------------------------------------------------------------------------
# A streamed check that the YAML on disk parses to the document that was dumped: libyaml's parser reads the file
# in small pieces and hands out one event at a time, each compared with the document as it comes, so only the
# scalar being compared is ever held twice.

_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"


class _Differs(Exception):
    """The file read back is not the document dumped: where, and how."""


def verify_written(doc: Any, path: Path, shown: str) -> None:
    """Raise CassetteError unless the YAML file at `path` parses to exactly `doc` (types included)."""
    try:
        with path.open("rb") as fh:
            events = yaml.parse(fh, Loader=yaml_loader())
            _expect(events, yaml.StreamStartEvent, "")
            _expect(events, yaml.DocumentStartEvent, "")
            _match(doc, events, "")
            _expect(events, yaml.DocumentEndEvent, "")
            _expect(events, yaml.StreamEndEvent, "")
    except (_Differs, yaml.YAMLError, StopIteration, OSError) as exc:
        raise CassetteError(f"refusing to write {shown}: the YAML round trip changed the data "
                            f"({type(exc).__name__}: {exc})") from None


def _expect(events: Iterator[Any], kind: type, where: str) -> Any:
    event = next(events)
    if not isinstance(event, kind):
        raise _Differs(f"{where or 'document'}: expected {kind.__name__}, read {type(event).__name__}")
    return event


def _match(expected: Any, events: Iterator[Any], where: str) -> None:
    if isinstance(expected, dict):
        _expect(events, yaml.MappingStartEvent, where)
        for key, value in expected.items():
            _match(key, events, f"a key of {where or 'the document'}")
            _match(value, events, f"{where}.{key}" if where else str(key))
        _expect(events, yaml.MappingEndEvent, where)
    elif isinstance(expected, list):
        _expect(events, yaml.SequenceStartEvent, where)
        for i, value in enumerate(expected):
            _match(value, events, f"{where}[{i}]")
        _expect(events, yaml.SequenceEndEvent, where)
    else:
        got = _scalar(_expect(events, yaml.ScalarEvent, where), where)
        if not _same(expected, got):
            raise _Differs(f"{where}: wrote {type(expected).__name__}, read back {type(got).__name__} "
                           f"{'with other content' if type(expected) is type(got) else ''}".rstrip())


def _scalar(event: yaml.ScalarEvent, where: str) -> Any:
    """The value a safe loader makes of a scalar event (as the composer and SafeConstructor would)."""
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag == _STR_TAG:
        return event.value
    construct = _CONSTRUCTOR.yaml_constructors.get(tag)
    if construct is None:
        raise _Differs(f"{where}: a scalar tagged {tag!r}, which a cassette never holds")
    return construct(_CONSTRUCTOR, yaml.ScalarNode(tag, event.value, style=event.style))


def _same(expected: Any, got: Any) -> bool:
    if type(expected) is not type(got):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(got)     # NaN reads back as NaN
    return bool(expected == got)


# -- the parsed-cassette cache ---------------------------------------------------------------------------
# Constructing Python objects from YAML costs far more than reading JSON, and replay reads every cassette on
# every run. The cache keeps each cassette's parsed form as JSON under the user's cache directory, keyed by the
# SHA-256 of the file's bytes (so an edit, a checkout or a re-recording is a miss). It is only read: a missing,
# unreadable or damaged entry is ignored and rebuilt from the YAML, every entry is checked like the YAML is, and
# writes never consult it. Set OAICOMPAT_CASSETTE_CACHE=0 to turn it off.

def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "oaicompat") / "cassette-cache"


def _cache_on() -> bool:
    return os.environ.get("OAICOMPAT_CASSETTE_CACHE", "1") not in ("0", "false", "no", "off")


def _cache_path(digest: str) -> Path:
    return cache_dir() / f"{digest}.json"


def _cache_get(digest: str) -> dict[str, Any] | None:
    """The cached document of the cassette whose bytes hash to `digest`, or None (absent, damaged, other format).

    An entry is one JSON line naming the cassette's hash and the hash of the document that follows it."""
    if not _cache_on():
        return None
    try:
        head, _, body = _cache_path(digest).read_bytes().partition(b"\n")
        entry = json.loads(head)
        if not isinstance(entry, dict) or entry.get("cache") != CACHE_FORMAT or entry.get("sha256") != digest \
                or entry.get("version") != __version__ \
                or entry.get("document_sha256") != hashlib.sha256(body).hexdigest():
            return None
        document = json.loads(body)
    except (OSError, ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _cache_put(digest: str, document: dict[str, Any]) -> None:
    if not _cache_on():
        return
    try:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        if json.loads(body) != document:      # JSON cannot hold it exactly (a YAML date, an int key)
            return
        head = json.dumps({"cache": CACHE_FORMAT, "sha256": digest, "version": __version__,
                           "document_sha256": hashlib.sha256(body).hexdigest()}).encode("ascii")
        path = _cache_path(digest)
        if path.parent not in _swept:
            _swept.add(path.parent)
            remove_stale_temps(path.parent)
            _prune(path.parent)
        atomic_write_bytes(path, head + b"\n" + body, fsync=False)
    except (OSError, ValueError, TypeError, RecursionError):
        return                   # no cache this time; the cassette itself was read fine


def _prune(directory: Path, limit: int = CACHE_ENTRIES) -> None:
    """Keep the cache to `limit` entries: past it, drop the oldest written down to three quarters of it."""
    try:
        entries = list(directory.glob("*.json"))
        if len(entries) <= limit:
            return
        by_age = sorted(entries, key=lambda p: p.stat().st_mtime_ns)
        for old in by_age[: len(entries) - limit * 3 // 4]:
            old.unlink(missing_ok=True)
    except OSError:
        return          # another process pruned meanwhile; the next run prunes again


def new_header(*, provider: str, model: str, test: str, record_mode: str,
               server: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "test": test,
        "oaicompat_version": __version__,
        "recorded_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "record_mode": record_mode,
        "server": server,
    }


# -- replay through respx ---------------------------------------------------------------------------

class _ReplayStream(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], failure: dict[str, Any] | None) -> None:
        self._chunks = chunks
        self._failure = failure

    async def __aiter__(self):  # type: ignore[override]
        for chunk in self._chunks:
            yield chunk
        if self._failure:
            raise _failure_exception(self._failure)


def _failure_exception(failure: dict[str, Any]) -> Exception:
    kind, message = str(failure.get("kind")), failure.get("message", "")
    return {
        "connect": httpx.ConnectError, "timeout": httpx.ConnectTimeout, "read-timeout": httpx.ReadTimeout,
        "protocol": httpx.RemoteProtocolError, "reset": httpx.ReadError,
    }.get(kind, httpx.TransportError)(message)


class Replayer:
    """Serves a cassette's interactions to httpx requests (as a respx side effect), in recorded order."""

    def __init__(self, cassette: Cassette, base_path: str, rerecord: str) -> None:
        self.cassette = cassette
        self.base_path = base_path.rstrip("/")
        self.rerecord = rerecord
        self._queues: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
        for inter in cassette.interactions:
            rq = inter["request"]
            body = _decode_bytes(rq, "body", "body_base64")
            self._queues[request_key(rq["method"], rq["path"], body)].append(inter)
        self._served: dict[tuple[str, str, str], int] = defaultdict(int)

    def path_of(self, url: httpx.URL) -> str:
        path = url.raw_path.decode("ascii").split("?")[0]
        return path[len(self.base_path):] if self.base_path and path.startswith(self.base_path) else path

    def find(self, method: str, path: str, body: bytes) -> dict[str, Any] | None:
        key = request_key(method, path, body)
        queue = self._queues.get(key)
        if not queue:
            return None
        i = self._served[key]
        self._served[key] += 1
        return queue[min(i, len(queue) - 1)]   # repeats replay the last recording

    def has(self, method: str, path: str, body: bytes) -> bool:
        return bool(self._queues.get(request_key(method, path, body)))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.content
        path = self.path_of(request.url)
        inter = self.find(request.method, path, body)
        if inter is None:
            summary = f"{request.method} {path} with body {body[:120]!r}"
            raise CassetteMiss(str(self.cassette.path), summary, self.rerecord)
        rs = inter["response"]
        failure = rs.get("failure")
        recorded = {
            "chunk_times": [c["t"] for c in rs.get("chunks", [])],
            "attempts": inter.get("attempts", []),
            "elapsed": inter.get("elapsed"),
            "failure": failure,
            "meta": {"cassette": shown_path(self.cassette.path),
                     "recorded_at": self.cassette.header.get("recorded_at")},
        }
        if rs.get("status") is None:   # no response at all: the transport reads what was recorded off the error
            exc = _failure_exception(failure or {"kind": "other", "message": "no response recorded"})
            setattr(exc, RECORDED_ATTRIBUTE, recorded)
            raise exc
        chunks = [_decode_bytes(c, "text", "base64") for c in rs.get("chunks", [])]
        headers = [(k, v) for k, v in rs.get("headers", []) if k.lower() not in _SKIP_REPLAY_HEADERS]
        return httpx.Response(rs["status"], headers=headers, stream=_ReplayStream(chunks, failure),
                              extensions={RECORDED_EXTENSION: recorded})


def merge_interactions(old: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """new_episodes: keep every old interaction, append new ones whose request was not recorded yet."""
    out = list(old)
    seen = {request_key(i["request"]["method"], i["request"]["path"],
                        _decode_bytes(i["request"], "body", "body_base64")) for i in out}
    for inter in new:
        key = request_key(inter["request"]["method"], inter["request"]["path"],
                          _decode_bytes(inter["request"], "body", "body_base64"))
        if key not in seen:
            out.append(inter)
            seen.add(key)
    return out
