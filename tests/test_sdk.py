"""openai-python acceptance on hand-built bytes: oaicompat.sdk.replay_through_openai and the sdk checks."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from oaicompat.checks import sdk as sdk_checks
from oaicompat.checks.base import CHECKS, Blocked, Finding, QuirkFound, spec_of
from oaicompat.exchange import Exchange, TransportFailure
from oaicompat.sdk import INSTALL_HINT, SDKResult, SDKUnavailable, replay_through_openai
from tests.exchanges import completion, json_exchange, request, sse_exchange
from tests.test_checks_stream import NASTY, STREAM_REQ, good, render, variants

PLAIN_REQ = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16, "temperature": 0}


def run(fn: Callable[..., Any], *exchanges: Exchange) -> list:
    return spec_of(fn).run(*exchanges)


def quirk(fn: Callable[..., Any], ex: Exchange) -> str:
    with pytest.raises(QuirkFound) as info:
        run(fn, ex)
    assert info.value.lines
    return info.value.quirk


def blocked(fn: Callable[..., Any], ex: Exchange) -> str:
    with pytest.raises(Blocked) as info:
        run(fn, ex)
    return info.value.owner


def with_events(*parts: bytes) -> Exchange:
    return sse_exchange(b"".join(parts))


def ev(*events: dict[str, Any]) -> bytes:
    return render(list(events), done=False)


DONE = b"data: [DONE]\n\n"


# -- replay_through_openai --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(variants()))
def test_conformant_stream_replays(name):
    result = replay_through_openai(variants()[name])
    assert result == SDKResult(True, True, False, text="Hello", finish_reason="stop", role="assistant",
                               chunks=4, result_type="Stream")


@pytest.mark.parametrize("name", list(variants()))
def test_conformant_stream_through_the_helper(name):
    result = replay_through_openai(variants()[name], helper=True)
    assert (result.ok, result.text, result.role, result.finish_reason, result.chunks) == \
        (True, "Hello", "assistant", "stop", 4)


def test_usage_chunk_with_empty_choices_is_skipped():
    result = replay_through_openai(sse_exchange(good(usage=True), req={**STREAM_REQ, "stream_options":
                                                                        {"include_usage": True}}))
    assert (result.ok, result.text, result.chunks) == (True, "Hello", 5)


def test_repeated_role():
    events = good()
    for e in events[1:]:
        e["choices"][0]["delta"]["role"] = "assistant"
    ex = sse_exchange(events, split=9)
    plain = replay_through_openai(ex)
    assert (plain.ok, plain.role, plain.text) == (True, "assistant", "Hello")
    helper = replay_through_openai(ex, helper=True)
    assert helper.ok and helper.role == "assistant" * 4 and helper.text == "Hello"


def test_missing_done_ends_quietly():
    result = replay_through_openai(sse_exchange(good(), done=False))
    assert (result.ok, result.text, result.finish_reason) == (True, "Hello", "stop")


def test_non_json_data_raises_in_the_sdk():
    result = replay_through_openai(with_events(ev(*good()[:2]), b"data: not json\n\n", ev(*good()[2:]), DONE))
    assert not result.ok
    assert (result.error_type, result.error_kind, result.chunks, result.text) == ("JSONDecodeError", "parse", 2, "Hel")


def test_event_without_data_raises_in_the_sdk():
    result = replay_through_openai(with_events(ev(*good()[:1]), b"event: ping\n\n", ev(*good()[1:]), DONE))
    assert (result.ok, result.error_type, result.error_kind) == (False, "JSONDecodeError", "parse")


def test_invalid_utf8_raises_in_the_sdk():
    result = replay_through_openai(sse_exchange(render(good()).replace(b'"Hel"', b'"H\xffl"')))
    assert (result.ok, result.error_type, result.error_kind) == (False, "UnicodeDecodeError", "parse")


def test_error_event_raises_api_error():
    error = {"error": {"message": "model overloaded", "type": "server_error", "param": None, "code": None}}
    result = replay_through_openai(sse_exchange(good()[:2] + [error]))
    assert (result.ok, result.error_type, result.error_kind) == (False, "APIError", "stream-error")
    assert result.error_message == "model overloaded" and result.text == "Hel"


def test_transport_failure_mid_stream():
    ex = sse_exchange(render(good(), done=False)[:300], failure=TransportFailure("reset", "peer reset", 300))
    result = replay_through_openai(ex)
    assert (result.ok, result.error_type, result.error_kind) == (False, "ReadError", "transport")
    timeout = sse_exchange(render(good(), done=False), failure=TransportFailure("timeout", "30 s", 1))
    assert replay_through_openai(timeout).error_type == "ReadTimeout"


def test_failure_after_done_is_not_seen_by_the_sdk():
    ex = sse_exchange(good(), failure=TransportFailure("reset", "after body", 999))
    assert replay_through_openai(ex).ok


def test_status_error_and_no_response():
    ex = json_exchange({"error": {"message": "bad key"}}, status=401, req=STREAM_REQ)
    result = replay_through_openai(ex)
    assert (result.ok, result.error_type, result.error_kind) == (False, "AuthenticationError", "status")
    none = Exchange(request=request(STREAM_REQ), status=None, failure=TransportFailure("connect", "refused"))
    assert replay_through_openai(none).error_kind == "transport"


def test_non_streamed_completion():
    result = replay_through_openai(json_exchange(completion("Hi there", finish_reason="length"), req=PLAIN_REQ))
    assert result == SDKResult(True, False, False, text="Hi there", finish_reason="length", role="assistant",
                               result_type="ChatCompletion")


def test_non_streamed_html_is_returned_as_text():
    ex = json_exchange(b"<html>502</html>", req=PLAIN_REQ, content_type="text/html")
    assert (replay_through_openai(ex).ok, replay_through_openai(ex).result_type) == (True, "str")


def test_non_streamed_invalid_json_raises():
    result = replay_through_openai(json_exchange(b'{"id": "x", "choices": [', req=PLAIN_REQ))
    assert (result.ok, result.error_type, result.error_kind) == (False, "JSONDecodeError", "parse")


def test_unknown_request_fields_and_bad_request_bodies_still_replay():
    body = {**PLAIN_REQ, "top_k": 5, "chat_template_kwargs": {"x": 1}, "extra_body": 1, "timeout": 3}
    assert replay_through_openai(json_exchange(completion(), req=body)).ok
    raw = Exchange(request=request(raw=b"{not json"), status=200, headers=(("content-type", "application/json"),),
                   chunks=json_exchange(completion()).chunks)
    assert replay_through_openai(raw).text == "Hello"


def test_helper_skips_chunks_whose_object_is_not_a_chunk():
    events = good()
    events[2]["object"] = ""
    assert replay_through_openai(sse_exchange(events)).text == "Hello"
    assert replay_through_openai(sse_exchange(events), helper=True).text == "Hel"


def test_helper_needs_integer_choice_index():
    events = good()
    for e in events:
        e["choices"][0]["index"] = "0"
    result = replay_through_openai(sse_exchange(events), helper=True)
    assert (result.ok, result.error_type, result.error_kind) == (False, "TypeError", "parse")


def test_openai_missing_raises_sdk_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(SDKUnavailable, match=re.escape(INSTALL_HINT)):
        replay_through_openai(sse_exchange(good()))
    with pytest.raises(Blocked) as info:
        run(sdk_checks.stream_parses, sse_exchange(good()))
    message = str(info.value)
    assert message.count(INSTALL_HINT) == 1 and message.count("not installed") == 1 and "\n" not in message


# -- the sdk checks ---------------------------------------------------------------------------------

STREAM_CHECKS = [sdk_checks.stream_parses, sdk_checks.stream_text_matches, sdk_checks.helper_parses,
                 sdk_checks.helper_role_is_assistant, sdk_checks.helper_text_matches]


def test_every_sdk_check_is_listed_here():
    ids = {c for c, spec in CHECKS.items() if spec.module == sdk_checks.__name__}
    assert ids == {spec_of(f).id for f in STREAM_CHECKS + [sdk_checks.completion_parses]}


@pytest.mark.parametrize("name", list(variants()))
@pytest.mark.parametrize("fn", STREAM_CHECKS, ids=lambda f: spec_of(f).id)
def test_sdk_checks_pass_on_conformant_streams(fn, name):
    assert run(fn, variants()[name]) == []


def test_completion_parses_passes():
    assert run(sdk_checks.completion_parses, json_exchange(completion(), req=PLAIN_REQ)) == []


@pytest.mark.parametrize("raw", [
    ev(*good()[:2]) + b"data: hello\n\n" + ev(*good()[2:]) + DONE,
    ev(*good()[:2]) + b"event: ping\n\n" + ev(*good()[2:]) + DONE,
    render(good()).replace(b'"Hel"', b'"H\xffl"'),
])
def test_stream_parse_error(raw):
    assert quirk(sdk_checks.stream_parses, sse_exchange(raw)) == "sdk.stream-parse-error"
    assert blocked(sdk_checks.stream_text_matches, sse_exchange(raw)) == "sdk.stream-parses"


def test_stream_text_differs():
    # openai-python stops at any data that *starts with* [DONE]; the SSE stream goes on
    raw = ev(*good()[:2]) + b"data: [DONE] (not really)\n\n" + ev(*good()[2:]) + DONE
    assert quirk(sdk_checks.stream_text_matches, sse_exchange(raw)) == "sdk.stream-text-differs"


def test_stream_finish_reason_differs():
    raw = ev(*good()[:3]) + b"data: [DONE]x\n\n" + ev(*good()[3:]) + DONE
    assert quirk(sdk_checks.stream_text_matches, sse_exchange(raw)) == "sdk.stream-finish-reason-differs"


def test_helper_error():
    events = good()
    for e in events:
        e["choices"][0]["index"] = "0"
    assert quirk(sdk_checks.helper_parses, sse_exchange(events)) == "sdk.helper-error"
    assert blocked(sdk_checks.helper_role_is_assistant, sse_exchange(events)) == "sdk.helper-parses"


def test_helper_role_mangled():
    events = good()
    for e in events[1:]:
        e["choices"][0]["delta"]["role"] = "assistant"
    assert quirk(sdk_checks.helper_role_is_assistant, sse_exchange(events)) == "sdk.helper-role-mangled"


def test_helper_role_lost_to_a_bom():
    # openai-python does not strip a leading BOM: the first line is an unknown field, the role event is lost
    ex = sse_exchange(b"\xef\xbb\xbf" + render(good()))
    assert replay_through_openai(ex, helper=True).role is None
    assert quirk(sdk_checks.helper_role_is_assistant, ex) == "sdk.helper-role-mangled"


def test_helper_role_absent_is_blocked():
    assert blocked(sdk_checks.helper_role_is_assistant, sse_exchange(good(first={"content": ""}))) == \
        "stream.role-first"


def test_helper_text_differs():
    events = good()
    events[2]["object"] = ""
    assert quirk(sdk_checks.helper_text_matches, sse_exchange(events)) == "sdk.helper-text-differs"


def test_completion_parse_error():
    ex = json_exchange(b'{"id": "x", "choices": [', req=PLAIN_REQ)
    assert quirk(sdk_checks.completion_parses, ex) == "sdk.completion-parse-error"


def test_completion_not_parsed():
    ex = json_exchange(b"<html>oops</html>", req=PLAIN_REQ, content_type="text/html")
    assert quirk(sdk_checks.completion_parses, ex) == "sdk.completion-not-parsed"


def test_failures_other_checks_name_are_blocked():
    rejected = json_exchange({"error": {"message": "no"}}, status=400, req=STREAM_REQ)
    error_event = sse_exchange(good()[:2] + [{"error": {"message": "boom"}}])
    broken = sse_exchange(render(good(), done=False)[:300], failure=TransportFailure("reset", "x", 300))
    for fn in STREAM_CHECKS:
        assert blocked(fn, rejected) == "stream.status"
        assert blocked(fn, error_event) == "stream.midstream-error"
        assert blocked(fn, broken) == "stream.truncated"
    assert blocked(sdk_checks.completion_parses, json_exchange({"error": {}}, status=500, req=PLAIN_REQ)) == \
        "chat.status"


@pytest.mark.parametrize("raw", NASTY)
def test_nasty_bytes_never_crash(raw):
    for ex in (sse_exchange(raw), sse_exchange(raw, split=2),
               sse_exchange(raw, failure=TransportFailure("reset", "x", len(raw)))):
        for fn in STREAM_CHECKS:
            try:
                run(fn, ex)
            except Finding:
                pass
        try:
            run(sdk_checks.completion_parses, json_exchange(raw, req=PLAIN_REQ))
        except Finding:
            pass


def test_replay_sends_nothing_over_the_network(monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the replay opened a socket")
    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert replay_through_openai(sse_exchange(good())).ok
    assert replay_through_openai(json_exchange(completion(), req=PLAIN_REQ)).ok
