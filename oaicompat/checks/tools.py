"""Function tools: tool_choice, the shape of tool calls, streamed tool-call deltas and the tool round trip
(openai-wire.md §1.2 MSG-4/6, §1.4 TOOLS-1..7, §2 RESP-MSG-2..5, §4.4 TOOLS-DELTA-1..7, §10).

The model behind a provider may be too weak to call a tool on its own. So: "the request is accepted" and
"a tool call, when present, has the right shape" are protocol checks; "a call is made", "the arguments
validate", "two calls in parallel" are `kind="capability"` checks. A shape check with no tool call to look
at raises Blocked naming the capability check that reports the missing call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

from ..exchange import Exchange, Request
from ..paths import SCHEMAS
from ..sse import SSEEvent
from ..transport import RequestSpec
from .base import (Blocked, Observation, ProbeContext, QuirkFound, check, clip, compact, error_shape, evidence,
                   first_choice, is_int, parse_json, probe, require_success, schema_error)
from .streamview import StreamView, event_line, stream_view

PROBE_SCHEMAS = SCHEMAS / "probes"
FUNCTION = "get_weather"
NAMED_CHOICE = {"type": "function", "function": {"name": FUNCTION}}
PROMPT = "What is the weather in Paris? Call get_weather."
PARALLEL_PROMPT = "What is the weather in Paris and in Tokyo? Call get_weather twice, once for each city."
CJK_PROMPT = "東京の天気は？ get_weather を呼んでください。"
SUBJECT = ("tools", "tool_choice", "parallel_tool_calls", "stream", "messages")

# owners: the checks that report what blocks the others
ACCEPTED = "tools.accepted"
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

SHAPE_PROBES = ["tools.named", "tools.required", "tools.auto"]
STREAM_PROBES = ["tools.named-stream", "tools.parallel-stream"]


# -- probes -----------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _schema_text(name: str) -> str:
    return (PROBE_SCHEMAS / name).read_text(encoding="utf-8")


def load_probe_schema(name: str) -> dict[str, Any]:
    """A fresh copy of fixtures/schemas/probes/<name> (probes may not share mutable request parts)."""
    return json.loads(_schema_text(name))


def weather_tool(parameters: str = "get_weather.parameters.json", *, strict: bool | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": FUNCTION, "description": "Get the current weather in a city.",
                                "parameters": load_probe_schema(parameters)}
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def _tool_request(ctx: ProbeContext, prompt: str = PROMPT, *, tools: list[dict[str, Any]] | None = None,
                  max_tokens: int = 32, messages: list[dict[str, Any]] | None = None, **fields: Any) -> RequestSpec:
    msgs = messages if messages is not None else [{"role": "user", "content": prompt}]
    return RequestSpec(json=ctx.chat(msgs, subject=SUBJECT, tools=tools or [weather_tool()],
                                     max_tokens=max_tokens, temperature=0, **fields))


@probe("tools.basic")
def basic(ctx: ProbeContext) -> RequestSpec:
    """One function tool, no tool_choice (the default, auto)."""
    return _tool_request(ctx)


@probe("tools.none")
def choice_none(ctx: ProbeContext) -> RequestSpec:
    """One function tool with tool_choice "none"."""
    return _tool_request(ctx, tool_choice="none")


@probe("tools.auto")
def choice_auto(ctx: ProbeContext) -> RequestSpec:
    """One function tool with tool_choice "auto"."""
    return _tool_request(ctx, tool_choice="auto")


@probe("tools.required")
def choice_required(ctx: ProbeContext) -> RequestSpec:
    """One function tool with tool_choice "required"."""
    return _tool_request(ctx, tool_choice="required")


@probe("tools.named")
def choice_named(ctx: ProbeContext) -> RequestSpec:
    """One function tool, forced with the named tool_choice object."""
    return _tool_request(ctx, tool_choice=NAMED_CHOICE)


@probe("tools.named-stream")
def choice_named_stream(ctx: ProbeContext) -> RequestSpec:
    """tools.named, streamed (same body plus stream: true)."""
    return _tool_request(ctx, tool_choice=NAMED_CHOICE, stream=True)


@probe("tools.strict")
def strict_named(ctx: ProbeContext) -> RequestSpec:
    """tools.named with `strict: true` on the function (its parameters obey the strict subset)."""
    return _tool_request(ctx, tools=[weather_tool(strict=True)], tool_choice=NAMED_CHOICE)


@probe("tools.cjk")
def cjk_named(ctx: ProbeContext) -> RequestSpec:
    """A forced call whose only valid argument values are Japanese city names."""
    return _tool_request(ctx, CJK_PROMPT, tools=[weather_tool("get_weather_ja.parameters.json")],
                         tool_choice=NAMED_CHOICE)


@probe("tools.parallel")
def parallel(ctx: ProbeContext) -> RequestSpec:
    """Asks for two calls, tool_choice "required" (64 tokens: two calls do not fit in 32)."""
    return _tool_request(ctx, PARALLEL_PROMPT, tool_choice="required", max_tokens=64)


@probe("tools.parallel-stream")
def parallel_stream(ctx: ProbeContext) -> RequestSpec:
    """tools.parallel, streamed."""
    return _tool_request(ctx, PARALLEL_PROMPT, tool_choice="required", max_tokens=64, stream=True)


@probe("tools.parallel-off")
def parallel_off_request(ctx: ProbeContext) -> RequestSpec:
    """tools.parallel with parallel_tool_calls: false."""
    return _tool_request(ctx, PARALLEL_PROMPT, tool_choice="required", max_tokens=64, parallel_tool_calls=False)


def _round_trip_messages(tool_content: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc123", "type": "function",
             "function": {"name": FUNCTION, "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": tool_content},
    ]


@probe("tools.round-trip")
def round_trip(ctx: ProbeContext) -> RequestSpec:
    """Assistant message with a tool call, then the tool's answer (string content); tool_choice "none"."""
    return _tool_request(ctx, messages=_round_trip_messages("18 C, sunny"), tool_choice="none")


@probe("tools.round-trip-parts")
def round_trip_parts(ctx: ProbeContext) -> RequestSpec:
    """tools.round-trip with the tool message content as an array of text parts."""
    return _tool_request(ctx, messages=_round_trip_messages([{"type": "text", "text": "18 C, sunny"}]),
                         tool_choice="none")


# -- reading replies --------------------------------------------------------------------------------

def _has_tools(req: Request) -> bool:
    tools = req.field("tools")
    return isinstance(tools, list) and bool(tools)


def _streamed_tools(req: Request) -> bool:
    return req.stream and _has_tools(req)


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _offered(req: Request) -> dict[str, Any]:
    """Function name → parameters schema (None when absent) for each function tool in the request."""
    out: dict[str, Any] = {}
    tools = req.field("tools")
    if isinstance(tools, list):
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                out[fn["name"]] = fn.get("parameters")
    return out


def _forced(req: Request) -> str | None:
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


def _function(call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    return fn if isinstance(fn, dict) else {}


def _calls_or_block(exchanges: Sequence[Exchange]) -> list[Reply]:
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
    offered = _offered(req)
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            name = item.get("name")
            if not isinstance(name, str) and isinstance(item.get("function"), dict):
                name = item["function"].get("name")
            if isinstance(name, str) and name in offered:
                return f"content is JSON naming the offered function {name!r}"
    forced = _forced(req)
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
        return _function(self.value)


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
            if _nonempty_str(value):
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


def _streams_with_calls(exchanges: Sequence[Exchange]) -> list[Streamed]:
    """Streams among `exchanges` (the first being tools.named-stream) that carry tool-call deltas."""
    found = [s for s in map(try_streamed, exchanges) if s is not None and s.entries]
    if not found:
        owner = STREAM_CALLED if try_streamed(exchanges[0]) is not None else STREAM_ACCEPTED
        raise Blocked(f"none of the {len(exchanges)} streams carries tool-call deltas", owner, exchanges[0])
    return found


def _stream_lines(ex: Exchange, *items: Entry | SSEEvent) -> list[str]:
    """Evidence for a stream: each tool-call entry as sent (with its byte offset), or a whole event."""
    return evidence(ex, *(f"< delta.tool_calls[] at byte {i.event.offset}: {compact(i.value)}"
                          if isinstance(i, Entry) else event_line(i) for i in items))


# -- acceptance and tool_choice ----------------------------------------------------------------------

def _accepted(ex: Exchange, quirk: str, what: str) -> None:
    """Answered 200 with a JSON object, else `quirk` naming the status and the error shape."""
    if ex.status == 200:
        try:
            if isinstance(ex.json, dict):
                return
        except (ValueError, RecursionError):
            pass
    raise QuirkFound(quirk, f"{what}: {error_shape(ex)}", ex, evidence(ex))


@check(ACCEPTED, rule="TOOLS-1", probes=["tools.basic"], quirks=["tools.rejected"], needs=("tools",),
       applies=_has_tools)
def accepted(ex: Exchange) -> None:
    """A request with one function tool (no tool_choice) is answered 200."""
    _accepted(ex, "tools.rejected", "a request with one function tool was not answered 200")


@check(NONE_CHECK, rule="TOOLS-5", probes=["tools.none"],
       quirks=["tools.choice-none-rejected", "tools.choice-none-ignored"], needs=("tools",), applies=_has_tools)
def choice_none_honoured(ex: Exchange) -> None:
    """tool_choice "none" is accepted and the reply carries no tool call."""
    _accepted(ex, "tools.choice-none-rejected", 'tool_choice "none" was not answered 200')
    r = reply(ex, NONE_CHECK)
    if r.calls:
        raise QuirkFound("tools.choice-none-ignored", f'tool_choice "none" but the reply carries {len(r.calls)} '
                         "tool call(s)", ex, evidence(ex, r.line("tool_calls", r.calls)))


@check("tools.choice-auto-accepted", rule="TOOLS-4", probes=["tools.auto"], quirks=["tools.choice-auto-rejected"],
       needs=("tools",), applies=_has_tools)
def choice_auto_accepted(ex: Exchange) -> None:
    """tool_choice "auto" is accepted."""
    _accepted(ex, "tools.choice-auto-rejected", 'tool_choice "auto" was not answered 200')


@check(REQUIRED_ACCEPTED, rule="TOOLS-4", probes=["tools.required"], quirks=["tools.choice-required-rejected"],
       needs=("tools",), applies=_has_tools)
def choice_required_accepted(ex: Exchange) -> None:
    """tool_choice "required" is accepted."""
    _accepted(ex, "tools.choice-required-rejected", 'tool_choice "required" was not answered 200')


@check("tools.choice-required-called", rule="TOOLS-5", probes=["tools.required"],
       quirks=["tools.choice-required-ignored"], kind="capability", needs=("tools",), applies=_has_tools)
def choice_required_called(ex: Exchange) -> None:
    """With tool_choice "required" the reply carries at least one tool call."""
    r = reply(ex, REQUIRED_ACCEPTED)
    if r.calls:
        return
    why = call_in_content(r.content, ex.request)
    if why:
        raise Blocked(f"no tool_calls, but {why}", IN_CONTENT, ex)
    raise QuirkFound("tools.choice-required-ignored", 'tool_choice "required" but the reply has no tool call '
                     f"(finish_reason {r.finish!r})", ex,
                     evidence(ex, r.line("message", r.message), r.line("finish_reason", r.finish)))


@check(NAMED_ACCEPTED, rule="TOOLS-4", probes=["tools.named"], quirks=["tools.choice-named-rejected"],
       needs=("tools",), applies=_has_tools)
def choice_named_accepted(ex: Exchange) -> None:
    """The named tool_choice object {type: function, function: {name}} is accepted."""
    _accepted(ex, "tools.choice-named-rejected", "a named tool_choice was not answered 200")


@check(NAMED_CALLED, rule="TOOLS-5", probes=["tools.named"], quirks=["tools.choice-named-ignored"],
       kind="capability", needs=("tools",), applies=_has_tools)
def choice_named_called(ex: Exchange) -> None:
    """With a named tool_choice the reply calls that function."""
    r = reply(ex, NAMED_ACCEPTED)
    forced = _forced(ex.request)
    if forced is None:
        raise Blocked("the request names no function in tool_choice", NAMED_ACCEPTED, ex)
    names = [_function(c).get("name") for c in r.calls]
    if forced in names:
        return
    if not r.calls:
        why = call_in_content(r.content, ex.request)
        if why:
            raise Blocked(f"no tool_calls, but {why}", IN_CONTENT, ex)
        detail = f"tool_choice names {forced!r} but the reply has no tool call (finish_reason {r.finish!r})"
    else:
        detail = f"tool_choice names {forced!r} but the reply calls {names!r}"
    raise QuirkFound("tools.choice-named-ignored", detail, ex,
                     evidence(ex, r.line("message", r.message), r.line("finish_reason", r.finish)))


@check(IN_CONTENT, rule="RESP-MSG-2", probes=["tools.named", "tools.required"], quirks=["tools.call-in-content"],
       needs=("tools",), applies=_has_tools)
def call_not_in_content(named: Exchange, required: Exchange) -> None:
    """A forced tool call arrives in `tool_calls`, not as tool-call text or JSON inside `content`."""
    replies = [r for r in (try_reply(named), try_reply(required)) if r is not None]
    if not replies:
        raise Blocked("neither the named nor the required request was answered", NAMED_ACCEPTED, named)
    for r in replies:
        if r.calls:
            continue
        why = call_in_content(r.content, r.ex.request)
        if why:
            raise QuirkFound("tools.call-in-content", f"no tool_calls in the reply, but {why}", r.ex,
                             evidence(r.ex, r.line("content", r.content),
                                      r.line("tool_calls", r.message.get("tool_calls"))))
    if not any(r.calls for r in replies):
        raise Blocked("no reply carries a tool call, in tool_calls or in content", NAMED_CALLED, named)


@check("tools.no-call-shape", rule="RESP-MSG-2", probes=["tools.none", "tools.auto"],
       quirks=["tools.empty-tool-calls"], needs=("tools",), applies=_has_tools)
def no_call_shape(none: Exchange, auto: Exchange) -> None:
    """A reply without a tool call omits `tool_calls` (or sends null) rather than an empty array."""
    replies = [r for r in (try_reply(none), try_reply(auto)) if r is not None and not r.calls]
    if not replies:
        raise Blocked('no reply without a tool call to look at (tool_choice "none" failed or called)', NONE_CHECK, none)
    for r in replies:
        if r.message.get("tool_calls") == []:
            raise QuirkFound("tools.empty-tool-calls", "a reply without a tool call carries \"tool_calls\": []",
                             r.ex, evidence(r.ex, r.line("message", r.message)))


# -- shape of a tool call (non-streamed) ------------------------------------------------------------

def _each_call(exchanges: Sequence[Exchange]):
    for r in _calls_or_block(exchanges):
        for call in r.calls:
            yield r, call


@check("tools.call-id", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.call-id-missing"],
       needs=("tools",), applies=_has_tools)
def call_id(*exchanges: Exchange) -> None:
    """Each tool call has an `id` that is a non-empty string."""
    for r, call in _each_call(exchanges):
        value = call.get("id") if isinstance(call, dict) else None
        if not _nonempty_str(value) or not value.strip():
            raise QuirkFound("tools.call-id-missing", f"a tool call has id {value!r}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


@check("tools.call-type", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.call-type-wrong"],
       needs=("tools",), applies=_has_tools)
def call_type(*exchanges: Exchange) -> None:
    """Each tool call has `type` "function"."""
    for r, call in _each_call(exchanges):
        value = call.get("type") if isinstance(call, dict) else None
        if value != "function":
            raise QuirkFound("tools.call-type-wrong", f"a tool call has type {value!r}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


@check("tools.call-name", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.call-name-missing"],
       needs=("tools",), applies=_has_tools)
def call_name(*exchanges: Exchange) -> None:
    """Each tool call has a `function` object whose `name` is a non-empty string."""
    for r, call in _each_call(exchanges):
        name = _function(call).get("name")
        if not _nonempty_str(name):
            raise QuirkFound("tools.call-name-missing", f"a tool call has function.name {name!r}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


@check("tools.arguments-string", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.arguments-not-string"],
       needs=("tools",), applies=_has_tools)
def arguments_string(*exchanges: Exchange) -> None:
    """Each tool call's `function.arguments` is a string (JSON text), not an object."""
    for r, call in _each_call(exchanges):
        args = _function(call).get("arguments")
        if not isinstance(args, str):
            raise QuirkFound("tools.arguments-not-string",
                             f"function.arguments is {type(args).__name__} {clip(compact(args), 120)}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


def _validate_calls(replies: Sequence[Reply], invalid_json: str, mismatch: str) -> list[Observation]:
    """Raise `invalid_json`/`mismatch` for the first call whose arguments fail; Blocked if none is judged."""
    judged, notes = 0, []
    for r in replies:
        if r.finish == "length":
            notes.append(Observation("cut", f"{r.ex.request.path}: the reply was cut at max_tokens; not judged"))
            continue
        offered = _offered(r.ex.request)
        for call in r.calls:
            fn = _function(call)
            name, args = fn.get("name"), fn.get("arguments")
            if name not in offered or not isinstance(args, str):
                notes.append(Observation("not-judged", f"call {compact(call)}"))
                continue
            judged += 1
            ok, value, err = parse_json(args)
            if not ok:
                raise QuirkFound(invalid_json, f"{name} arguments are not JSON ({err})", r.ex,
                                 evidence(r.ex, r.line("arguments", args)))
            problem = schema_error(value, offered[name])
            if problem:
                raise QuirkFound(mismatch, f"{name} arguments do not validate against its parameters {problem}",
                                 r.ex, evidence(r.ex, r.line("arguments", args)))
    if not judged:
        raise Blocked("no tool call could be judged (cut at max_tokens, unknown function, or non-string "
                      "arguments)", FINISH, replies[0].ex)
    return notes


@check(ARGS_VALID, rule="RESP-MSG-4", probes=["tools.named", "tools.required", "tools.cjk"],
       quirks=["tools.arguments-invalid-json", "tools.arguments-schema-mismatch"], kind="capability",
       needs=("tools",), applies=_has_tools)
def arguments_valid(*exchanges: Exchange) -> list[Observation]:
    """Tool-call arguments parse as JSON and validate against the function's parameters schema."""
    return _validate_calls(_calls_or_block(exchanges), "tools.arguments-invalid-json",
                           "tools.arguments-schema-mismatch")


@check(FINISH, rule="TOOLS-DELTA-6", probes=["tools.auto", "tools.required", "tools.named", "tools.named-stream"],
       quirks=["tools.finish-reason-stop", "tools.finish-reason-wrong"], needs=("tools",), applies=_has_tools)
def finish_reason(*exchanges: Exchange) -> list[Observation]:
    """A reply with tool calls finishes with "tool_calls" (a forced named function may finish with "stop")."""
    seen: list[tuple[Exchange, Any, list[str]]] = []
    for ex in exchanges:
        if ex.request.stream:
            s = try_streamed(ex)
            if s is not None and s.entries:
                pos = s.view.finish_reasons(0)
                where = f"chunk {pos[-1][0]}" if pos else "no chunk"
                seen.append((ex, s.finish, [f"< last finish_reason: {compact(s.finish)} ({where})"]))
        else:
            r = try_reply(ex)
            if r is not None and r.calls:
                seen.append((ex, r.finish, [r.line("finish_reason", r.finish), r.line("tool_calls", r.calls)]))
    if not seen:
        raise Blocked("no reply or stream carries a tool call", NAMED_CALLED, exchanges[0])
    notes = []
    for ex, finish, lines in seen:
        named = _forced(ex.request) is not None
        if finish == "tool_calls" or finish == "length":
            if finish == "length":
                notes.append(Observation("cut", "a reply with a tool call was cut at max_tokens"))
            continue
        if finish == "stop" and named:
            notes.append(Observation("named-stop", "a forced named call finished with \"stop\" (allowed, §10)"))
            continue
        if finish == "stop":
            raise QuirkFound("tools.finish-reason-stop", f"tool_choice {compact(ex.request.field('tool_choice'))}: "
                             "the reply carries tool calls but finish_reason is \"stop\"", ex, evidence(ex, *lines))
        raise QuirkFound("tools.finish-reason-wrong", f"the reply carries tool calls but finish_reason is {finish!r}",
                         ex, evidence(ex, *lines))
    return notes


@check("tools.legacy-function-call", rule="RESP-MSG-5", probes=SHAPE_PROBES + ["tools.named-stream"],
       quirks=["tools.legacy-function-call"], needs=("tools",), applies=_has_tools)
def legacy_function_call(*exchanges: Exchange) -> None:
    """A tool-call reply does not also carry the deprecated `function_call` field (informational)."""
    any_call = False
    for ex in exchanges:
        if ex.request.stream:
            s = try_streamed(ex)
            if s is None:
                continue
            any_call = any_call or bool(s.entries)
            if s.legacy:
                event, value = s.legacy[0]
                raise QuirkFound("tools.legacy-function-call", f"the stream carries delta.function_call "
                                 f"{clip(compact(value), 120)} beside tool_calls", ex, _stream_lines(ex, event))
        else:
            r = try_reply(ex)
            if r is None:
                continue
            any_call = any_call or bool(r.calls)
            if r.message.get("function_call") is not None:
                raise QuirkFound("tools.legacy-function-call", "the message carries the deprecated function_call "
                                 "beside tool_calls", ex,
                                 evidence(ex, r.line("function_call", r.message["function_call"])))
    if not any_call:
        raise Blocked("no reply or stream carries a tool call", NAMED_CALLED, exchanges[0])


_ESCAPE = re.compile(r"(?<!\\)\\u([0-9a-fA-F]{4})")
_BODY_ESCAPE = re.compile(rb"(?<!\\)\\u([0-9a-fA-F]{4})")


@check("tools.arguments-unescaped", rule="RESP-MSG-3", probes=["tools.cjk"], quirks=["tools.arguments-unicode-escaped"],
       needs=("tools",), applies=_has_tools)
def arguments_unescaped(ex: Exchange) -> list[Observation]:
    """Non-ASCII text in `arguments` arrives as characters, not as \\u escapes inside the JSON string."""
    r = reply(ex, NAMED_ACCEPTED)
    if not r.calls:
        raise Blocked("the reply has no tool call", NAMED_CALLED, ex)
    notes = []
    if any(int(m.group(1), 16) >= 0x80 for m in _BODY_ESCAPE.finditer(ex.body)):
        notes.append(Observation("body-ascii-escaped", "the response body escapes non-ASCII text (plain JSON, fine)"))
    for call in r.calls:
        args = _function(call).get("arguments")
        if not isinstance(args, str):
            continue
        escaped = [m.group(0) for m in _ESCAPE.finditer(args) if int(m.group(1), 16) >= 0x80]
        if escaped:
            raise QuirkFound("tools.arguments-unicode-escaped", f"arguments {clip(args, 120)!r} hold "
                             f"{len(escaped)} \\u escape(s) such as {escaped[0]} where the characters were expected",
                             ex, evidence(ex, r.line("arguments", args)))
        if any(ord(c) >= 0x80 for c in args):
            return notes
    raise Blocked("the arguments hold no non-ASCII text to judge (the parameters allow only Japanese names)",
                  ARGS_VALID, ex)


# -- strict -------------------------------------------------------------------------------------------

@check("tools.strict-accepted", rule="TOOLS-7", probes=["tools.strict"], quirks=["tools.strict-rejected"],
       needs=("tools",), applies=_has_tools)
def strict_accepted(ex: Exchange) -> None:
    """A function with `strict: true` and parameters in the strict subset is accepted."""
    _accepted(ex, "tools.strict-rejected", "a function with strict: true was not answered 200")


@check("tools.strict-enforced", rule="RESP-MSG-4", probes=["tools.strict"], quirks=["tools.strict-ignored"],
       needs=("tools",), applies=_has_tools)
def strict_enforced(ex: Exchange) -> list[Observation]:
    """With `strict: true`, the arguments of a call validate against the parameters schema."""
    r = reply(ex, "tools.strict-accepted")
    if not r.calls:
        raise Blocked("the reply has no tool call", NAMED_CALLED, ex)
    return _validate_calls([r], "tools.strict-ignored", "tools.strict-ignored")


# -- parallel calls -----------------------------------------------------------------------------------

@check(PARALLEL_CALLED, rule="TOOLS-6", probes=["tools.parallel"], quirks=["tools.parallel-not-made"],
       kind="capability", needs=("tools", "parallel_tool_calls"), applies=_has_tools)
def parallel_called(ex: Exchange) -> None:
    """Asked for two calls (parallel_tool_calls default true), the reply carries at least two."""
    r = reply(ex, REQUIRED_ACCEPTED)
    if len(r.calls) < 2:
        raise QuirkFound("tools.parallel-not-made", f"the reply carries {len(r.calls)} tool call(s), not 2", ex,
                         evidence(ex, r.line("message", r.message)))


@check("tools.parallel-ids-distinct", rule="RESP-MSG-4", probes=["tools.parallel"], quirks=["tools.call-ids-duplicate"],
       needs=("tools", "parallel_tool_calls"), applies=_has_tools)
def parallel_ids_distinct(ex: Exchange) -> None:
    """Tool call ids are unique within one reply."""
    r = reply(ex, REQUIRED_ACCEPTED)
    if len(r.calls) < 2:
        raise Blocked(f"the reply carries {len(r.calls)} tool call(s), not 2", PARALLEL_CALLED, ex)
    ids = [c.get("id") if isinstance(c, dict) else None for c in r.calls]
    dupes = sorted({repr(i) for i in ids if ids.count(i) > 1})
    if dupes:
        raise QuirkFound("tools.call-ids-duplicate", f"tool call ids repeat: {', '.join(dupes)}", ex,
                         evidence(ex, r.line("tool_calls", r.calls)))


@check("tools.parallel-off", rule="TOOLS-6", probes=["tools.parallel", "tools.parallel-off"],
       quirks=["tools.parallel-param-rejected", "tools.parallel-param-ignored"],
       needs=("tools", "parallel_tool_calls"), applies=_has_tools)
def parallel_off(on: Exchange, off: Exchange) -> None:
    """`parallel_tool_calls: false` is accepted and limits the reply to at most one tool call."""
    r_on = reply(on, REQUIRED_ACCEPTED)
    _accepted(off, "tools.parallel-param-rejected", "parallel_tool_calls: false was not answered 200")
    if len(r_on.calls) < 2:
        raise Blocked(f"with parallel calls allowed the reply carries {len(r_on.calls)} call(s), so a limit "
                      "cannot be seen", PARALLEL_CALLED, on)
    r_off = reply(off, "tools.parallel-off")
    if len(r_off.calls) > 1:
        raise QuirkFound("tools.parallel-param-ignored", f"parallel_tool_calls: false, yet the reply carries "
                         f"{len(r_off.calls)} tool calls", off, evidence(off, r_off.line("tool_calls", r_off.calls)))


# -- round trip ---------------------------------------------------------------------------------------

def _answered(ex: Exchange, quirk: str, what: str, prerequisite: Exchange, owner: str) -> list[Observation]:
    if try_reply(ex) is not None:
        return []
    if try_reply(prerequisite) is None:
        raise Blocked("the same request without the round trip was not answered either", owner, prerequisite)
    raise QuirkFound(quirk, f"{what}: {error_shape(ex)}", ex, evidence(ex))


@check(ROUND_TRIP, rule="MSG-6", probes=["tools.none", "tools.round-trip"], quirks=["tools.round-trip-rejected"],
       needs=("tools",), applies=_has_tools)
def round_trip_answered(none: Exchange, trip: Exchange) -> list[Observation]:
    """An assistant message with tool_calls (content null) followed by its `tool` message is answered."""
    return _answered(trip, "tools.round-trip-rejected", "the tool round trip was not answered 200 with a message",
                     none, NONE_CHECK)


@check("tools.tool-content-parts", rule="MSG-4", probes=["tools.round-trip", "tools.round-trip-parts"],
       quirks=["tools.tool-content-parts-rejected"], needs=("tools",), applies=_has_tools)
def tool_content_parts(trip: Exchange, parts: Exchange) -> list[Observation]:
    """A `tool` message whose content is an array of text parts is answered like one with a string."""
    return _answered(parts, "tools.tool-content-parts-rejected",
                     "a tool message with text-part content was not answered 200 with a message", trip, ROUND_TRIP)


# -- streamed tool calls ------------------------------------------------------------------------------

@check(STREAM_ACCEPTED, rule="TOOLS-1",
       probes=["tools.named", "tools.named-stream", "tools.parallel", "tools.parallel-stream"],
       quirks=["tools.stream-rejected"], needs=("tools", "streaming"), applies=_has_tools)
def stream_accepted(named: Exchange, named_stream: Exchange, par: Exchange, par_stream: Exchange) -> None:
    """A streamed tool request is answered 200 with JSON chunks when the same request unstreamed is answered."""
    judged = 0
    for plain, stream in ((named, named_stream), (par, par_stream)):
        if try_reply(plain) is None:
            continue
        judged += 1
        if try_streamed(stream) is None:
            raise QuirkFound("tools.stream-rejected", f"the unstreamed request is answered, the streamed one is not: "
                             f"{error_shape(stream)}", stream, evidence(stream))
    if not judged:
        raise Blocked("the unstreamed tool requests were not answered", NAMED_ACCEPTED, named)


@check(STREAM_CALLED, rule="TOOLS-5", probes=["tools.named-stream"], quirks=["tools.stream-named-ignored"],
       kind="capability", needs=("tools", "streaming"), applies=_streamed_tools)
def stream_called(ex: Exchange) -> None:
    """A streamed request with a named tool_choice streams a call to that function."""
    s = streamed(ex, STREAM_ACCEPTED)
    forced = _forced(ex.request)
    if forced is None:
        raise Blocked("the request names no function in tool_choice", STREAM_ACCEPTED, ex)
    names = [Accumulated(i, es).name for i, es in s.by_index().items()]
    if forced in names:
        return
    what = f"calls {names!r}" if s.entries else f"has no tool-call delta (content {clip(s.content, 80)!r})"
    raise QuirkFound("tools.stream-named-ignored", f"tool_choice names {forced!r} but the stream {what}", ex,
                     evidence(ex, f"< finish_reason: {compact(s.finish)}"))


@check("tools.delta-index", rule="TOOLS-DELTA-1", probes=STREAM_PROBES, quirks=["tools.delta-missing-index"],
       needs=("tools", "streaming"), applies=_streamed_tools)
def delta_index(*exchanges: Exchange) -> None:
    """Every entry of `delta.tool_calls` is an object with an integer `index`."""
    for s in _streams_with_calls(exchanges):
        for e in s.entries:
            if not isinstance(e.value, dict) or not is_int(e.index):
                what = (f"index {e.index!r}" if isinstance(e.value, dict) and "index" in e.value
                        else "no index" if isinstance(e.value, dict) else f"a {type(e.value).__name__}, not an object")
                raise QuirkFound("tools.delta-missing-index", f"a tool-call delta has {what}: openai-python's "
                                 "stream helper raises on it", s.ex, _stream_lines(s.ex, e))


@check("tools.delta-index-sequence", rule="TOOLS-DELTA-2", probes=STREAM_PROBES,
       quirks=["tools.delta-index-collision", "tools.delta-index-gap"], needs=("tools", "streaming"),
       applies=_streamed_tools)
def delta_index_sequence(*exchanges: Exchange) -> None:
    """Each call has its own `index`, numbered 0, 1, … without gaps."""
    for s in _streams_with_calls(exchanges):
        groups = s.by_index()
        for index, entries in groups.items():
            for key, get in (("id", lambda e: e.value.get("id")), ("function.name", lambda e: e.function.get("name"))):
                values = [(e, get(e)) for e in entries if _nonempty_str(get(e))]
                if len({v for _, v in values}) > 1:
                    first, other = values[0], next(x for x in values if x[1] != values[0][1])
                    raise QuirkFound("tools.delta-index-collision", f"index {index} carries two calls: {key} "
                                     f"{first[1]!r} then {other[1]!r}", s.ex,
                                     _stream_lines(s.ex, first[0], other[0]))
        if groups and sorted(groups) != list(range(len(groups))):
            raise QuirkFound("tools.delta-index-gap",
                             f"tool-call indexes are {sorted(groups)}, not 0..{len(groups) - 1}", s.ex, _stream_lines(s.ex, *(es[0] for es in groups.values())))


@check("tools.delta-first-complete", rule="TOOLS-DELTA-3", probes=STREAM_PROBES,
       quirks=["tools.delta-first-incomplete"], needs=("tools", "streaming"), applies=_streamed_tools)
def delta_first_complete(*exchanges: Exchange) -> None:
    """The first delta of each call carries `id`, `type` "function" and `function.name`."""
    for s in _streams_with_calls(exchanges):
        for index, entries in s.by_index().items():
            first = entries[0]
            missing = [k for k, ok in (("id", _nonempty_str(first.value.get("id"))),
                                       ("type", first.value.get("type") == "function"),
                                       ("function.name", _nonempty_str(first.function.get("name")))) if not ok]
            if missing:
                raise QuirkFound("tools.delta-first-incomplete", f"the first delta of call {index} lacks "
                                 f"{', '.join(missing)}", s.ex, _stream_lines(s.ex, first))


@check("tools.delta-no-repeat", rule="TOOLS-DELTA-3", probes=STREAM_PROBES, quirks=["tools.delta-repeats-id-name"],
       needs=("tools", "streaming"), applies=_streamed_tools)
def delta_no_repeat(*exchanges: Exchange) -> list[Observation]:
    """Later deltas of a call do not repeat `id` or `function.name` (openai-python's helper concatenates them)."""
    notes = []
    for s in _streams_with_calls(exchanges):
        for index, entries in s.by_index().items():
            later = entries[1:]
            if any(e.value.get("type") is not None for e in later):
                notes.append(Observation("type-repeated", f"call {index}: later deltas repeat type (harmless)"))
            for key, get in (("id", lambda e: e.value.get("id")), ("function.name", lambda e: e.function.get("name"))):
                repeats = [e for e in later if _nonempty_str(get(e))]
                if repeats:
                    joined = "".join(v for v in (get(e) for e in entries) if isinstance(v, str))
                    raise QuirkFound("tools.delta-repeats-id-name", f"call {index}: {len(repeats)} later delta(s) "
                                     f"repeat {key}; openai-python's stream helper accumulates {key} "
                                     f"{clip(joined, 80)!r}", s.ex, _stream_lines(s.ex, entries[0], repeats[0]))
    return notes


@check("tools.delta-arguments-string", rule="TOOLS-DELTA-4", probes=STREAM_PROBES,
       quirks=["tools.delta-arguments-not-string"], needs=("tools", "streaming"), applies=_streamed_tools)
def delta_arguments_string(*exchanges: Exchange) -> list[Observation]:
    """Every `function.arguments` fragment is a string."""
    notes = []
    for s in _streams_with_calls(exchanges):
        for index, entries in s.by_index().items():
            fragments = 0
            for e in entries:
                args = e.function.get("arguments")
                if args is None:
                    continue
                if not isinstance(args, str):
                    raise QuirkFound("tools.delta-arguments-not-string", f"call {index}: an arguments fragment is "
                                     f"{type(args).__name__} {clip(compact(args), 80)}", s.ex, _stream_lines(s.ex, e))
                fragments += bool(args)
            notes.append(Observation("fragments", f"call {index}: arguments in {fragments} non-empty fragment(s)"))
    return notes


@check("tools.delta-arguments-json", rule="TOOLS-DELTA-5", probes=STREAM_PROBES,
       quirks=["tools.delta-arguments-invalid-json"], kind="capability", needs=("tools", "streaming"),
       applies=_streamed_tools)
def delta_arguments_json(*exchanges: Exchange) -> None:
    """The concatenated arguments fragments of each streamed call parse as JSON."""
    judged = 0
    for s in _streams_with_calls(exchanges):
        if s.finish == "length":
            continue
        for index, entries in s.by_index().items():
            args = Accumulated(index, entries).arguments
            judged += 1
            ok, _, err = parse_json(args)
            if not ok:
                raise QuirkFound("tools.delta-arguments-invalid-json", f"call {index}: the joined arguments "
                                 f"{clip(args, 120)!r} are not JSON ({err})", s.ex,
                                 _stream_lines(s.ex, *entries[:3]))
    if not judged:
        raise Blocked("every stream with tool calls was cut at max_tokens", FINISH, exchanges[0])


@check("tools.stream-matches", rule="TOOLS-DELTA-5", probes=["tools.named", "tools.named-stream"],
       quirks=["tools.stream-differs"], needs=("tools", "streaming"), applies=_has_tools)
def stream_matches(plain: Exchange, stream: Exchange) -> None:
    """At temperature 0 the streamed call (name, arguments) equals the unstreamed one."""
    r = reply(plain, NAMED_ACCEPTED)
    if not r.calls:
        raise Blocked("the unstreamed reply has no tool call", NAMED_CALLED, plain)
    s = streamed(stream, STREAM_ACCEPTED)
    if not s.entries:
        raise Blocked("the stream has no tool-call delta", STREAM_CALLED, stream)
    if r.finish == "length" or s.finish == "length":
        raise Blocked("a reply was cut at max_tokens", FINISH, plain)

    def norm(name: Any, args: Any) -> tuple[Any, Any]:
        ok, value, _ = parse_json(args) if isinstance(args, str) else (False, None, "")
        return name, (json.dumps(value, sort_keys=True) if ok else args)

    plain_calls = [norm(_function(c).get("name"), _function(c).get("arguments")) for c in r.calls]
    stream_calls = [norm(a.name, a.arguments) for a in
                    (Accumulated(i, es) for i, es in sorted(s.by_index().items()))]
    if plain_calls != stream_calls:
        raise QuirkFound("tools.stream-differs", f"unstreamed calls {clip(compact(plain_calls), 120)} vs streamed "
                         f"{clip(compact(stream_calls), 120)}", stream,
                         [*evidence(plain, r.line("tool_calls", r.calls)), *evidence(stream)[:2],
                          f"< streamed calls: {compact(stream_calls)}"])


@check("tools.delta-order", rule="TOOLS-DELTA-7", probes=["tools.parallel-stream"], quirks=["tools.delta-interleaved"],
       needs=("tools", "streaming", "parallel_tool_calls"), applies=_streamed_tools)
def delta_order(ex: Exchange) -> None:
    """Parallel calls are streamed one after another: once call i+1 starts, call i gets no more deltas."""
    s = streamed(ex, STREAM_ACCEPTED)
    order = [e for e in s.entries if is_int(e.index)]
    if len({e.index for e in order}) < 2:
        raise Blocked(f"the stream carries {len({e.index for e in order})} call(s), not 2", PARALLEL_CALLED, ex)
    done: set[int] = set()
    prev: Entry | None = None
    for e in order:
        if prev is not None and e.index != prev.index:
            done.add(prev.index)
            if e.index in done:
                raise QuirkFound("tools.delta-interleaved", f"call {e.index} gets a delta after call {prev.index} "
                                 "started", ex, _stream_lines(ex, prev, e))
        prev = e
