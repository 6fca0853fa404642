"""Streamed chat completions: SSE framing, chunk fields, the terminator, usage and errors
(openai-wire.md §3 and §4).

Probes:
- `stream.basic`: `stream: true`, no `stream_options` (the provider's own stream_options are dropped too).
- `stream.usage`: the same with `stream_options: {"include_usage": true}`.
- `stream.seeded` then `chat.seeded`: the same seeded, temperature-0 request streamed and not streamed;
  `stream.text-matches` takes them in that order (streamed first).

Where the wire format allows variation (unknown extra fields, SSE comments and keep-alives, `data:`
without a space, CRLF or CR line ends, chunks split anywhere) every check passes; the info checks
`stream.extension-fields` and `stream.framing` record such variants as observations.

Blocked owners: a non-200 answer is reported by `stream.status`, a transport failure after the header
by `stream.truncated`, a 200 body that is not SSE by `stream.body-is-sse`, non-JSON events by
`stream.data-json`, an `{"error": …}` event by `stream.midstream-error`.
"""

from __future__ import annotations

from typing import Any

from ..exchange import Exchange, Request
from ..sse import OBS_BOM, OBS_EMPTY_EVENT, OBS_INVALID_UTF8, OBS_UNTERMINATED_EVENT
from ..timing import timing_of
from ..transport import RequestSpec
from .base import (
    Blocked,
    NotApplicable,
    Observation,
    ProbeContext,
    QuirkFound,
    check,
    clip,
    evidence,
    first_choice,
    probe,
    raise_all,
    request_line,
    require_success,
    status_line,
)
from .common import FINISH_REASONS, STREAM_STATUS, USAGE_KEYS, show, usage_quirks
from .requires import SOK, SOK_NO_USAGE, SOK_USAGE
from .streamview import StreamChunk, StreamView, event_line, stream_view

CHUNK_OBJECT = "chat.completion.chunk"

TRUNCATED_OWNER = "stream.truncated"
SSE_OWNER = "stream.body-is-sse"
JSON_OWNER = "stream.data-json"
ERROR_OWNER = "stream.midstream-error"
DONE_OWNER = "stream.done"
USAGE_OWNER = "stream.usage-included"
FINISH_OWNER = "stream.finish-reason"

TIMEOUT_KINDS = frozenset({"timeout", "read-timeout", "too-large"})

# Fields the spec defines (STREAM-1, STREAM-4, STREAM-7, STREAM-11); anything else is an extension.
CHUNK_KEYS = frozenset({"id", "object", "created", "model", "choices", "system_fingerprint", "service_tier",
                        "usage", "obfuscation", "moderation"})
CHOICE_KEYS = frozenset({"index", "delta", "finish_reason", "logprobs"})
DELTA_KEYS = frozenset({"role", "content", "refusal", "tool_calls", "function_call"})

SAY_HELLO = [{"role": "user", "content": "Say hello."}]
COUNT = [{"role": "user", "content": "Count from one to ten."}]
SEED = 1234


# -- probes -----------------------------------------------------------------------------------------

@probe("stream.basic")
def basic(ctx: ProbeContext) -> RequestSpec:
    """One short user message streamed (`stream: true`, no stream_options), temperature 0, a few tokens."""
    return RequestSpec(json=ctx.chat(SAY_HELLO, subject=("stream", "stream_options"),
                                     max_tokens=16, temperature=0, stream=True))


@probe("stream.long")
def long(ctx: ProbeContext) -> RequestSpec:
    """The short streamed request with room for ~100 tokens: long enough to span a second boundary on most
    servers, so a server that stamps `created` per chunk is caught every time, not by chance."""
    return RequestSpec(json=ctx.chat(SAY_HELLO, subject=("stream", "stream_options"),
                                     max_tokens=96, temperature=0, stream=True))


@probe("stream.usage")
def usage(ctx: ProbeContext) -> RequestSpec:
    """The short streamed request with `stream_options: {"include_usage": true}`."""
    return RequestSpec(json=ctx.chat(SAY_HELLO, subject=("stream", "stream_options"), max_tokens=16,
                                     temperature=0, stream=True, stream_options={"include_usage": True}))


@probe("stream.seeded")
def seeded_stream(ctx: ProbeContext) -> RequestSpec:
    """A seeded temperature-0 request, streamed (pair of chat.seeded)."""
    return RequestSpec(json=ctx.chat(COUNT, subject=("stream", "stream_options", "seed"),
                                     max_tokens=24, temperature=0, seed=SEED, stream=True))


@probe("chat.seeded")
def seeded_plain(ctx: ProbeContext) -> RequestSpec:
    """The same seeded temperature-0 request as stream.seeded, not streamed."""
    return RequestSpec(json=ctx.chat(COUNT, subject=("stream", "stream_options", "seed"),
                                     max_tokens=24, temperature=0, seed=SEED))


# -- helpers ----------------------------------------------------------------------------------------

def _is_stream(req: Request) -> bool:
    return req.stream


def _include_usage(req: Request) -> bool:
    opts = req.field("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


def _wants_usage(req: Request) -> bool:
    return req.stream and _include_usage(req)


def _failure_text(ex: Exchange) -> str:
    f = ex.failure
    return f"{f.kind}: {f.message} after {f.after_bytes} bytes" if f else "no failure"


def _require_200(ex: Exchange, owner: str) -> None:
    if ex.status is None:
        raise Blocked(f"no response: {_failure_text(ex)}", owner, ex)
    if ex.status != 200:
        raise Blocked(f"the streamed request was answered HTTP {ex.status}", owner, ex)


def _view(ex: Exchange, *, status_owner: str = STREAM_STATUS, allow_failure: bool = False) -> StreamView:
    """The parsed stream of a 200 answer, or Blocked naming the check that reports why there is none.

    allow_failure: judge what arrived before a transport failure (else Blocked, unless [DONE] came first).
    """
    _require_200(ex, status_owner)
    view = stream_view(ex)
    if not view.parse.events:
        if ex.failure is not None:
            raise Blocked(f"the stream broke off before any event ({_failure_text(ex)})", TRUNCATED_OWNER, ex)
        raise Blocked("the 200 body holds no SSE data event", SSE_OWNER, ex)
    if ex.failure is not None and not allow_failure and not view.done:
        raise Blocked(f"the stream broke off ({_failure_text(ex)})", TRUNCATED_OWNER, ex)
    return view


def _complete(ex: Exchange, *, status_owner: str = STREAM_STATUS) -> StreamView:
    """A whole stream of JSON chunks with no error event, else Blocked."""
    view = _view(ex, status_owner=status_owner)
    if view.error_chunks:
        raise Blocked(f"the stream carries an error event: {show(view.error_chunks[0])}", ERROR_OWNER, ex)
    bad = [c for c in view.chunks if not c.is_object]
    if bad:
        raise Blocked(f"{len(bad)} data event(s) are not JSON objects", JSON_OWNER, ex)
    return view


def _require_indexes(view: StreamView, ex: Exchange) -> None:
    """Per-choice rules need every streamed choice to carry an integer index (else Blocked)."""
    for c in view.chunks:
        for ch in c.choices():
            if not _int(ch.get("index")):
                raise Blocked(f"a streamed choice has index {show(ch.get('index'))}", "stream.choice-fields", ex)


def _is_error(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj.get("error"))


def _chunks(view: StreamView, ex: Exchange) -> list[tuple[int, StreamChunk]]:
    """(position in view.objects, chunk) for the JSON-object events that are not error events; Blocked if none."""
    out = [(pos, c) for pos, c in enumerate(_object_chunks(view)) if not _is_error(c.obj)]
    if not out:
        owner = ERROR_OWNER if view.error_chunks else JSON_OWNER if view.chunks else FINISH_OWNER
        raise Blocked("the stream holds no JSON chunk object", owner, ex)
    return out


def _object_chunks(view: StreamView) -> list[StreamChunk]:
    """view.chunks that are objects, in the order of view.objects (so positions agree)."""
    return [c for c in view.chunks if c.is_object]


def _line(c: StreamChunk, pos: int | None = None) -> str:
    where = f"chunk {pos}: " if pos is not None else ""
    return f"{where}{event_line(c.event)}"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _usage_chunk(view: StreamView) -> tuple[int, dict[str, Any]] | None:
    """The last chunk carrying a usage object and no choices (`[]`, or the key absent/null); failing that, the
    last chunk carrying a usage object beside a choice (stream.usage-included reports that placement, and the
    counts are judged all the same)."""
    found = None
    fallback = None
    for pos, obj in enumerate(view.objects):
        choices = obj.get("choices")
        if isinstance(obj.get("usage"), dict):
            fallback = (pos, obj)
            if choices is None or choices == []:
                found = (pos, obj)
    return found or fallback


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- status, media type, body -----------------------------------------------------------------------

@check("stream.status", rule="RESP-1", probes=["stream.basic"], quirks=["stream.basic-rejected"], applies=_is_stream)
def status_is_success(ex: Exchange) -> None:
    """A minimal valid streamed request is answered 200."""
    if ex.status != 200:
        raise QuirkFound("stream.basic-rejected", f"a minimal valid streamed request got {ex.summary()}",
                         ex, evidence(ex))


@check("stream.content-type", rule="SSE-1", probes=["stream.basic"], quirks=["stream.content-type-wrong"],
       applies=_is_stream, requires=SOK)
def content_type_is_event_stream(ex: Exchange) -> None:
    """A streamed reply's media type is text/event-stream."""
    _require_200(ex, STREAM_STATUS)
    if ex.content_type != "text/event-stream":
        raise QuirkFound("stream.content-type-wrong", f"content-type is {ex.header('content-type')!r}",
                         ex, evidence(ex))


@check("stream.body-is-sse", rule="SSE-1", probes=["stream.basic"],
       quirks=["stream.body-not-sse", "stream.not-streamed", "stream.empty-body"], applies=_is_stream, requires=SOK)
def body_is_event_stream(ex: Exchange) -> None:
    """A 200 answer to a streamed request carries SSE data events."""
    _require_200(ex, STREAM_STATUS)
    if ex.sse.events:
        return
    if ex.failure is not None:
        raise Blocked(f"the stream broke off before any event ({_failure_text(ex)})", TRUNCATED_OWNER, ex)
    lines = [ln.strip() for ln in ex.body.splitlines()]
    if all(not ln or ln.startswith(b":") for ln in lines):
        what = "an empty body" if not ex.body else "no data event, only comments and blank lines"
        raise QuirkFound("stream.empty-body", f"HTTP 200 with {what}", ex, evidence(ex))
    body = ex.json_or_none()
    if isinstance(body, dict) and ("choices" in body or body.get("object") == "chat.completion"):
        raise QuirkFound("stream.not-streamed",
                         f"stream: true was answered with one JSON object (object {body.get('object')!r}), not SSE",
                         ex, evidence(ex))
    raise QuirkFound("stream.body-not-sse",
                     f"the 200 body ({len(ex.body)} bytes, content-type {ex.header('content-type')!r}) "
                     f"holds no SSE data event", ex, evidence(ex))


@check("stream.truncated", rule="STREAM-DONE-2", probes=["stream.basic"],
       quirks=["stream.truncated", "stream.never-ends"], applies=_is_stream, requires=SOK)
def stream_ends_cleanly(ex: Exchange) -> None:
    """The connection of a 200 stream ends cleanly: no reset, no timeout, no endless body."""
    _require_200(ex, STREAM_STATUS)
    f = ex.failure
    if f is None:
        return
    parse = ex.sse
    where = f"after {f.after_bytes} bytes and {len(parse.events)} events"
    if parse.done_index is not None:
        where += " ([DONE] had arrived)"
    last = [event_line(parse.events[-1])] if parse.events else []
    lines = evidence(ex, *last, f"< transport: {f.kind}: {clip(f.message, 200)}")
    if f.kind in TIMEOUT_KINDS:
        raise QuirkFound("stream.never-ends", f"the stream did not end: {f.kind} {where}: {f.message}", ex, lines)
    raise QuirkFound("stream.truncated", f"the connection failed mid-stream: {f.kind} {where}: {f.message}",
                     ex, lines)


# -- SSE level --------------------------------------------------------------------------------------

@check("stream.data-json", rule="SSE-9", probes=["stream.basic"],
       quirks=["stream.data-not-json", "stream.event-without-data"], applies=_is_stream, requires=SOK)
def data_events_are_json(ex: Exchange) -> None:
    """Every event before `[DONE]` carries JSON object data (openai-python json-decodes each one)."""
    view = _view(ex, allow_failure=True)
    bad = [c for c in view.chunks if not c.is_object]
    if bad:
        first = bad[0]
        why = first.error or f"JSON {type(first.obj).__name__}, not an object"
        raise QuirkFound("stream.data-not-json",
                         f"{len(bad)} of {len(view.chunks)} data events are not JSON objects; first: {why}",
                         ex, evidence(ex, event_line(first.event)))
    done = view.parse.done_index
    done_at = view.parse.events[done].offset if done is not None else None
    empty = [o for o in ex.sse.observations if o.kind == OBS_EMPTY_EVENT and (done_at is None or o.offset < done_at)]
    if empty:
        raise QuirkFound("stream.event-without-data",
                         f"{len(empty)} event(s) without data that openai-python dispatches and fails to "
                         f"json-decode; first at byte {empty[0].offset}: {empty[0].detail}",
                         ex, evidence(ex, f"< {clip(repr(ex.body[empty[0].offset:empty[0].offset + 120]))}"))


@check("stream.utf8", rule="SSE-2", probes=["stream.basic"], quirks=["stream.invalid-utf8", "stream.leading-bom"],
       applies=_is_stream, requires=SOK)
def stream_is_utf8(ex: Exchange) -> None:
    """The event stream is valid UTF-8 without a byte order mark."""
    _view(ex, allow_failure=True)
    bad = [o for o in ex.sse.observations if o.kind == OBS_INVALID_UTF8]
    if bad:
        raise QuirkFound("stream.invalid-utf8", f"invalid UTF-8 at byte {bad[0].offset}: {bad[0].detail}", ex,
                         evidence(ex, f"< {clip(repr(ex.body[max(0, bad[0].offset - 40):bad[0].offset + 40]))}"))
    if any(o.kind == OBS_BOM for o in ex.sse.observations):
        raise QuirkFound("stream.leading-bom",
                         "the stream starts with a UTF-8 byte order mark: WHATWG strips it, openai-python does not "
                         "and loses the first event", ex, evidence(ex, f"< {clip(repr(ex.body[:80]))}"))


@check("stream.unterminated-event", rule="SSE-4", probes=["stream.basic"], quirks=["stream.unterminated-event"],
       applies=_is_stream, framing=True)
def last_event_terminated(ex: Exchange) -> None:
    """Every event ends with a blank line (else clients silently drop the last one)."""
    view = _view(ex)
    done = view.parse.done_index
    done_end = view.parse.events[done].end if done is not None else None
    for o in ex.sse.observations:
        if o.kind != OBS_UNTERMINATED_EVENT:
            continue
        if done_end is not None and o.offset >= done_end:
            continue                     # after [DONE]: stream.after-done names it
        if _data_of(ex.body[o.offset:]).strip() == "[DONE]":
            continue                     # the terminator itself: stream.done names it
        raise QuirkFound("stream.unterminated-event", f"the stream ends inside an event: {o.detail}", ex,
                         evidence(ex, f"< tail: {clip(repr(ex.body[o.offset:][-200:]))}"))


def _data_of(raw: bytes) -> str:
    """The joined `data:` values of the field lines in raw (one event's worth)."""
    values = []
    for line in raw.splitlines():
        if line.startswith(b"data:"):
            value = line[5:].decode("utf-8", "replace")
            values.append(value[1:] if value.startswith(" ") else value)
    return "\n".join(values)


@check("stream.done", rule="STREAM-DONE-1", probes=["stream.basic"], quirks=["stream.done-missing"],
       applies=_is_stream, requires=SOK)
def ends_with_done(ex: Exchange) -> None:
    """The stream ends with `data: [DONE]` and a blank line."""
    view = _view(ex)
    if view.done:
        return
    if view.error_chunks:   # STREAM-ERR-2: after an error event [DONE] is optional
        raise Blocked(f"the stream carries an error event: {show(view.error_chunks[0])}", ERROR_OWNER, ex)
    tail = _data_of(ex.body[view.parse.events[-1].end:]) if view.parse.events else ""
    if ex.framing == "joined" and tail.strip() == "[DONE]":
        return              # a joined recording may have lost the final newlines
    last = view.parse.events[-1]
    if tail.strip() == "[DONE]":
        why = "the stream ends with data: [DONE] but no blank line after it, so clients discard it"
    elif last.data.strip() != "[DONE]" and last.data.strip().strip('"') == "[DONE]":
        why = f"the terminator is sent as {last.data!r}, not the bare [DONE]"
    elif last.data.startswith("[DONE]"):
        why = f"the terminator is {last.data!r}, not exactly [DONE]"
    else:
        why = "the stream ended without data: [DONE]"
    raise QuirkFound("stream.done-missing", why, ex,
                     evidence(ex, "< last event: " + event_line(last), f"< tail: {clip(repr(ex.body[-120:]))}"))


@check("stream.after-done", rule="STREAM-DONE-3", probes=["stream.basic"], quirks=["stream.data-after-done"],
       applies=_is_stream, requires=SOK)
def nothing_after_done(ex: Exchange) -> None:
    """Nothing but blank lines and comments follows `data: [DONE]`."""
    view = _view(ex, allow_failure=True)
    done = view.parse.done_index
    if done is None:
        raise Blocked("the stream has no [DONE]", DONE_OWNER, ex)
    end = view.parse.events[done].end
    tail = ex.body[end:]
    meaningful = [ln for ln in tail.splitlines() if ln.strip() and not ln.lstrip().startswith(b":")]
    if meaningful:
        raise QuirkFound("stream.data-after-done",
                         f"{len(meaningful)} line(s) follow data: [DONE]; first: {clip(repr(meaningful[0]), 200)}",
                         ex, evidence(ex, f"< after [DONE]: {clip(repr(tail), 250)}"))


@check("stream.midstream-error", rule="STREAM-ERR-2", probes=["stream.basic"],
       quirks=["stream.midstream-error-event", "stream.error-event-unwrapped"], applies=_is_stream, requires=SOK)
def no_error_event(ex: Exchange) -> None:
    """A valid streamed request gets no error event after the 200 (and `event: error` wraps an error object)."""
    view = _view(ex, allow_failure=True)
    for pos, c in enumerate(view.chunks):
        if c.is_object and _is_error(c.obj):
            raise QuirkFound("stream.midstream-error-event",
                             f"after HTTP 200, data event {pos} is an error: {show(c.obj.get('error'))}",
                             ex, evidence(ex, event_line(c.event)))
    for c in view.chunks:
        if c.event.event == "error":
            raise QuirkFound("stream.error-event-unwrapped",
                             "an `event: error` event whose data has no `error` object: openai-python parses "
                             "it as a chunk instead of raising", ex, evidence(ex, event_line(c.event)))


# -- chunk fields -----------------------------------------------------------------------------------

@check("stream.object", rule="STREAM-1", probes=["stream.basic"], quirks=["stream.object-wrong"], applies=_is_stream,
       requires=SOK)
def object_is_chunk(ex: Exchange) -> None:
    """Every chunk's `object` is exactly "chat.completion.chunk"."""
    chunks = _chunks(_view(ex, allow_failure=True), ex)
    wrong = [(pos, c) for pos, c in chunks if c.obj.get("object") != CHUNK_OBJECT]
    if wrong:
        values = sorted({show(c.obj.get("object")) for _, c in wrong})
        raise QuirkFound("stream.object-wrong",
                         f"{len(wrong)} of {len(chunks)} chunks have object {', '.join(values)}",
                         ex, evidence(ex, _line(wrong[0][1], wrong[0][0])))


@check("stream.chunk-fields", rule="STREAM-1", probes=["stream.basic"], quirks=["stream.chunk-field-missing"],
       applies=_is_stream, requires=SOK)
def chunk_has_required_fields(ex: Exchange) -> None:
    """Every chunk has a string `id`, integer `created`, string `model` and a `choices` array."""
    chunks = _chunks(_view(ex, allow_failure=True), ex)
    for pos, c in chunks:
        o = c.obj
        problems = []
        if not isinstance(o.get("id"), str) or not o.get("id"):
            problems.append(f"id {show(o.get('id'))}")
        if not _int(o.get("created")):
            problems.append(f"created {show(o.get('created'))}")
        if not isinstance(o.get("model"), str):
            problems.append(f"model {show(o.get('model'))}")
        if not isinstance(o.get("choices"), list):
            problems.append(f"choices {show(o.get('choices'))}")
        if problems:
            raise QuirkFound("stream.chunk-field-missing", f"chunk {pos}: {'; '.join(problems)}", ex,
                             evidence(ex, _line(c, pos)))


def _changes(ex: Exchange, key: str, quirk: str, *, skip_null: bool = False) -> None:
    chunks = _chunks(_view(ex, allow_failure=True), ex)
    first: tuple[int, StreamChunk] | None = None
    for pos, c in chunks:
        if key not in c.obj or (skip_null and c.obj[key] is None):
            continue
        if first is None:
            first = (pos, c)
        elif c.obj[key] != first[1].obj[key]:
            raise QuirkFound(quirk, f"{key} is {show(first[1].obj[key])} in chunk {first[0]} but "
                                    f"{show(c.obj[key])} in chunk {pos}",
                             ex, evidence(ex, _line(first[1], first[0]), _line(c, pos)))


@check("stream.id-constant", rule="STREAM-2", probes=["stream.basic"], quirks=["stream.id-changes"],
       applies=_is_stream, requires=SOK)
def id_is_constant(ex: Exchange) -> None:
    """`id` is the same in every chunk of the stream."""
    _changes(ex, "id", "stream.id-changes")


@check("stream.created-constant", rule="STREAM-2", probes=["stream.long"], quirks=["stream.created-changes"],
       applies=_is_stream, requires=SOK)
def created_is_constant(ex: Exchange) -> None:
    """`created` is the same in every chunk of the stream (probed with a stream that lasts over a second)."""
    _changes(ex, "created", "stream.created-changes")


@check("stream.model-constant", rule="STREAM-3", probes=["stream.basic"],
       quirks=["stream.model-changes", "stream.fingerprint-changes"], applies=_is_stream, requires=SOK)
def model_is_constant(ex: Exchange) -> None:
    """`model` (and a non-null `system_fingerprint`) is the same in every chunk of the stream."""
    _changes(ex, "model", "stream.model-changes")
    _changes(ex, "system_fingerprint", "stream.fingerprint-changes", skip_null=True)


@check("stream.choice-fields", rule="STREAM-4", probes=["stream.basic"], quirks=["stream.choice-field-missing"],
       applies=_is_stream, requires=SOK)
def choice_has_required_fields(ex: Exchange) -> None:
    """Every streamed choice has an integer `index`, a `delta` object and the key `finish_reason`."""
    chunks = _chunks(_view(ex, allow_failure=True), ex)
    for pos, c in chunks:
        choices = c.obj.get("choices")
        for ch in choices if isinstance(choices, list) else []:
            if not isinstance(ch, dict):
                problem = f"a choice is {show(ch)}"
            elif not _int(ch.get("index")):
                problem = f"index is {show(ch.get('index'))}"
            elif not isinstance(ch.get("delta"), dict):
                problem = f"delta is {show(ch.get('delta'))}"
            elif "finish_reason" not in ch:
                problem = f"no finish_reason key (keys {sorted(ch)})"
            else:
                continue
            raise QuirkFound("stream.choice-field-missing", f"chunk {pos}: {problem}", ex,
                             evidence(ex, _line(c, pos)))


@check("stream.finish-reason-value", rule="STREAM-5", probes=["stream.basic"], quirks=["stream.finish-reason-invalid"],
       applies=_is_stream, requires=SOK)
def finish_reason_in_enum(ex: Exchange) -> None:
    """Every non-null streamed `finish_reason` is one of stop, length, tool_calls, content_filter, function_call."""
    chunks = _chunks(_view(ex, allow_failure=True), ex)
    for pos, c in chunks:
        for ch in c.choices():
            reason = ch.get("finish_reason")
            if reason is not None and not (isinstance(reason, str) and reason in FINISH_REASONS):
                raise QuirkFound("stream.finish-reason-invalid", f"chunk {pos}: finish_reason is {show(reason)}",
                                 ex, evidence(ex, _line(c, pos)))


@check("stream.role-first", rule="STREAM-6", probes=["stream.basic"],
       quirks=["stream.role-missing-or-late", "stream.role-repeated"], applies=_is_stream, requires=SOK)
def role_once_and_first(ex: Exchange) -> None:
    """The first delta of choice 0 carries role "assistant", and no later delta repeats a role."""
    view = _complete(ex)
    _require_indexes(view, ex)
    entries = view.choice_entries(0)
    if not entries:
        raise Blocked("no chunk carries choice 0", FINISH_OWNER, ex)
    chunks = _object_chunks(view)
    pos0, first = entries[0]
    raw_delta = first.get("delta")
    delta0 = raw_delta if isinstance(raw_delta, dict) else {}
    if delta0.get("role") != "assistant":
        later = next(((p, ch) for p, ch in entries[1:]
                      if isinstance(ch.get("delta"), dict) and ch["delta"].get("role") is not None), None)
        where = f"; the role arrives in chunk {later[0]} ({show(later[1]['delta'].get('role'))})" if later \
            else "; no delta carries a role"
        raise QuirkFound("stream.role-missing-or-late",
                         f"the first delta of choice 0 (chunk {pos0}) is {show(first.get('delta'))}{where}",
                         ex, evidence(ex, _line(chunks[pos0], pos0)))
    repeated = [(pos, ch["delta"]["role"]) for pos, ch in entries[1:]
                if isinstance(ch.get("delta"), dict) and isinstance(ch["delta"].get("role"), str)
                and ch["delta"]["role"]]
    if repeated:
        pos, role = repeated[0]
        raise QuirkFound("stream.role-repeated",
                         f"{len(repeated)} later chunk(s) repeat the role, first chunk {pos} ({role!r}; the "
                         f"openai-python .stream() helper then accumulates role {'assistant' + role!r})",
                         ex, evidence(ex, _line(chunks[pos0], pos0), _line(chunks[pos], pos)))


@check("stream.finish-reason", rule="STREAM-8", probes=["stream.basic"],
       quirks=["stream.finish-reason-count", "stream.content-after-finish"], applies=_is_stream, requires=SOK)
def one_finish_reason_last(ex: Exchange) -> None:
    """Exactly one chunk carries choice 0's non-null `finish_reason`, and no content for it follows."""
    view = _complete(ex)
    _require_indexes(view, ex)
    chunks = _object_chunks(view)
    reasons = view.finish_reasons(0)
    if len(reasons) != 1:
        what = "no chunk carries a finish_reason" if not reasons else \
            f"{len(reasons)} chunks carry a finish_reason: " + ", ".join(f"chunk {p}: {r!r}" for p, r in reasons)
        lines = [_line(chunks[p], p) for p, _ in reasons[:3]] or \
            ([_line(chunks[-1], len(chunks) - 1)] if chunks else ["< (no chunk before [DONE])"])
        raise QuirkFound("stream.finish-reason-count", f"choice 0: {what}", ex, evidence(ex, *lines))
    fpos = reasons[0][0]
    for pos, ch in view.choice_entries(0):
        if pos <= fpos:
            continue
        delta = ch.get("delta")
        # a bare {"role": "assistant"} (with empty content) is no content; stream.role-first owns the role
        filled = {k: v for k, v in delta.items() if not _empty(v) and not (k == "role" and v == "assistant")} \
            if isinstance(delta, dict) else {}
        if filled:
            raise QuirkFound("stream.content-after-finish",
                             f"chunk {pos} carries {show(filled)} after the finish chunk {fpos}",
                             ex, evidence(ex, _line(chunks[fpos], fpos), _line(chunks[pos], pos)))


# -- usage ------------------------------------------------------------------------------------------

@check("stream.usage-unrequested", rule="STREAM-USAGE-3", probes=["stream.basic"],
       quirks=["stream.usage-unrequested"], applies=lambda req: req.stream and not _include_usage(req),
       requires=SOK_NO_USAGE)
def no_usage_unless_requested(ex: Exchange) -> None:
    """Without `stream_options.include_usage`, no chunk carries a usage object."""
    if _include_usage(ex.request):
        raise NotApplicable("the request asks for include_usage")
    chunks = _chunks(_view(ex, allow_failure=True), ex)
    for pos, c in chunks:
        in_choice = any(ch.get("usage") is not None for ch in c.choices())
        if c.obj.get("usage") is not None or in_choice:
            raise QuirkFound("stream.usage-unrequested",
                             f"chunk {pos} carries usage although the request did not ask for it",
                             ex, evidence(ex, _line(c, pos)))


@check("stream.usage-included", rule="STREAM-USAGE-1", probes=["stream.usage"],
       quirks=["stream.usage-rejected", "stream.usage-missing", "stream.usage-in-choice-chunk",
               "stream.usage-choices-absent"], applies=_wants_usage, requires=SOK_USAGE)
def usage_chunk_present(ex: Exchange) -> None:
    """With `include_usage`, a final chunk with `choices: []` carries the usage object."""
    if ex.status != 200:
        raise QuirkFound("stream.usage-rejected", f"stream_options.include_usage was answered {ex.summary()}",
                         ex, evidence(ex))
    view = _complete(ex, status_owner=USAGE_OWNER)
    chunks = _object_chunks(view)
    with_usage = [(pos, o) for pos, o in enumerate(view.objects) if isinstance(o.get("usage"), dict)]
    if not with_usage:
        in_choice = [(pos, c) for pos, c in enumerate(chunks)
                     if any(isinstance(ch.get("usage"), dict) for ch in c.choices())]
        if in_choice:
            pos, c = in_choice[0]
            raise QuirkFound("stream.usage-in-choice-chunk", f"usage is sent inside a choice (chunk {pos})",
                             ex, evidence(ex, _line(c, pos)))
        last = [_line(chunks[-1], len(chunks) - 1)] if chunks else []
        raise QuirkFound("stream.usage-missing", f"include_usage was asked but none of {len(chunks)} chunks "
                                                 f"carries a usage object", ex, evidence(ex, *last))
    if any(o.get("choices") == [] for _, o in with_usage):
        return
    absent = [(pos, o) for pos, o in with_usage if o.get("choices") is None]
    if absent:
        pos = absent[0][0]
        raise QuirkFound("stream.usage-choices-absent",
                         f"the usage chunk {pos} has choices {show(absent[0][1].get('choices'))}, not []",
                         ex, evidence(ex, _line(chunks[pos], pos)))
    pos = with_usage[-1][0]
    raise QuirkFound("stream.usage-in-choice-chunk",
                     f"usage is only sent on chunk(s) {[p for p, _ in with_usage]} that also carry choices",
                     ex, evidence(ex, _line(chunks[pos], pos)))


@check("stream.usage-chunk", rule="STREAM-USAGE-4", probes=["stream.usage"],
       quirks=["stream.usage-not-last", "stream.usage-inconsistent"], applies=_wants_usage, requires=SOK_USAGE)
def usage_chunk_last_and_consistent(ex: Exchange) -> None:
    """The usage chunk is the last chunk before `[DONE]` and its integer counts add up."""
    view = _complete(ex, status_owner=USAGE_OWNER)
    found = _usage_chunk(view)
    if found is None:
        raise Blocked("no chunk carries a usage object", USAGE_OWNER, ex)
    chunks = _object_chunks(view)
    pos, obj = found
    if pos != len(chunks) - 1:
        raise QuirkFound("stream.usage-not-last", f"the usage chunk {pos} is followed by {len(chunks) - 1 - pos} "
                                                  f"more chunk(s)", ex,
                         evidence(ex, _line(chunks[pos], pos), _line(chunks[pos + 1], pos + 1)))
    u = obj["usage"]
    p, c, t = (u.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    if not all(_int(v) and v >= 0 for v in (p, c, t)) or t != p + c:
        raise QuirkFound("stream.usage-inconsistent", f"prompt {p!r} + completion {c!r} vs total {t!r}", ex,
                         evidence(ex, _line(chunks[pos], pos)))


@check("stream.usage-others-null", rule="STREAM-USAGE-2", probes=["stream.usage"], quirks=["stream.usage-repeated"],
       applies=_wants_usage, requires=SOK_USAGE)
def usage_only_on_usage_chunk(ex: Exchange) -> None:
    """With `include_usage`, every chunk but the usage chunk has `usage` null or absent."""
    view = _complete(ex, status_owner=USAGE_OWNER)
    found = _usage_chunk(view)
    if found is None:
        raise Blocked("no chunk carries a usage object", USAGE_OWNER, ex)
    chunks = _object_chunks(view)
    for pos, obj in enumerate(view.objects):
        if pos != found[0] and obj.get("usage") is not None:
            raise QuirkFound("stream.usage-repeated",
                             f"chunk {pos} also carries usage {show(obj.get('usage'))}",
                             ex, evidence(ex, _line(chunks[pos], pos), _line(chunks[found[0]], found[0])))


@check("stream.usage-extensions", rule="RESP-4", probes=["stream.usage"],
       quirks=["stream.usage-extra-keys", "stream.usage-details-incomplete"], applies=_is_stream, requires=SOK)
def stream_usage_has_openai_keys_only(ex: Exchange) -> None:
    """A streamed usage object carries only OpenAI's keys, and its `*_tokens_details` all of OpenAI's keys.
    Any chunk's usage is judged, whether or not the chunk also carries a choice."""
    view = _view(ex, allow_failure=True)
    found = _usage_chunk(view)
    if found is None:
        raise NotApplicable("no chunk carries a usage object")
    pos, obj = found
    chunks = _object_chunks(view)
    raise_all(usage_quirks(obj["usage"], "stream.usage-extra-keys", "stream.usage-details-incomplete", ex,
                           evidence(ex, _line(chunks[pos], pos))))


@check("stream.openai-fields", rule="RESP-5", probes=["stream.basic"],
       quirks=["stream.system-fingerprint-absent", "stream.service-tier-absent"], applies=_is_stream, requires=SOK)
def stream_openai_optional_fields_present(ex: Exchange) -> None:
    """Chunks carry `system_fingerprint` and `service_tier`, as OpenAI's do (absence breaks no rule)."""
    chunks = [c for _, c in _chunks(_view(ex, allow_failure=True), ex) if not _is_error(c.obj)]
    if not chunks:
        raise Blocked("no chunk before [DONE]", STREAM_STATUS, ex)
    found = [QuirkFound(quirk, f"none of {len(chunks)} chunks has a `{key}` key", ex,
                        evidence(ex, _line(chunks[0], 0)))
             for key, quirk in (("system_fingerprint", "stream.system-fingerprint-absent"),
                                ("service_tier", "stream.service-tier-absent"))
             if not any(key in c.obj for c in chunks)]
    raise_all(found)


@check("stream.empty-deltas", rule="STREAM-7", probes=["stream.basic"], quirks=["stream.empty-delta"],
       applies=_is_stream, requires=SOK)
def no_empty_deltas(ex: Exchange) -> None:
    """Every chunk of choice 0 between the role chunk and the finish chunk carries something (no empty content)."""
    view = _complete(ex)
    chunks = _object_chunks(view)
    entries = view.choice_entries(0)
    if not entries:
        raise Blocked("no chunk carries choice 0", FINISH_OWNER, ex)
    first = entries[0][0]
    carried: dict[int, bool] = {}          # chunk position → does any of its choice-0 entries carry something
    for pos, ch in entries:
        delta = ch.get("delta")
        filled = not isinstance(delta, dict) or any(not _empty(v) and k != "role" for k, v in delta.items())
        carried[pos] = carried.get(pos, False) or filled or ch.get("finish_reason") is not None \
            or bool(ch.get("logprobs"))
    empty = [pos for pos, full in carried.items() if pos != first and not full]
    if empty:
        pos = empty[0]
        raise QuirkFound("stream.empty-delta", f"{len(empty)} chunk(s) of choice 0 carry an empty delta, first "
                                               f"chunk {pos}", ex, evidence(ex, _line(chunks[pos], pos)))


# -- streamed equals non-streamed -------------------------------------------------------------------

@check("stream.text-matches", rule="STREAM-10", probes=["stream.seeded", "chat.seeded"],
       quirks=["stream.text-differs", "stream.finish-reason-differs"], kind="capability")
def streamed_equals_plain(streamed: Exchange, plain: Exchange) -> None:
    """The streamed text and finish_reason equal the non-streamed ones for the same seeded temperature-0 request."""
    view = _complete(streamed)
    body = require_success(plain, "chat.status")
    choice = first_choice(body, "chat.choices", plain)
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise Blocked(f"the non-streamed content is {show(text)}", "chat.content", plain)
    got = view.content(0)
    reasons = view.finish_reasons(0)
    s_reason = reasons[-1][1] if reasons else None
    lines = [request_line(streamed), status_line(streamed), f"< streamed: {show(got)} finish_reason {s_reason!r}",
             request_line(plain), status_line(plain),
             f"< non-streamed: {show(text)} finish_reason {choice.get('finish_reason')!r}"]
    if got != text:
        at = next((i for i, (a, b) in enumerate(zip(got, text)) if a != b), min(len(got), len(text)))
        raise QuirkFound("stream.text-differs",
                         f"streamed text ({len(got)} chars) differs from non-streamed ({len(text)} chars) from "
                         f"char {at}: {got[at:at + 40]!r} vs {text[at:at + 40]!r}", streamed, lines)
    if s_reason != choice.get("finish_reason"):
        raise QuirkFound("stream.finish-reason-differs",
                         f"streamed finish_reason {s_reason!r} vs non-streamed {choice.get('finish_reason')!r}",
                         streamed, lines)


# -- informational ----------------------------------------------------------------------------------

@check("stream.timing", rule="STREAM-7", probes=["stream.basic"], kind="info", applies=_is_stream, framing=True)
def stream_timing(ex: Exchange) -> list[Observation]:
    """Time to first token and inter-chunk gaps of a short stream."""
    _require_200(ex, STREAM_STATUS)
    if not ex.chunks:
        raise Blocked("the stream has no body", SSE_OWNER, ex)
    try:
        t = timing_of(ex).as_dict()
    except RecursionError:
        raise Blocked("an event's data is nested too deep to decode", JSON_OWNER, ex) from None
    return [Observation("ttft", t["ttft"]), Observation("gap_p50", t["gap_p50"]),
            Observation("gap_p95", t["gap_p95"]), Observation("total", t["total"]),
            Observation("network_chunks", len(ex.chunks)), Observation("events", len(ex.sse.events))]


@check("stream.extension-fields", rule="STREAM-11", probes=["stream.basic"], kind="info", applies=_is_stream,
       requires=SOK, observes=True)
def extension_fields(ex: Exchange) -> list[Observation]:
    """Fields a provider adds to chunks, choices and deltas beyond the spec (recorded, never a failure)."""
    view = _view(ex, allow_failure=True)
    seen: dict[str, Any] = {}
    for c in view.chunks:
        if not c.is_object or _is_error(c.obj):
            continue
        for key in c.obj:
            if key not in CHUNK_KEYS:
                seen.setdefault(f"extension.chunk.{key}", c.obj[key])
        usage = c.obj.get("usage")
        if isinstance(usage, dict):
            for key in usage:
                if key not in USAGE_KEYS:
                    seen.setdefault(f"extension.usage.{key}", usage[key])
        for ch in c.choices():
            for key in ch:
                if key not in CHOICE_KEYS:
                    seen.setdefault(f"extension.choice.{key}", ch[key])
            delta = ch.get("delta")
            if isinstance(delta, dict):
                for key in delta:
                    if key not in DELTA_KEYS:
                        seen.setdefault(f"extension.delta.{key}", delta[key])
    return [Observation(key, show(value)) for key, value in sorted(seen.items())]


@check("stream.framing", rule="SSE-11", probes=["stream.basic"], kind="info", applies=_is_stream, requires=SOK,
       observes=True)
def framing_variants(ex: Exchange) -> list[Observation]:
    """SSE framing variants the spec allows (comments, CRLF, `data:` without a space, event names)."""
    _require_200(ex, STREAM_STATUS)
    out: dict[str, Any] = {}
    for o in ex.sse.observations:
        out.setdefault(f"sse.{o.kind}", o.detail)
    names = sorted({ev.event for ev in ex.sse.events if ev.event})
    if names:
        out["sse.event-names"] = names
    if any(ev.id is not None for ev in ex.sse.events):
        out["sse.ids"] = True
    return [Observation(k, v) for k, v in sorted(out.items())]
