"""Cassettes: one YAML file per provider and test, holding the exchanges as the server sent them.

Format (version 1), readable on a code host:

    oaicompat_cassette: 1
    provider, model, test, oaicompat_version, recorded_at (UTC), record_mode, server: {...}
    interactions:
      - request:  {method, path, url, headers, body}            # body verbatim text, or body_base64
        response: {status, http_version, headers, chunks: [{t, text} | {t, base64}], failure}
        attempts: [...]                                          # retries made before this response
        elapsed: seconds

Bodies keep their original chunk boundaries and arrival times. Writes are atomic and verified: the
file is re-read and must give back the same bytes before it replaces the old one.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import httpx
import yaml

from . import __version__
from .errors import CassetteError, CassetteMiss
from .exchange import Attempt, Chunk, Exchange, Request, TransportFailure
from .paths import shown_path
from .scrub import Scrubber

# the recorded metadata of a replayed interaction: on the response (httpx extension), or on the exception a
# replayed "no response" raises; the session reads it back (oaicompat.session)
RECORDED_EXTENSION = "oaicompat_recorded"
RECORDED_ATTRIBUTE = "oaicompat_recorded"

FORMAT_VERSION = 1
_SKIP_REPLAY_HEADERS = frozenset({"content-length", "transfer-encoding", "content-encoding"})

try:  # the C loader/dumper are an order of magnitude faster; fall back when libyaml is absent
    _Loader: type = yaml.CSafeLoader
    _BaseDumper: type = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader
    _BaseDumper = yaml.SafeDumper


class _Dumper(_BaseDumper):  # type: ignore[misc,valid-type]
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # literal blocks for multi-line text; YAML folds CR and some Unicode breaks, so those stay quoted
    if "\n" in value and not any(c in value for c in "\r\x85\u2028\u2029\t") and not value.startswith(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


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


def interaction_to_exchange(d: dict[str, Any], *, source: str = "cassette", meta: dict[str, Any] | None = None) -> Exchange:
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
    def load(cls, path: Path) -> "Cassette":
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CassetteError(f"cannot read cassette {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CassetteError(f"cassette {path} is not UTF-8 text; re-record it") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path) -> "Cassette":
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise CassetteError(f"cassette {path} is not valid YAML (truncated or edited?): {exc}; "
                                f"re-record it with --record-mode=rewrite") from None
        if not isinstance(data, dict) or data.get("oaicompat_cassette") != FORMAT_VERSION:
            raise CassetteError(f"{path} is not an oaicompat cassette of format {FORMAT_VERSION}; re-record it")
        interactions = data.get("interactions")
        if not isinstance(interactions, list):
            raise CassetteError(f"cassette {path} has no 'interactions' list; re-record it")
        header = {k: v for k, v in data.items() if k != "interactions"}
        cassette = cls(path=path, header=header, interactions=interactions)
        for i, inter in enumerate(interactions):
            try:
                interaction_to_exchange(inter)
            except CassetteError as exc:
                raise CassetteError(f"cassette {path}, interaction {i}: {exc}") from None
        return cassette

    def exchanges(self) -> list[Exchange]:
        meta = {"cassette": shown_path(self.path), "recorded_at": self.header.get("recorded_at")}
        return [interaction_to_exchange(i, meta=meta) for i in self.interactions]

    def dump(self, scrubber: Scrubber) -> str:
        doc = {"oaicompat_cassette": FORMAT_VERSION, **self.header, "interactions": self.interactions}
        text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100_000)
        return scrubber.text(text)

    def save(self, scrubber: Scrubber) -> None:
        """Atomic, verified write: the text must give back the same bytes, then temp file and os.replace."""
        text = self.dump(scrubber)
        reread = Cassette.parse(text, self.path)
        for before, after in zip(self.interactions, reread.interactions, strict=True):
            b, a = interaction_to_exchange(before), interaction_to_exchange(after)
            if scrubber.bytes_(b.body) != a.body or scrubber.bytes_(b.request.body) != a.request.body \
                    or [c.data for c in a.chunks] != [scrubber.bytes_(c.data) for c in b.chunks]:
                raise CassetteError(f"refusing to write {self.path}: the YAML round trip changed the bytes")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)   # mkstemp makes 0600; cassettes are committed
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def new_header(*, provider: str, model: str, test: str, record_mode: str,
               server: dict[str, Any]) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "test": test,
        "oaicompat_version": __version__,
        "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
    kind, message = failure.get("kind"), failure.get("message", "")
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
