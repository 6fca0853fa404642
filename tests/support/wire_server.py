"""A small OpenAI-wire test server on a free loopback port: test equipment, never a provider.

It answers conformantly and deterministically by default (`Reference`, also exported as `conformant`):
every probe the suites send gets the answer openai-wire.md describes, streaming included. `behaviours`
switch on emulated deviations (each labelled EMULATED and citing the documented behaviour it imitates, see
tests/support/behaviours.py) so the harness's own tests can prove that checks catch quirks. Plain asyncio, so
every byte it sends (line endings, chunk splits, resets, drip-feeding) is under the test's control.

    server = WireServer(Reference()).start()        # server.base_url == "http://127.0.0.1:PORT/v1"
    server.handler = Reference(behaviour)            # switch behaviour between requests
    server.stop()

`render(handler, request)` runs a handler in process, without a socket, and returns what it would have sent
(bytes, pauses, resets, connection state): the recall test uses it to tell which probes a behaviour changes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

Handler = Callable[["WireRequest", "WireResponse"], Awaitable[None]]

CREATED = 1_726_012_687
MODEL = "ref-model"
FINGERPRINT = "fp_ref0001"
WRONG_KEY = "sk-oaicompat-deliberately-wrong-key-0000"   # what oaicompat.transport sends for auth="wrong"
try:  # stay in step with the harness if it changes the wrong key
    from oaicompat.transport import WRONG_KEY  # noqa: F811
except ImportError:  # pragma: no cover
    pass
CONTEXT_TOKENS = 512
IMAGE_TOKENS = 85
HANG_SECONDS = 30.0


# -- HTTP/1.1 plumbing ---------------------------------------------------------------------------------

@dataclass
class WireRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    conn: dict[str, Any] = field(default_factory=dict)   # state of the connection the request came on

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


class WireResponse:
    """Writes an HTTP/1.1 response; `chunked=True` streams with chunked transfer encoding."""

    REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
               422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable"}

    def __init__(self, writer: asyncio.StreamWriter, conn: dict[str, Any] | None = None) -> None:
        self.writer = writer
        self.conn = conn if conn is not None else {}
        self.started = False
        self.chunked = False
        self.closed = False
        self.sent = 0

    async def start(self, status: int, headers: list[tuple[str, str]], *, chunked: bool) -> None:
        lines = [f"HTTP/1.1 {status} {self.REASONS.get(status, 'Status')}"] + [f"{k}: {v}" for k, v in headers]
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
        self.sent += len(data)
        await self.writer.drain()

    async def end(self) -> None:
        if self.chunked:
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()

    async def pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

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
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()
        self.closed = True

    def close(self) -> None:
        """Close the connection after what was written (no chunked terminator is added)."""
        self.writer.close()
        self.closed = True


@dataclass
class WireServer:
    handler: Handler
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[WireRequest] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)    # exceptions raised by handlers
    keep_requests: bool = True
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None
    _tasks: set = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> WireServer:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="wire-server")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Idempotent: close the listening socket, cancel open connections and stop the loop thread."""
        loop, server, self._loop, self._server = self._loop, self._server, None, None
        if loop is not None and server is not None:
            async def shutdown() -> None:
                server.close()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
            try:
                asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
            except Exception:  # noqa: BLE001 - best effort; the loop is stopped below anyway
                pass
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        conn: dict[str, Any] = {"requests": 0}
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                req = WireRequest(method, path.split("?")[0], headers, body, conn)
                conn["requests"] += 1
                if self.keep_requests:
                    self.requests.append(req)
                resp = WireResponse(writer, conn)
                try:
                    await self.handler(req, resp)
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a handler bug: recorded for the tests, answered 500
                    self.errors.append(exc)
                    if not resp.started:
                        await resp.json(500, {"error": {"message": f"reference handler crashed: {exc!r}",
                                                        "type": "server_error", "param": None, "code": None}})
                    else:
                        resp.reset()
                if resp.closed or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError,
                asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()


# -- rendering a handler in process (no socket) --------------------------------------------------------

class _CaptureTransport:
    def __init__(self, sink: Rendered) -> None:
        self.sink = sink

    def abort(self) -> None:
        self.sink.parts.append(b"<<reset>>")

    def close(self) -> None:
        self.sink.parts.append(b"<<close>>")


class _CaptureWriter:
    def __init__(self, sink: Rendered) -> None:
        self.sink = sink
        self.transport = _CaptureTransport(sink)

    def write(self, data: bytes) -> None:
        self.sink.parts.append(bytes(data))

    async def drain(self) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        self.sink.parts.append(b"<<close>>")

    def is_closing(self) -> bool:
        return False


class _CaptureResponse(WireResponse):
    async def pause(self, seconds: float) -> None:
        self.writer.sink.parts.append(f"<<pause {seconds:g}>>".encode())


@dataclass
class Rendered:
    """What a handler sent for one request, and the connection state it left."""
    parts: list[bytes] = field(default_factory=list)
    conn: dict[str, Any] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)

    def key(self) -> tuple[bytes, str]:
        return self.data, json.dumps(self.conn, sort_keys=True, default=str)


async def render(handler: Handler, request: WireRequest) -> Rendered:
    """Run `handler` on `request` against an in-memory writer; never opens a socket."""
    sink = Rendered()
    conn = {"requests": 1}
    request = replace(request, conn=conn)
    resp = _CaptureResponse(_CaptureWriter(sink), conn)  # type: ignore[arg-type]
    await handler(request, resp)
    sink.conn = {k: v for k, v in conn.items() if k != "requests"}
    return sink


# -- tokens, text and images ---------------------------------------------------------------------------

TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")


def tokenize(text: str) -> list[str]:
    """The reference's tokenizer: a word or a punctuation mark with its leading spaces; joins back to `text`."""
    return TOKEN.findall(text)


def count_tokens(text: str) -> int:
    return len(tokenize(text))


COLOURS = {"red": (255, 0, 0), "green": (0, 160, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "orange": (255, 140, 0),
           "purple": (128, 0, 128)}


def png_pixels(data: bytes) -> tuple[int, int, int, bytes] | None:
    """(width, height, channels, unfiltered rows) of an 8-bit non-interlaced grey/RGB/RGBA PNG, else None."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk[:13])
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    if header is None:
        return None
    width, height, depth, ctype, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace or width * height > 4096 * 4096:
        return None
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error:
        return None
    stride = width * channels
    rows, prev = bytearray(), bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        if len(line) != stride + 1:
            return None
        kind, cur = line[0], bytearray(line[1:])
        for i in range(stride):
            a = cur[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                cur[i] = (cur[i] + a) & 0xFF
            elif kind == 2:
                cur[i] = (cur[i] + b) & 0xFF
            elif kind == 3:
                cur[i] = (cur[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows += cur
        prev = cur
    return width, height, channels, bytes(rows)


@functools.lru_cache(maxsize=64)
def colour_of(url: str) -> str | None:
    """The name of the average colour of a `data:image/png;base64,…` URL, None for anything else."""
    if not url.startswith("data:image/png;base64,"):
        return None
    try:
        pixels = png_pixels(base64.b64decode(url.split(",", 1)[1], validate=True))
    except (binascii.Error, ValueError):
        return None
    if pixels is None:
        return None
    width, height, channels, rows = pixels
    n = width * height
    if n == 0:
        return None
    if channels < 3:
        grey = sum(rows[0::channels]) // n
        avg = (grey, grey, grey)
    else:
        avg = tuple(sum(rows[i::channels]) // n for i in range(3))
    return min(COLOURS, key=lambda name: sum((x - y) ** 2 for x, y in zip(avg, COLOURS[name])))


def valid_data_url(url: str) -> bool:
    m = re.match(r"data:image/(png|jpeg|jpg|gif|webp);base64,(.*)$", url, re.S)
    if not m:
        return False
    try:
        data = base64.b64decode(m.group(2), validate=True)
    except (binascii.Error, ValueError):
        return False
    # the bytes must be an image of a format OpenAI takes (its answer otherwise: 400 invalid_image_format)
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP")


# -- JSON Schema: strict subset and an instance ---------------------------------------------------------

def strict_problem(schema: Any, where: str = "schema") -> str | None:
    """Why `schema` is outside OpenAI's strict subset (objects: additionalProperties false, all keys required)."""
    if not isinstance(schema, dict):
        return f"{where} is not an object"
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return f"{where}: additionalProperties must be false"
        if sorted(schema.get("required") or []) != sorted(props):
            return f"{where}: every property must be required"
        for key, sub in props.items():
            problem = strict_problem(sub, f"{where}.properties.{key}")
            if problem:
                return problem
    if isinstance(schema.get("items"), dict):
        return strict_problem(schema["items"], f"{where}.items")
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key) or []):
            problem = strict_problem(sub, f"{where}.{key}[{i}]")
            if problem:
                return problem
    return None


def instance_of(schema: Any, hint: str = "") -> Any:
    """A deterministic instance of `schema`: enums prefer a value named in `hint`, else the first value."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        named = [v for v in schema["enum"] if isinstance(v, str) and v and v in hint]
        return named[0] if named else schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance_of(schema[key][0], hint)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: instance_of(v, hint) for k, v in props.items()}
    if kind == "array":
        return [instance_of(schema.get("items"), hint)] if schema.get("minItems") else []
    if kind == "boolean":
        return True
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "null":
        return None
    return "text"


# -- replies --------------------------------------------------------------------------------------------

@dataclass
class Reply:
    """What the reference answers, before it is written. `payload` is serialised (framing applies) unless
    `raw` is given; `events` (a stream) are written one by one with chunked encoding."""
    status: int = 200
    payload: Any = None
    raw: bytes | None = None
    events: list[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "application/json"
    kind: str = "other"       # completion | stream | error | models | model | other
    tag: str = ""             # for errors: auth | json | validation | model | context | image | path | …
    after: str | None = None  # after the body: "reset" | "close" (no terminator) | "hang"
    drop: bool = False        # send nothing at all and reset the connection
    cut: int | None = None    # write at most this many body bytes (then `after`)
    pace: float = 0.0         # seconds between written pieces (drip-feeding)
    piece: int = 0            # write the body in pieces of this many bytes (0: framing default)


@dataclass(frozen=True)
class Framing:
    """Valid protocol variants of the reference's bytes (the precision test switches each on)."""
    crlf: bool = False            # SSE lines end with CRLF
    no_space: bool = False        # `data:{…}` without the space
    comments: bool = False        # `: …` comments and keep-alives; blank lines before a JSON body
    extra_fields: bool = False    # unknown extension fields in objects
    reorder_keys: bool = False    # JSON object keys in reverse order
    split: int = 0                # write every body in pieces of this many bytes

    def describe(self) -> str:
        on = [k for k, v in self.__dict__.items() if v]
        return ",".join(on) or "plain"


PRECISION_VARIANTS: dict[str, Framing] = {
    "crlf": Framing(crlf=True),
    "no-space": Framing(no_space=True),
    "comments": Framing(comments=True),
    "extra-fields": Framing(extra_fields=True),
    "reordered-keys": Framing(reorder_keys=True),
    "odd-splits": Framing(split=7),
}

EXTENSION = {"note": "an extension field the reference adds"}


def _extend(obj: Any, places: tuple[str, ...] = ("choices", "message", "delta", "error", "data")) -> Any:
    """Add `x_ref_extension` to objects where extensions are allowed (top level, choices, message, delta…)."""
    if isinstance(obj, dict):
        out = {**obj, "x_ref_extension": EXTENSION}
        for key in places:
            value = out.get(key)
            if isinstance(value, dict):
                out[key] = _extend(value, places)
            elif isinstance(value, list):
                out[key] = [_extend(v, places) if isinstance(v, dict) else v for v in value]
        return out
    return obj


def _reverse(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _reverse(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [_reverse(v) for v in obj]
    return obj


# -- the request as the reference reads it --------------------------------------------------------------

KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream",
    "stream_options", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "user", "seed", "tools", "tool_choice", "parallel_tool_calls", "response_format", "metadata", "store",
    "service_tier", "reasoning_effort", "modalities", "audio", "prediction", "web_search_options", "functions",
    "function_call", "safety_identifier", "prompt_cache_key", "verbosity"})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal"})


class Req:
    """One request, parsed leniently: behaviours and the reference read it through these helpers."""

    def __init__(self, wire: WireRequest, ref: Reference, body: Any = ..., parsed: bool | None = None) -> None:
        self.wire = wire
        self.ref = ref
        self.conn = wire.conn
        self.method = wire.method
        self.raw_path = wire.path
        self.api_path = wire.path[3:] if wire.path.startswith("/v1/") else None
        self.headers = wire.headers
        self.gen: Generation | None = None       # what the reference generated (set by Reference.chat)
        if body is ...:
            try:
                self.json, self.parsed = json.loads(wire.body.decode("utf-8")), True
            except (ValueError, RecursionError):
                self.json, self.parsed = None, False
        else:
            self.json, self.parsed = body, True if parsed is None else parsed

    # -- fields ---------------------------------------------------------------------------------
    def field(self, name: str, default: Any = None) -> Any:
        return self.json.get(name, default) if isinstance(self.json, dict) else default

    def has(self, name: str) -> bool:
        return isinstance(self.json, dict) and self.json.get(name) is not None

    def with_json(self, **changes: Any) -> Req:
        """The same request with body fields changed (None removes a field): for regenerating a reply."""
        body = dict(self.json) if isinstance(self.json, dict) else {}
        for key, value in changes.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
        return Req(self.wire, self.ref, body)

    @property
    def key(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip() or None
        return self.headers.get("api-key") or self.headers.get("x-api-key") or None

    @property
    def stream(self) -> bool:
        return self.field("stream") is True

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.field("messages")
        return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.field("tools")
        return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []

    @property
    def has_tools(self) -> bool:
        return bool(self.tools)

    @property
    def tool_choice(self) -> Any:
        return self.field("tool_choice")

    @property
    def forced(self) -> str | None:
        """The function a named tool_choice forces."""
        choice = self.tool_choice
        fn = choice.get("function") if isinstance(choice, dict) else None
        return fn.get("name") if isinstance(fn, dict) and isinstance(fn.get("name"), str) else None

    @property
    def format(self) -> str | None:
        rf = self.field("response_format")
        return rf.get("type") if isinstance(rf, dict) else None

    @property
    def cap(self) -> int | None:
        caps = [v for v in (self.field("max_tokens"), self.field("max_completion_tokens"))
                if isinstance(v, int) and not isinstance(v, bool)]
        return min(caps) if caps else None

    def parts(self) -> Iterable[dict[str, Any]]:
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, list):
                yield from (p for p in content if isinstance(p, dict))

    @property
    def images(self) -> list[dict[str, Any]]:
        return [p.get("image_url") if isinstance(p.get("image_url"), dict) else {}
                for p in self.parts() if p.get("type") == "image_url"]

    @property
    def user_text(self) -> str:
        """The text of the last user message (content string or its text parts)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return message_text(m)
        return ""

    def is_probe(self, name: str) -> bool:
        """This request is the one the named probe sends (method, path and JSON body)."""
        return self.ref.probe_key(name) == (self.method, self.api_path, canonical(self.json))


def canonical(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def error_payload(message: str, type_: str = "invalid_request_error", param: str | None = None,
                  code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# -- generation -----------------------------------------------------------------------------------------

REPLY = "Hello! How can I help you today?"
REASONING = "The user wants a short reply, so I answer briefly and politely."
JSON_REPLY = '{"greeting": "hello"}'
ROUND_TRIP_REPLY = "The tool says: {}"


@dataclass
class Choice:
    index: int
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish: str
    tokens: list[str]            # generated tokens (content, or the calls' arguments)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens)


@dataclass
class Generation:
    choices: list[Choice]
    prompt_tokens: int
    reasoning: str = ""          # hidden reasoning (counted in reasoning_tokens, never shown by the reference)

    @property
    def reasoning_tokens(self) -> int:
        return count_tokens(self.reasoning) if self.reasoning else 0

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.choices) + self.reasoning_tokens


# -- the reference handler --------------------------------------------------------------------------------

class Reference:
    """The conformant reference server (a WireServer handler). Behaviours hook into it, see behaviours.py.

    Hooks a behaviour may define (each optional; `req` is a `Req`):
      request(req) -> Reply | None          answer instead of the reference (None: go on)
      completion(body, req) -> dict | None  edit a non-streamed 200 chat reply (return a replacement or edit)
      chunks(chunks, req) -> list | None    edit the chunk objects of a 200 stream (before encoding)
      events(events, req) -> list | None    edit the encoded SSE events (bytes, `[DONE]` included)
      reply(reply, req) -> Reply | None     edit any reply (errors, models, …) before it is written
      generation(gen, req) -> Generation | None   edit what is generated (before replies are built)
    """

    def __init__(self, *behaviours: Any, models: tuple[str, ...] = (MODEL,), api_key: str | None = None,
                 context_tokens: int = CONTEXT_TOKENS, framing: Framing = Framing(), reasoning: bool = False,
                 image_tokens: int = IMAGE_TOKENS, probe_keys: Mapping[str, tuple[str, str | None, str]] | None = None
                 ) -> None:
        self.behaviours = behaviours
        self.models = models
        self.api_key = api_key
        self.context_tokens = context_tokens
        self.framing = framing
        self.reasoning = reasoning or any(getattr(b, "reasoning", False) for b in behaviours)
        self.image_tokens = image_tokens
        self.probe_keys = dict(probe_keys or {})
        self.state: dict[str, Any] = {}          # for stateful behaviours (counters)

    def __repr__(self) -> str:
        names = [getattr(b, "quirk", getattr(b, "name", repr(b))) for b in self.behaviours]
        return f"Reference({', '.join(names)}; framing={self.framing.describe()})"

    def probe_key(self, name: str) -> tuple[str, str | None, str] | None:
        return self.probe_keys.get(name)

    def hooks(self, name: str) -> list[Callable[..., Any]]:
        return [h for b in self.behaviours for h in getattr(b, "hooks", {}).get(name, ())]

    # -- HTTP entry point --------------------------------------------------------------------------
    async def __call__(self, wire: WireRequest, resp: WireResponse) -> None:
        req = Req(wire, self)
        reply = self.respond(req)
        for hook in self.hooks("reply"):
            reply = hook(reply, req) or reply
        await self.write(reply, resp)

    def respond(self, req: Req) -> Reply:
        for hook in self.hooks("request"):
            got = hook(req)
            if got is not None:
                return got
        return self.route(req)

    def route(self, req: Req, *, check_auth: bool = True) -> Reply:
        if req.api_path is None:
            return self.error(404, f"Invalid URL ({req.method} {req.raw_path})", tag="path")
        auth = self.authenticate(req) if check_auth else None
        if auth is not None:
            return auth
        path = req.api_path.rstrip("/") if req.api_path != "/" else req.api_path
        if path == "/chat/completions" and req.method == "POST" and req.api_path == "/chat/completions":
            return self.chat(req)
        if path == "/models" and req.method == "GET":
            return self.list_models(req)
        if path.startswith("/models/") and req.method == "GET":
            return self.retrieve_model(req, path[len("/models/"):])
        return self.error(404, f"Invalid URL ({req.method} {req.raw_path})", tag="path")

    def authenticate(self, req: Req) -> Reply | None:
        key = req.key
        if key is None:
            return self.error(401, "You didn't provide an API key. Provide it in the Authorization header "
                                   "(Authorization: Bearer YOUR_KEY).", code="missing_api_key", tag="auth")
        if key == WRONG_KEY or (self.api_key is not None and key != self.api_key):
            return self.error(401, f"Incorrect API key provided: {key[:6]}****{key[-4:]}.",
                              code="invalid_api_key", tag="auth")
        return None

    # -- errors and models ---------------------------------------------------------------------------
    def error(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
              code: str | None = None, tag: str = "validation") -> Reply:
        return Reply(status, error_payload(message, type_, param, code), kind="error", tag=tag)

    def model_object(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": CREATED, "owned_by": "oaicompat-tests"}

    def list_models(self, req: Req) -> Reply:
        return Reply(200, {"object": "list", "data": [self.model_object(m) for m in self.models]}, kind="models")

    def retrieve_model(self, req: Req, model: str) -> Reply:
        if model in self.models:
            return Reply(200, self.model_object(model), kind="model")
        return self.error(404, f"The model '{model}' does not exist", param="model", code="model_not_found",
                          tag="model")

    # -- chat completions ----------------------------------------------------------------------------
    def chat(self, req: Req, *, check_window: bool = True) -> Reply:
        problem = self.validate(req)
        if problem is not None:
            return problem
        gen = req.gen = self.generate(req)
        for hook in self.hooks("generation"):
            gen = req.gen = hook(gen, req) or gen
        window = self.window_problem(req, gen) if check_window else None
        if window is not None:
            return window
        if req.stream:
            return self.stream_reply(req, gen)
        return self.completion_reply(req, gen)

    def validate(self, req: Req) -> Reply | None:
        """400/404 for what OpenAI refuses, in the order it checks; None when the request is valid."""
        if not req.parsed:
            return self.error(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                                   "you aren't using your HTTP library correctly.)", tag="json")
        body = req.json
        if not isinstance(body, dict):
            return self.error(400, "The request body must be a JSON object.", tag="json")
        unknown = sorted(set(body) - KNOWN_FIELDS)
        if unknown:
            return self.error(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error(400, "you must provide a model parameter", param="model")
        if "messages" not in body:
            return self.error(400, "Missing required parameter: 'messages'.", param="messages",
                              code="missing_required_parameter")
        messages = body["messages"]
        if not isinstance(messages, list):
            return self.error(400, f"Invalid type for 'messages': expected an array, but got "
                                   f"{type(messages).__name__} instead.", param="messages", code="invalid_type")
        if not messages:
            return self.error(400, "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                              param="messages", code="empty_array")
        for i, m in enumerate(messages):
            problem = self.message_problem(m, f"messages[{i}]", req)
            if problem is not None:
                return problem
        problem = self.param_problem(body, req)
        if problem is not None:
            return problem
        if model not in self.models:
            return self.error(404, f"The model `{model}` does not exist or you do not have access to it.",
                              param="model", code="model_not_found", tag="model")
        return None

    def message_problem(self, m: Any, where: str, req: Req) -> Reply | None:
        if not isinstance(m, dict):
            return self.error(400, f"Invalid type for '{where}': expected an object.", param=where,
                              code="invalid_type")
        role = m.get("role")
        if role not in ROLES:
            return self.error(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                                   f"'function', 'tool', and 'developer'.", param=f"{where}.role",
                              code="invalid_value")
        content = m.get("content")
        if role == "assistant" and content is None and (m.get("tool_calls") or m.get("function_call")):
            pass
        elif role == "tool" and not isinstance(m.get("tool_call_id"), str):
            return self.error(400, f"Missing required parameter: '{where}.tool_call_id'.",
                              param=f"{where}.tool_call_id", code="missing_required_parameter")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                problem = self.part_problem(part, f"{where}.content[{j}]", role)
                if problem is not None:
                    return problem
        elif not isinstance(content, str):
            return self.error(400, f"Invalid type for '{where}.content': expected one of a string or array of "
                                   f"objects, but got {type(content).__name__} instead.", param=f"{where}.content",
                              code="invalid_type")
        return None

    def part_problem(self, part: Any, where: str, role: str) -> Reply | None:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in PART_TYPES:
            return self.error(400, f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                                   f"'input_audio', 'refusal' and 'file'.", param=f"{where}.type",
                              code="invalid_value")
        if kind == "text" and not isinstance(part.get("text"), str):
            return self.error(400, f"Missing required parameter: '{where}.text'.", param=f"{where}.text")
        if kind == "image_url":
            if role != "user":
                return self.error(400, f"Invalid '{where}': image content parts are only allowed in user "
                                       f"messages.", param=where)
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                return self.error(400, f"Missing required parameter: '{where}.image_url.url'.",
                                  param=f"{where}.image_url.url", tag="image")
            if image.get("detail", "auto") not in ("auto", "low", "high"):
                return self.error(400, f"Invalid value for '{where}.image_url.detail'.",
                                  param=f"{where}.image_url.detail", tag="image")
            if url.startswith("data:"):
                if not valid_data_url(url):
                    return self.error(400, "Invalid image URL: the data URL is not a base64-encoded image.",
                                      param=f"{where}.image_url.url", code="invalid_image_url", tag="image")
            elif not url.startswith(("http://", "https://")):
                return self.error(400, "Invalid image URL.", param=f"{where}.image_url.url",
                                  code="invalid_image_url", tag="image")
        return None

    def param_problem(self, body: dict[str, Any], req: Req) -> Reply | None:
        def num(name: str, lo: float, hi: float) -> Reply | None:
            v = body.get(name)
            if v is None:
                return None
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                return self.error(400, f"Invalid type for '{name}': expected a number.", param=name,
                                  code="invalid_type")
            if not lo <= v <= hi:
                which = "greater than or equal to" if v < lo else "less than or equal to"
                bound = lo if v < lo else hi
                return self.error(400, f"Invalid '{name}': decimal above maximum value. Expected a value "
                                       f"{which} {bound:g}, but got {v:g} instead." if v > hi else
                                  f"Invalid '{name}': expected a value {which} {bound:g}, but got {v:g}.",
                                  param=name, code="decimal_above_max_value" if v > hi else "decimal_below_min_value")
            return None

        def integer(name: str, lo: int, hi: int) -> Reply | None:
            v = body.get(name)
            if v is None:
                return None
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                return self.error(400, f"Invalid '{name}': expected an integer between {lo} and {hi}.",
                                  param=name, code="invalid_value")
            return None

        for problem in (num("temperature", 0, 2), num("top_p", 0, 1), num("presence_penalty", -2, 2),
                        num("frequency_penalty", -2, 2), integer("n", 1, 128),
                        integer("max_tokens", 1, 1_000_000), integer("max_completion_tokens", 1, 1_000_000),
                        integer("top_logprobs", 0, 20), integer("seed", -2**63, 2**63 - 1)):
            if problem is not None:
                return problem
        for name in ("stream", "logprobs", "parallel_tool_calls", "store"):
            if body.get(name) is not None and not isinstance(body[name], bool):
                return self.error(400, f"Invalid type for '{name}': expected a boolean.", param=name,
                                  code="invalid_type")
        if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
            return self.error(400, "Invalid value for 'top_logprobs': 'logprobs' must be set to true.",
                              param="top_logprobs")
        stop = body.get("stop")
        if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and 1 <= len(stop) <= 4
                                                              and all(isinstance(s, str) for s in stop))):
            return self.error(400, "Invalid 'stop': expected a string or an array of 1 to 4 strings.", param="stop")
        if body.get("user") is not None and not isinstance(body["user"], str):
            return self.error(400, "Invalid type for 'user': expected a string.", param="user")
        metadata = body.get("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and len(metadata) <= 16 and all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
            return self.error(400, "Invalid 'metadata': expected a map of up to 16 strings.", param="metadata")
        opts = body.get("stream_options")
        if opts is not None:
            if body.get("stream") is not True:
                return self.error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                  param="stream_options")
            if not isinstance(opts, dict) or set(opts) - {"include_usage", "include_obfuscation"}:
                return self.error(400, "Invalid 'stream_options'.", param="stream_options")
        problem = self.format_problem(body.get("response_format"))
        if problem is not None:
            return problem
        return self.tools_problem(body)

    def format_problem(self, rf: Any) -> Reply | None:
        if rf is None:
            return None
        kind = rf.get("type") if isinstance(rf, dict) else None
        if kind not in ("text", "json_object", "json_schema"):
            return self.error(400, f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', "
                                   f"and 'text'.", param="response_format.type", code="invalid_value")
        if kind == "json_schema":
            spec = rf.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or \
                    not isinstance(spec.get("schema", {}), dict):
                return self.error(400, "Invalid 'response_format.json_schema'.", param="response_format.json_schema")
            if spec.get("strict") is True:
                problem = strict_problem(spec.get("schema", {}))
                if problem:
                    return self.error(400, f"Invalid schema for response_format '{spec['name']}': {problem}.",
                                      param="response_format", code="invalid_json_schema", tag="schema")
        return None

    def tools_problem(self, body: dict[str, Any]) -> Reply | None:
        tools = body.get("tools")
        names: list[str] = []
        if tools is not None:
            if not isinstance(tools, list):
                return self.error(400, "Invalid type for 'tools': expected an array.", param="tools")
            for i, tool in enumerate(tools):
                fn = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
                    return self.error(400, f"Invalid 'tools[{i}]': expected a function tool.", param=f"tools[{i}]")
                name = fn.get("name")
                if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
                    return self.error(400, f"Invalid 'tools[{i}].function.name'.", param=f"tools[{i}].function.name")
                params = fn.get("parameters")
                if params is not None and not isinstance(params, dict):
                    return self.error(400, f"Invalid 'tools[{i}].function.parameters'.",
                                      param=f"tools[{i}].function.parameters")
                if fn.get("strict") is True:
                    problem = strict_problem(params or {"type": "object", "properties": {},
                                                        "additionalProperties": False})
                    if problem:
                        return self.error(400, f"Invalid schema for function '{name}': {problem}.",
                                          param=f"tools[{i}].function.parameters", code="invalid_function_parameters")
                names.append(name)
        choice = body.get("tool_choice")
        if choice is not None:
            if isinstance(choice, str):
                if choice not in ("none", "auto", "required"):
                    return self.error(400, f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and "
                                           f"'required'.", param="tool_choice", code="invalid_value")
                if choice != "none" and not names:
                    return self.error(400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                                           "'tools' are specified.", param="tool_choice")
            else:
                fn = choice.get("function") if isinstance(choice, dict) else None
                name = fn.get("name") if isinstance(fn, dict) else None
                if not isinstance(choice, dict) or choice.get("type") != "function" or name not in names:
                    return self.error(400, "Invalid 'tool_choice': it must name one of the functions in 'tools'.",
                                      param="tool_choice")
        if body.get("parallel_tool_calls") is not None and not names:
            return self.error(400, "Invalid value for 'parallel_tool_calls': only allowed when 'tools' are "
                                   "specified.", param="parallel_tool_calls")
        return None

    # -- context window -------------------------------------------------------------------------------
    def prompt_tokens(self, req: Req) -> int:
        total = 3
        for m in req.messages:
            total += 4 + count_tokens(message_text(m))
            if isinstance(m.get("name"), str):
                total += 1 + count_tokens(m["name"])
            if m.get("tool_calls") is not None:
                total += count_tokens(canonical(m["tool_calls"]))
            content = m.get("content")
            if isinstance(content, list):
                total += self.image_tokens * sum(1 for p in content if isinstance(p, dict)
                                                 and p.get("type") == "image_url")
        if req.tools:
            total += count_tokens(canonical(req.tools))
        return total

    def window_problem(self, req: Req, gen: Generation) -> Reply | None:
        prompt = gen.prompt_tokens
        cap = req.cap
        if prompt > self.context_tokens:
            return self.error(400, f"This model's maximum context length is {self.context_tokens} tokens. "
                                   f"However, your messages resulted in {prompt} tokens. Please reduce the length "
                                   f"of the messages.", param="messages", code="context_length_exceeded",
                              tag="context")
        if cap is not None and prompt + cap > self.context_tokens:
            return self.error(400, f"This model's maximum context length is {self.context_tokens} tokens. "
                                   f"However, you requested {prompt + cap} tokens ({prompt} in the messages, {cap} in "
                                   f"the completion). Please reduce the length of the messages or completion.",
                              param="messages", code="context_length_exceeded", tag="context")
        return None

    # -- what the model "says" --------------------------------------------------------------------------
    def compose(self, req: Req) -> str:
        """The whole answer before stop sequences and max_tokens cut it."""
        if req.format == "json_object":
            return JSON_REPLY
        if req.format == "json_schema":
            spec = req.field("response_format", {}).get("json_schema") or {}
            return json.dumps(instance_of(spec.get("schema", {}), req.user_text), ensure_ascii=False)
        last = req.messages[-1] if req.messages else {}
        if last.get("role") == "tool":
            return ROUND_TRIP_REPLY.format(message_text(last) or "nothing")
        for image in req.images:
            colour = colour_of(str(image.get("url", "")))
            if colour:
                return colour.capitalize() + "."
        if req.images:
            return "An unseen picture."
        return REPLY

    def wants_calls(self, req: Req) -> bool:
        return req.has_tools and (req.tool_choice == "required" or req.forced is not None)

    def tool_calls(self, req: Req, index: int = 0) -> list[dict[str, Any]]:
        """Calls for a forced tool_choice: one per enum value the prompt names when parallel calls are allowed."""
        tools = {t["function"]["name"]: t["function"] for t in req.tools
                 if isinstance(t.get("function"), dict) and isinstance(t["function"].get("name"), str)}
        name = req.forced or next(iter(tools))
        params = tools[name].get("parameters") or {"type": "object", "properties": {}}
        text = req.user_text
        args = [instance_of(params, text)]
        props = params.get("properties") if isinstance(params, dict) else None
        if isinstance(props, dict) and req.field("parallel_tool_calls") is not False and req.forced is None:
            for key, sub in props.items():
                enum = sub.get("enum") if isinstance(sub, dict) else None
                named = [v for v in enum or [] if isinstance(v, str) and v in text]
                if len(named) > 1:
                    named.sort(key=text.index)
                    args = [{**instance_of(params, text), key: v} for v in named]
                    break
        digest = hashlib.sha1(canonical(req.json).encode()).hexdigest()[:8]
        return [{"id": f"call_{digest}{index}{i}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(a, ensure_ascii=False)}}
                for i, a in enumerate(args)]

    def generate(self, req: Req) -> Generation:
        n = req.field("n") or 1
        choices = []
        for index in range(n):
            if self.wants_calls(req):
                calls = self.tool_calls(req, index)
                tokens = [t for c in calls for t in tokenize(c["function"]["arguments"])]
                choices.append(Choice(index, None, calls, "tool_calls", tokens))
                continue
            text = self.compose(req)
            finish = "stop"
            stops = req.field("stop")
            stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
            hits = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
            if hits:
                text = text[:min(hits)]
            tokens = tokenize(text)
            cap = req.cap
            if cap is not None and len(tokens) > cap:
                tokens, finish = tokens[:cap], "length"
            choices.append(Choice(index, "".join(tokens), None, finish, tokens))
        reasoning = ""     # a reasoning reference thinks on text requests in the reasoning style (no max_tokens)
        if self.reasoning and not req.has_tools and req.format is None and req.field("max_tokens") is None:
            visible = sum(c.completion_tokens for c in choices)
            if req.cap is None or req.cap - visible >= count_tokens(REASONING):
                reasoning = REASONING
        return Generation(choices, self.prompt_tokens(req), reasoning)

    # -- building replies -------------------------------------------------------------------------------
    def completion_id(self, req: Req) -> str:
        return "chatcmpl-ref" + hashlib.sha1(canonical(req.json).encode()).hexdigest()[:12]

    def usage(self, gen: Generation) -> dict[str, Any]:
        completion = gen.completion_tokens
        return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": completion,
                "total_tokens": gen.prompt_tokens + completion,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": gen.reasoning_tokens, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}

    def logprobs(self, req: Req, tokens: list[str]) -> dict[str, Any] | None:
        if req.field("logprobs") is not True:
            return None
        top = req.field("top_logprobs") or 0
        entries = []
        for i, tok in enumerate(tokens):
            lp = -0.01 * (i + 1)
            alts = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())},
                    {"token": " the", "logprob": lp - 2.5, "bytes": list(b" the")},
                    {"token": ".", "logprob": lp - 4.0, "bytes": [46]}]
            entries.append({"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": alts[:top]})
        return {"content": entries, "refusal": None}

    def completion(self, req: Req, gen: Generation | None = None) -> dict[str, Any]:
        """The non-streamed chat.completion for `req` (hooks not applied)."""
        gen = gen or self.generate(req)
        choices = []
        for c in gen.choices:
            message: dict[str, Any] = {"role": "assistant", "content": c.content, "refusal": None}
            if c.tool_calls is not None:
                message["tool_calls"] = c.tool_calls
            choices.append({"index": c.index, "message": message,
                            "logprobs": self.logprobs(req, c.tokens) if c.tool_calls is None else None,
                            "finish_reason": c.finish})
        return {"id": self.completion_id(req), "object": "chat.completion", "created": CREATED,
                "model": req.field("model"), "choices": choices, "usage": self.usage(gen),
                "service_tier": "default", "system_fingerprint": FINGERPRINT}

    def completion_reply(self, req: Req, gen: Generation) -> Reply:
        body = self.completion(req, gen)
        for hook in self.hooks("completion"):
            got = hook(body, req)
            body = got if got is not None else body
        return Reply(200, body, kind="completion")

    def chunks(self, req: Req, gen: Generation | None = None) -> list[dict[str, Any]]:
        """The chunk objects of the streamed reply to `req` (hooks not applied; `[DONE]` not included)."""
        gen = gen or self.generate(req)
        usage = isinstance(req.field("stream_options"), dict) and req.field("stream_options").get("include_usage") is True
        base = {"id": self.completion_id(req), "object": "chat.completion.chunk", "created": CREATED,
                "model": req.field("model"), "service_tier": "default", "system_fingerprint": FINGERPRINT}
        extra = {"usage": None} if usage else {}

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                                         "finish_reason": finish}], **extra}

        out = []
        for c in gen.choices:
            if c.tool_calls is not None:
                out.append(chunk(c.index, {"role": "assistant", "content": None, "refusal": None}))
                for i, call in enumerate(c.tool_calls):
                    out.append(chunk(c.index, {"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                               "function": {"name": call["function"]["name"],
                                                                            "arguments": ""}}]}))
                    for piece in tokenize(call["function"]["arguments"]):
                        out.append(chunk(c.index, {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
            else:
                out.append(chunk(c.index, {"role": "assistant", "content": "", "refusal": None}))
                lp = self.logprobs(req, c.tokens)
                for i, tok in enumerate(c.tokens):
                    piece_lp = {"content": [lp["content"][i]], "refusal": None} if lp else None
                    out.append(chunk(c.index, {"content": tok}, logprobs=piece_lp))
            out.append(chunk(c.index, {}, c.finish))
        if usage:
            out.append({**base, "choices": [], "usage": self.usage(gen)})
        return out

    def stream_reply(self, req: Req, gen: Generation) -> Reply:
        chunks = self.chunks(req, gen)
        for hook in self.hooks("chunks"):
            got = hook(chunks, req)
            chunks = got if got is not None else chunks
        events = [self.event(c) if not isinstance(c, bytes) else c for c in chunks] + [self.event("[DONE]")]
        for hook in self.hooks("events"):
            got = hook(events, req)
            events = got if got is not None else events
        if self.framing.comments:
            spaced: list[bytes] = [self.line(b": ref-server stream")]
            for i, ev in enumerate(events):
                if i and i % 3 == 0:
                    spaced.append(self.line(b": keep-alive") + self.line(b""))
                spaced.append(ev)
            events = spaced
        return Reply(200, events=events, content_type="text/event-stream; charset=utf-8",
                     headers=[("cache-control", "no-cache")], kind="stream")

    # -- bytes ---------------------------------------------------------------------------------------
    def line(self, text: bytes) -> bytes:
        return text + (b"\r\n" if self.framing.crlf else b"\n")

    def encode(self, payload: Any) -> bytes:
        if self.framing.extra_fields:
            payload = _extend(payload)
        if self.framing.reorder_keys:
            payload = _reverse(payload)
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def event(self, payload: Any) -> bytes:
        """One SSE event: `data: <json>` and a blank line (framing variants applied)."""
        data = b"[DONE]" if payload == "[DONE]" else self.encode(payload)
        return self.line((b"data:" if self.framing.no_space else b"data: ") + data) + self.line(b"")

    def headers(self, reply: Reply, req_id: str) -> list[tuple[str, str]]:
        base = [("x-request-id", req_id), ("openai-version", "2020-10-01"),
                ("x-ratelimit-limit-requests", "10000"), ("x-ratelimit-remaining-requests", "9999"),
                ("x-ratelimit-reset-requests", "6ms"), ("x-ratelimit-limit-tokens", "200000"),
                ("x-ratelimit-remaining-tokens", "199990"), ("x-ratelimit-reset-tokens", "3ms")]
        if reply.content_type:
            base.insert(0, ("content-type", reply.content_type))
        return base + reply.headers

    async def write(self, reply: Reply, resp: WireResponse) -> None:
        req_id = "req_" + hashlib.sha1(repr((reply.status, reply.kind, reply.tag)).encode()).hexdigest()[:16]
        if reply.drop:
            resp.reset()
            return
        headers = self.headers(reply, req_id)
        piece = reply.piece or self.framing.split
        budget = reply.cut
        if reply.events is not None:
            await resp.start(reply.status, headers, chunked=True)
            for ev in reply.events:
                for part in _pieces(ev, piece):
                    if budget is not None:
                        if budget <= 0:
                            break
                        part, budget = part[:budget], budget - len(part)
                    await resp.send(part)
                    if reply.pace:
                        await resp.pause(reply.pace)
                    elif piece:
                        await resp.pause(0)
            if reply.cut is None and reply.after is None:
                await resp.end()
        else:
            if reply.raw is not None:
                body = reply.raw
            elif reply.payload is not None:
                body = self.encode(reply.payload)
                if self.framing.comments:
                    body = b"\n\n" + body
            else:
                body = b""
            if not any(k.lower() == "content-length" for k, _ in headers):
                headers.append(("content-length", str(len(body))))
            await resp.start(reply.status, headers, chunked=False)
            for part in _pieces(body, piece):
                if budget is not None:
                    if budget <= 0:
                        break
                    part, budget = part[:budget], budget - len(part)
                await resp.send(part)
                if reply.pace:
                    await resp.pause(reply.pace)
                elif piece:
                    await resp.pause(0)
        if reply.after == "reset":
            resp.reset()
        elif reply.after == "close":
            resp.close()
        elif reply.after == "hang":
            await resp.pause(HANG_SECONDS)
            resp.close()


def _pieces(data: bytes, size: int) -> list[bytes]:
    if not size or len(data) <= size:
        return [data]
    return [data[i:i + size] for i in range(0, len(data), size)]


# -- compatibility helpers (tests/test_plugin.py, tests/test_session.py) ----------------------------------

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


conformant = Reference()


def now() -> float:
    return time.time()


# -- a hostile vendor (issue 19) ----------------------------------------------------------------------------------
#
# EMULATED, test equipment only: the misbehaviours a hostile or broken OpenAI-compatible server can show, as
# measured against the harness in issue 19 (a server on 127.0.0.1 that echoed the planted key in disguise, sent
# 40 MB bodies, a million 1-byte chunks, never answered, or sent huge headers). No vendor is known to do these;
# the harness must survive them with bounded memory and time and no key in any file it writes.

def key_encodings(key: str) -> dict[str, str]:
    """The planted key in every disguise the scrubber must see through (and the tests search files for)."""
    raw = key.encode()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return {
        "raw": key,
        "json-escaped": "".join(f"\\u{ord(c):04x}" for c in key),
        "json-escaped-upper": "".join(f"\\u{ord(c):04X}" for c in key),
        "json-mixed": "".join(f"\\u{ord(c):04x}" if i % 3 == 1 else c for i, c in enumerate(key)),
        "base64": b64(raw),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "basic-auth": b64(b"user:" + raw),                    # the key one byte into a longer base64 string
        "basic-auth-2": b64(b"us:" + raw + b"!"),
        "basic-auth-3": b64(b"u:" + raw + b"?>"),
        "url-encoded": "".join(f"%{b:02X}" for b in raw),
        "url-encoded-lower": "".join(f"%{b:02x}" if i % 2 else chr(b) for i, b in enumerate(raw)),
        "hex": raw.hex(),
        "hex-upper": raw.hex().upper(),
        "reversed": key[::-1],
    }


def _b64_cores(raw: bytes) -> list[str]:
    cores = []
    for lead in range(3):
        text = base64.b64encode(b"\0" * lead + raw).decode().rstrip("=")
        cores.append(text[-(-8 * lead // 6):(8 * (lead + len(raw))) // 6])
    return cores


def key_traces(key: str) -> list[tuple[str, str]]:
    """(name, text) pairs whose presence in a file means the key leaked: the plain forms, and the base64 and
    base64url fragments that encode it at each alignment inside a longer base64 string. Hex is searched
    case-insensitively by the caller (`find_key_traces`)."""
    raw = key.encode()
    forms = [(n, v) for n, v in key_encodings(key).items() if not n.startswith(("base64", "basic-auth"))]
    for i, core in enumerate(_b64_cores(raw)):
        forms.append((f"base64@{i}", core))
        forms.append((f"base64url@{i}", core.replace("+", "-").replace("/", "_")))
    return forms


def find_key_traces(key: str, text: str) -> list[str]:
    """Names of the key's forms found in `text` (hex and percent-encoding in either case)."""
    found = []
    lowered = text.lower()
    for name, form in key_traces(key):
        if name.startswith(("hex", "url-encoded")) or name == "json-escaped-upper":
            if form.lower() in lowered:
                found.append(name)
        elif form in text:
            found.append(name)
    return found


HOSTILE_MODES = ("echo-escaped", "echo-base64", "echo-hex", "echo-urlencoded", "echo-reversed", "echo-gzip",
                 "echo-all", "huge-body", "million-chunks", "never-answers", "drip", "huge-headers")
HUGE_BODY_BYTES = 40 * 1024 * 1024


@dataclass
class Hostile:
    """A handler that misbehaves on POST /v1/chat/completions according to `mode` and passes every other
    request to `base` (the conformant Reference by default)."""
    mode: str
    key: str
    base: Handler | None = None
    hang_seconds: float = HANG_SECONDS
    huge_bytes: int = HUGE_BODY_BYTES      # the size of the huge-body reply

    async def __call__(self, wire: WireRequest, resp: WireResponse) -> None:
        if wire.method != "POST" or not wire.path.startswith("/v1/chat/completions"):
            await (self.base or conformant)(wire, resp)
            return
        body = wire.json()
        stream = isinstance(body, dict) and body.get("stream") is True
        await getattr(self, "_" + self.mode.replace("-", "_").split("_", 1)[0])(resp, stream)

    # -- the key in disguise -------------------------------------------------------------------------------
    def _echoed(self) -> dict[str, str]:
        forms = key_encodings(self.key)
        wanted = {"echo-escaped": ("json-escaped", "json-mixed"), "echo-base64": ("base64", "base64url", "basic-auth",
                  "basic-auth-2", "basic-auth-3"), "echo-hex": ("hex", "hex-upper"),
                  "echo-urlencoded": ("url-encoded", "url-encoded-lower"), "echo-reversed": ("reversed",),
                  "echo-gzip": ("raw", "json-escaped")}.get(self.mode, tuple(forms))
        return {name: forms[name] for name in wanted}

    def _completion(self, forms: dict[str, str]) -> bytes:
        """A chat.completion whose `object` is the key (JSON-escaped when that is the mode: a check that quotes
        `object` then quotes the decoded key) and whose content lists every form."""
        doc = completion_body("@CONTENT@")
        doc["object"] = "@OBJECT@"
        text = json.dumps(doc)
        content = " ".join(f"{name}={value}" for name, value in forms.items())
        obj = forms.get("json-escaped") or next(iter(forms.values()))
        # the forms are already JSON text (\u escapes stay escapes); only quotes and backslashes of others need care
        return text.replace("@CONTENT@", content.replace('"', '\\"')).replace("@OBJECT@", obj).encode()

    async def _echo(self, resp: WireResponse, stream: bool) -> None:
        forms = self._echoed()
        plain = [v for k, v in forms.items() if not k.startswith("json")]
        header_form = plain[0] if plain else "".join(chr(int(forms[k][i + 2:i + 6], 16))   # decoded JSON escapes
                                                     for k in ("json-escaped",) for i in range(0, len(forms[k]), 6))
        if stream:
            content = " ".join(f"{name}={value}" for name, value in forms.items())
            chunk = {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
                     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "@C@"}, "finish_reason": None}]}
            events = [b"data: " + json.dumps(chunk).replace("@C@", content).encode() + b"\n\n", b"data: [DONE]\n\n"]
            payload, ctype = b"".join(events), "text/event-stream"
        else:
            payload, ctype = self._completion(forms), "application/json"
        headers = [("content-type", ctype), ("x-echo", header_form)]
        if self.mode == "echo-gzip":
            payload = gzip_bytes(payload)
            headers.append(("content-encoding", "gzip"))
        await resp.start(200, headers + [("content-length", str(len(payload)))], chunked=False)
        await resp.send(payload)

    # -- too much, too slow, never -----------------------------------------------------------------------
    async def _huge(self, resp: WireResponse, stream: bool) -> None:
        if self.mode == "huge-headers":
            headers = [("content-type", "application/json")] + [(f"x-pad-{i}", "v" * 4000) for i in range(64)]
            payload = json.dumps(completion_body()).encode()
            await resp.start(200, headers + [("content-length", str(len(payload)))], chunked=False)
            await resp.send(payload)
            return
        piece = b'{"pad": "' + b"x" * (1024 * 1024 - 10) + b'"}'
        await resp.start(200, [("content-type", "application/json"), ("content-length", str(self.huge_bytes))],
                         chunked=False)
        for _ in range(self.huge_bytes // len(piece)):
            await resp.send(piece)
        await resp.send(b" " * (self.huge_bytes % len(piece)))

    async def _million(self, resp: WireResponse, stream: bool) -> None:
        await resp.start(200, [("content-type", "text/event-stream" if stream else "application/json")], chunked=True)
        for i in range(1_000_000):
            resp.writer.write(b"1\r\n \r\n")          # one 1-byte chunk of chunked transfer encoding
            if i % 64 == 0:
                await resp.writer.drain()
        await resp.end()

    async def _never(self, resp: WireResponse, stream: bool) -> None:
        await asyncio.sleep(self.hang_seconds)
        resp.close()

    async def _drip(self, resp: WireResponse, stream: bool) -> None:
        payload = json.dumps(completion_body("drip " * 200)).encode()
        await resp.start(200, [("content-type", "application/json"), ("content-length", str(len(payload)))],
                         chunked=False)
        for i in range(len(payload)):
            await resp.send(payload[i:i + 1])
            await asyncio.sleep(0.05)


def gzip_bytes(data: bytes) -> bytes:
    import gzip
    return gzip.compress(data, mtime=0)
