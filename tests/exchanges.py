"""Hand-built Exchanges for unit tests of checks. Test inputs only: never written as cassettes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oaicompat.checks.base import Blocked, Observation, QuirkFound, spec_of
from oaicompat.exchange import Chunk, Exchange, Request, TransportFailure


def request(body: Any = None, *, path: str = "/chat/completions", method: str = "POST", raw: bytes | None = None) -> Request:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return Request(method=method, url="http://test.invalid/v1" + path, path=path, headers=(), body=data)


def json_exchange(payload: Any, *, status: int = 200, req: Any = None, content_type: str = "application/json",
                  headers: tuple[tuple[str, str], ...] = ()) -> Exchange:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req_body = req if req is not None else {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return Exchange(request=request(req_body), status=status,
                    headers=(("content-type", content_type), *headers), chunks=(Chunk(0.01, body),), elapsed=0.02)


def sse_exchange(events: list[Any] | bytes, *, req: Any = None, done: bool = True, status: int = 200,
                 content_type: str = "text/event-stream", split: int | None = None,
                 failure: TransportFailure | None = None) -> Exchange:
    """events: JSON-able chunk objects (each sent as `data: {json}\\n\\n`), or the raw bytes of the body."""
    if isinstance(events, bytes):
        raw = events
    else:
        raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
        if done:
            raw += b"data: [DONE]\n\n"
    req_body = req if req is not None else {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    if split:
        chunks = tuple(Chunk(0.01 * (n + 1), raw[i:i + split]) for n, i in enumerate(range(0, len(raw), split)))
    else:
        chunks = (Chunk(0.01, raw),) if raw else ()
    return Exchange(request=request(req_body), status=status, headers=(("content-type", content_type),),
                    chunks=chunks, failure=failure, elapsed=0.05)


def completion(content: str = "Hello", *, finish_reason: str = "stop", **extra: Any) -> dict[str, Any]:
    """A conformant non-streamed chat.completion body."""
    body = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_726_012_687, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    body.update(extra)
    return body


def chunk(delta: dict[str, Any] | None = None, *, finish_reason: str | None = None, index: int = 0,
          choices: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A conformant chat.completion.chunk."""
    c = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_726_012_687, "model": "m",
         "choices": choices if choices is not None else
         [{"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}]}
    c.update(extra)
    return c


def quirk_of(fn, *exs: Exchange) -> str:
    """The quirk id the check `fn` raises on these exchanges (fails the test if it raises none)."""
    with pytest.raises(QuirkFound) as info:
        spec_of(fn).run(*exs)
    return info.value.quirk


def blocked_by(fn, *exs: Exchange) -> str:
    """The owner named by the Blocked the check `fn` raises on these exchanges."""
    with pytest.raises(Blocked) as info:
        spec_of(fn).run(*exs)
    return info.value.owner


def passes(fn, *exs: Exchange) -> list[Observation]:
    """The observations of a check that passes on these exchanges."""
    return spec_of(fn).run(*exs)
