"""checks/requires.py: what a check needs of an exchange, and `unmet` naming each missing property."""

from __future__ import annotations

import json
from typing import Any

import pytest

from oaicompat.checks import base
from oaicompat.checks.requires import (
    CALLS,
    OK,
    REJECTED,
    SOK_USAGE,
    STREAMED_CALLS,
    Requires,
    exchange_features,
    from_probe,
    request_features,
    unmet,
)
from oaicompat.exchange import Chunk, Exchange, Request

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
CALL_DELTA = {"choices": [{"index": 0, "delta": {"tool_calls": [
    {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}


def ex(req: dict[str, Any], body: bytes | dict[str, Any], *, status: int = 200,
       ctype: str = "application/json", framing: str = "joined") -> Exchange:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(request=Request("POST", "u", "/chat/completions", (), json.dumps(req).encode()), status=status,
                    headers=(("content-type", ctype),), chunks=(Chunk(0.0, raw),), framing=framing)  # type: ignore[arg-type]


def sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs) + b"data: [DONE]\n\n"


BASIC = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MESSAGE = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]}
CALL = {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}


def test_nothing_required_is_always_met():
    assert unmet(Requires(), ex(BASIC, MESSAGE)) == []


def test_each_missing_property_is_named():
    missing = unmet(Requires(stream=True, tools=True, status="2xx"), ex(BASIC, {"error": {}}, status=400))
    assert [m.split(":")[0] for m in missing] == ["stream", "tools", "status"]
    assert "status: needs '2xx', the exchange has '4xx'" in missing


@pytest.mark.parametrize("requires, request_, body, status, ok", [
    (CALLS, {**BASIC, "tools": TOOLS, "tool_choice": "required"}, CALL, 200, True),
    (CALLS, {**BASIC, "tools": TOOLS}, MESSAGE, 200, False),
    (STREAMED_CALLS, {**BASIC, "tools": TOOLS, "stream": True}, sse(CALL_DELTA), 200, True),
    (STREAMED_CALLS, {**BASIC, "tools": TOOLS, "stream": True}, sse({"choices": []}), 200, False),
    (SOK_USAGE, {**BASIC, "stream": True, "stream_options": {"include_usage": True}}, sse({}), 200, True),
    (SOK_USAGE, {**BASIC, "stream": True}, sse({}), 200, False),
    (OK, BASIC, MESSAGE, 201, True),
    (REJECTED, BASIC, {"error": {}}, 503, True),
    (REJECTED, BASIC, MESSAGE, 200, False),
])
def test_declared_needs(requires, request_, body, status, ok):
    ctype = "text/event-stream" if isinstance(body, bytes) else "application/json"
    assert (unmet(requires, ex(request_, body, status=status, ctype=ctype)) == []) is ok


def test_framing_credentials_params_fields_and_prompt():
    assert unmet(Requires(framing="raw"), ex(BASIC, MESSAGE)) == ["framing: needs 'raw', the exchange has 'joined'"]
    assert unmet(Requires(credentials="rejected"), ex(BASIC, {"error": {}}, status=401)) == []
    assert unmet(Requires(params=(("stop", '["x"]'),)), ex({**BASIC, "stop": ["x"]}, MESSAGE)) == []
    assert unmet(Requires(params=(("stop", '["x"]'),)), ex(BASIC, MESSAGE))
    wide = Requires(fields_within=frozenset())
    assert unmet(wide, ex({**BASIC, "temperature": 1}, MESSAGE)) == []
    assert "thinking" in unmet(wide, ex({**BASIC, "thinking": {"type": "enabled"}}, MESSAGE))[0]
    prompt = Requires(prompt=json.dumps(BASIC["messages"], sort_keys=True))
    assert unmet(prompt, ex(BASIC, MESSAGE)) == []
    assert unmet(prompt, ex({**BASIC, "messages": []}, MESSAGE))


def test_needs_derived_from_a_probe_fix_what_it_asks_and_what_changes_the_reply():
    feats = request_features("POST", "/chat/completions", {**BASIC, "tools": TOOLS, "tool_choice": "required"}, True)
    req = from_probe(feats, auth="accepted", params={}, body_keys=("model", "messages", "tools", "tool_choice"))
    assert req.tools is True and req.tool_choice == "required" and req.tool_calls is None and req.n == 1
    plain = from_probe(request_features("POST", "/chat/completions", BASIC, True), auth="accepted", params={},
                       body_keys=("model", "messages"))
    assert plain.tool_calls is False and plain.tools is None and plain.logprobs is False
    assert unmet(plain, ex({**BASIC, "tools": TOOLS}, CALL)) == ["tool_calls: needs False, the exchange has True"]
    assert exchange_features(ex(BASIC, CALL))["tool_calls"] is True


def test_single_exchange_forms_and_observers_are_declared_on_the_spec():
    import oaicompat.checks  # noqa: F401
    checks = base.CHECKS
    for cid in ("tools.delta-index", "tools.delta-first-complete", "tools.delta-arguments-json",
                "tools.finish-reason", "tools.call-id", "errors.envelope"):
        assert checks[cid].accepts_one and checks[cid].requires is not None, cid
    assert checks["tools.finish-reason"].requires.stream is None        # streamed or not
    assert checks["tools.delta-index"].requires == STREAMED_CALLS
    assert not checks["tools.stream-matches"].accepts_one               # the pair form stays a pair
    assert not checks["reasoning.message-field"].skip_when_unsupported  # observes any reply
    assert checks["reasoning.tokens"].skip_when_unsupported


def test_every_check_says_how_one_exchange_qualifies():
    """A check judges one exchange through declared needs, or through needs derived from its one probe; a
    check written over *exchanges always declares them (else the runner could not tell which exchange fits)."""
    import oaicompat.checks  # noqa: F401
    for cid, spec in base.CHECKS.items():
        if spec.accepts_one and len(spec.probes) > 1:
            assert spec.requires is not None, f"{cid} takes any number of exchanges but declares no requires="
        if spec.requires is not None:
            assert spec.accepts_one, f"{cid} declares requires= but compares a fixed pair of exchanges"
            assert spec.requires.prompt is None or spec.kind == "capability", cid
