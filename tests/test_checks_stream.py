"""Unit tests of the streaming checks on hand-built bytes: conformant variants pass, each deviation
raises exactly its quirk id, failures other checks own are Blocked, and no bytes crash a check."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import stream
from oaicompat.checks.base import CHECKS, Blocked, Finding, NotApplicable, QuirkFound, spec_of
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from tests.exchanges import chunk, completion, json_exchange, request, sse_exchange

STREAM_REQ = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
USAGE_REQ = {**STREAM_REQ, "stream_options": {"include_usage": True}}
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def good(*, usage: bool = False, first: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """A conformant stream's chunk objects (OpenAI's shape)."""
    events = [chunk(first if first is not None else {"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
              chunk({"content": "lo"}), chunk({}, finish_reason="stop")]
    if usage:
        events = [{**e, "usage": None} for e in events] + [chunk(choices=[], usage=USAGE)]
    return events


def render(events: list[Any], *, eol: bytes = b"\n", space: bool = True, comments: bool = False,
           done: bool = True) -> bytes:
    """Events as SSE bytes with the framing variants the spec allows."""
    prefix = b"data: " if space else b"data:"
    out = b": keep-alive" + eol + eol if comments else b""
    for e in events:
        out += prefix + json.dumps(e).encode() + eol + eol
        if comments:
            out += b": ping" + eol + eol
    if done:
        out += prefix + b"[DONE]" + eol + eol
    return out


def split_at(raw: bytes, cuts: list[int], *, req: Any = STREAM_REQ) -> Exchange:
    """raw split at the given byte positions (odd places: inside `data:`, inside CRLF, inside UTF-8)."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(raw)), len(raw)]
    chunks = tuple(Chunk(0.01 * (i + 1), raw[a:b]) for i, (a, b) in enumerate(zip(bounds, bounds[1:])) if b > a)
    return Exchange(request=request(req), status=200, headers=(("content-type", "text/event-stream; charset=utf-8"),),
                    chunks=chunks, elapsed=0.1)


def extended() -> list[dict[str, Any]]:
    """Extension fields a provider may add (llama.cpp timings, gateway fields, reasoning deltas)."""
    events = good()
    events[0]["choices"][0]["delta"]["reasoning_content"] = None
    for e in events:
        e["system_fingerprint"] = "b1-abc"
        e["choices"][0]["provider_specific_fields"] = {}
    events[-1]["timings"] = {"predicted_ms": 12.5}
    return events


def variants(*, usage: bool = False) -> dict[str, Exchange]:
    req = USAGE_REQ if usage else STREAM_REQ
    ev = good(usage=usage)
    return {
        "plain": sse_exchange(ev, req=req),
        "split-1": sse_exchange(ev, req=req, split=1),
        "split-7": sse_exchange(ev, req=req, split=7),
        "crlf": sse_exchange(render(ev, eol=b"\r\n"), req=req),
        "crlf-split-odd": split_at(render(ev, eol=b"\r\n"), [3, 5, 6, 57, 58, 59, 101, 102], req=req),
        "cr": sse_exchange(render(ev, eol=b"\r"), req=req),
        "no-space": sse_exchange(render(ev, space=False), req=req),
        "keep-alive": sse_exchange(render(ev, comments=True), req=req, split=13),
        "extra-fields": sse_exchange(extended() if not usage else ev, req=req),
        "content-null": sse_exchange(good(usage=usage, first={"role": "assistant", "content": None}), req=req),
    }


def run(fn: Callable[..., Any], *exchanges: Exchange) -> list:
    return spec_of(fn).run(*exchanges)


def quirk(fn: Callable[..., Any], *exchanges: Exchange) -> str:
    with pytest.raises(QuirkFound) as info:
        run(fn, *exchanges)
    assert info.value.lines, "a finding carries evidence lines"
    return info.value.quirk


def blocked(fn: Callable[..., Any], *exchanges: Exchange) -> str:
    with pytest.raises(Blocked) as info:
        run(fn, *exchanges)
    return info.value.owner


BASIC_CHECKS = [stream.status_is_success, stream.content_type_is_event_stream, stream.body_is_event_stream,
                stream.stream_ends_cleanly, stream.data_events_are_json, stream.stream_is_utf8,
                stream.last_event_terminated, stream.ends_with_done, stream.nothing_after_done,
                stream.no_error_event, stream.object_is_chunk, stream.chunk_has_required_fields,
                stream.id_is_constant, stream.created_is_constant, stream.model_is_constant,
                stream.choice_has_required_fields, stream.finish_reason_in_enum, stream.role_once_and_first,
                stream.one_finish_reason_last, stream.no_usage_unless_requested]
USAGE_CHECKS = [stream.usage_chunk_present, stream.usage_chunk_last_and_consistent, stream.usage_only_on_usage_chunk]
INFO_CHECKS = [stream.stream_timing, stream.extension_fields, stream.framing_variants]
# deviations from OpenAI's exact shape that break no rule (informational quirks; see test_openai_shape below)
OPENAI_SHAPE_CHECKS = [stream.stream_usage_has_openai_keys_only, stream.stream_openai_optional_fields_present,
                       stream.no_empty_deltas]


def test_every_stream_check_is_listed_here():
    ids = {c for c, spec in CHECKS.items() if spec.module == stream.__name__}
    listed = {spec_of(f).id for f in BASIC_CHECKS + USAGE_CHECKS + INFO_CHECKS + OPENAI_SHAPE_CHECKS
              + [stream.streamed_equals_plain]}
    assert ids == listed


# -- conformant streams pass ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(variants()))
@pytest.mark.parametrize("fn", BASIC_CHECKS, ids=lambda f: spec_of(f).id)
def test_conformant_stream_passes(fn, name):
    assert run(fn, variants()[name]) == []


@pytest.mark.parametrize("name", list(variants(usage=True)))
@pytest.mark.parametrize("fn", USAGE_CHECKS, ids=lambda f: spec_of(f).id)
def test_conformant_usage_stream_passes(fn, name):
    assert run(fn, variants(usage=True)[name]) == []


def test_usage_key_absent_on_other_chunks_passes():
    ev = good() + [chunk(choices=[], usage=USAGE)]
    for fn in USAGE_CHECKS:
        assert run(fn, sse_exchange(ev, req=USAGE_REQ)) == []


@pytest.mark.parametrize("fn", INFO_CHECKS, ids=lambda f: spec_of(f).id)
def test_info_checks_observe_without_failing(fn):
    for ex in variants().values():
        obs = run(fn, ex)
        json.dumps([(o.key, o.value) for o in obs])   # serialisable into results.json


def test_done_in_one_event_with_blank_line_variants():
    raw = b'data: ' + json.dumps(good()[0]).encode() + b'\n\n' + b''.join(
        b'data:' + json.dumps(e).encode() + b'\r\n\r\n' for e in good()[1:]) + b'data: [DONE]\n\n\n'
    for fn in BASIC_CHECKS:
        assert run(fn, sse_exchange(raw)) == []


# -- each deviation raises its quirk ----------------------------------------------------------------

def test_status_rejected():
    ex = sse_exchange(b'{"error":{"message":"no"}}', status=400, content_type="application/json")
    assert quirk(stream.status_is_success, ex) == "stream.basic-rejected"
    no_response = Exchange(request=request(STREAM_REQ), status=None,
                           failure=TransportFailure("connect", "refused"))
    assert quirk(stream.status_is_success, no_response) == "stream.basic-rejected"


def test_content_type_wrong():
    assert quirk(stream.content_type_is_event_stream,
                 sse_exchange(good(), content_type="text/plain")) == "stream.content-type-wrong"
    assert quirk(stream.content_type_is_event_stream,
                 sse_exchange(good(), content_type="application/x-ndjson")) == "stream.content-type-wrong"


def test_html_body_is_named():
    ex = sse_exchange(b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", content_type="text/html")
    assert quirk(stream.body_is_event_stream, ex) == "stream.body-not-sse"
    assert quirk(stream.content_type_is_event_stream, ex) == "stream.content-type-wrong"
    for fn in BASIC_CHECKS[3:]:
        if fn is not stream.stream_ends_cleanly:
            assert blocked(fn, ex) == "stream.body-is-sse", spec_of(fn).id


def test_json_error_body_on_200_is_not_sse():
    ex = sse_exchange(b'{"error":{"message":"bad"}}', content_type="application/json")
    assert quirk(stream.body_is_event_stream, ex) == "stream.body-not-sse"


def test_not_streamed():
    ex = sse_exchange(json.dumps(completion()).encode(), content_type="application/json")
    assert quirk(stream.body_is_event_stream, ex) == "stream.not-streamed"


@pytest.mark.parametrize("raw", [b"", b": ping\n\n: ping\n\n", b"\n\n"])
def test_empty_body(raw):
    assert quirk(stream.body_is_event_stream, sse_exchange(raw)) == "stream.empty-body"


def test_truncated_mid_stream():
    cut = len(render(good()[:2], done=False)) + 30      # two whole events and part of the third
    ex = sse_exchange(render(good())[:cut], failure=TransportFailure("reset", "Connection reset by peer", cut))
    assert quirk(stream.stream_ends_cleanly, ex) == "stream.truncated"
    for fn in (stream.ends_with_done, stream.role_once_and_first, stream.one_finish_reason_last,
               stream.last_event_terminated):
        assert blocked(fn, ex) == "stream.truncated", spec_of(fn).id
    # what did arrive is still judged
    assert run(stream.object_is_chunk, ex) == []
    assert run(stream.data_events_are_json, ex) == []


def test_truncated_before_any_byte():
    ex = sse_exchange(b"", failure=TransportFailure("protocol", "peer closed connection", 0))
    assert quirk(stream.stream_ends_cleanly, ex) == "stream.truncated"
    assert blocked(stream.body_is_event_stream, ex) == "stream.truncated"
    assert blocked(stream.object_is_chunk, ex) == "stream.truncated"


def test_failure_after_done_still_named_but_content_judged():
    ex = sse_exchange(good(), failure=TransportFailure("reset", "reset after body", 999))
    assert quirk(stream.stream_ends_cleanly, ex) == "stream.truncated"
    assert run(stream.ends_with_done, ex) == []
    assert run(stream.one_finish_reason_last, ex) == []


@pytest.mark.parametrize("kind", ["timeout", "read-timeout", "too-large"])
def test_stream_that_never_ends(kind):
    raw = render(good()[:2] * 3, done=False)
    ex = sse_exchange(raw, failure=TransportFailure(kind, "no complete response within 30 s", len(raw)))
    assert quirk(stream.stream_ends_cleanly, ex) == "stream.never-ends"
    assert blocked(stream.ends_with_done, ex) == "stream.truncated"


@pytest.mark.parametrize("bad", [b"data: hello world\n\n", b'data: {"id": "chatcmpl-1", "obj\n\n',
                                 b"data:\n\n", b'data: "[DONE]"\n\n', b"data: [1, 2]\n\n"])
def test_data_not_json(bad):
    raw = render(good()[:2], done=False) + bad + render(good()[2:])
    ex = sse_exchange(raw)
    assert quirk(stream.data_events_are_json, ex) == "stream.data-not-json"
    assert blocked(stream.one_finish_reason_last, ex) == "stream.data-json"


def test_event_without_data():
    raw = render(good()[:2], done=False) + b"event: ping\n\n" + render(good()[2:])
    assert quirk(stream.data_events_are_json, sse_exchange(raw)) == "stream.event-without-data"
    raw = b"id: 1\n" + render(good()[:1], done=False) + b"\n" + render(good()[1:])
    assert quirk(stream.data_events_are_json, sse_exchange(raw)) == "stream.event-without-data"


def test_invalid_utf8():
    raw = render(good()).replace(b'"Hel"', b'"H\xffl"')
    assert quirk(stream.stream_is_utf8, sse_exchange(raw)) == "stream.invalid-utf8"


def test_leading_bom():
    ex = sse_exchange(b"\xef\xbb\xbf" + render(good()), split=2)
    assert quirk(stream.stream_is_utf8, ex) == "stream.leading-bom"
    assert run(stream.role_once_and_first, ex) == []      # WHATWG strips it: the events are intact


def test_unterminated_last_event():
    raw = render(good()[:-1], done=False) + b"data: " + json.dumps(good()[-1]).encode() + b"\n"
    ex = sse_exchange(raw)
    assert quirk(stream.last_event_terminated, ex) == "stream.unterminated-event"
    assert quirk(stream.ends_with_done, ex) == "stream.done-missing"


def test_unterminated_done_is_named_by_done_only():
    ex = sse_exchange(render(good(), done=False) + b"data: [DONE]\n")
    assert run(stream.last_event_terminated, ex) == []
    assert quirk(stream.ends_with_done, ex) == "stream.done-missing"
    ex = sse_exchange(render(good(), done=False) + b"data: [DONE]")
    assert quirk(stream.ends_with_done, ex) == "stream.done-missing"


def test_unterminated_done_passes_on_joined_recordings():
    ex = sse_exchange(render(good(), done=False) + b"data: [DONE]")
    joined = Exchange(request=ex.request, status=200, headers=ex.headers, chunks=ex.chunks, framing="joined")
    assert run(stream.ends_with_done, joined) == []
    assert not spec_of(stream.last_event_terminated).applicable_to(joined)


@pytest.mark.parametrize("tail", [b"", b'data: "[DONE]"\n\n', b"data: [DONE] \n\n", b"data: [done]\n\n"])
def test_done_missing(tail):
    ex = sse_exchange(render(good(), done=False) + tail)
    assert quirk(stream.ends_with_done, ex) == "stream.done-missing"
    assert blocked(stream.nothing_after_done, ex) == "stream.done"


def test_done_optional_after_error_event():
    ex = sse_exchange(good()[:2] + [{"error": {"message": "overloaded", "type": "server_error"}}], done=False)
    assert blocked(stream.ends_with_done, ex) == "stream.midstream-error"


@pytest.mark.parametrize("after", [render(good()[-1:], done=False), b"data: [DONE]\n\n", b"garbage\n",
                                   b'data: {"error": {"message": "late"}}\n\n'])
def test_data_after_done(after):
    ex = sse_exchange(render(good()) + after)
    assert quirk(stream.nothing_after_done, ex) == "stream.data-after-done"


def test_comments_and_blank_lines_after_done_pass():
    assert run(stream.nothing_after_done, sse_exchange(render(good()) + b": bye\n\n\n\r\n")) == []


def test_midstream_error_event():
    ex = sse_exchange(good()[:2] + [{"error": {"message": "CUDA out of memory", "type": "server_error",
                                               "param": None, "code": None}}])
    assert quirk(stream.no_error_event, ex) == "stream.midstream-error-event"
    assert blocked(stream.one_finish_reason_last, ex) == "stream.midstream-error"
    assert blocked(stream.role_once_and_first, ex) == "stream.midstream-error"
    assert run(stream.object_is_chunk, ex) == []     # the error event is not judged as a chunk


def test_error_event_without_error_object():
    raw = render(good()[:2], done=False) + b'event: error\ndata: {"message": "boom"}\n\n' + render(good()[2:])
    assert quirk(stream.no_error_event, sse_exchange(raw)) == "stream.error-event-unwrapped"


def test_object_wrong():
    ev = good()
    ev[1]["object"] = "chat.completion"
    assert quirk(stream.object_is_chunk, sse_exchange(ev)) == "stream.object-wrong"
    ev[1]["object"] = ""
    assert quirk(stream.object_is_chunk, sse_exchange(ev)) == "stream.object-wrong"


@pytest.mark.parametrize("field,value", [("id", None), ("id", ""), ("created", "1726012687"),
                                         ("created", 1.5), ("model", None), ("choices", None)])
def test_chunk_field_missing(field, value):
    ev = good()
    ev[2][field] = value
    assert quirk(stream.chunk_has_required_fields, sse_exchange(ev)) == "stream.chunk-field-missing"
    del ev[2][field]
    assert quirk(stream.chunk_has_required_fields, sse_exchange(ev)) == "stream.chunk-field-missing"


@pytest.mark.parametrize("fn,field,value,expected", [
    (stream.id_is_constant, "id", "chatcmpl-2", "stream.id-changes"),
    (stream.created_is_constant, "created", 1_726_012_688, "stream.created-changes"),
    (stream.model_is_constant, "model", "m-2", "stream.model-changes"),
    (stream.model_is_constant, "system_fingerprint", "fp_2", "stream.fingerprint-changes"),
])
def test_field_changes(fn, field, value, expected):
    ev = [{**e, "system_fingerprint": "fp_1"} for e in good()]
    ev[2][field] = value
    assert quirk(fn, sse_exchange(ev)) == expected


def test_fingerprint_null_on_some_chunks_passes():
    ev = [{**e, "system_fingerprint": "fp_1"} for e in good()]
    ev[0]["system_fingerprint"] = None
    assert run(stream.model_is_constant, sse_exchange(ev)) == []


@pytest.mark.parametrize("mutate", [
    lambda ch: ch.pop("finish_reason"), lambda ch: ch.pop("index"), lambda ch: ch.update(index="0"),
    lambda ch: ch.pop("delta"), lambda ch: ch.update(delta=None)])
def test_choice_field_missing(mutate):
    ev = good()
    mutate(ev[1]["choices"][0])
    assert quirk(stream.choice_has_required_fields, sse_exchange(ev)) == "stream.choice-field-missing"


def test_choice_without_integer_index_blocks_per_choice_rules():
    ev = good()
    ev[1]["choices"][0]["index"] = "0"
    for fn in (stream.role_once_and_first, stream.one_finish_reason_last):
        assert blocked(fn, sse_exchange(ev)) == "stream.choice-fields"


def test_finish_reason_invalid():
    ev = good()
    ev[-1]["choices"][0]["finish_reason"] = "eos_token"
    assert quirk(stream.finish_reason_in_enum, sse_exchange(ev)) == "stream.finish-reason-invalid"


@pytest.mark.parametrize("first", [{"content": "Hel"}, {"role": "model", "content": ""}, {}])
def test_role_missing_or_late(first):
    ev = good(first=first)
    assert quirk(stream.role_once_and_first, sse_exchange(ev)) == "stream.role-missing-or-late"


def test_role_repeated():
    ev = good()
    for e in ev[1:]:
        e["choices"][0]["delta"]["role"] = "assistant"
    assert quirk(stream.role_once_and_first, sse_exchange(ev)) == "stream.role-repeated"


def test_role_null_or_empty_later_is_not_repeated():
    ev = good()
    ev[1]["choices"][0]["delta"]["role"] = None
    ev[2]["choices"][0]["delta"]["role"] = ""
    assert run(stream.role_once_and_first, sse_exchange(ev)) == []


def test_finish_reason_count():
    ev = good()
    ev[-1]["choices"][0]["finish_reason"] = None
    assert quirk(stream.one_finish_reason_last, sse_exchange(ev)) == "stream.finish-reason-count"
    ev = good()
    ev[2]["choices"][0]["finish_reason"] = "stop"
    assert quirk(stream.one_finish_reason_last, sse_exchange(ev)) == "stream.finish-reason-count"


def test_content_after_finish():
    ev = good()
    ev.insert(3, chunk({"content": "!"}, finish_reason="stop"))
    ev[-1]["choices"][0]["finish_reason"] = None
    ev[-1]["choices"][0]["delta"] = {"content": " more"}
    assert quirk(stream.one_finish_reason_last, sse_exchange(ev)) == "stream.content-after-finish"


def test_finish_on_content_chunk_and_trailing_empty_delta_pass():
    ev = good()[:2] + [chunk({"content": "lo"}, finish_reason="length"), chunk({})]
    assert run(stream.one_finish_reason_last, sse_exchange(ev)) == []


def test_usage_unrequested():
    ev = good() + [chunk(choices=[], usage=USAGE)]
    assert quirk(stream.no_usage_unless_requested, sse_exchange(ev)) == "stream.usage-unrequested"
    ev = good()
    ev[-1]["usage"] = USAGE
    assert quirk(stream.no_usage_unless_requested, sse_exchange(ev)) == "stream.usage-unrequested"


def test_usage_unrequested_not_applicable_with_include_usage():
    with pytest.raises(NotApplicable):
        run(stream.no_usage_unless_requested, sse_exchange(good(usage=True), req=USAGE_REQ))
    assert not spec_of(stream.no_usage_unless_requested).applicable_to(sse_exchange(good(), req=USAGE_REQ))


def test_usage_rejected():
    ex = sse_exchange(b'{"error":{"message":"stream_options not supported"}}', req=USAGE_REQ, status=400,
                      content_type="application/json")
    assert quirk(stream.usage_chunk_present, ex) == "stream.usage-rejected"
    assert blocked(stream.usage_chunk_last_and_consistent, ex) == "stream.usage-included"


def test_usage_missing():
    ex = sse_exchange(good(), req=USAGE_REQ)
    assert quirk(stream.usage_chunk_present, ex) == "stream.usage-missing"
    assert blocked(stream.usage_chunk_last_and_consistent, ex) == "stream.usage-included"
    assert blocked(stream.usage_only_on_usage_chunk, ex) == "stream.usage-included"


def test_usage_in_choice_chunk():
    ev = good()
    ev[-1]["usage"] = USAGE
    assert quirk(stream.usage_chunk_present, sse_exchange(ev, req=USAGE_REQ)) == "stream.usage-in-choice-chunk"
    ev = good()
    ev[-1]["choices"][0]["usage"] = USAGE
    assert quirk(stream.usage_chunk_present, sse_exchange(ev, req=USAGE_REQ)) == "stream.usage-in-choice-chunk"


def test_usage_choices_absent():
    usage_chunk = chunk(choices=[], usage=USAGE)
    del usage_chunk["choices"]
    ex = sse_exchange(good() + [usage_chunk], req=USAGE_REQ)
    assert quirk(stream.usage_chunk_present, ex) == "stream.usage-choices-absent"
    assert run(stream.usage_chunk_last_and_consistent, ex) == []


def test_usage_not_last():
    ev = good()[:3] + [chunk(choices=[], usage=USAGE), good()[3]]
    assert quirk(stream.usage_chunk_last_and_consistent, sse_exchange(ev, req=USAGE_REQ)) == "stream.usage-not-last"


@pytest.mark.parametrize("usage", [{"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 8},
                                   {"prompt_tokens": 5, "completion_tokens": 2.0, "total_tokens": 7},
                                   {"prompt_tokens": 5, "completion_tokens": 2}])
def test_usage_inconsistent(usage):
    ev = good() + [chunk(choices=[], usage=usage)]
    assert quirk(stream.usage_chunk_last_and_consistent,
                 sse_exchange(ev, req=USAGE_REQ)) == "stream.usage-inconsistent"


def test_usage_repeated():
    ev = good() + [chunk(choices=[], usage=USAGE)]
    ev[-2]["usage"] = USAGE
    assert quirk(stream.usage_only_on_usage_chunk, sse_exchange(ev, req=USAGE_REQ)) == "stream.usage-repeated"


# -- streamed equals non-streamed -------------------------------------------------------------------

SEEDED = {"model": "m", "messages": [{"role": "user", "content": "Count."}], "seed": 1, "temperature": 0,
          "max_tokens": 24}


def pair(text: str = "Hello", finish: str = "stop", *, streamed: list | None = None) -> tuple[Exchange, Exchange]:
    s = sse_exchange(streamed or good(), req={**SEEDED, "stream": True}, split=5)
    p = json_exchange(completion(text, finish_reason=finish), req=SEEDED)
    return s, p


def test_streamed_equals_plain_passes():
    assert run(stream.streamed_equals_plain, *pair()) == []


def test_text_differs():
    assert quirk(stream.streamed_equals_plain, *pair("Hello there")) == "stream.text-differs"
    assert quirk(stream.streamed_equals_plain, *pair("Help")) == "stream.text-differs"


def test_finish_reason_differs():
    assert quirk(stream.streamed_equals_plain, *pair(finish="length")) == "stream.finish-reason-differs"


def test_text_matches_blocked_when_plain_rejected():
    s, _ = pair()
    p = json_exchange({"error": {"message": "seed not supported"}}, status=400, req=SEEDED)
    assert blocked(stream.streamed_equals_plain, s, p) == "chat.status"
    assert spec_of(stream.streamed_equals_plain).kind == "capability"


# -- info checks ------------------------------------------------------------------------------------

def test_timing_observations():
    times = [0.05, 0.10, 0.12, 0.20]                  # one event per network chunk; [DONE] with the last
    events = good()
    parts = [render([e], done=False) for e in events[:-1]] + [render(events[-1:])]
    ex = Exchange(request=request(STREAM_REQ), status=200, headers=(("content-type", "text/event-stream"),),
                  chunks=tuple(Chunk(t, p) for t, p in zip(times, parts)), elapsed=0.25)
    obs = {o.key: o.value for o in run(stream.stream_timing, ex)}
    assert obs["ttft"] == pytest.approx(0.10)          # the first non-empty content delta ("Hel")
    assert obs["gap_p50"] == pytest.approx(0.05)       # gaps 0.05, 0.02, 0.08
    assert obs["gap_p95"] == pytest.approx(0.077)
    assert obs["total"] == pytest.approx(0.25)
    assert obs["network_chunks"] == 4 and obs["events"] == 5
    assert spec_of(stream.stream_timing).kind == "info"
    assert not spec_of(stream.stream_timing).applicable_to(
        Exchange(request=ex.request, status=200, headers=ex.headers, chunks=ex.chunks, framing="joined"))


def test_extension_fields_observed():
    obs = {o.key: o.value for o in run(stream.extension_fields, sse_exchange(extended()))}
    assert set(obs) == {"extension.chunk.timings", "extension.choice.provider_specific_fields",
                        "extension.delta.reasoning_content"}
    assert run(stream.extension_fields, sse_exchange(good())) == []


def test_framing_variants_observed():
    raw = render(good(), eol=b"\r\n", space=False, comments=True).replace(b"data:", b"event: message\r\ndata:", 1)
    obs = {o.key: o.value for o in run(stream.framing_variants, sse_exchange(raw))}
    assert {"sse.comment", "sse.crlf-line-endings", "sse.no-space-after-colon", "sse.event-names"} <= set(obs)
    assert run(stream.framing_variants, sse_exchange(good())) == []


# -- never crash on vendor bytes --------------------------------------------------------------------

ALL = BASIC_CHECKS + USAGE_CHECKS + INFO_CHECKS

NASTY = [b"", b"\x00\xff\xfe", b"data: [DONE]\n\n", b"data: null\n\n", b'data: {"choices": "x"}\n\n',
         b'data: {"choices": [1, null, {"index": "0", "delta": "x"}]}\n\n', b'data: {"error": "x"}\n\n',
         b'data: {"choices": [{"delta": {"role": 1, "content": 2}, "finish_reason": []}], "usage": 5}\n\n',
         b'data: {"choices": [], "usage": {"prompt_tokens": "a"}}\n\n', b"retry: x\nid: \x00\n\n",
         b"data: " + b"[" * 5000 + b"\n\n", b"\r\r\r", b"data: {}\r"]


@pytest.mark.parametrize("raw", NASTY)
def test_nasty_bytes_never_crash(raw):
    for req in (STREAM_REQ, USAGE_REQ):
        for ex in (sse_exchange(raw, req=req), sse_exchange(raw, req=req, split=3),
                   sse_exchange(raw, req=req, failure=TransportFailure("reset", "x", len(raw)))):
            for fn in ALL:
                try:
                    run(fn, ex)
                except Finding:
                    pass
            try:
                run(stream.streamed_equals_plain, ex, json_exchange(raw))
            except Finding:
                pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"data: ", b"data:", b"\n", b"\r\n", b"\r", b": ping\n", b"event: error\n", b"[DONE]",
                     b'{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}',
                     b'{"error":{"message":"x"}}', b'{"usage":{"total_tokens":1}}', b"\xff"])), max_size=25),
       st.integers(min_value=0, max_value=9))
def test_random_bytes_never_crash(parts, split):
    raw = b"".join(parts)
    for ex in (sse_exchange(raw, split=split or None), sse_exchange(raw, req=USAGE_REQ)):
        for fn in ALL:
            try:
                run(fn, ex)
            except Finding:
                pass


# -- issue 16: what OpenRouter's streams showed -----------------------------------------------------------------

FULL_USAGE = {**USAGE, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
OPENROUTER_USAGE = {**USAGE, "cost": 0.0000195, "is_byok": False, "prompt_tokens_details": {"cached_tokens": 0},
                    "cost_details": {"upstream_inference_cost": None}}


def _usage_with_choice(usage: dict[str, Any]) -> Exchange:
    """OpenRouter's shape: the usage arrives on the finish chunk, which also carries the choice."""
    events = good()
    events[-1]["usage"] = usage
    return sse_exchange(events, req=USAGE_REQ)


def test_openai_shape():
    openai = [{**e, "system_fingerprint": None, "service_tier": "default"} for e in good(usage=True)]
    openai[-1]["usage"] = FULL_USAGE
    for fn in OPENAI_SHAPE_CHECKS:
        assert run(fn, sse_exchange(openai, req=USAGE_REQ)) == []
    with pytest.raises(QuirkFound) as info:
        run(stream.stream_usage_has_openai_keys_only, _usage_with_choice(OPENROUTER_USAGE))
    assert set(info.value.quirks) == {"stream.usage-extra-keys", "stream.usage-details-incomplete"}  # type: ignore[attr-defined]
    assert "cost=" in info.value.detail and "is_byok" in info.value.detail
    with pytest.raises(NotApplicable):
        run(stream.stream_usage_has_openai_keys_only, sse_exchange(good(), req=STREAM_REQ))
    with pytest.raises(QuirkFound) as info:
        run(stream.stream_openai_optional_fields_present, sse_exchange(good(), req=STREAM_REQ))
    assert set(info.value.quirks) == {"stream.system-fingerprint-absent", "stream.service-tier-absent"}  # type: ignore[attr-defined]
    fp = [{**e, "system_fingerprint": "fp"} for e in good()]
    assert quirk(stream.stream_openai_optional_fields_present, sse_exchange(fp)) == "stream.service-tier-absent"
    empty = good()
    empty.insert(2, chunk({"content": ""}))
    assert quirk(stream.no_empty_deltas, sse_exchange(empty)) == "stream.empty-delta"


def test_usage_beside_a_choice_is_judged_not_blocked():
    ex = _usage_with_choice(USAGE)
    assert quirk(stream.usage_chunk_present, ex) == "stream.usage-in-choice-chunk"
    assert run(stream.usage_chunk_last_and_consistent, ex) == []
    bad = _usage_with_choice({**USAGE, "total_tokens": 99})
    assert quirk(stream.usage_chunk_last_and_consistent, bad) == "stream.usage-inconsistent"


def test_extension_fields_look_inside_usage():
    keys = {o.key for o in run(stream.extension_fields, _usage_with_choice(OPENROUTER_USAGE))}
    assert {"extension.usage.cost", "extension.usage.is_byok", "extension.usage.cost_details"} <= keys
    assert "extension.usage.prompt_tokens_details" not in keys


def test_a_bare_assistant_role_after_finish_is_not_content():
    """OpenRouter sends {"role": "assistant", "content": ""} after the finish chunk: no content follows."""
    events = good() + [chunk({"role": "assistant", "content": ""})]
    assert run(stream.one_finish_reason_last, sse_exchange(events)) == []
    assert quirk(stream.role_once_and_first, sse_exchange(events)) == "stream.role-repeated"
    events = good() + [chunk({"role": "assistant", "content": "x"})]
    assert quirk(stream.one_finish_reason_last, sse_exchange(events)) == "stream.content-after-finish"
