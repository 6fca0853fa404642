"""Unit tests of the json checks (response_format json_object / json_schema) on hand-built exchanges."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from oaicompat.checks import json_output
from oaicompat.checks.base import CHECKS, PROBES, Blocked, Finding, Observation, ProbeContext, QuirkFound, spec_of
from oaicompat.exchange import Exchange, TransportFailure
from tests.exchanges import completion, json_exchange, request

CTX = ProbeContext(SimpleNamespace(params={}), "m")  # type: ignore[arg-type]


def req(probe: str) -> dict[str, Any]:
    return PROBES[probe].build(CTX).json


def run(fn, *exchanges: Exchange) -> list[Observation]:
    return spec_of(fn).run(*exchanges)


def quirk_of(fn, *exchanges: Exchange) -> QuirkFound:
    with pytest.raises(QuirkFound) as info:
        run(fn, *exchanges)
    assert info.value.lines
    return info.value


def owner_of(fn, *exchanges: Exchange) -> str:
    with pytest.raises(Blocked) as info:
        run(fn, *exchanges)
    return info.value.owner


def reply(probe: str, content: Any, *, finish: str = "stop", completion_tokens: int = 9, **message: Any) -> Exchange:
    body = completion(content, finish_reason=finish)
    body["choices"][0]["message"].update(message)
    body["usage"] = {"prompt_tokens": 20, "completion_tokens": completion_tokens, "total_tokens": 20 + completion_tokens}
    return json_exchange(body, req=req(probe))


def rejected(probe: str, status: int = 400, body: Any = None) -> Exchange:
    payload = body if body is not None else {"error": {"message": "response_format not supported",
                                                       "type": "invalid_request_error", "param": "response_format",
                                                       "code": None}}
    return json_exchange(payload, status=status, req=req(probe))


# -- probes -----------------------------------------------------------------------------------------

def test_probes():
    assert {n for n in PROBES if n.startswith("json.")} == {
        "json.object", "json.object-no-word", "json.object-cut", "json.schema", "json.schema-cut",
        "json.schema-not-strict"}
    assert "json" in str(req("json.object")["messages"]).lower()
    assert "json" not in str(req("json.object-no-word")["messages"]).lower()
    assert req("json.object-cut")["max_tokens"] == req("json.schema-cut")["max_tokens"] == 3
    rf = req("json.schema")["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True and rf["json_schema"]["name"]
    schema = rf["json_schema"]["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False and set(schema["required"]) == set(schema["properties"])
    lax = req("json.schema-not-strict")["response_format"]["json_schema"]
    assert lax["strict"] is True and "additionalProperties" not in lax["schema"]
    assert set(lax["schema"]["required"]) != set(lax["schema"]["properties"])
    for name in ("json.object", "json.schema", "json.object-cut"):
        assert req(name)["temperature"] == 0 and req(name)["max_tokens"] <= 48


def test_provider_params_do_not_override_the_subject():
    ctx = ProbeContext(SimpleNamespace(params={"max_tokens": 512, "response_format": {"type": "text"}}), "m")  # type: ignore[arg-type]
    body = PROBES["json.schema-cut"].build(ctx).json
    assert body["max_tokens"] == 3 and body["response_format"]["type"] == "json_schema"


def test_unclosed():
    assert json_output.unclosed('{"greeting": "hel')
    assert json_output.unclosed('{"a": [1, {"b": ')
    assert json_output.unclosed('{"a": "x\\"}')
    assert not json_output.unclosed('{"a": 1}')
    assert not json_output.unclosed("Hello {")
    assert not json_output.unclosed('{"a": 1]')
    assert not json_output.unclosed("")


# -- json_object ------------------------------------------------------------------------------------

def test_object_accepted():
    assert run(json_output.object_accepted, reply("json.object", '{"greeting": "hello"}')) == []
    found = quirk_of(json_output.object_accepted, rejected("json.object"))
    assert found.quirk == "json.object-rejected" and "HTTP 400" in found.detail


def test_object_valid():
    assert run(json_output.object_valid, reply("json.object", '{"greeting": "hello"}')) == []
    assert run(json_output.object_valid, reply("json.object", '\n{"greeting": "hello"}\n ')) == []
    for content in ("Hello! How can I help?", '["hello"]', '"hello"', {"greeting": "hello"}, None):
        assert quirk_of(json_output.object_valid, reply("json.object", content)).quirk == "json.object-ignored"
    assert quirk_of(json_output.object_valid, reply("json.object", "  \n ")).quirk == "json.object-blank-output"
    refusal = reply("json.object", None, refusal="I can't help with that.")
    assert [o.key for o in run(json_output.object_valid, refusal)] == ["refusal"]
    assert owner_of(json_output.object_valid, rejected("json.object")) == "json.object-accepted"


def test_object_valid_does_not_count_a_cut_reply():
    cut = reply("json.object", '{"greeting": "hello hello hel', finish="length", completion_tokens=48)
    assert owner_of(json_output.object_valid, cut) == "json.object-cut-length"
    # cut, but mislabelled "stop": the cut check reports it, not this one
    mislabelled = reply("json.object", '{"greeting": "hello hello hel', finish="stop", completion_tokens=48)
    assert owner_of(json_output.object_valid, mislabelled) == "json.object-cut-length"
    # not JSON, stopped early: a real json_object failure
    short = reply("json.object", '{"greeting": "hel', finish="stop", completion_tokens=5)
    assert quirk_of(json_output.object_valid, short).quirk == "json.object-ignored"


def test_object_without_word():
    ok = reply("json.object", '{"greeting": "hello"}')
    assert run(json_output.object_without_word, ok, reply("json.object-no-word", '{"hello": 1}')) == []
    found = quirk_of(json_output.object_without_word, ok, rejected("json.object-no-word"))
    assert found.quirk == "json.object-needs-json-word" and "HTTP 400" in found.detail
    assert owner_of(json_output.object_without_word, rejected("json.object"),
                    rejected("json.object-no-word")) == "json.object-accepted"


@pytest.mark.parametrize("fn, probe, quirk, valid_owner", [
    (json_output.object_cut_length, "json.object-cut", "json.object-cut-not-length", "json.object-valid"),
    (json_output.schema_cut_length, "json.schema-cut", "json.schema-cut-not-length", "json.schema-valid"),
])
def test_cut_length(fn, probe, quirk, valid_owner):
    assert run(fn, reply(probe, '{"ci', finish="length", completion_tokens=3)) == [Observation("finish_reason", "length")]
    assert quirk_of(fn, reply(probe, '{"ci', finish="stop", completion_tokens=3)).quirk == quirk
    # an open string gives the cut away even without usage
    body = completion('{"city": "Par', finish_reason="stop")
    del body["usage"]
    no_usage = json_exchange(body, req=req(probe))
    assert quirk_of(fn, no_usage).quirk == quirk
    # all the budget used, not JSON, "stop": cut
    assert quirk_of(fn, reply(probe, "Sure", finish="stop", completion_tokens=3)).quirk == quirk
    # complete JSON within the budget: nothing was cut
    assert [o.key for o in run(fn, reply(probe, "{}", finish="stop", completion_tokens=2))] == ["not-cut"]
    # not JSON and not at the cap: the content check reports it
    assert owner_of(fn, reply(probe, "Hi", finish="stop", completion_tokens=1)) == valid_owner


# -- json_schema ------------------------------------------------------------------------------------

def test_schema_accepted_names_status_and_error_shape():
    assert run(json_output.schema_accepted, reply("json.schema", '{"city": "Paris", "sunny": true}')) == []
    envelope = {"error": {"message": "1 validation error for ...", "type": "internal_server_error",
                          "param": None, "code": None}}
    found = quirk_of(json_output.schema_accepted, rejected("json.schema", 500, envelope))
    assert found.quirk == "json.schema-rejected"
    assert "HTTP 500" in found.detail and 'type="internal_server_error"' in found.detail
    plain = json_exchange(b"Internal Server Error", status=500, req=req("json.schema"), content_type="text/plain")
    assert "non-JSON body" in quirk_of(json_output.schema_accepted, plain).detail


def test_schema_valid():
    assert run(json_output.schema_valid, reply("json.schema", '{"city": "Paris", "sunny": true}')) == []
    for content in ('{"city": "Berlin", "sunny": true}', '{"city": "Paris"}', '{"city": "Paris", "sunny": "yes"}',
                    '{"city": "Paris", "sunny": true, "x": 1}', "It is sunny in Paris.", "", ["x"]):
        found = quirk_of(json_output.schema_valid, reply("json.schema", content))
        assert found.quirk == "json.schema-ignored"
    refusal = reply("json.schema", None, refusal="No.")
    assert [o.key for o in run(json_output.schema_valid, refusal)] == ["refusal"]
    cut = reply("json.schema", '{"city": "Pa', finish="length", completion_tokens=48)
    assert owner_of(json_output.schema_valid, cut) == "json.schema-cut-length"
    assert owner_of(json_output.schema_valid, rejected("json.schema", 500)) == "json.schema-accepted"


def test_schema_valid_uses_the_requested_schema():
    body = req("json.schema")
    body["response_format"]["json_schema"]["schema"]["properties"]["city"]["enum"] = ["Rome"]
    ex = json_exchange(completion('{"city": "Paris", "sunny": true}'), req=body)
    assert quirk_of(json_output.schema_valid, ex).quirk == "json.schema-ignored"


def test_schema_strict_checked():
    valid = reply("json.schema", '{"city": "Paris", "sunny": true}')
    notes = run(json_output.schema_strict_checked, valid, rejected("json.schema-not-strict"))
    assert notes[0].key == "rejection" and "HTTP 400" in notes[0].value
    accepted = reply("json.schema-not-strict", '{"city": "Paris"}')
    assert quirk_of(json_output.schema_strict_checked, valid, accepted).quirk == "json.schema-strict-unchecked"
    assert quirk_of(json_output.schema_strict_checked, valid,
                    rejected("json.schema-not-strict", 500)).quirk == "json.schema-strict-unchecked"
    assert owner_of(json_output.schema_strict_checked, rejected("json.schema", 500),
                    rejected("json.schema-not-strict", 500)) == "json.schema-accepted"


# -- robustness -------------------------------------------------------------------------------------

GARBAGE: list[Any] = [
    b"not json", b"[]", b"[" * 50_000 + b"]" * 50_000, {"choices": 1}, {"choices": [None]},
    {"choices": [{"message": 5}]}, {"choices": [{"message": {"content": 5}, "finish_reason": {}}], "usage": 7},
    {"choices": [{"message": {"content": "[" * 50_000}, "finish_reason": "stop"}],
     "usage": {"completion_tokens": True}},
    {"choices": [{"message": {"content": None, "refusal": 3}}]},
    Exchange(request=request({}), status=None, failure=TransportFailure("timeout", "slow")),
    Exchange(request=request({}), status=200),
]


@pytest.mark.parametrize("spec", [s for s in CHECKS.values() if s.area == "json"], ids=lambda s: s.id)
@pytest.mark.parametrize("garbage", range(len(GARBAGE)))
def test_checks_never_crash_on_vendor_bytes(spec, garbage):
    g = GARBAGE[garbage]
    exchanges = []
    for p in spec.probes:
        if isinstance(g, Exchange):
            exchanges.append(Exchange(request=request(req(p)), status=g.status, chunks=g.chunks, failure=g.failure))
        else:
            exchanges.append(json_exchange(g, req=req(p)))
    try:
        result = spec.run(*exchanges)
    except Finding:
        return
    assert all(isinstance(o, Observation) for o in result)


@pytest.mark.parametrize(("fn", "probe", "quirk"), [
    (json_output.object_valid, "json.object", "json.object-ignored"),
    (json_output.schema_valid, "json.schema", "json.schema-ignored"),
])
def test_a_cut_reply_that_never_began_as_json_is_the_format_ignored(fn, probe, quirk):
    prose = reply(probe, "Is it sunny in Paris? Answer in JSON. Is it", finish="length", completion_tokens=48)
    found = quirk_of(fn, prose)
    assert found.quirk == quirk and "no JSON had begun" in found.detail and "'Is it sunny" in found.detail
    for started in ('  {"city": "Pa', "[1, 2", ""):     # JSON under way (or nothing yet): not judged
        assert owner_of(fn, reply(probe, started, finish="length", completion_tokens=48)).endswith("-cut-length")
