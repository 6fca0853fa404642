"""The Exchange: one request and everything the server sent back, as data.

An Exchange holds the response body as the bytes received, split where they arrived, with arrival
times relative to the request start. Transport failures are data too (`failure`), never exceptions.
Everything derived (JSON, SSE events, chunks) is computed on demand by pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from .sse import SSEParseResult, parse_sse

Source = Literal["live", "cassette", "imported"]
Framing = Literal["raw", "joined"]  # joined: chunk boundaries unknown (third-party recording as one string)

FailureKind = Literal["connect", "timeout", "read-timeout", "reset", "protocol", "too-large", "other"]


@dataclass(frozen=True, slots=True)
class Chunk:
    t: float        # seconds since the request was sent
    data: bytes


@dataclass(frozen=True, slots=True)
class TransportFailure:
    kind: FailureKind
    message: str
    after_bytes: int = 0   # bytes of body received before it happened


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a request that was retried: what came back and how long the harness waited after it."""
    status: int | None
    failure: str | None
    retry_after: str | None
    retry_after_ms: str | None
    should_retry_header: str | None
    slept: float
    reason: str


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    path: str                                  # URL path relative to the provider's base URL, e.g. /chat/completions
    headers: tuple[tuple[str, str], ...]       # scrubbed
    body: bytes = b""

    @cached_property
    def json(self) -> Any:
        """The JSON body, or None if there is none or it is not JSON (a deliberately malformed request)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    @property
    def stream(self) -> bool:
        body = self.json
        return isinstance(body, dict) and body.get("stream") is True

    def field(self, name: str, default: Any = None) -> Any:
        body = self.json
        return body.get(name, default) if isinstance(body, dict) else default


@dataclass(frozen=True)
class Exchange:
    request: Request
    status: int | None
    headers: tuple[tuple[str, str], ...] = ()
    chunks: tuple[Chunk, ...] = ()
    failure: TransportFailure | None = None
    attempts: tuple[Attempt, ...] = ()
    elapsed: float | None = None      # seconds from send to end of body (or failure)
    source: Source = "live"
    framing: Framing = "raw"
    http_version: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)   # provenance for cassette/imported

    # -- headers ---------------------------------------------------------------------------------
    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    # -- body ------------------------------------------------------------------------------------
    @cached_property
    def body(self) -> bytes:
        return b"".join(c.data for c in self.chunks)

    @cached_property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @cached_property
    def json(self) -> Any:
        """The parsed JSON body; raises ValueError (JSONDecodeError, UnicodeDecodeError, or too deeply nested)."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except RecursionError:
            raise ValueError("JSON nested too deeply to parse") from None

    def json_or_none(self) -> Any:
        try:
            return self.json
        except (ValueError, RecursionError):
            return None

    @cached_property
    def sse(self) -> SSEParseResult:
        return parse_sse(c.data for c in self.chunks)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.status is not None and 200 <= self.status < 300

    @property
    def ttfb(self) -> float | None:
        return self.chunks[0].t if self.chunks else None

    def summary(self) -> str:
        """One line naming the request and what came back, for messages."""
        what = f"HTTP {self.status}" if self.status is not None else "no response"
        if self.failure:
            what += f", {self.failure.kind}: {self.failure.message}"
        return f"{self.request.method} {self.request.path} → {what}"
