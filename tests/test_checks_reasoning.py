"""Unit tests of the reasoning checks and probes on hand-built exchanges: a reply without visible reasoning
(OpenAI's shape) passes, each place a vendor puts reasoning raises exactly its quirk id, and no body crashes
a check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import reasoning
from oaicompat.checks.base import (
    CHECKS,
    PROBES,
    Blocked,
    Finding,
    NotApplicable,
    Observation,
    ProbeContext,
    QuirkFound,
    spec_of,
)
from oaicompat.config import parse_providers
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from tests.exchanges import chunk, completion, json_exchange, request, sse_exchange

USAGE = {"prompt_tokens": 20, "completion_tokens": 60, "total_tokens": 80,
         "completion_tokens_details": {"reasoning_tokens": 50, "audio_tokens": 0}}
REFUSED = {"error": {"message": "reasoning_content is not allowed in messages", "type": "invalid_request_error",
                     "param": "messages", "code": None}}


def provider(**entry: Any):
    base = {"kind": "hosted", "title": "P", "base_url": "https://p.invalid/v1", "model": "m", **entry}
    return parse_providers({"version": 1, "providers": {"p": base}}, Path("p.yaml"), {}).get("p")


def body_of(name: str, **entry: Any) -> dict[str, Any]:
    return PROBES[name].build(ProbeContext(provider(**entry), "m")).json


def reply(content: Any = "42", usage: Any = USAGE, **message_extra: Any) -> dict[str, Any]:
    body = completion(content, usage=usage)
    body["choices"][0]["message"].update(message_extra)
    return body


def ex_for(probe: str, payload: Any, *, status: int = 200) -> Exchange:
    return json_exchange(payload, status=status, req=body_of(probe))


def stream_of(*deltas: dict[str, Any], status: int = 200) -> Exchange:
    events = [chunk({"role": "assistant", "content": ""}), *(chunk(d) for d in deltas), chunk({}, finish_reason="stop")]
    return sse_exchange(events, req=body_of("reasoning.stream"), status=status)


def run(fn, *exs: Exchange) -> list[Observation]:
    return spec_of(fn).run(*exs)


def quirk(fn, *exs: Exchange) -> str:
    with pytest.raises(QuirkFound) as info:
        run(fn, *exs)
    return info.value.quirk


# -- probes ---------------------------------------------------------------------------------------

def test_probes():
    basic = body_of("reasoning.basic", params={"temperature": 0.2, "seed": 1})
    assert "temperature" not in basic and basic["seed"] == 1
    assert basic["max_completion_tokens"] == reasoning.REASONING_BUDGET and "stream" not in basic
    assert body_of("reasoning.stream")["stream"] is True
    assert body_of("reasoning.stream")["messages"] == basic["messages"]
    assert body_of("reasoning.replay-content")["messages"][1]["reasoning_content"]
    assert body_of("reasoning.replay-alt")["messages"][1]["reasoning"]
    assert "reasoning_content" not in body_of("reasoning.replay-alt")["messages"][1]


def test_every_reasoning_check_needs_a_reasoning_model():
    specs = [s for s in CHECKS.values() if s.area == "reasoning"]
    assert specs and all(s.needs == ("reasoning",) for s in specs)


# -- which field carries it -----------------------------------------------------------------------

def test_message_without_visible_reasoning_passes():
    obs = run(reasoning.message_reasoning_field, ex_for("reasoning.basic", reply("42")))
    assert obs == [Observation("reasoning.message-carrier", None)]
    run(reasoning.message_reasoning_field, ex_for("reasoning.basic", reply("42", reasoning_content="  ")))
    run(reasoning.message_reasoning_field, ex_for("reasoning.basic", reply("42", reasoning=None)))


@pytest.mark.parametrize("content, extra, expected", [
    ("42", {"reasoning_content": "17 + 25 = 42"}, "reasoning.content-field"),
    ("42", {"reasoning": "17 + 25 = 42"}, "reasoning.alt-field"),
    ("42", {"reasoning_details": [{"type": "reasoning.text", "text": "17 + 25"}]}, "reasoning.alt-field"),
    ("42", {"thinking": "17 + 25"}, "reasoning.alt-field"),
    ("<think>17 + 25 = 42</think>\n42", {}, "reasoning.inline-think-tags"),
    ("17 + 25 = 42\n</think>\n\n42", {}, "reasoning.inline-think-tags"),     # opening tag in the template
    ("<think>x</think>42", {"reasoning_content": "x"}, "reasoning.inline-think-tags"),
    ("42", {"reasoning_content": "x", "reasoning": "x"}, "reasoning.content-field"),
])
def test_message_field_names_the_carrier(content, extra, expected):
    assert quirk(reasoning.message_reasoning_field, ex_for("reasoning.basic", reply(content, **extra))) == expected


def test_message_field_blocked_on_refusal():
    with pytest.raises(Blocked) as info:
        run(reasoning.message_reasoning_field, ex_for("reasoning.basic", REFUSED, status=400))
    assert info.value.owner == "reasoning.status"


def test_delta_field_matches():
    message = ex_for("reasoning.basic", reply("42", reasoning_content="17 + 25 = 42"))
    same = stream_of({"reasoning_content": "17 + "}, {"reasoning_content": "25 = 42"}, {"content": "42"})
    assert run(reasoning.stream_reasoning_field_matches, message, same) == \
        [Observation("reasoning.delta-carrier", ["reasoning_content"])]
    run(reasoning.stream_reasoning_field_matches, ex_for("reasoning.basic", reply("42")),
        stream_of({"content": "4"}, {"content": "2"}))


def test_delta_field_mismatch():
    message = ex_for("reasoning.basic", reply("42", reasoning_content="17 + 25 = 42"))
    assert quirk(reasoning.stream_reasoning_field_matches, message,
                 stream_of({"reasoning": "17 + 25"}, {"content": "42"})) == "reasoning.stream-field-mismatch"
    # the tags split across deltas still count
    assert quirk(reasoning.stream_reasoning_field_matches, ex_for("reasoning.basic", reply("42")),
                 stream_of({"content": "<thi"}, {"content": "nk>17 + 25</think>42"})) \
        == "reasoning.stream-field-mismatch"
    # reasoning shown when not streamed, dropped when streamed
    assert quirk(reasoning.stream_reasoning_field_matches, message, stream_of({"content": "42"})) \
        == "reasoning.stream-field-mismatch"


def test_delta_field_blocked():
    message = ex_for("reasoning.basic", reply("42"))
    with pytest.raises(Blocked) as info:
        run(reasoning.stream_reasoning_field_matches, message,
            json_exchange(REFUSED, status=400, req=body_of("reasoning.stream")))
    assert info.value.owner == "stream.status"
    with pytest.raises(Blocked):
        run(reasoning.stream_reasoning_field_matches, message,
            sse_exchange(b"", req=body_of("reasoning.stream")))


# -- how it is counted ----------------------------------------------------------------------------

def test_tokens_reported():
    assert run(reasoning.reasoning_tokens_reported, ex_for("reasoning.basic", reply("42"))) == \
        [Observation("reasoning.tokens", 50)]
    zero = {**USAGE, "completion_tokens_details": {"reasoning_tokens": 0}}
    run(reasoning.reasoning_tokens_reported, ex_for("reasoning.basic", reply("42", usage=zero)))


@pytest.mark.parametrize("usage, extra", [
    ({"prompt_tokens": 20, "completion_tokens": 60, "total_tokens": 80}, {}),
    ({**USAGE, "completion_tokens_details": None}, {}),
    ({**USAGE, "completion_tokens_details": {"reasoning_tokens": "50"}}, {}),
    ({**USAGE, "completion_tokens_details": {"reasoning_tokens": True}}, {}),
    ({**USAGE, "completion_tokens_details": {"reasoning_tokens": 0}}, {"reasoning_content": "17 + 25"}),
])
def test_tokens_missing(usage, extra):
    assert quirk(reasoning.reasoning_tokens_reported, ex_for("reasoning.basic", reply("42", usage=usage, **extra))) \
        == "reasoning.tokens-missing"


def test_tokens_blocked_without_usage():
    body = reply("42")
    del body["usage"]
    with pytest.raises(Blocked) as info:
        run(reasoning.reasoning_tokens_reported, ex_for("reasoning.basic", body))
    assert info.value.owner == "chat.usage"


# -- sending it back ------------------------------------------------------------------------------

def test_replay():
    with_content_field = ex_for("reasoning.basic", reply("42", reasoning_content="17 + 25"))
    with_alt_field = ex_for("reasoning.basic", reply("42", reasoning="17 + 25"))
    ok_content, ok_alt = ex_for("reasoning.replay-content", reply("6")), ex_for("reasoning.replay-alt", reply("6"))
    refused_content = ex_for("reasoning.replay-content", REFUSED, status=400)
    refused_alt = ex_for("reasoning.replay-alt", REFUSED, status=400)
    run(reasoning.reasoning_replay_accepted, with_content_field, ok_content, refused_alt)
    assert quirk(reasoning.reasoning_replay_accepted, with_content_field, refused_content, ok_alt) \
        == "reasoning.replay-rejected"
    run(reasoning.reasoning_replay_accepted, with_alt_field, refused_content, ok_alt)
    assert quirk(reasoning.reasoning_replay_accepted, with_alt_field, ok_content, refused_alt) \
        == "reasoning.replay-rejected"
    with pytest.raises(NotApplicable):
        run(reasoning.reasoning_replay_accepted, ex_for("reasoning.basic", reply("42")), refused_content, refused_alt)
    dropped = Exchange(request=request(body_of("reasoning.replay-content")), status=None,
                       failure=TransportFailure("reset", "x"))
    with pytest.raises(Blocked):
        run(reasoning.reasoning_replay_accepted, with_content_field, dropped, ok_alt)


# -- no bytes crash a check -----------------------------------------------------------------------

REASONING_CHECKS = [spec for spec in CHECKS.values() if spec.area == "reasoning"]
statuses = st.one_of(st.none(), st.sampled_from([200, 400, 500]))
bodies = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"null", b"{}", b'{"choices": [{"message": null}]}', b'{"choices": [{"message": {"content": ["<think>"]}}]}',
    b'{"choices": [{"message": {"reasoning_content": 5, "reasoning": {"a": 1}}}], "usage": []}',
    json.dumps(reply("42", reasoning_content="x")).encode(),
    b'data: {"choices": [{"delta": {"reasoning_content": 5, "content": null}}]}\n\n',
    b'data: {"choices": [{"delta": {"reasoning_details": [null]}}]}\n\ndata: [DONE]\n\n',
    b"data: " + b"[" * 5000 + b"\n\n", b"[" * 5000 + b"]" * 5000, b"\xff\xfe{"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(statuses, bodies, st.sampled_from(["application/json", "text/event-stream"])),
                min_size=3, max_size=3))
def test_no_body_crashes_a_check(replies):
    for spec in REASONING_CHECKS:
        exs = []
        for name, (status, body, ctype) in zip(spec.probes, replies):
            chunks = (Chunk(0.01, body),) if body else ()
            failure = TransportFailure("reset", "x") if status is None else None
            exs.append(Exchange(request=request(body_of(name)), status=status, headers=(("content-type", ctype),),
                                chunks=chunks, failure=failure))
        try:
            spec.run(*exs)
        except Finding:
            pass


def test_reasoning_status_names_stream_only_and_rejection():
    import pytest

    from oaicompat.checks.base import QuirkFound
    from oaicompat.checks.reasoning import reasoning_request_answered
    from tests.exchanges import completion, json_exchange, sse_exchange
    ok = json_exchange(completion("4"))
    err = json_exchange({"error": {"message": "parameter.enable_thinking must be set to false for non-streaming calls",
                                   "type": "invalid_request_error", "param": None, "code": "invalid_parameter"}},
                        status=400)
    stream_ok = sse_exchange([{"choices": []}])
    reasoning_request_answered(ok, stream_ok)
    with pytest.raises(QuirkFound) as found:
        reasoning_request_answered(err, stream_ok)
    assert found.value.quirk == "reasoning.stream-only"
    with pytest.raises(QuirkFound) as found:
        reasoning_request_answered(err, sse_exchange(b"", status=400))
    assert found.value.quirk == "reasoning.basic-rejected"


def test_stream_carrier_observes_one_stream_on_any_provider():
    """Issue 16: where reasoning travels is observed on one stream, even where `supports:` says reasoning: false."""
    spec = CHECKS["reasoning.stream-carrier"]
    assert spec.kind == "info" and not spec.skip_when_unsupported
    plain = stream_of({"role": "assistant", "content": ""}, {"content": "42"})
    assert run(reasoning.stream_reasoning_carrier, plain) == [Observation("reasoning.delta-carrier", None)]
    unasked = stream_of({"role": "assistant", "content": "", "reasoning_content": "17 and 25"},
                        {"reasoning_content": " make 42"}, {"content": "42"})
    notes = run(reasoning.stream_reasoning_carrier, unasked)
    assert notes[0] == Observation("reasoning.delta-carrier", ["reasoning_content"])
    tags = stream_of({"role": "assistant", "content": "<think>17+25"}, {"content": "</think>42"})
    assert run(reasoning.stream_reasoning_carrier, tags)[0].value == ["<think> tags in content"]
    with pytest.raises(Blocked):
        run(reasoning.stream_reasoning_carrier, stream_of({"content": "x"}, status=500))
