"""Reading tool calls: a non-streamed reply's `message.tool_calls` (`Reply`), the `delta.tool_calls`
entries of a stream (`Streamed`, `Entry`, `Accumulated`) and a tool call left unparsed in `content`.

Registers nothing; the tools checks (checks/tools.py) read exchanges through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ..exchange import Exchange, Request
from ..sse import SSEEvent
from .base import (
    Blocked,
    compact,
    error_shape,
    evidence,
    first_choice,
    is_int,
    parse_json,
    require_success,
    schema_error,
)
from .streamview import StreamView, event_line, stream_view

# owners: the checks that report what blocks the others
NONE_CHECK = "tools.choice-none"
REQUIRED_ACCEPTED = "tools.choice-required-accepted"
NAMED_ACCEPTED = "tools.choice-named-accepted"
NAMED_CALLED = "tools.choice-named-called"
IN_CONTENT = "tools.call-not-in-content"
ARGS_VALID = "tools.arguments-valid"
FINISH = "tools.finish-reason"
PARALLEL_CALLED = "tools.parallel-called"
STREAM_ACCEPTED = "tools.stream-accepted"
STREAM_CALLED = "tools.stream-called"
ROUND_TRIP = "tools.round-trip"


# -- reading replies --------------------------------------------------------------------------------

def has_tools(req: Request) -> bool:
    tools = req.field("tools")
    return isinstance(tools, list) and bool(tools)


def streamed_tools(req: Request) -> bool:
    return req.stream and has_tools(req)


def nonempty_str(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def offered_functions(req: Request) -> dict[str, Any]:
    """Function name → parameters schema (None when absent) for each function tool in the request."""
    out: dict[str, Any] = {}
    tools = req.field("tools")
    if isinstance(tools, list):
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                out[fn["name"]] = fn.get("parameters")
    return out


def forced_name(req: Request) -> str | None:
    choice = req.field("tool_choice")
    fn = choice.get("function") if isinstance(choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None


@dataclass(frozen=True)
class Reply:
    """A non-streamed 200 reply: choice, message and its tool_calls (a list; [] when absent or not a list)."""
    ex: Exchange
    choice: dict[str, Any]
    message: dict[str, Any]
    calls: list[Any]

    @property
    def finish(self) -> Any:
        return self.choice.get("finish_reason")

    @property
    def content(self) -> Any:
        return self.message.get("content")

    def line(self, what: str, value: Any) -> str:
        return f"< {what}: {compact(value)}"


def reply(ex: Exchange, owner: str) -> Reply:
    """The reply of a non-streamed exchange, else Blocked naming `owner`."""
    body = require_success(ex, owner)
    choice = first_choice(body, owner, ex)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise Blocked("choices[0] has no message object", owner, ex)
    calls = message.get("tool_calls")
    return Reply(ex, choice, message, calls if isinstance(calls, list) else [])


def try_reply(ex: Exchange) -> Reply | None:
    try:
        return reply(ex, "")
    except Blocked:
        return None


def call_function(call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    return fn if isinstance(fn, dict) else {}


def calls_or_block(exchanges: Sequence[Exchange]) -> list[Reply]:
    """Replies among `exchanges` (the first being tools.named) that carry tool calls, else Blocked."""
    found = [r for r in map(try_reply, exchanges) if r is not None and r.calls]
    if not found:
        owner = NAMED_CALLED if try_reply(exchanges[0]) is not None else NAMED_ACCEPTED
        raise Blocked(f"none of the {len(exchanges)} replies carries tool_calls", owner, exchanges[0])
    return found


_CALL_MARKERS = ("<tool_call>", "<|tool_call", "[TOOL_CALLS]", "<function=", "<functioncall>", "<|python_tag|>")


def call_in_content(content: Any, req: Request) -> str | None:
    """Why `content` looks like a tool call the server did not parse into tool_calls (None if it does not)."""
    if not isinstance(content, str) or not content.strip():
        return None
    for marker in _CALL_MARKERS:
        if marker in content:
            return f"content contains {marker!r}"
    text = content.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    ok, value, _ = parse_json(text)
    if not ok:
        return None
    offered = offered_functions(req)
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            name = item.get("name")
            if not isinstance(name, str) and isinstance(item.get("function"), dict):
                name = item["function"].get("name")
            if isinstance(name, str) and name in offered:
                return f"content is JSON naming the offered function {name!r}"
    forced = forced_name(req)
    if forced in offered and isinstance(value, dict) and value and schema_error(value, offered[forced]) is None:
        return f"content is a JSON object that validates as the arguments of {forced!r}"
    return None


# -- reading streams --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One element of a `delta.tool_calls` array, with the event that carried it."""
    n: int
    event: SSEEvent
    value: Any

    @property
    def index(self) -> Any:
        return self.value.get("index") if isinstance(self.value, dict) else None

    @property
    def function(self) -> dict[str, Any]:
        return call_function(self.value)


@dataclass
class Streamed:
    ex: Exchange
    view: StreamView
    entries: list[Entry] = field(default_factory=list)
    finish: Any = None
    content: str = ""
    legacy: list[tuple[SSEEvent, Any]] = field(default_factory=list)

    def by_index(self) -> dict[int, list[Entry]]:
        out: dict[int, list[Entry]] = {}
        for e in self.entries:
            if is_int(e.index):
                out.setdefault(e.index, []).append(e)
        return out


@dataclass(frozen=True)
class Accumulated:
    """One streamed call put together: first id/type/name, concatenated string arguments."""
    index: int
    entries: list[Entry]

    def _first(self, get: Any) -> Any:
        for e in self.entries:
            value = get(e)
            if nonempty_str(value):
                return value
        return None

    @property
    def id(self) -> Any:
        return self._first(lambda e: e.value.get("id") if isinstance(e.value, dict) else None)

    @property
    def name(self) -> Any:
        return self._first(lambda e: e.function.get("name"))

    @property
    def arguments(self) -> str:
        return "".join(a for a in (e.function.get("arguments") for e in self.entries) if isinstance(a, str))


def streamed(ex: Exchange, owner: str) -> Streamed:
    """The tool-call deltas of choice 0 of a streamed exchange, else Blocked naming `owner`."""
    if ex.status != 200:
        raise Blocked(f"the stream was not answered 200: {error_shape(ex)}", owner, ex)
    try:
        view = stream_view(ex)
    except RecursionError:
        raise Blocked("a stream chunk is JSON nested too deeply to read", owner, ex) from None
    if not view.objects:
        raise Blocked(f"no JSON chunk in the stream ({len(view.chunks)} data events)", owner, ex)
    out = Streamed(ex, view)
    for chunk in view.chunks:
        for ch in chunk.choices():
            if ch.get("index", 0) != 0:
                continue
            if ch.get("finish_reason") is not None:
                out.finish = ch.get("finish_reason")
            delta = ch.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                out.content += delta["content"]
            if delta.get("function_call") is not None:
                out.legacy.append((chunk.event, delta["function_call"]))
            calls = delta.get("tool_calls")
            if isinstance(calls, dict):
                calls = [calls]
            if isinstance(calls, list):
                for value in calls:
                    out.entries.append(Entry(len(out.entries), chunk.event, value))
    return out


def try_streamed(ex: Exchange) -> Streamed | None:
    try:
        return streamed(ex, "")
    except Blocked:
        return None


def streams_with_calls(exchanges: Sequence[Exchange]) -> list[Streamed]:
    """Streams among `exchanges` (the first being tools.named-stream) that carry tool-call deltas."""
    found = [s for s in map(try_streamed, exchanges) if s is not None and s.entries]
    if not found:
        owner = STREAM_CALLED if try_streamed(exchanges[0]) is not None else STREAM_ACCEPTED
        raise Blocked(f"none of the {len(exchanges)} streams carries tool-call deltas", owner, exchanges[0])
    return found


def stream_lines(ex: Exchange, *items: Entry | SSEEvent) -> list[str]:
    """Evidence for a stream: each tool-call entry as sent (with its byte offset), or a whole event."""
    return evidence(ex, *(f"< delta.tool_calls[] at byte {i.event.offset}: {compact(i.value)}"
                          if isinstance(i, Entry) else event_line(i) for i in items))
