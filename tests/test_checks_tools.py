"""Unit tests of the tools checks on hand-built exchanges: one conformant exchange that passes, one
deviating exchange that raises exactly the expected quirk id (or Blocked naming the right owner)."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib.streaming._deltas import accumulate_delta

from oaicompat.checks import tools, tools_probes
from oaicompat.checks.base import CHECKS, PROBES, Blocked, Finding, Observation, ProbeContext, QuirkFound, spec_of
from oaicompat.exchange import Exchange, TransportFailure
from tests.exchanges import chunk, completion, json_exchange, request, sse_exchange

CTX = ProbeContext(SimpleNamespace(params={}), "m")  # type: ignore[arg-type]


def req(probe: str) -> dict[str, Any]:
    return PROBES[probe].build(CTX).json


def run(fn, *exchanges: Exchange) -> list[Observation]:
    return spec_of(fn).run(*exchanges)


def quirk_of(fn, *exchanges: Exchange) -> QuirkFound:
    with pytest.raises(QuirkFound) as info:
        run(fn, *exchanges)
    assert info.value.lines, "a finding carries evidence lines"
    return info.value


def owner_of(fn, *exchanges: Exchange) -> str:
    with pytest.raises(Blocked) as info:
        run(fn, *exchanges)
    return info.value.owner


def call(city: str = "Paris", *, id: str = "call_1", name: str = "get_weather", **extra: Any) -> dict[str, Any]:
    c = {"id": id, "type": "function", "function": {"name": name, "arguments": json.dumps({"city": city}, ensure_ascii=False)}}
    c.update(extra)
    return c


def reply(probe: str, calls: list[Any] | None = None, *, content: Any = None, finish: str | None = "tool_calls",
          **message: Any) -> Exchange:
    body = completion(content, finish_reason=finish)  # type: ignore[arg-type]
    msg = body["choices"][0]["message"]
    if calls is not None:
        msg["tool_calls"] = calls
    msg.update(message)
    return json_exchange(body, req=req(probe))


def text(probe: str, content: str = "The weather is nice.", finish: str = "stop") -> Exchange:
    return json_exchange(completion(content, finish_reason=finish), req=req(probe))


def rejected(probe: str, status: int = 400) -> Exchange:
    return json_exchange({"error": {"message": "tool_choice not supported", "type": "invalid_request_error",
                                    "param": "tool_choice", "code": None}}, status=status, req=req(probe))


def deltas(index: int = 0, *, id: str = "call_1", city: str = "Paris") -> list[list[dict[str, Any]]]:
    """One call's tool_calls arrays, conformant: id/type/name first, then argument fragments."""
    args = json.dumps({"city": city})
    return [[{"index": index, "id": id, "type": "function", "function": {"name": "get_weather", "arguments": ""}}],
            [{"index": index, "function": {"arguments": args[:5]}}],
            [{"index": index, "function": {"arguments": args[5:]}}]]


def stream(probe: str, tool_deltas: list[list[Any]], *, finish: str = "tool_calls", split: int | None = 7,
           extra: list[dict[str, Any]] = ()) -> Exchange:
    events = [chunk({"role": "assistant", "content": None})]
    events += [chunk({"tool_calls": d}) for d in tool_deltas]
    events += [chunk(e) for e in extra]
    events.append(chunk({}, finish_reason=finish))
    return sse_exchange(events, req=req(probe), split=split)


def text_stream(probe: str, content: str = "Sunny.") -> Exchange:
    return sse_exchange([chunk({"role": "assistant", "content": ""}), chunk({"content": content}),
                         chunk({}, finish_reason="stop")], req=req(probe), split=5)


def sdk_accumulate(tool_deltas: list[list[Any]]) -> dict[str, Any]:
    acc: dict[str, Any] = {}
    for d in tool_deltas:
        acc = accumulate_delta(acc, {"tool_calls": copy.deepcopy(d)})
    return acc


# -- probes -----------------------------------------------------------------------------------------

def test_probes_send_valid_tools_and_small_budgets():
    names = [n for n in PROBES if n.startswith("tools.")]
    assert len(names) == 13
    for name in names:
        body = req(name)
        assert body["temperature"] == 0 and body["max_tokens"] <= 64
        for tool in body["tools"]:
            assert tool["type"] == "function"
            params = tool["function"]["parameters"]
            assert params["additionalProperties"] is False and set(params["required"]) == set(params["properties"])
    assert req("tools.named-stream") == {**req("tools.named"), "stream": True}
    assert req("tools.parallel-stream") == {**req("tools.parallel"), "stream": True}
    assert req("tools.strict")["tools"][0]["function"]["strict"] is True
    assert req("tools.parallel-off")["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in req("tools.parallel")


def test_probe_bodies_are_independent_copies():
    a, b = req("tools.named"), req("tools.named")
    a["tools"][0]["function"]["parameters"]["required"].append("x")
    assert b["tools"][0]["function"]["parameters"]["required"] == ["city"]


def test_provider_params_do_not_override_the_subject():
    ctx = ProbeContext(SimpleNamespace(params={"tool_choice": "auto", "top_p": 0.5}), "m")  # type: ignore[arg-type]
    body = PROBES["tools.named"].build(ctx).json
    assert body["tool_choice"] == tools_probes.NAMED_CHOICE and body["top_p"] == 0.5


# -- acceptance and tool_choice ---------------------------------------------------------------------

@pytest.mark.parametrize("fn, probe, quirk", [
    (tools.accepted, "tools.basic", "tools.rejected"),
    (tools.choice_auto_accepted, "tools.auto", "tools.choice-auto-rejected"),
    (tools.choice_required_accepted, "tools.required", "tools.choice-required-rejected"),
    (tools.choice_named_accepted, "tools.named", "tools.choice-named-rejected"),
    (tools.strict_accepted, "tools.strict", "tools.strict-rejected"),
])
def test_accepted_checks(fn, probe, quirk):
    assert run(fn, text(probe)) == []
    found = quirk_of(fn, rejected(probe))
    assert found.quirk == quirk
    assert "HTTP 400" in found.detail and "type=\"invalid_request_error\"" in found.detail
    non_json = json_exchange(b"Internal Server Error", status=200, req=req(probe), content_type="text/plain")
    assert quirk_of(fn, non_json).quirk == quirk


def test_rejection_detail_names_status_and_error_shape():
    ex = json_exchange({"detail": [{"msg": "bad"}]}, status=422, req=req("tools.named"))
    detail = quirk_of(tools.choice_named_accepted, ex).detail
    assert "HTTP 422" in detail and "without an error object" in detail and "detail" in detail


def test_choice_none():
    assert run(tools.choice_none_honoured, text("tools.none")) == []
    assert quirk_of(tools.choice_none_honoured, rejected("tools.none")).quirk == "tools.choice-none-rejected"
    assert quirk_of(tools.choice_none_honoured, reply("tools.none", [call()])).quirk == "tools.choice-none-ignored"


def test_choice_required_called():
    assert run(tools.choice_required_called, reply("tools.required", [call()])) == []
    assert quirk_of(tools.choice_required_called, text("tools.required")).quirk == "tools.choice-required-ignored"
    in_content = text("tools.required", '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>')
    assert owner_of(tools.choice_required_called, in_content) == "tools.call-not-in-content"
    assert owner_of(tools.choice_required_called, rejected("tools.required")) == "tools.choice-required-accepted"


def test_choice_named_called():
    assert run(tools.choice_named_called, reply("tools.named", [call()])) == []
    assert quirk_of(tools.choice_named_called, text("tools.named")).quirk == "tools.choice-named-ignored"
    other = reply("tools.named", [call(name="get_time")])
    assert "get_time" in quirk_of(tools.choice_named_called, other).detail
    assert owner_of(tools.choice_named_called, text("tools.named", '{"city": "Paris"}')) == "tools.call-not-in-content"
    assert owner_of(tools.choice_named_called, rejected("tools.named")) == "tools.choice-named-accepted"


def test_call_not_in_content():
    named, required = reply("tools.named", [call()]), reply("tools.required", [call()])
    assert run(tools.call_not_in_content, named, required) == []
    args_as_content = text("tools.named", '{"city": "Paris"}')
    assert quirk_of(tools.call_not_in_content, args_as_content, required).quirk == "tools.call-in-content"
    markup = text("tools.required", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert quirk_of(tools.call_not_in_content, named, markup).quirk == "tools.call-in-content"
    listed = text("tools.required", '[{"name": "get_weather", "parameters": {"city": "Tokyo"}}]')
    assert quirk_of(tools.call_not_in_content, named, listed).quirk == "tools.call-in-content"
    # a model that just talks: nothing to report here, the capability check reports the missing call
    assert owner_of(tools.call_not_in_content, text("tools.named"), text("tools.required")) == "tools.choice-named-called"
    # JSON that is not a call (wrong schema) is not mistaken for one
    assert owner_of(tools.call_not_in_content, text("tools.named", '{"weather": 1}'),
                    text("tools.required")) == "tools.choice-named-called"


def test_no_call_shape():
    assert run(tools.no_call_shape, text("tools.none"), text("tools.auto")) == []
    empty = reply("tools.none", [], content="Sunny.", finish="stop")
    assert quirk_of(tools.no_call_shape, empty, text("tools.auto")).quirk == "tools.empty-tool-calls"
    assert run(tools.no_call_shape, reply("tools.none", None, content="Hi", finish="stop", tool_calls=None),
               text("tools.auto")) == []
    assert owner_of(tools.no_call_shape, rejected("tools.none"), reply("tools.auto", [call()])) == "tools.choice-none"


# -- shape ------------------------------------------------------------------------------------------

def shape_set(bad: dict[str, Any] | None = None) -> tuple[Exchange, Exchange, Exchange]:
    named = reply("tools.named", [bad if bad is not None else call()])
    return named, text("tools.required"), text("tools.auto")


@pytest.mark.parametrize("fn, bad, quirk", [
    (tools.call_id, call(id=""), "tools.call-id-missing"),
    (tools.call_id, {k: v for k, v in call().items() if k != "id"}, "tools.call-id-missing"),
    (tools.call_type, call(type="tool"), "tools.call-type-wrong"),
    (tools.call_type, {k: v for k, v in call().items() if k != "type"}, "tools.call-type-wrong"),
    (tools.call_name, {**call(), "function": {"arguments": "{}"}}, "tools.call-name-missing"),
    (tools.arguments_string, {**call(), "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
     "tools.arguments-not-string"),
])
def test_shape_checks(fn, bad, quirk):
    assert run(fn, *shape_set()) == []
    assert quirk_of(fn, *shape_set(bad)).quirk == quirk


def test_shape_checks_look_at_every_reply_with_calls():
    named, auto = text("tools.named"), text("tools.auto")
    required = reply("tools.required", [call(), call("Tokyo", id="")])
    assert quirk_of(tools.call_id, named, required, auto).quirk == "tools.call-id-missing"


@pytest.mark.parametrize("fn", [tools.call_id, tools.call_type, tools.call_name, tools.arguments_string])
def test_shape_blocked_without_calls(fn):
    assert owner_of(fn, text("tools.named"), text("tools.required"), text("tools.auto")) == "tools.choice-named-called"
    assert owner_of(fn, rejected("tools.named"), text("tools.required"), text("tools.auto")) == \
        "tools.choice-named-accepted"


def test_arguments_valid():
    cjk = reply("tools.cjk", [call("東京")])
    assert run(tools.arguments_valid, reply("tools.named", [call()]), text("tools.required"), cjk) == []
    bad_json = reply("tools.named", [{**call(), "function": {"name": "get_weather", "arguments": '{"city": "Par'}}])
    assert quirk_of(tools.arguments_valid, bad_json, text("tools.required"), cjk).quirk == "tools.arguments-invalid-json"
    berlin = reply("tools.named", [call("Berlin")])
    found = quirk_of(tools.arguments_valid, berlin, text("tools.required"), cjk)
    assert found.quirk == "tools.arguments-schema-mismatch" and "Berlin" in found.detail
    extra = reply("tools.named", [{**call(), "function": {"name": "get_weather",
                                                           "arguments": '{"city": "Paris", "unit": "c"}'}}])
    assert quirk_of(tools.arguments_valid, extra, text("tools.required"), cjk).quirk == "tools.arguments-schema-mismatch"
    cut = reply("tools.named", [{**call(), "function": {"name": "get_weather", "arguments": '{"ci'}}], finish="length")
    assert owner_of(tools.arguments_valid, cut, text("tools.required"), text("tools.cjk")) == "tools.finish-reason"


def test_finish_reason():
    ok = (reply("tools.auto", [call()]), reply("tools.required", [call()]), reply("tools.named", [call()]),
          stream("tools.named-stream", deltas()))
    assert run(tools.finish_reason, *ok) == []
    stop = reply("tools.required", [call()], finish="stop")
    assert quirk_of(tools.finish_reason, ok[0], stop, ok[2], ok[3]).quirk == "tools.finish-reason-stop"
    null = reply("tools.auto", [call()], finish=None)
    assert quirk_of(tools.finish_reason, null, *ok[1:]).quirk == "tools.finish-reason-wrong"
    # a forced named function may finish with "stop" (openai-wire.md §10), streamed or not
    named_stop = reply("tools.named", [call()], finish="stop")
    notes = run(tools.finish_reason, ok[0], ok[1], named_stop, stream("tools.named-stream", deltas(), finish="stop"))
    assert [n.key for n in notes] == ["named-stop", "named-stop"]
    assert owner_of(tools.finish_reason, text("tools.auto"), text("tools.required"), text("tools.named"),
                    text_stream("tools.named-stream")) == "tools.choice-named-called"


def test_legacy_function_call():
    plain = (reply("tools.named", [call()]), text("tools.required"), text("tools.auto"),
             stream("tools.named-stream", deltas()))
    assert run(tools.legacy_function_call, *plain) == []
    legacy = reply("tools.named", [call()], function_call={"name": "get_weather", "arguments": '{"city":"Paris"}'})
    assert quirk_of(tools.legacy_function_call, legacy, *plain[1:]).quirk == "tools.legacy-function-call"
    s = stream("tools.named-stream", deltas(), extra=[{"function_call": {"name": "get_weather", "arguments": ""}}])
    assert quirk_of(tools.legacy_function_call, *plain[:3], s).quirk == "tools.legacy-function-call"


def test_arguments_unescaped():
    # tests.exchanges serialises bodies with ensure_ascii: body-level escapes are plain JSON and fine
    notes = run(tools.arguments_unescaped, reply("tools.cjk", [call("東京")]))
    assert [n.key for n in notes] == ["body-ascii-escaped"]
    raw = json.dumps({"city": "東京"})  # ensure_ascii: '{"city": "\\u6771\\u4eac"}' inside the arguments string
    escaped = reply("tools.cjk", [{**call(), "function": {"name": "get_weather", "arguments": raw}}])
    found = quirk_of(tools.arguments_unescaped, escaped)
    assert found.quirk == "tools.arguments-unicode-escaped" and "\\u6771" in found.detail
    assert owner_of(tools.arguments_unescaped, reply("tools.cjk", [call("Tokyo")])) == "tools.arguments-valid"
    assert owner_of(tools.arguments_unescaped, text("tools.cjk")) == "tools.choice-named-called"


def test_strict_enforced():
    assert run(tools.strict_enforced, reply("tools.strict", [call("London")])) == []
    assert quirk_of(tools.strict_enforced, reply("tools.strict", [call("Berlin")])).quirk == "tools.strict-ignored"
    not_json = reply("tools.strict", [{**call(), "function": {"name": "get_weather", "arguments": "Paris"}}])
    assert quirk_of(tools.strict_enforced, not_json).quirk == "tools.strict-ignored"
    assert owner_of(tools.strict_enforced, text("tools.strict")) == "tools.choice-named-called"
    assert owner_of(tools.strict_enforced, rejected("tools.strict")) == "tools.strict-accepted"


# -- parallel ---------------------------------------------------------------------------------------

TWO = [call("Paris", id="call_1"), call("Tokyo", id="call_2")]


def test_parallel_called():
    assert run(tools.parallel_called, reply("tools.parallel", TWO)) == []
    assert quirk_of(tools.parallel_called, reply("tools.parallel", TWO[:1])).quirk == "tools.parallel-not-made"
    assert owner_of(tools.parallel_called, rejected("tools.parallel")) == "tools.choice-required-accepted"


def test_parallel_ids_distinct():
    assert run(tools.parallel_ids_distinct, reply("tools.parallel", TWO)) == []
    same = [call("Paris", id="call_1"), call("Tokyo", id="call_1")]
    assert quirk_of(tools.parallel_ids_distinct, reply("tools.parallel", same)).quirk == "tools.call-ids-duplicate"
    assert owner_of(tools.parallel_ids_distinct, reply("tools.parallel", TWO[:1])) == "tools.parallel-called"


def test_parallel_off():
    on = reply("tools.parallel", TWO)
    assert run(tools.parallel_off, on, reply("tools.parallel-off", TWO[:1])) == []
    assert quirk_of(tools.parallel_off, on, rejected("tools.parallel-off")).quirk == "tools.parallel-param-rejected"
    assert quirk_of(tools.parallel_off, on, reply("tools.parallel-off", TWO)).quirk == "tools.parallel-param-ignored"
    # the model never makes two calls: a limit cannot be seen
    assert owner_of(tools.parallel_off, reply("tools.parallel", TWO[:1]),
                    reply("tools.parallel-off", TWO[:1])) == "tools.parallel-called"


# -- round trip -------------------------------------------------------------------------------------

def test_round_trip_probe_shape():
    msgs = req("tools.round-trip")["messages"]
    assert msgs[1]["content"] is None and msgs[1]["tool_calls"][0]["id"] == msgs[2]["tool_call_id"]
    assert isinstance(msgs[1]["tool_calls"][0]["function"]["arguments"], str)
    assert req("tools.round-trip-parts")["messages"][2]["content"] == [{"type": "text", "text": "18 C, sunny"}]


def test_round_trip():
    assert run(tools.round_trip_answered, text("tools.none"), text("tools.round-trip")) == []
    found = quirk_of(tools.round_trip_answered, text("tools.none"), rejected("tools.round-trip", 500))
    assert found.quirk == "tools.round-trip-rejected" and "HTTP 500" in found.detail
    assert owner_of(tools.round_trip_answered, rejected("tools.none"), rejected("tools.round-trip")) == "tools.choice-none"


def test_tool_content_parts():
    assert run(tools.tool_content_parts, text("tools.round-trip"), text("tools.round-trip-parts")) == []
    assert quirk_of(tools.tool_content_parts, text("tools.round-trip"),
                    rejected("tools.round-trip-parts")).quirk == "tools.tool-content-parts-rejected"
    assert owner_of(tools.tool_content_parts, rejected("tools.round-trip"),
                    rejected("tools.round-trip-parts")) == "tools.round-trip"


# -- streams ----------------------------------------------------------------------------------------

PARALLEL_DELTAS = deltas(0, id="call_1") + deltas(1, id="call_2", city="Tokyo")


def stream_pair(named: list[list[Any]] | None = None, parallel: list[list[Any]] | None = None) -> tuple[Exchange, Exchange]:
    return (stream("tools.named-stream", named if named is not None else deltas()),
            stream("tools.parallel-stream", parallel if parallel is not None else PARALLEL_DELTAS))


def test_conformant_stream_accumulates_in_the_sdk():
    acc = sdk_accumulate(PARALLEL_DELTAS)
    assert [c["id"] for c in acc["tool_calls"]] == ["call_1", "call_2"]
    assert json.loads(acc["tool_calls"][1]["function"]["arguments"]) == {"city": "Tokyo"}


def test_stream_accepted():
    plain = (reply("tools.named", [call()]), reply("tools.parallel", TWO))
    named_s, par_s = stream_pair()
    assert run(tools.stream_accepted, plain[0], named_s, plain[1], par_s) == []
    bad = json_exchange({"error": {"message": "streaming tools unsupported"}}, status=400, req=req("tools.named-stream"))
    assert quirk_of(tools.stream_accepted, plain[0], bad, plain[1], par_s).quirk == "tools.stream-rejected"
    empty = sse_exchange(b"", req=req("tools.parallel-stream"))
    assert quirk_of(tools.stream_accepted, plain[0], named_s, plain[1], empty).quirk == "tools.stream-rejected"
    # the unstreamed request is rejected too: that is another check's finding
    assert owner_of(tools.stream_accepted, rejected("tools.named"), bad, rejected("tools.parallel"), empty) == \
        "tools.choice-named-accepted"


def test_stream_called():
    assert run(tools.stream_called, stream("tools.named-stream", deltas())) == []
    assert quirk_of(tools.stream_called, text_stream("tools.named-stream")).quirk == "tools.stream-named-ignored"
    bad = json_exchange({"error": {"message": "x"}}, status=500, req=req("tools.named-stream"))
    assert owner_of(tools.stream_called, bad) == "tools.stream-accepted"


def test_delta_index():
    assert run(tools.delta_index, *stream_pair()) == []
    no_index = deltas()
    del no_index[1][0]["index"]
    with pytest.raises(RuntimeError):       # what openai-python's stream helper does with it
        sdk_accumulate(no_index)
    assert quirk_of(tools.delta_index, *stream_pair(named=no_index)).quirk == "tools.delta-missing-index"
    str_index = deltas()
    str_index[2][0]["index"] = "0"
    assert quirk_of(tools.delta_index, *stream_pair(parallel=str_index)).quirk == "tools.delta-missing-index"
    not_object = deltas() + [["oops"]]
    assert quirk_of(tools.delta_index, *stream_pair(named=not_object)).quirk == "tools.delta-missing-index"


def test_delta_checks_blocked_without_tool_deltas():
    for fn in (tools.delta_index, tools.delta_index_sequence, tools.delta_first_complete, tools.delta_no_repeat,
               tools.delta_arguments_string, tools.delta_arguments_json):
        assert owner_of(fn, text_stream("tools.named-stream"), text_stream("tools.parallel-stream")) == \
            "tools.stream-called"
        bad = json_exchange({"error": {"message": "x"}}, status=400, req=req("tools.named-stream"))
        assert owner_of(fn, bad, text_stream("tools.parallel-stream")) == "tools.stream-accepted"


def test_delta_index_sequence():
    assert run(tools.delta_index_sequence, *stream_pair()) == []
    shared = deltas(0, id="call_1") + deltas(0, id="call_2", city="Tokyo")
    assert len(sdk_accumulate(shared)["tool_calls"]) == 1          # the SDK merges the two calls
    assert quirk_of(tools.delta_index_sequence, *stream_pair(parallel=shared)).quirk == "tools.delta-index-collision"
    gap = deltas(1)
    assert quirk_of(tools.delta_index_sequence, *stream_pair(named=gap)).quirk == "tools.delta-index-gap"


def test_delta_first_complete():
    assert run(tools.delta_first_complete, *stream_pair()) == []
    late_id = deltas()
    late_id[0][0].pop("id")
    late_id[1][0]["id"] = "call_1"
    assert quirk_of(tools.delta_first_complete, *stream_pair(named=late_id)).quirk == "tools.delta-first-incomplete"
    no_type = deltas()
    no_type[0][0].pop("type")
    assert "type" in quirk_of(tools.delta_first_complete, *stream_pair(named=no_type)).detail


def test_delta_no_repeat():
    assert run(tools.delta_no_repeat, *stream_pair()) == []
    repeats = [[{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": a}}]
               for a in ("", '{"city":', ' "Paris"}')]
    assert sdk_accumulate(repeats)["tool_calls"][0]["id"] == "call_1call_1call_1"
    found = quirk_of(tools.delta_no_repeat, *stream_pair(named=repeats))
    assert found.quirk == "tools.delta-repeats-id-name" and "call_1call_1call_1" in found.detail
    assert set(found.quirks) == {"tools.delta-repeats-id-name", "tools.delta-continuation-extras"}
    # an empty-string id on later fragments is harmless; a repeated type is its own (informational) quirk
    harmless = deltas()
    harmless[1][0].update({"id": ""})
    assert run(tools.delta_no_repeat, *stream_pair(named=harmless)) == []
    harmless[1][0].update({"type": "function"})
    assert quirk_of(tools.delta_no_repeat, *stream_pair(named=harmless)).quirk == "tools.delta-continuation-extras"


def test_single_stream_continuation_repeating_type_role_and_null_content():
    """Issue 16 (OpenRouter): a continuation delta repeats `type`, role and `content: null`; one stream is enough."""
    events = [chunk({"role": "assistant", "content": None, "tool_calls": deltas()[0]})]
    events += [chunk({"role": "assistant", "content": None,
                      "tool_calls": [{**d[0], "type": "function"}]}) for d in deltas()[1:]]
    events.append(chunk({}, finish_reason="tool_calls"))
    one = sse_exchange(events, req=req("tools.named-stream"), split=7)
    found = quirk_of(tools.delta_no_repeat, one)
    assert found.quirk == "tools.delta-continuation-extras"
    assert "type" in found.detail and "role 'assistant'" in found.detail and "content: null" in found.detail
    assert run(tools.delta_no_repeat, stream("tools.named-stream", deltas())) == []


def test_delta_arguments_string():
    notes = run(tools.delta_arguments_string, *stream_pair())
    assert [n.value for n in notes][0] == "call 0: arguments in 2 non-empty fragment(s)"
    obj = deltas()
    obj[2][0]["function"]["arguments"] = {"city": "Paris"}
    assert quirk_of(tools.delta_arguments_string, *stream_pair(named=obj)).quirk == "tools.delta-arguments-not-string"


def test_delta_arguments_json():
    assert run(tools.delta_arguments_json, *stream_pair()) == []
    broken = deltas()
    broken[2][0]["function"]["arguments"] = "Paris"
    assert quirk_of(tools.delta_arguments_json, *stream_pair(named=broken)).quirk == "tools.delta-arguments-invalid-json"
    cut = (stream("tools.named-stream", broken[:2], finish="length"),
           stream("tools.parallel-stream", broken[:2], finish="length"))
    assert owner_of(tools.delta_arguments_json, *cut) == "tools.finish-reason"


def test_stream_matches():
    plain = reply("tools.named", [call()])
    assert run(tools.stream_matches, plain, stream("tools.named-stream", deltas())) == []
    spaced = [[{"index": 0, "id": "c", "type": "function", "function": {"name": "get_weather",
                                                                          "arguments": '{ "city" :  "Paris" }'}}]]
    assert run(tools.stream_matches, plain, stream("tools.named-stream", spaced)) == []
    other = stream("tools.named-stream", deltas(city="Tokyo"))
    assert quirk_of(tools.stream_matches, plain, other).quirk == "tools.stream-differs"
    assert owner_of(tools.stream_matches, text("tools.named"), other) == "tools.choice-named-called"
    assert owner_of(tools.stream_matches, plain, text_stream("tools.named-stream")) == "tools.stream-called"


def test_delta_order():
    assert run(tools.delta_order, stream("tools.parallel-stream", PARALLEL_DELTAS)) == []
    a, b = deltas(0, id="call_1"), deltas(1, id="call_2", city="Tokyo")
    interleaved = [a[0], b[0], a[1], b[1], a[2], b[2]]
    assert quirk_of(tools.delta_order, stream("tools.parallel-stream", interleaved)).quirk == "tools.delta-interleaved"
    assert owner_of(tools.delta_order, stream("tools.parallel-stream", deltas())) == "tools.parallel-called"


def test_stream_checks_do_not_depend_on_chunk_boundaries():
    for split in (None, 1, 3, 64):
        named = stream("tools.named-stream", deltas(), split=split)
        par = stream("tools.parallel-stream", PARALLEL_DELTAS, split=split)
        assert run(tools.delta_index_sequence, named, par) == []
        assert run(tools.stream_matches, reply("tools.named", [call()]), named) == []


# -- robustness: vendor bytes never crash a check ---------------------------------------------------

def _garbage(body: Any) -> Any:
    def build(probe: str) -> Exchange:
        if isinstance(body, Exchange):
            return Exchange(request=request(req(probe)), status=body.status, headers=body.headers,
                            chunks=body.chunks, failure=body.failure)
        if isinstance(body, tuple):
            return sse_exchange(body[0], req=req(probe), split=body[1])
        return json_exchange(body, req=req(probe))
    return build


GARBAGE = [
    b"not json", b"[1, 2]", b"null", b"[" * 50_000 + b"]" * 50_000,
    {"choices": "x"}, {"choices": [1]}, {"choices": [{"message": "x"}]},
    {"choices": [{"message": {"tool_calls": "x", "content": 5}, "finish_reason": 3}]},
    {"choices": [{"message": {"tool_calls": [1, "a", None, {"function": "x"}, {"id": 3, "type": None,
                 "function": {"name": 5, "arguments": 7}}], "content": {"a": 1}, "function_call": 1}}]},
    {"choices": [{"message": {"tool_calls": [{"function": {"name": "get_weather", "arguments": "[" * 50_000}}]}}]},
    Exchange(request=request({}), status=None, failure=TransportFailure("connect", "refused")),
    Exchange(request=request({}), status=200),
    (b"data: {not json}\n\n", None),
    (b"data: " + b"[" * 50_000 + b"\n\n", None),
    ([{"choices": [{"delta": {"tool_calls": [{"index": "0"}, 5, None, {"index": 0, "function": []},
                                             {"index": True, "id": 5}]}}]}], 3),
    ([{"choices": [{"index": 0, "delta": {"tool_calls": {"index": 0, "function": {"arguments": {}}}}}]}], None),
    ([{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 2 ** 70, "function": {"name": []}}],
                                          "function_call": "x"}, "finish_reason": []}]}], None),
    ([{"choices": None}, {"error": {"message": "boom"}}, 7, "x"], 2),
]

TOOLS_CHECKS = [spec for spec in CHECKS.values() if spec.area == "tools"]


@pytest.mark.parametrize("spec", TOOLS_CHECKS, ids=lambda s: s.id)
@pytest.mark.parametrize("garbage", range(len(GARBAGE)))
def test_checks_never_crash_on_vendor_bytes(spec, garbage):
    build = _garbage(GARBAGE[garbage])
    try:
        result = spec.run(*(build(p) for p in spec.probes))
    except Finding:
        return
    assert all(isinstance(o, Observation) for o in result)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                           st.sampled_from(["index", "id", "type", "function", "name", "arguments", "tool_calls",
                                            "content", "delta", "message", "finish_reason", "choices"]),
                           inner, max_size=5), max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=JSONISH, delta=JSONISH)
def test_checks_never_crash_on_arbitrary_json(message, delta):
    for spec in TOOLS_CHECKS:
        exchanges = []
        for p in spec.probes:
            if req(p).get("stream"):
                exchanges.append(sse_exchange([chunk(delta if isinstance(delta, dict) else {"tool_calls": delta})],
                                              req=req(p)))
            else:
                body = completion("x")
                body["choices"][0]["message"] = message
                exchanges.append(json_exchange(body, req=req(p)))
        try:
            spec.run(*exchanges)
        except Finding:
            pass
