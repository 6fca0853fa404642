"""Function tools: tool_choice, the shape of tool calls, streamed tool-call deltas and the tool round trip
(openai-wire.md §1.2 MSG-4/6, §1.4 TOOLS-1..7, §2 RESP-MSG-2..5, §4.4 TOOLS-DELTA-1..7, §10).

The model behind a provider may be too weak to call a tool on its own. So: "the request is accepted" and
"a tool call, when present, has the right shape" are protocol checks; "a call is made", "the arguments
validate", "two calls in parallel" are `kind="capability"` checks. A shape check with no tool call to look
at raises Blocked naming the capability check that reports the missing call.

The probes are in checks/tools_probes.py, the readers of tool calls (replies, stream deltas) and the owner
ids they name in checks/tool_calls.py; this module holds the checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..exchange import Exchange
from .base import (
    Blocked,
    Observation,
    QuirkFound,
    check,
    clip,
    compact,
    error_shape,
    evidence,
    is_int,
    parse_json,
    raise_all,
    schema_error,
)
from .common import require_200_object
from .requires import ANY_CALLS, CALLS, STREAMED_CALLS
from .tool_calls import (
    ARGS_VALID,
    FINISH,
    IN_CONTENT,
    NAMED_ACCEPTED,
    NAMED_CALLED,
    NONE_CHECK,
    PARALLEL_CALLED,
    REQUIRED_ACCEPTED,
    ROUND_TRIP,
    STREAM_ACCEPTED,
    STREAM_CALLED,
    Accumulated,
    Entry,
    Reply,
    call_function,
    call_in_content,
    calls_or_block,
    forced_name,
    has_tools,
    nonempty_str,
    offered_functions,
    reply,
    stream_lines,
    streamed,
    streamed_tools,
    streams_with_calls,
    try_reply,
    try_streamed,
)

SHAPE_PROBES = ["tools.named", "tools.required", "tools.auto"]
STREAM_PROBES = ["tools.named-stream", "tools.parallel-stream"]


# -- acceptance and tool_choice ----------------------------------------------------------------------

@check("tools.accepted", rule="TOOLS-1", probes=["tools.basic"], quirks=["tools.rejected"], needs=("tools",),
       applies=has_tools)
def accepted(ex: Exchange) -> None:
    """A request with one function tool (no tool_choice) is answered 200."""
    require_200_object(ex, "tools.rejected", "a request with one function tool was not answered 200")


@check("tools.choice-none", rule="TOOLS-5", probes=["tools.none"],
       quirks=["tools.choice-none-rejected", "tools.choice-none-ignored"], needs=("tools",), applies=has_tools)
def choice_none_honoured(ex: Exchange) -> None:
    """tool_choice "none" is accepted and the reply carries no tool call."""
    require_200_object(ex, "tools.choice-none-rejected", 'tool_choice "none" was not answered 200')
    r = reply(ex, NONE_CHECK)
    if r.calls:
        raise QuirkFound("tools.choice-none-ignored", f'tool_choice "none" but the reply carries {len(r.calls)} '
                         "tool call(s)", ex, evidence(ex, r.line("tool_calls", r.calls)))


@check("tools.choice-auto-accepted", rule="TOOLS-4", probes=["tools.auto"], quirks=["tools.choice-auto-rejected"],
       needs=("tools",), applies=has_tools)
def choice_auto_accepted(ex: Exchange) -> None:
    """tool_choice "auto" is accepted."""
    require_200_object(ex, "tools.choice-auto-rejected", 'tool_choice "auto" was not answered 200')


@check("tools.choice-required-accepted", rule="TOOLS-4", probes=["tools.required"],
       quirks=["tools.choice-required-rejected"],
       needs=("tools",), applies=has_tools)
def choice_required_accepted(ex: Exchange) -> None:
    """tool_choice "required" is accepted."""
    require_200_object(ex, "tools.choice-required-rejected", 'tool_choice "required" was not answered 200')


@check("tools.choice-required-called", rule="TOOLS-5", probes=["tools.required"],
       quirks=["tools.choice-required-ignored"], kind="capability", needs=("tools",), applies=has_tools)
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


@check("tools.choice-named-accepted", rule="TOOLS-4", probes=["tools.named"], quirks=["tools.choice-named-rejected"],
       needs=("tools",), applies=has_tools)
def choice_named_accepted(ex: Exchange) -> None:
    """The named tool_choice object {type: function, function: {name}} is accepted."""
    require_200_object(ex, "tools.choice-named-rejected", "a named tool_choice was not answered 200")


@check("tools.choice-named-called", rule="TOOLS-5", probes=["tools.named"], quirks=["tools.choice-named-ignored"],
       kind="capability", needs=("tools",), applies=has_tools)
def choice_named_called(ex: Exchange) -> None:
    """With a named tool_choice the reply calls that function."""
    r = reply(ex, NAMED_ACCEPTED)
    forced = forced_name(ex.request)
    if forced is None:
        raise Blocked("the request names no function in tool_choice", NAMED_ACCEPTED, ex)
    names = [call_function(c).get("name") for c in r.calls]
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


@check("tools.call-not-in-content", rule="RESP-MSG-2", probes=["tools.named", "tools.required"],
       quirks=["tools.call-in-content"],
       needs=("tools",), applies=has_tools)
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
       quirks=["tools.empty-tool-calls"], needs=("tools",), applies=has_tools)
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
    for r in calls_or_block(exchanges):
        for call in r.calls:
            yield r, call


@check("tools.call-id", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.call-id-missing"],
       needs=("tools",), applies=has_tools, requires=CALLS)
def call_id(*exchanges: Exchange) -> None:
    """Each tool call has an `id` that is a non-empty string."""
    for r, call in _each_call(exchanges):
        value = call.get("id") if isinstance(call, dict) else None
        if not nonempty_str(value) or not value.strip():
            raise QuirkFound("tools.call-id-missing", f"a tool call has id {value!r}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


@check("tools.call-type", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.call-type-wrong"],
       needs=("tools",), applies=has_tools, requires=CALLS)
def call_type(*exchanges: Exchange) -> None:
    """Each tool call has `type` "function"."""
    for r, call in _each_call(exchanges):
        value = call.get("type") if isinstance(call, dict) else None
        if value != "function":
            raise QuirkFound("tools.call-type-wrong", f"a tool call has type {value!r}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


@check("tools.call-name", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.call-name-missing"],
       needs=("tools",), applies=has_tools, requires=CALLS)
def call_name(*exchanges: Exchange) -> None:
    """Each tool call has a `function` object whose `name` is a non-empty string."""
    for r, call in _each_call(exchanges):
        name = call_function(call).get("name")
        if not nonempty_str(name):
            raise QuirkFound("tools.call-name-missing", f"a tool call has function.name {name!r}", r.ex,
                             evidence(r.ex, r.line("tool_calls[]", call)))


@check("tools.arguments-string", rule="RESP-MSG-3", probes=SHAPE_PROBES, quirks=["tools.arguments-not-string"],
       needs=("tools",), applies=has_tools, requires=CALLS)
def arguments_string(*exchanges: Exchange) -> None:
    """Each tool call's `function.arguments` is a string (JSON text), not an object."""
    for r, call in _each_call(exchanges):
        args = call_function(call).get("arguments")
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
        offered = offered_functions(r.ex.request)
        for call in r.calls:
            fn = call_function(call)
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


@check("tools.arguments-valid", rule="RESP-MSG-4", probes=["tools.named", "tools.required", "tools.cjk"],
       quirks=["tools.arguments-invalid-json", "tools.arguments-schema-mismatch"], kind="capability",
       needs=("tools",), applies=has_tools, requires=CALLS)
def arguments_valid(*exchanges: Exchange) -> list[Observation]:
    """Tool-call arguments parse as JSON and validate against the function's parameters schema."""
    return _validate_calls(calls_or_block(exchanges), "tools.arguments-invalid-json",
                           "tools.arguments-schema-mismatch")


@check("tools.finish-reason", rule="TOOLS-DELTA-6", probes=["tools.auto", "tools.required", "tools.named",
       "tools.named-stream"],
       quirks=["tools.finish-reason-stop", "tools.finish-reason-wrong"], needs=("tools",), applies=has_tools,
       requires=ANY_CALLS)
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
        named = forced_name(ex.request) is not None
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
       quirks=["tools.legacy-function-call"], needs=("tools",), applies=has_tools, requires=CALLS)
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
                                 f"{clip(compact(value), 120)} beside tool_calls", ex, stream_lines(ex, event))
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
       needs=("tools",), applies=has_tools)
def arguments_unescaped(ex: Exchange) -> list[Observation]:
    """Non-ASCII text in `arguments` arrives as characters, not as \\u escapes inside the JSON string."""
    r = reply(ex, NAMED_ACCEPTED)
    if not r.calls:
        raise Blocked("the reply has no tool call", NAMED_CALLED, ex)
    notes = []
    if any(int(m.group(1), 16) >= 0x80 for m in _BODY_ESCAPE.finditer(ex.body)):
        notes.append(Observation("body-ascii-escaped", "the response body escapes non-ASCII text (plain JSON, fine)"))
    for call in r.calls:
        args = call_function(call).get("arguments")
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
       needs=("tools",), applies=has_tools)
def strict_accepted(ex: Exchange) -> None:
    """A function with `strict: true` and parameters in the strict subset is accepted."""
    require_200_object(ex, "tools.strict-rejected", "a function with strict: true was not answered 200")


@check("tools.strict-enforced", rule="RESP-MSG-4", probes=["tools.strict"], quirks=["tools.strict-ignored"],
       needs=("tools",), applies=has_tools)
def strict_enforced(ex: Exchange) -> list[Observation]:
    """With `strict: true`, the arguments of a call validate against the parameters schema."""
    r = reply(ex, "tools.strict-accepted")
    if not r.calls:
        raise Blocked("the reply has no tool call", NAMED_CALLED, ex)
    return _validate_calls([r], "tools.strict-ignored", "tools.strict-ignored")


# -- parallel calls -----------------------------------------------------------------------------------

@check("tools.parallel-called", rule="TOOLS-6", probes=["tools.parallel"], quirks=["tools.parallel-not-made"],
       kind="capability", needs=("tools", "parallel_tool_calls"), applies=has_tools)
def parallel_called(ex: Exchange) -> None:
    """Asked for two calls (parallel_tool_calls default true), the reply carries at least two."""
    r = reply(ex, REQUIRED_ACCEPTED)
    if len(r.calls) < 2:
        raise QuirkFound("tools.parallel-not-made", f"the reply carries {len(r.calls)} tool call(s), not 2", ex,
                         evidence(ex, r.line("message", r.message)))


@check("tools.parallel-ids-distinct", rule="RESP-MSG-4", probes=["tools.parallel"], quirks=["tools.call-ids-duplicate"],
       needs=("tools", "parallel_tool_calls"), applies=has_tools)
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
       needs=("tools", "parallel_tool_calls"), applies=has_tools)
def parallel_off(on: Exchange, off: Exchange) -> None:
    """`parallel_tool_calls: false` is accepted and limits the reply to at most one tool call."""
    r_on = reply(on, REQUIRED_ACCEPTED)
    require_200_object(off, "tools.parallel-param-rejected", "parallel_tool_calls: false was not answered 200")
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


@check("tools.round-trip", rule="MSG-6", probes=["tools.none", "tools.round-trip"],
       quirks=["tools.round-trip-rejected"],
       needs=("tools",), applies=has_tools)
def round_trip_answered(none: Exchange, trip: Exchange) -> list[Observation]:
    """An assistant message with tool_calls (content null) followed by its `tool` message is answered."""
    return _answered(trip, "tools.round-trip-rejected", "the tool round trip was not answered 200 with a message",
                     none, NONE_CHECK)


@check("tools.tool-content-parts", rule="MSG-4", probes=["tools.round-trip", "tools.round-trip-parts"],
       quirks=["tools.tool-content-parts-rejected"], needs=("tools",), applies=has_tools)
def tool_content_parts(trip: Exchange, parts: Exchange) -> list[Observation]:
    """A `tool` message whose content is an array of text parts is answered like one with a string."""
    return _answered(parts, "tools.tool-content-parts-rejected",
                     "a tool message with text-part content was not answered 200 with a message", trip, ROUND_TRIP)


# -- streamed tool calls ------------------------------------------------------------------------------

@check("tools.stream-accepted", rule="TOOLS-1",
       probes=["tools.named", "tools.named-stream", "tools.parallel", "tools.parallel-stream"],
       quirks=["tools.stream-rejected"], needs=("tools", "streaming"), applies=has_tools)
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


@check("tools.stream-called", rule="TOOLS-5", probes=["tools.named-stream"], quirks=["tools.stream-named-ignored"],
       kind="capability", needs=("tools", "streaming"), applies=streamed_tools)
def stream_called(ex: Exchange) -> None:
    """A streamed request with a named tool_choice streams a call to that function."""
    s = streamed(ex, STREAM_ACCEPTED)
    forced = forced_name(ex.request)
    if forced is None:
        raise Blocked("the request names no function in tool_choice", STREAM_ACCEPTED, ex)
    names = [Accumulated(i, es).name for i, es in s.by_index().items()]
    if forced in names:
        return
    what = f"calls {names!r}" if s.entries else f"has no tool-call delta (content {clip(s.content, 80)!r})"
    raise QuirkFound("tools.stream-named-ignored", f"tool_choice names {forced!r} but the stream {what}", ex,
                     evidence(ex, f"< finish_reason: {compact(s.finish)}"))


@check("tools.delta-index", rule="TOOLS-DELTA-1", probes=STREAM_PROBES, quirks=["tools.delta-missing-index"],
       needs=("tools", "streaming"), applies=streamed_tools, requires=STREAMED_CALLS)
def delta_index(*exchanges: Exchange) -> None:
    """Every entry of `delta.tool_calls` is an object with an integer `index`."""
    for s in streams_with_calls(exchanges):
        for e in s.entries:
            if not isinstance(e.value, dict) or not is_int(e.index):
                what = (f"index {e.index!r}" if isinstance(e.value, dict) and "index" in e.value
                        else "no index" if isinstance(e.value, dict) else f"a {type(e.value).__name__}, not an object")
                raise QuirkFound("tools.delta-missing-index", f"a tool-call delta has {what}: openai-python's "
                                 "stream helper raises on it", s.ex, stream_lines(s.ex, e))


@check("tools.delta-index-sequence", rule="TOOLS-DELTA-2", probes=STREAM_PROBES,
       quirks=["tools.delta-index-collision", "tools.delta-index-gap"], needs=("tools", "streaming"),
       applies=streamed_tools, requires=STREAMED_CALLS)
def delta_index_sequence(*exchanges: Exchange) -> None:
    """Each call has its own `index`, numbered 0, 1, … without gaps."""
    for s in streams_with_calls(exchanges):
        groups = s.by_index()
        for index, entries in groups.items():
            for key, get in (("id", lambda e: e.value.get("id")), ("function.name", lambda e: e.function.get("name"))):
                values = [(e, get(e)) for e in entries if nonempty_str(get(e))]
                if len({v for _, v in values}) > 1:
                    first, other = values[0], next(x for x in values if x[1] != values[0][1])
                    raise QuirkFound("tools.delta-index-collision", f"index {index} carries two calls: {key} "
                                     f"{first[1]!r} then {other[1]!r}", s.ex,
                                     stream_lines(s.ex, first[0], other[0]))
        if groups and sorted(groups) != list(range(len(groups))):
            raise QuirkFound("tools.delta-index-gap",
                             f"tool-call indexes are {sorted(groups)}, not 0..{len(groups) - 1}", s.ex,
                             stream_lines(s.ex, *(es[0] for es in groups.values())))


@check("tools.delta-first-complete", rule="TOOLS-DELTA-3", probes=STREAM_PROBES,
       quirks=["tools.delta-first-incomplete"], needs=("tools", "streaming"), applies=streamed_tools,
       requires=STREAMED_CALLS)
def delta_first_complete(*exchanges: Exchange) -> None:
    """The first delta of each call carries `id`, `type` "function" and `function.name`."""
    for s in streams_with_calls(exchanges):
        for index, entries in s.by_index().items():
            first = entries[0]
            missing = [k for k, ok in (("id", nonempty_str(first.value.get("id"))),
                                       ("type", first.value.get("type") == "function"),
                                       ("function.name", nonempty_str(first.function.get("name")))) if not ok]
            if missing:
                raise QuirkFound("tools.delta-first-incomplete", f"the first delta of call {index} lacks "
                                 f"{', '.join(missing)}", s.ex, stream_lines(s.ex, first))


@check("tools.delta-no-repeat", rule="TOOLS-DELTA-3", probes=STREAM_PROBES,
       quirks=["tools.delta-repeats-id-name", "tools.delta-continuation-extras"],
       needs=("tools", "streaming"), applies=streamed_tools, requires=STREAMED_CALLS)
def delta_no_repeat(*exchanges: Exchange) -> None:
    """Later deltas of a call do not repeat `id` or `function.name` (openai-python's helper concatenates them),
    nor carry `type`, a role or `content: null` beside the argument fragment (OpenAI's continuations do not)."""
    found: list[QuirkFound] = []
    for s in streams_with_calls(exchanges):
        for index, entries in s.by_index().items():
            later = entries[1:]
            for key, get in (("id", lambda e: e.value.get("id")), ("function.name", lambda e: e.function.get("name"))):
                repeats = [e for e in later if nonempty_str(get(e))]
                if repeats:
                    joined = "".join(v for v in (get(e) for e in entries) if isinstance(v, str))
                    found.append(QuirkFound("tools.delta-repeats-id-name", f"call {index}: {len(repeats)} later "
                                            f"delta(s) repeat {key}; openai-python's stream helper accumulates {key} "
                                            f"{clip(joined, 80)!r}", s.ex, stream_lines(s.ex, entries[0], repeats[0])))
                    break
            extras = [(e, x) for e in later if (x := _continuation_extras(e))]
            if extras:
                e, what = extras[0]
                found.append(QuirkFound("tools.delta-continuation-extras",
                                        f"call {index}: {len(extras)} continuation delta(s) also carry "
                                        f"{', '.join(what)}", s.ex, stream_lines(s.ex, entries[0], e)))
    raise_all(list({f.quirk: f for f in reversed(found)}.values())[::-1])


def _continuation_extras(entry: Any) -> list[str]:
    """What a continuation delta carries beyond index and function.arguments: type, role, content: null."""
    out = ["type"] if isinstance(entry.value, dict) and "type" in entry.value else []
    try:
        obj = json.loads(entry.event.data)
    except (ValueError, RecursionError):
        return out
    choices = obj.get("choices") if isinstance(obj, dict) else None
    for ch in choices if isinstance(choices, list) else []:
        delta = ch.get("delta") if isinstance(ch, dict) else None
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        if isinstance(delta, dict) and isinstance(calls, list) and entry.value in calls:
            if "role" in delta:
                out.append(f"role {delta['role']!r}")
            if "content" in delta and delta["content"] is None:
                out.append("content: null")
            break
    return out


@check("tools.delta-arguments-string", rule="TOOLS-DELTA-4", probes=STREAM_PROBES,
       quirks=["tools.delta-arguments-not-string"], needs=("tools", "streaming"), applies=streamed_tools,
       requires=STREAMED_CALLS)
def delta_arguments_string(*exchanges: Exchange) -> list[Observation]:
    """Every `function.arguments` fragment is a string."""
    notes = []
    for s in streams_with_calls(exchanges):
        for index, entries in s.by_index().items():
            fragments = 0
            for e in entries:
                args = e.function.get("arguments")
                if args is None:
                    continue
                if not isinstance(args, str):
                    raise QuirkFound("tools.delta-arguments-not-string", f"call {index}: an arguments fragment is "
                                     f"{type(args).__name__} {clip(compact(args), 80)}", s.ex, stream_lines(s.ex, e))
                fragments += bool(args)
            notes.append(Observation("fragments", f"call {index}: arguments in {fragments} non-empty fragment(s)"))
    return notes


@check("tools.delta-arguments-json", rule="TOOLS-DELTA-5", probes=STREAM_PROBES,
       quirks=["tools.delta-arguments-invalid-json"], kind="capability", needs=("tools", "streaming"),
       applies=streamed_tools, requires=STREAMED_CALLS)
def delta_arguments_json(*exchanges: Exchange) -> None:
    """The concatenated arguments fragments of each streamed call parse as JSON."""
    judged = 0
    for s in streams_with_calls(exchanges):
        if s.finish == "length":
            continue
        for index, entries in s.by_index().items():
            args = Accumulated(index, entries).arguments
            judged += 1
            ok, _, err = parse_json(args)
            if not ok:
                raise QuirkFound("tools.delta-arguments-invalid-json", f"call {index}: the joined arguments "
                                 f"{clip(args, 120)!r} are not JSON ({err})", s.ex,
                                 stream_lines(s.ex, *entries[:3]))
    if not judged:
        raise Blocked("every stream with tool calls was cut at max_tokens", FINISH, exchanges[0])


@check("tools.stream-matches", rule="TOOLS-DELTA-5", probes=["tools.named", "tools.named-stream"],
       quirks=["tools.stream-differs"], needs=("tools", "streaming"), applies=has_tools)
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

    plain_calls = [norm(call_function(c).get("name"), call_function(c).get("arguments")) for c in r.calls]
    stream_calls = [norm(a.name, a.arguments) for a in
                    (Accumulated(i, es) for i, es in sorted(s.by_index().items()))]
    if plain_calls != stream_calls:
        raise QuirkFound("tools.stream-differs", f"unstreamed calls {clip(compact(plain_calls), 120)} vs streamed "
                         f"{clip(compact(stream_calls), 120)}", stream,
                         [*evidence(plain, r.line("tool_calls", r.calls)), *evidence(stream)[:2],
                          f"< streamed calls: {compact(stream_calls)}"])


@check("tools.delta-order", rule="TOOLS-DELTA-7", probes=["tools.parallel-stream"], quirks=["tools.delta-interleaved"],
       needs=("tools", "streaming", "parallel_tool_calls"), applies=streamed_tools)
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
                                 "started", ex, stream_lines(ex, prev, e))
        prev = e
