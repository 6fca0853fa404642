"""Unit tests of the context-window checks and probes on hand-built exchanges: a conformant exchange passes,
each deviation raises exactly its quirk id, and no body crashes a check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import context
from oaicompat.checks.base import (
    CHECKS,
    PROBES,
    Blocked,
    Finding,
    NotApplicable,
    Observation,
    ProbeContext,
    QuirkFound,
    Violation,
    spec_of,
)
from oaicompat.config import parse_providers
from oaicompat.exchange import Attempt, Chunk, Exchange, TransportFailure
from tests.exchanges import chunk, completion, json_exchange, request, sse_exchange

# what the servers measured here answer (llama-server.md), and OpenAI's shape
OPENAI_OVERFLOW = {"error": {"message": "This model's maximum context length is 2048 tokens. However, your messages "
                                        "resulted in 3090 tokens. Please reduce the length of the messages.",
                             "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
LLAMA_SERVER_OVERFLOW = {"error": {"code": 400, "message": "request (3090 tokens) exceeds the available context size "
                                   "(2048 tokens), try increasing it", "type": "exceed_context_size_error",
                                   "n_prompt_tokens": 3090, "n_ctx": 2048}}
VLLM_OVERFLOW = {"error": {"message": "This model's maximum context length is 4096 tokens. However, your request has "
                           "6170 input tokens.", "type": "BadRequestError", "param": "input_tokens", "code": 400}}


def provider(**entry: Any):
    base = {"kind": "local", "title": "P", "base_url": "http://127.0.0.1:9/v1", "model": "m", **entry}
    return parse_providers({"version": 1, "providers": {"p": base}}, Path("p.yaml"), {}).get("p")


def body_of(name: str, limit: int | None = 2048, **entry: Any) -> dict[str, Any]:
    if limit is not None:
        entry["limits"] = {"context_tokens": limit}
    return PROBES[name].build(ProbeContext(provider(**entry), "m")).json


def ex_for(probe: str, payload: Any, *, status: int = 200, limit: int | None = 2048,
           content_type: str = "application/json") -> Exchange:
    return json_exchange(payload, status=status, req=body_of(probe, limit), content_type=content_type)


def usage(prompt: int, completion_tokens: int = 8, *, finish: str = "length") -> dict[str, Any]:
    return completion("dog dog", finish_reason=finish,
                      usage={"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                             "total_tokens": prompt + completion_tokens})


def stream_ex(raw: bytes, *, status: int = 200, failure: TransportFailure | None = None,
              limit: int | None = 2048) -> Exchange:
    return sse_exchange(raw, req=body_of("context.overflow-stream", limit), status=status, failure=failure)


def no_response(probe: str, kind: str = "reset", limit: int | None = 2048) -> Exchange:
    return Exchange(request=request(body_of(probe, limit)), status=None,
                    failure=TransportFailure(kind, "Server disconnected without sending a response."))  # type: ignore[arg-type]


def run(fn, *exs: Exchange) -> list[Observation]:
    return spec_of(fn).run(*exs)


def quirk(fn, *exs: Exchange) -> str:
    with pytest.raises(QuirkFound) as info:
        run(fn, *exs)
    return info.value.quirk


# -- probes ---------------------------------------------------------------------------------------

def test_overflow_probe_targets_one_and_a_half_declared_windows():
    body = body_of("context.overflow", 2048)
    text = body["messages"][0]["content"]
    plan = context.plan_of(request(body))
    assert plan == context.Plan(3072, 2048, "declared") and not plan.overflow_capped
    assert text.count(context.FILLER_WORD) == 3072 and len(text) < context.MAX_PROMPT_CHARS
    assert body["max_tokens"] <= 32 and "stream" not in body


def test_overflow_probe_assumes_8192_without_a_declared_limit():
    plan = context.plan_of(request(body_of("context.overflow", None)))
    assert plan == context.Plan(12288, context.DEFAULT_CONTEXT_TOKENS, "assumed")


def test_overflow_prompt_is_bounded():
    body = body_of("context.overflow", 1_000_000)
    plan = context.plan_of(request(body))
    assert plan.words == context.MAX_WORDS and plan.overflow_capped
    assert len(body["messages"][0]["content"]) <= context.MAX_PROMPT_CHARS
    assert len(json.dumps(body)) <= context.MAX_PROMPT_CHARS + 500


def test_provider_raises_the_prompt_cap():
    # a local server with a 32768-token window that allows 200k-character prompts (transformers serve)
    local = {"limits": {"context_tokens": 32768, "max_prompt_chars": 200_000}}
    body = body_of("context.overflow", None, **local)
    plan = context.plan_of(request(body))
    assert plan == context.Plan(49152, 32768, "declared") and not plan.overflow_capped
    assert body["messages"][0]["content"].count(context.FILLER_WORD) == 49152
    assert context.plan_of(request(body_of("context.overflow-stream", None, **local))).words == 49152
    near_full = body_of("context.max-tokens-over-remaining", None, **local)
    assert context.plan_of(request(near_full)) == context.Plan(28672, 32768, "declared")
    assert near_full["max_tokens"] == 8192
    # without the key the 64k-character cap holds, byte for byte
    assert body_of("context.overflow", 32768) == body_of("context.overflow", None, limits={"context_tokens": 32768})
    capped = context.plan_of(request(body_of("context.overflow", 32768)))
    assert capped.words == context.MAX_WORDS and capped.overflow_capped
    assert context.plan_of(request(body_of("context.max-tokens-over-remaining", 32768))).words == 0
    # a cap lowered below the window caps the prompt the same way
    low = context.plan_of(request(body_of("context.overflow", None,
                                          limits={"context_tokens": 2048, "max_prompt_chars": 4000})))
    assert low.words == context.max_words(4000) and low.overflow_capped


def test_stream_and_follow_up_probes():
    stream_body = body_of("context.overflow-stream")
    assert stream_body["stream"] is True
    assert stream_body["messages"] == body_of("context.overflow")["messages"]
    assert PROBES["context.overflow-stream"].fresh and PROBES["context.after-overflow"].fresh
    follow = PROBES["context.after-overflow"].build(ProbeContext(provider(), "m"))
    assert follow.retries == 0 and follow.json["max_tokens"] <= 32
    models = PROBES["context.models"].build(ProbeContext(provider(), "m"))
    assert (models.method, models.path, models.json) == ("GET", "/models", None)


def test_max_tokens_probe():
    body = body_of("context.max-tokens-over-remaining", 2048, params={"max_tokens": 7})
    plan = context.plan_of(request(body))
    assert plan == context.Plan(1792, 2048, "declared")
    assert body["max_tokens"] == 512           # the provider's own max_tokens does not override the subject
    degenerate = body_of("context.max-tokens-over-remaining", None)
    assert context.plan_of(request(degenerate)).words == 0 and degenerate["max_tokens"] <= 32
    too_big = body_of("context.max-tokens-over-remaining", 200_000)
    assert context.plan_of(request(too_big)).words == 0 and len(json.dumps(too_big)) < 1000


def test_plan_of_other_requests():
    assert context.plan_of(request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})) is None
    assert context.plan_of(request(raw=b"not json")) is None
    assert context.plan_of(request({"messages": [{"content": ["x"]}]})) is None


# -- non-streamed overflow ------------------------------------------------------------------------

def test_overflow_status_400_passes():
    run(context.overflow_is_400, ex_for("context.overflow", OPENAI_OVERFLOW, status=400))
    run(context.overflow_is_400, ex_for("context.overflow", LLAMA_SERVER_OVERFLOW, status=400))


def test_overflow_wrong_status():
    for status in (413, 422, 500):
        assert quirk(context.overflow_is_400, ex_for("context.overflow", OPENAI_OVERFLOW, status=status)) \
            == "context.overflow-wrong-status"
    assert quirk(context.overflow_is_400, no_response("context.overflow")) == "context.overflow-wrong-status"


def test_overflow_silent_truncation():
    assert quirk(context.overflow_is_400, ex_for("context.overflow", usage(2040))) \
        == "context.overflow-silent-truncation"
    # a large declared window the probe cannot fill, but the server cut to 2048 anyway (Ollama's num_ctx)
    assert quirk(context.overflow_is_400, ex_for("context.overflow", usage(2048), limit=131072)) \
        == "context.overflow-silent-truncation"
    # assumed 8192, real window 4096, cut silently
    assert quirk(context.overflow_is_400, ex_for("context.overflow", usage(4096), limit=None)) \
        == "context.overflow-silent-truncation"


def test_overflow_accepted_whole():
    assert quirk(context.overflow_is_400, ex_for("context.overflow", usage(3085))) == "context.overflow-accepted"
    no_usage = completion("dog")
    del no_usage["usage"]
    assert quirk(context.overflow_is_400, ex_for("context.overflow", no_usage)) == "context.overflow-accepted"


def test_overflow_that_proves_nothing_is_not_applicable():
    with pytest.raises(NotApplicable):          # undeclared window larger than the assumed 8192
        run(context.overflow_is_400, ex_for("context.overflow", usage(12300), limit=None))
    with pytest.raises(NotApplicable):          # declared window larger than 64k characters can fill
        run(context.overflow_is_400, ex_for("context.overflow", usage(context.MAX_WORDS + 30), limit=131072))
    with pytest.raises(NotApplicable):          # not a context probe
        run(context.overflow_is_400, json_exchange(completion()))
    with pytest.raises(Blocked):
        run(context.overflow_is_400, ex_for("context.overflow", b"<html>ok</html>", content_type="text/html"))


def test_overflow_envelope():
    for body in (OPENAI_OVERFLOW, LLAMA_SERVER_OVERFLOW, VLLM_OVERFLOW):
        run(context.overflow_error_has_envelope, ex_for("context.overflow", body, status=400))
    for bad in (b"context too long", {"detail": "too long"}, {"error": "too long"}, {"message": "too long"}):
        assert quirk(context.overflow_error_has_envelope, ex_for("context.overflow", bad, status=400)) \
            == "context.overflow-not-enveloped", bad
    with pytest.raises(Blocked) as info:
        run(context.overflow_error_has_envelope, ex_for("context.overflow", usage(2040)))
    assert info.value.owner == "context.overflow-status"


def test_overflow_code():
    obs = run(context.overflow_code_is_context_length_exceeded, ex_for("context.overflow", OPENAI_OVERFLOW, status=400))
    assert obs == [Observation("context.overflow-error", {"type": "invalid_request_error",
                                                          "code": "context_length_exceeded", "param": "messages"})]
    for body in (LLAMA_SERVER_OVERFLOW, VLLM_OVERFLOW,
                 {"error": {"message": "m", "type": "invalid_request_error", "param": None,
                            "code": "invalid_request_error"}}):
        assert quirk(context.overflow_code_is_context_length_exceeded,
                     ex_for("context.overflow", body, status=400)) == "context.overflow-nonstandard-error"
    with pytest.raises(Blocked) as info:
        run(context.overflow_code_is_context_length_exceeded, ex_for("context.overflow", b"too long", status=400))
    assert info.value.owner == "context.overflow-envelope"
    with pytest.raises(Blocked) as info:
        run(context.overflow_code_is_context_length_exceeded, ex_for("context.overflow", usage(2040)))
    assert info.value.owner == "context.overflow-status"


# -- streamed overflow ----------------------------------------------------------------------------

def test_stream_overflow_http_error_passes():
    run(context.stream_overflow_is_http_error,
        json_exchange(OPENAI_OVERFLOW, status=400, req=body_of("context.overflow-stream")))
    run(context.stream_overflow_is_http_error,
        json_exchange(LLAMA_SERVER_OVERFLOW, status=400, req=body_of("context.overflow-stream")))


def test_stream_overflow_empty_body():
    # llama-cpp-python: 200 headers, no body, the connection dropped
    dropped = stream_ex(b"", failure=TransportFailure("protocol", "peer closed connection without sending "
                                                                  "complete message body"))
    assert dropped.status == 200 and not dropped.chunks
    assert quirk(context.stream_overflow_is_http_error, dropped) == "context.stream-overflow-empty-body"
    assert quirk(context.stream_overflow_is_http_error, stream_ex(b"")) == "context.stream-overflow-empty-body"
    assert quirk(context.stream_overflow_is_http_error, stream_ex(b": ping\n\ndata: [DONE]\n\n")) \
        == "context.stream-overflow-empty-body"
    assert quirk(context.stream_overflow_is_http_error, no_response("context.overflow-stream")) \
        == "context.stream-overflow-empty-body"


def test_stream_overflow_error_event():
    in_band = b"data: " + json.dumps(OPENAI_OVERFLOW).encode() + b"\n\ndata: [DONE]\n\n"
    assert quirk(context.stream_overflow_is_http_error, stream_ex(in_band)) == "context.stream-overflow-error-event"
    named = b"event: error\ndata: {\"message\": \"context too long\"}\n\n"
    assert quirk(context.stream_overflow_is_http_error, stream_ex(named)) == "context.stream-overflow-error-event"
    as_json = json_exchange(OPENAI_OVERFLOW, status=200, req=body_of("context.overflow-stream"))
    assert quirk(context.stream_overflow_is_http_error, as_json) == "context.stream-overflow-error-event"


def test_stream_overflow_accepted():
    events = [chunk({"role": "assistant", "content": ""}), chunk({"content": "dog"}), chunk({}, finish_reason="length")]
    raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    assert quirk(context.stream_overflow_is_http_error, stream_ex(raw)) == "context.stream-overflow-accepted"


def test_connection_reuse():
    overflow = stream_ex(b"", failure=TransportFailure("protocol", "incomplete chunked read"))
    follow_req = PROBES["context.after-overflow"].build(ProbeContext(provider(), "m")).json
    ok = json_exchange(completion("OK"), req=follow_req)
    run(context.connection_usable_after_overflow, overflow, ok)
    broken = Exchange(request=request(follow_req), status=None,
                      failure=TransportFailure("protocol", "Server disconnected without sending a response."))
    assert quirk(context.connection_usable_after_overflow, overflow, broken) \
        == "context.connection-broken-after-overflow"
    retried = Exchange(request=request(follow_req), status=200, headers=(("content-type", "application/json"),),
                       chunks=(Chunk(0.01, json.dumps(completion("OK")).encode()),),
                       attempts=(Attempt(None, "Server disconnected", None, None, None, 0.5, "transport failure"),))
    assert quirk(context.connection_usable_after_overflow, overflow, retried) \
        == "context.connection-broken-after-overflow"
    with pytest.raises(Violation):
        run(context.connection_usable_after_overflow, overflow,
            json_exchange({"error": {"message": "busy", "type": "server_error"}}, status=503, req=follow_req))
    with pytest.raises(Blocked) as info:
        run(context.connection_usable_after_overflow, overflow,
            json_exchange({"error": {"message": "bad key", "type": "x"}}, status=401, req=follow_req))
    assert info.value.owner == "chat.status"


# -- max_tokens beyond the remaining window -------------------------------------------------------

def test_max_tokens_refused_passes():
    run(context.max_tokens_beyond_window_refused,
        ex_for("context.max-tokens-over-remaining", OPENAI_OVERFLOW, status=400))


def test_max_tokens_shrunk():
    # 1800 prompt tokens + max_tokens 512 > 2048: answered with the 248 tokens the window had left
    assert quirk(context.max_tokens_beyond_window_refused,
                 ex_for("context.max-tokens-over-remaining", usage(1800, 248))) == "context.overflow-max-tokens-shrunk"
    # stopping by itself (finish "stop") before the window ran out proves nothing about max_tokens
    observed = run(context.max_tokens_beyond_window_refused,
                   ex_for("context.max-tokens-over-remaining", usage(1800, 3, finish="stop")))
    assert [o.key for o in observed] == ["context.max-tokens-over-remaining"]


def test_max_tokens_unanswered():
    # transformers serve: no window enforced, the server computes until the client times out
    for kind in ("timeout", "read-timeout"):
        timed_out = Exchange(request=request(body_of("context.max-tokens-over-remaining")), status=None,
                             failure=TransportFailure(kind, "timed out after 120 s"))  # type: ignore[arg-type]
        with pytest.raises(QuirkFound) as info:
            run(context.max_tokens_beyond_window_refused, timed_out)
        assert info.value.quirk == "context.overflow-max-tokens-unanswered", kind
        assert f"no response ({kind}: timed out after 120 s)" in str(info.value)
    assert quirk(context.max_tokens_beyond_window_refused, no_response("context.max-tokens-over-remaining")) \
        == "context.overflow-max-tokens-unanswered"
    with pytest.raises(NotApplicable):      # no near-full prompt sent: a missing answer proves nothing
        run(context.max_tokens_beyond_window_refused, no_response("context.max-tokens-over-remaining", limit=None))


def test_max_tokens_not_applicable_and_blocked():
    with pytest.raises(NotApplicable):      # the prompt tokenized short: prompt + max_tokens fit
        run(context.max_tokens_beyond_window_refused, ex_for("context.max-tokens-over-remaining", usage(1500, 512)))
    with pytest.raises(NotApplicable):      # all max_tokens generated: the window is larger than declared
        run(context.max_tokens_beyond_window_refused, ex_for("context.max-tokens-over-remaining", usage(1800, 512)))
    with pytest.raises(NotApplicable):      # no declared window: nothing near-full was sent
        run(context.max_tokens_beyond_window_refused,
            ex_for("context.max-tokens-over-remaining", usage(30, 4), limit=None))
    with pytest.raises(Violation):
        run(context.max_tokens_beyond_window_refused,
            ex_for("context.max-tokens-over-remaining", b"boom", status=500))
    no_usage = completion("dog")
    del no_usage["usage"]
    with pytest.raises(Blocked) as info:
        run(context.max_tokens_beyond_window_refused, ex_for("context.max-tokens-over-remaining", no_usage))
    assert info.value.owner == "chat.usage"


# -- the limit the provider states ----------------------------------------------------------------

def test_limit_observations():
    models = json_exchange({"object": "list", "data": [{"id": "m", "object": "model", "max_model_len": 4096}]},
                           req=None)
    obs = {o.key: o.value for o in run(context.context_limit_sources,
                                       ex_for("context.overflow", VLLM_OVERFLOW, status=400), models)}
    assert obs == {"context.limit.probed": {"tokens": 2048, "source": "declared", "words": 3072},
                   "context.limit.error-states": 4096, "context.limit.models-metadata": {"max_model_len": 4096}}
    assert context.limit_from_error(ex_for("context.overflow", LLAMA_SERVER_OVERFLOW, status=400)) == 2048
    assert context.limit_from_error(ex_for("context.overflow", OPENAI_OVERFLOW, status=400)) == 2048
    text_only = {"error": {"message": "request (3090 tokens) exceeds the available context size (512 tokens)",
                           "type": "x"}}
    assert context.limit_from_error(ex_for("context.overflow", text_only, status=400)) == 512
    llama_models = json_exchange({"data": [{"id": "m", "meta": {"n_ctx_train": 32768}}]})
    assert context.limit_from_models(llama_models, "m") == {"meta.n_ctx_train": 32768}
    nothing = {o.key: o.value for o in run(context.context_limit_sources,
                                           ex_for("context.overflow", usage(2040)),
                                           json_exchange(b"<html>", content_type="text/html"))}
    assert nothing["context.limit.error-states"] is None and nothing["context.limit.models-metadata"] is None
    assert CHECKS["context.limit"].kind == "info" and CHECKS["context.limit"].quirks == ()


# -- no bytes crash a check -----------------------------------------------------------------------

CONTEXT_CHECKS = [spec for spec in CHECKS.values() if spec.area == "context"]
statuses = st.one_of(st.none(), st.sampled_from([200, 400, 413, 422, 500, 503]))
bodies = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"null", b"[]", b"{}", b'{"error": null}', b'{"error": {"message": 5, "code": []}}',
    b'{"usage": {"prompt_tokens": "7"}}', b'{"usage": {"prompt_tokens": true, "completion_tokens": 1e9}}',
    b'{"data": [null, {"id": "m", "meta": "x"}]}', b"data: {\"error\": 1}\n\n", b"data: [1]\n\ndata: \xff\n\n",
    b"data: " + b"[" * 5000 + b"\n\n", b"[" * 5000 + b"]" * 5000, b"\xff\xfe{"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(statuses, bodies, st.sampled_from(["application/json", "text/event-stream"])),
                min_size=2, max_size=2), st.sampled_from([None, 2048, 1_000_000]))
def test_no_body_crashes_a_check(replies, limit):
    for spec in CONTEXT_CHECKS:
        exs = []
        for name, (status, body, ctype) in zip(spec.probes, replies):
            chunks = (Chunk(0.01, body),) if body else ()
            failure = TransportFailure("reset", "x") if status is None else None
            req = request(body_of(name, limit)) if name != "context.models" else request(None, method="GET")
            exs.append(Exchange(request=req, status=status, headers=(("content-type", ctype),), chunks=chunks,
                                failure=failure))
        try:
            spec.run(*exs)
        except Finding:
            pass
