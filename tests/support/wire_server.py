"""A small OpenAI-wire test server on a free loopback port: test equipment, never a provider.

It answers conformantly and deterministically by default. `behaviours` switch on emulated deviations
(each labelled EMULATED and citing the documented behaviour it imitates, see tests/support/behaviours.py)
so the harness's own tests can prove that checks catch quirks. Plain asyncio, so every byte it sends
(line endings, chunk splits, resets, drip-feeding) is under the test's control.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

Handler = Callable[["WireRequest", "WireResponse"], Awaitable[None]]

CREATED = 1_726_012_687
MODEL = "ref-model"


@dataclass
class WireRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class WireResponse:
    """Writes an HTTP/1.1 response; `chunked=True` streams with chunked transfer encoding."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.started = False
        self.chunked = False
        self.closed = False

    async def start(self, status: int, headers: list[tuple[str, str]], *, chunked: bool) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Status")
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
        if chunked:
            lines.append("transfer-encoding: chunked")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.started, self.chunked = True, chunked
        await self.writer.drain()

    async def send(self, data: bytes) -> None:
        if self.chunked:
            if data:
                self.writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        else:
            self.writer.write(data)
        await self.writer.drain()

    async def end(self) -> None:
        if self.chunked:
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()

    async def json(self, status: int, payload: Any, headers: list[tuple[str, str]] | None = None,
                   content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self.start(status, [("content-type", content_type), ("content-length", str(len(body))),
                                  *(headers or [])], chunked=False)
        await self.send(body)

    def reset(self) -> None:
        """Drop the connection abruptly (RST where the OS allows)."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        self.writer.transport.abort()
        self.closed = True


@dataclass
class WireServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[WireRequest] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "WireServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="wire-server")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Idempotent: close the listening socket and stop the loop thread."""
        loop, server, self._loop, self._server = self._loop, self._server, None, None
        if loop is not None and server is not None:
            loop.call_soon_threadsafe(server.close)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                req = WireRequest(method, path.split("?")[0], headers, body)
                self.requests.append(req)
                resp = WireResponse(writer)
                await self.handler(req, resp)
                if resp.closed or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()


# -- the conformant reference behaviour --------------------------------------------------------------

def completion_body(text: str = "Hello there.", finish: str = "stop", prompt_tokens: int = 9) -> dict[str, Any]:
    completion_tokens = max(1, len(text.split()))
    return {
        "id": "chatcmpl-ref1", "object": "chat.completion", "created": CREATED, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def conformant(req: WireRequest, resp: WireResponse) -> None:
    body = req.json()
    if req.path.endswith("/models") and req.method == "GET":
        await resp.json(200, {"object": "list", "data": [
            {"id": MODEL, "object": "model", "created": CREATED, "owned_by": "oaicompat-tests"}]})
        return
    if not req.path.endswith("/chat/completions") or not isinstance(body, dict):
        await resp.json(400, {"error": {"message": "bad request", "type": "invalid_request_error",
                                        "param": None, "code": None}})
        return
    text = "Hello there."
    if not body.get("stream"):
        await resp.json(200, completion_body(text))
        return
    await resp.start(200, [("content-type", "text/event-stream")], chunked=True)
    base = {"id": "chatcmpl-ref1", "object": "chat.completion.chunk", "created": CREATED, "model": MODEL}
    include_usage = (body.get("stream_options") or {}).get("include_usage") is True
    extra = {"usage": None} if include_usage else {}
    await resp.send(sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                              "logprobs": None, "finish_reason": None}], **extra}))
    for word in ["Hello", " there."]:
        await resp.send(sse({**base, "choices": [{"index": 0, "delta": {"content": word},
                                                  "logprobs": None, "finish_reason": None}], **extra}))
    await resp.send(sse({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                              "finish_reason": "stop"}], **extra}))
    if include_usage:
        await resp.send(sse({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2,
                                                             "total_tokens": 11}}))
    await resp.send(b"data: [DONE]\n\n")
    await resp.end()


def now() -> float:
    return time.time()
