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
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx

from . import __version__, retry
from .config import Provider
from .exchange import Attempt, Chunk, Exchange, Request, TransportFailure

MAX_BODY_BYTES = 32 * 1024 * 1024
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
        attempts: list[Attempt] = []
        while True:
            t0 = time.perf_counter()
            got = await self._attempt(spec.method, url, headers, body, total)
            elapsed = time.perf_counter() - t0
            hdrs = {k.lower(): v for k, v in got.headers}
            body_started = bool(got.chunks)
            decision = retry.decide(
                status=got.status, headers=hdrs, retries_taken=len(attempts), max_retries=max_retries,
                max_delay=float(self.provider.retries["max_delay"]),
                transport_failure=got.status is None,
            )
            is_error = got.status is None or got.status >= 400
            if is_error and decision.retry and not (got.status is None and body_started):
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
        got = _Received()
        t0 = time.perf_counter()
        timeout = httpx.Timeout(total, connect=min(float(self.provider.timeouts["connect"]), total),
                                read=min(float(self.provider.timeouts["read"]), total))
        size = 0
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
                        got.chunks.append(Chunk(time.perf_counter() - t0, data))
                        size += len(data)
                        if size > MAX_BODY_BYTES:
                            got.failure = TransportFailure(
                                "too-large", f"body exceeded {MAX_BODY_BYTES} bytes; stopped reading", size)
                            break
        except (httpx.HTTPError, OSError, TimeoutError, asyncio.TimeoutError) as exc:
            kind = classify(exc)
            message = str(exc) or type(exc).__name__
            if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
                message = f"no complete response within {total:g} s"
            got.failure = TransportFailure(kind, message, size)  # type: ignore[arg-type]
        return got

