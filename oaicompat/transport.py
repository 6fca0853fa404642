"""Raw-byte transport on httpx: send one request, keep every byte and when it arrived.

`Transport.send` never raises for anything the server does: connection refused, timeouts, resets,
truncated bodies and oversize bodies all come back inside the Exchange as a TransportFailure.

The transport returns the raw exchange as it saw it (source "live", its own clock): it knows nothing of
cassettes, scrubbing or recorded timings. Replay hands it an httpx client whose transport serves a cassette;
the session restores the recorded metadata and scrubs (see oaicompat.session).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import __version__, retry
from .config import Provider
from .exchange import Attempt, Chunk, Exchange, Request, TransportFailure

MAX_BODY_BYTES = 12 * 1024 * 1024   # a body past this is cut: reading stops, the exchange is marked too-large
MAX_KEPT_CHUNKS = 4096              # reads kept one by one with their times; later reads merge into one tail chunk
WRONG_KEY = "sk-oaicompat-deliberately-wrong-key-0000"


@dataclass(frozen=True)
class RequestSpec:
    """What a probe asks to send. `auth`: "provider" (the configured key), "none", or "wrong"."""
    method: str = "POST"
    path: str = "/chat/completions"
    json: Any = None
    raw_body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: str = "provider"
    timeout: float | None = None        # total seconds for this request; default from the provider
    retries: int | None = None          # override the provider's max_retries
    base_url: str | None = None         # override, e.g. the server root without /v1

    def body_bytes(self) -> bytes:
        if self.raw_body is not None:
            return self.raw_body
        if self.json is None:
            return b""
        return json.dumps(self.json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def auth_headers(provider: Provider, key: str | None) -> dict[str, str]:
    if not key:
        return {}
    if provider.auth_header == "api-key":
        return {"api-key": key}
    if provider.auth_header == "x-api-key":
        return {"x-api-key": key}
    return {"Authorization": f"Bearer {key}"}


def classify(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
        return "read-timeout"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, httpx.TimeoutException)):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, ConnectionResetError)):
        return "reset"
    return "other"


@dataclass
class _Received:
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    chunks: list[Chunk] = field(default_factory=list)
    failure: TransportFailure | None = None
    http_version: str | None = None


class Transport:
    """Sends RequestSpecs for one provider over one httpx.AsyncClient (so keep-alive is real)."""

    def __init__(
        self,
        provider: Provider,
        client: httpx.AsyncClient,
        *,
        api_key: str | None,
        sleep=asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.client = client
        self.api_key = api_key
        self._sleep = sleep

    def build_request(self, spec: RequestSpec) -> tuple[str, dict[str, str], bytes]:
        base = (spec.base_url or self.provider.base_url or "").rstrip("/")
        url = base + spec.path
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": f"oaicompat/{__version__}",
            **dict(self.provider.headers),
        }
        body = spec.body_bytes()
        if body:
            headers["Content-Type"] = "application/json"
        key = {"provider": self.api_key, "wrong": WRONG_KEY, "none": None}[spec.auth]
        headers.update(auth_headers(self.provider, key))
        headers.update(spec.headers)
        return url, headers, body

    async def send(self, spec: RequestSpec) -> Exchange:
        url, headers, body = self.build_request(spec)
        request = Request(method=spec.method, url=url, path=spec.path,
                          headers=tuple(headers.items()), body=body)
        max_retries = int(spec.retries if spec.retries is not None else self.provider.retries["max_retries"])
        total = spec.timeout or float(self.provider.timeouts["total"])
        deadline = time.perf_counter() + total    # one deadline for the request: every attempt, sleep and read
        attempts: list[Attempt] = []
        while True:
            t0 = time.perf_counter()
            got = await self._attempt(spec.method, url, headers, body, max(deadline - t0, 0.001))
            elapsed = time.perf_counter() - t0
            hdrs = {k.lower(): v for k, v in got.headers}
            body_started = bool(got.chunks)
            decision = retry.decide(
                status=got.status, headers=hdrs, retries_taken=len(attempts), max_retries=max_retries,
                max_delay=float(self.provider.retries["max_delay"]),
                transport_failure=got.status is None,
            )
            is_error = got.status is None or got.status >= 400
            in_time = deadline - time.perf_counter() > decision.delay
            if is_error and decision.retry and in_time and not (got.status is None and body_started):
                attempts.append(Attempt(
                    status=got.status, failure=got.failure.message if got.failure else None,
                    retry_after=hdrs.get("retry-after"), retry_after_ms=hdrs.get("retry-after-ms"),
                    should_retry_header=hdrs.get("x-should-retry"), slept=decision.delay,
                    reason=decision.reason,
                ))
                await self._sleep(decision.delay)
                continue
            break
        return Exchange(
            request=request, status=got.status, headers=got.headers, chunks=tuple(got.chunks),
            failure=got.failure, attempts=tuple(attempts), elapsed=elapsed, source="live",
            http_version=got.http_version,
        )

    async def _attempt(self, method: str, url: str, headers: dict[str, str], body: bytes,
                       total: float) -> _Received:
        """One try within `total` seconds (what is left of the request's deadline), reading the body too.

        Bounded whatever the server does: at most MAX_BODY_BYTES are kept (then reading stops: too-large),
        at most MAX_KEPT_CHUNKS reads keep their own chunk (later reads are merged into one tail chunk), and
        the deadline is checked after every read, since a server that always has data ready may never let
        asyncio's timeout fire."""
        got = _Received()
        t0 = time.perf_counter()
        timeout = httpx.Timeout(total, connect=min(float(self.provider.timeouts["connect"]), total),
                                read=min(float(self.provider.timeouts["read"]), total))
        size = 0
        tail = _Tail()
        try:
            async with asyncio.timeout(total):
                async with self.client.stream(method, url, headers=headers, content=body or None,
                                              timeout=timeout) as resp:
                    got.status = resp.status_code
                    got.headers = tuple((k.decode("latin-1"), v.decode("latin-1"))
                                        for k, v in resp.headers.raw)
                    got.http_version = resp.http_version
                    async for data in resp.aiter_raw():
                        if not data:
                            continue
                        now = time.perf_counter() - t0
                        over = size + len(data) - MAX_BODY_BYTES
                        if over > 0:
                            data = data[:len(data) - over]
                        size += len(data)
                        if not data:
                            pass
                        elif len(got.chunks) < MAX_KEPT_CHUNKS:
                            got.chunks.append(Chunk(now, data))
                        else:
                            tail.add(now, data)
                        if over > 0:
                            got.failure = TransportFailure(
                                "too-large", f"body exceeded {MAX_BODY_BYTES} bytes; stopped reading", size)
                            break
                        if now >= total:
                            got.failure = TransportFailure(
                                "timeout", f"no complete response within {total:g} s (the body was still "
                                           f"arriving: {size} bytes in {len(got.chunks) + tail.reads} reads)",
                                size)
                            break
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            kind = classify(exc)
            message = str(exc) or type(exc).__name__
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                message = f"no complete response within {total:g} s"
            got.failure = TransportFailure(kind, message, size)  # type: ignore[arg-type]
        if tail.reads:
            got.chunks.append(tail.chunk())
        return got


@dataclass
class _Tail:
    """Reads past MAX_KEPT_CHUNKS, merged: one chunk at the time of the last of them."""
    data: bytearray = field(default_factory=bytearray)
    t: float = 0.0
    reads: int = 0

    def add(self, t: float, data: bytes) -> None:
        self.data += data
        self.t = t
        self.reads += 1

    def chunk(self) -> Chunk:
        return Chunk(self.t, bytes(self.data))

