"""A parsed view of a streamed chat completion: SSE events → JSON chunks → per-choice deltas.

Pure and total: bytes that are not JSON, chunks that are not objects, choices without an index are
kept as data for the checks to name, never raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..exchange import Exchange
from ..sse import SSEEvent, SSEParseResult


@dataclass(frozen=True)
class StreamChunk:
    event: SSEEvent
    obj: Any            # parsed JSON, or None when `error` is set
    error: str | None   # why the data is not JSON

    @property
    def is_object(self) -> bool:
        return isinstance(self.obj, dict)

    def choices(self) -> list[dict[str, Any]]:
        if not isinstance(self.obj, dict):
            return []
        ch = self.obj.get("choices")
        return [c for c in ch if isinstance(c, dict)] if isinstance(ch, list) else []


@dataclass(frozen=True)
class StreamView:
    parse: SSEParseResult
    chunks: tuple[StreamChunk, ...]           # data events before [DONE]
    after_done: tuple[SSEEvent, ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.parse.done_index is not None

    @cached_property
    def objects(self) -> list[dict[str, Any]]:
        return [c.obj for c in self.chunks if isinstance(c.obj, dict)]

    @cached_property
    def non_json(self) -> list[StreamChunk]:
        return [c for c in self.chunks if c.error is not None]

    @cached_property
    def error_chunks(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if o.get("error")]

    def deltas(self, index: int = 0) -> list[dict[str, Any]]:
        out = []
        for o in self.objects:
            for ch in _choices(o):
                if isinstance(ch, dict) and ch.get("index", 0) == index and isinstance(ch.get("delta"), dict):
                    out.append(ch["delta"])
        return out

    def content(self, index: int = 0) -> str:
        return "".join(d["content"] for d in self.deltas(index) if isinstance(d.get("content"), str))

    def choice_entries(self, index: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """(chunk position, choice dict) for every chunk that carries choice `index`."""
        out = []
        for pos, o in enumerate(self.objects):
            for ch in _choices(o):
                if isinstance(ch, dict) and ch.get("index", 0) == index:
                    out.append((pos, ch))
        return out

    def finish_reasons(self, index: int = 0) -> list[tuple[int, Any]]:
        return [(pos, ch.get("finish_reason")) for pos, ch in self.choice_entries(index)
                if ch.get("finish_reason") is not None]

    def usage_chunks(self) -> list[tuple[int, dict[str, Any]]]:
        return [(pos, o) for pos, o in enumerate(self.objects) if o.get("usage") is not None]


def _choices(obj: dict[str, Any]) -> list[Any]:
    choices = obj.get("choices")
    return choices if isinstance(choices, list) else []


def stream_view(ex: Exchange) -> StreamView:
    parse = ex.sse
    done = parse.done_index
    events = parse.events if done is None else parse.events[:done]
    chunks = []
    for ev in events:
        try:
            chunks.append(StreamChunk(ev, json.loads(ev.data), None))
        except (ValueError, RecursionError) as exc:
            chunks.append(StreamChunk(ev, None, f"{type(exc).__name__}: {exc}"))
    after = parse.events[done + 1:] if done is not None else ()
    return StreamView(parse, tuple(chunks), tuple(after))


def event_line(ev: SSEEvent) -> str:
    text = ev.data if len(ev.data) <= 300 else ev.data[:300] + "…"
    prefix = f"event: {ev.event} " if ev.event else ""
    return f"< {prefix}data: {text}"
