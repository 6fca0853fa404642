"""Unit tests of the error checks on hand-built exchanges: OpenAI-shaped refusals pass, each deviation
raises exactly its quirk id, what another check owns is Blocked, and no bytes crash a check."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import errors
from oaicompat.checks.base import CHECKS, PROBES, Finding, Observation, ProbeContext, QuirkFound, QuirksFound, spec_of
from oaicompat.config import load_providers
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from oaicompat.paths import PROVIDERS_FILE
from tests.exchanges import blocked_by, completion, json_exchange, passes, quirk_of, request

BASIC = json_exchange(completion())
PROVIDER = next(iter(load_providers(PROVIDERS_FILE, {}).providers.values()))


def envelope(message: str = "bad request", type_: str = "invalid_request_error", param: Any = None,
             code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def refusal(status: int, body: Any = None, *, content_type: str = "application/json",
            headers: tuple[tuple[str, str], ...] = ()) -> Exchange:
    return json_exchange(envelope() if body is None else body, status=status, content_type=content_type,
                         headers=headers)


def raw(status: int | None, data: bytes, content_type: str | None = "application/json",
        failure: TransportFailure | None = None, path: str = "/chat/completions", method: str = "POST") -> Exchange:
    headers = (("content-type", content_type),) if content_type else ()
    return Exchange(request=request(None, path=path, method=method), status=status, headers=headers,
                    chunks=(Chunk(0.01, data),) if data else (), failure=failure)


OK = json_exchange(completion())
DROPPED = raw(None, b"", None, TransportFailure("reset", "connection reset"))
UNAUTHORIZED = refusal(401, envelope("Incorrect API key provided", code="invalid_api_key"))
NOT_FOUND_MODEL = refusal(404, envelope("The model `x` does not exist", code="model_not_found"))
BAD = refusal(400)



def conformant_errors() -> list[Exchange]:
    """What OpenAI answers to each errors probe, in ERROR_PROBES order."""
    return [UNAUTHORIZED, UNAUTHORIZED, NOT_FOUND_MODEL] + [BAD] * len(errors.BAD_PROBES)


def replace(exs: list[Exchange], probe: str, ex: Exchange) -> list[Exchange]:
    out = list(exs)
    out[errors.ERROR_PROBES.index(probe)] = ex
    return out


# -- key and model ------------------------------------------------------------------------------------------

STATUS_CHECKS = [
    (errors.wrong_key_is_401, UNAUTHORIZED, "errors.wrong-key-accepted", "errors.wrong-key-status"),
    (errors.missing_key_is_401, UNAUTHORIZED, "errors.missing-key-accepted", "errors.missing-key-status"),
    (errors.unknown_model_is_404, NOT_FOUND_MODEL, "errors.unknown-model-accepted", "errors.unknown-model-status"),
]


@pytest.mark.parametrize("fn,good,accepted,other", STATUS_CHECKS, ids=[a for _, _, a, _ in STATUS_CHECKS])
def test_status_checks(fn, good, accepted, other):
    passes(fn, BASIC, good)
    assert quirk_of(fn, BASIC, OK) == accepted
    assert quirk_of(fn, BASIC, raw(200, b"<html></html>", "text/html")) == accepted
    for bad in (refusal(400), refusal(403), refusal(500), DROPPED, refusal(422, {"detail": "x"})):
        assert quirk_of(fn, BASIC, bad) == other
    assert blocked_by(fn, refusal(400), good) == "chat.status"


def test_wrong_key_detail_quotes_the_vendor_message():
    with pytest.raises(QuirkFound) as info:
        spec_of(errors.wrong_key_is_401).run(BASIC, refusal(400, envelope("No connected db.", "no_db_connection")))
    assert "HTTP 400" in info.value.detail and "No connected db." in info.value.detail


def test_unknown_model_code():
    passes(errors.unknown_model_code, NOT_FOUND_MODEL)
    assert quirk_of(errors.unknown_model_code, refusal(404, envelope(code=None))) == "errors.unknown-model-code"
    assert quirk_of(errors.unknown_model_code, refusal(404, envelope(code=404))) == "errors.unknown-model-code"
    assert blocked_by(errors.unknown_model_code, refusal(400)) == "errors.unknown-model-status"
    assert blocked_by(errors.unknown_model_code, raw(404, b"Not Found", "text/plain")) == "errors.envelope"


# -- client mistakes -------------------------------------------------------------------------------------------

MISTAKES = [
    (errors.malformed_json_refused, "errors.malformed-json-accepted"),
    (errors.messages_missing_refused, "errors.lenient-validation"),
    (errors.messages_empty_refused, "errors.messages-empty-accepted"),
    (errors.messages_type_refused, "errors.messages-type-accepted"),
    (errors.invalid_role_refused, "errors.invalid-role-accepted"),
    (errors.temperature_range_refused, "errors.temperature-range-accepted"),
]


@pytest.mark.parametrize("fn,quirk", MISTAKES, ids=[q for _, q in MISTAKES])
def test_mistakes_are_refused(fn, quirk):
    for good in (BAD, refusal(422), refusal(404)):      # the exact status is errors.bad-request-400's business
        passes(fn, BASIC, good)
    assert quirk_of(fn, BASIC, OK) == quirk
    assert quirk_of(fn, BASIC, raw(200, b"garbage", "text/plain")) == quirk
    assert blocked_by(fn, BASIC, refusal(500)) == "errors.bad-request-no-5xx"
    assert blocked_by(fn, BASIC, DROPPED) == "errors.bad-request-no-5xx"
    assert blocked_by(fn, DROPPED, BAD) == "chat.status"


def bad_set(**overrides: Exchange) -> list[Exchange]:
    out = [BAD] * len(errors.BAD_PROBES)
    for name, ex in overrides.items():
        out[errors.BAD_PROBES.index("errors." + name.replace("_", "-"))] = ex
    return out


def test_no_5xx_on_bad_requests():
    passes(errors.bad_requests_not_5xx, BASIC, *bad_set())
    passes(errors.bad_requests_not_5xx, BASIC, *bad_set(messages_missing=OK, invalid_role=refusal(422)))
    assert quirk_of(errors.bad_requests_not_5xx, BASIC, *bad_set(
        malformed_json=raw(500, b"Internal Server Error", "text/plain"))) == "errors.server-500-on-bad-request"
    assert quirk_of(errors.bad_requests_not_5xx, BASIC, *bad_set(
        messages_type=DROPPED, malformed_json=refusal(503))) == "errors.server-500-on-bad-request"
    assert quirk_of(errors.bad_requests_not_5xx, BASIC, *bad_set(
        messages_type=DROPPED)) == "errors.no-response-on-bad-request"
    assert blocked_by(errors.bad_requests_not_5xx, refusal(401), *bad_set()) == "chat.status"


def test_no_5xx_evidence_names_each_probe():
    with pytest.raises(QuirkFound) as info:
        spec_of(errors.bad_requests_not_5xx).run(BASIC, *bad_set(malformed_json=refusal(500),
                                                                  messages_type=refusal(500)))
    assert "errors.malformed-json → HTTP 500" in info.value.detail
    assert "errors.messages-type → HTTP 500" in info.value.detail
    assert "[errors.messages-type]" in info.value.lines


def test_bad_requests_are_400():
    passes(errors.bad_requests_are_400, BASIC, *bad_set())
    passes(errors.bad_requests_are_400, BASIC, *bad_set(messages_missing=OK, malformed_json=refusal(500)))
    assert quirk_of(errors.bad_requests_are_400, BASIC, *bad_set(invalid_role=refusal(422))) == "errors.validation-422"
    assert quirk_of(errors.bad_requests_are_400, BASIC, *bad_set(
        invalid_role=refusal(422), messages_empty=refusal(404))) == "errors.bad-request-status"
    assert quirk_of(errors.bad_requests_are_400, BASIC, *bad_set(
        temperature_range=refusal(403))) == "errors.bad-request-status"
    assert blocked_by(errors.bad_requests_are_400, BASIC, *[refusal(500)] * 6) == "errors.bad-request-no-5xx"
    assert blocked_by(errors.bad_requests_are_400, BASIC, *[OK] * 6) == "errors.malformed-json"
    assert blocked_by(errors.bad_requests_are_400, refusal(500), *bad_set()) == "chat.status"


# -- the envelope, code type and media type -----------------------------------------------------------------------

ENVELOPES = [
    (raw(500, b"Internal Server Error", "text/plain"), "errors.non-json-body"),
    (raw(401, b"", None), "errors.non-json-body"),
    (refusal(400, [{"error": {"code": 400, "message": "x", "status": "INVALID_ARGUMENT"}}]), "errors.array-envelope"),
    (refusal(400, {"error": "'response_format.type' must be 'json_schema' or 'text'"}), "errors.string-error"),
    (refusal(400, {"object": "error", "message": "x", "type": "BadRequestError", "param": None, "code": 400}),
     "errors.non-openai-shape"),
    (refusal(422, {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}), "errors.non-openai-shape"),
    (refusal(400, {"code": 20012, "message": "Model does not exist.", "data": None}), "errors.non-openai-shape"),
    (refusal(400, "just a string"), "errors.non-openai-shape"),
    (refusal(400, {"error": {"code": 400, "message": "x", "type": "exceed_context_size_error"}}),
     "errors.envelope-incomplete"),
    (refusal(400, envelope(message=None)), "errors.envelope-incomplete"),
    (refusal(400, envelope(param=["messages"])), "errors.envelope-incomplete"),
]


@pytest.mark.parametrize("bad,quirk", ENVELOPES, ids=[f"{q}-{i}" for i, (_, q) in enumerate(ENVELOPES)])
def test_envelope(bad, quirk):
    passes(errors.error_envelope, *conformant_errors())
    assert quirk_of(errors.error_envelope, *replace(conformant_errors(), "errors.invalid-role", bad)) == quirk


def test_envelope_reports_every_problem_worst_first():
    exs = replace(conformant_errors(), "errors.malformed-json", raw(500, b"oops", "text/plain"))
    exs = replace(exs, "errors.wrong-key", refusal(401, {"error": {"message": "no", "type": "auth"}}))
    with pytest.raises(QuirksFound) as info:
        spec_of(errors.error_envelope).run(*exs)
    assert info.value.quirk == "errors.non-json-body"
    assert info.value.quirks == ("errors.non-json-body", "errors.envelope-incomplete")
    assert "errors.wrong-key" in info.value.detail


def test_a_string_error_does_not_hide_a_flat_error_shape():
    """Issue 16: a flat {"code","message"} body was masked by a string-valued `error` from another reply."""
    exs = replace(conformant_errors(), "errors.wrong-key", refusal(401, {"error": "Unauthorized"}))
    exs = replace(exs, "errors.unknown-model", refusal(404, {"code": 404, "message": "model not found"}))
    with pytest.raises(QuirksFound) as info:
        spec_of(errors.error_envelope).run(*exs)
    assert set(info.value.quirks) == {"errors.string-error", "errors.non-openai-shape"}
    # one imported reply on its own is judged too (the single-exchange form)
    assert quirk_of(errors.error_envelope, refusal(400, {"code": 400, "message": "x"})) == "errors.non-openai-shape"


def test_envelope_ignores_successes_and_needs_one_error():
    passes(errors.error_envelope, *replace(conformant_errors(), "errors.messages-missing", OK))
    assert blocked_by(errors.error_envelope, *[OK] * len(errors.ERROR_PROBES)) == "errors.malformed-json"
    passes(errors.error_envelope, *replace(conformant_errors(), "errors.messages-type", DROPPED))


def test_code_type():
    passes(errors.error_code_is_string, *conformant_errors())
    passes(errors.error_code_is_string, *replace(conformant_errors(), "errors.wrong-key", raw(401, b"", None)))
    assert quirk_of(errors.error_code_is_string, *replace(
        conformant_errors(), "errors.messages-type", refusal(400, envelope(code=400)))) == "errors.code-type-mismatch"
    assert quirk_of(errors.error_code_is_string, *replace(
        conformant_errors(), "errors.messages-type", refusal(400, envelope(code=True)))) == "errors.code-type-mismatch"
    assert blocked_by(errors.error_code_is_string, *[raw(500, b"x", "text/plain")] * 9) == "errors.envelope"


def test_error_content_type():
    passes(errors.error_content_type_is_json, *conformant_errors())
    passes(errors.error_content_type_is_json, *replace(
        conformant_errors(), "errors.wrong-key", refusal(401, content_type="application/problem+json")))
    passes(errors.error_content_type_is_json, *replace(conformant_errors(), "errors.wrong-key", raw(401, b"", None)))
    assert quirk_of(errors.error_content_type_is_json, *replace(
        conformant_errors(), "errors.malformed-json", raw(500, b"Internal Server Error", "text/plain"))) \
        == "errors.content-type-not-json"
    assert quirk_of(errors.error_content_type_is_json, *replace(
        conformant_errors(), "errors.malformed-json", raw(400, b'{"error":{}}', None))) == "errors.content-type-not-json"
    assert blocked_by(errors.error_content_type_is_json, *[OK] * 9) == "errors.envelope"


def test_replies_observed():
    obs = {o.key: o.value for o in passes(errors.error_replies, *replace(
        conformant_errors(), "errors.malformed-json", raw(500, b"boom", "text/plain")))}
    assert obs["errors.wrong-key"]["status"] == 401 and obs["errors.wrong-key"]["code"] == "invalid_api_key"
    assert obs["errors.malformed-json"] == {"status": 500, "content_type": "text/plain", "type": None, "code": None,
                                            "param": None, "message": "boom"}
    passes(errors.error_replies, *[refusal(400, {"error": {"type": {}, "code": [1], "param": 3}})] * 9)
    passes(errors.error_replies, *[DROPPED] * 9)


# -- unknown path and headers --------------------------------------------------------------------------------------

def test_unknown_path():
    get = dict(path="/oaicompat-no-such-endpoint", method="GET")
    passes(errors.unknown_path_is_404, raw(404, b'{"error":{"message":"not found"}}', **get))
    assert quirk_of(errors.unknown_path_is_404, raw(200, b"<html>", "text/html", **get)) == "errors.unknown-path-answered"
    for status in (401, 405, 500):
        assert quirk_of(errors.unknown_path_is_404, raw(status, b"", None, **get)) == "errors.unknown-path-status"
    assert quirk_of(errors.unknown_path_is_404, DROPPED) == "errors.unknown-path-status"


def test_request_id_observed():
    with_id = json_exchange(completion(), headers=(("x-request-id", "req_123"),))
    obs = {o.key: o.value for o in passes(errors.request_id_headers, with_id,
                                          refusal(401, headers=(("X-Litellm-Call-Id", "abc"),)), DROPPED)}
    assert obs == {"request-id.chat.basic": {"x-request-id": "req_123"},
                   "request-id.errors.wrong-key": {"x-litellm-call-id": "abc"},
                   "request-id.errors.unknown-model": None}


def test_rate_limit_headers_observed():
    ex = json_exchange(completion(), headers=(("x-ratelimit-limit-requests", "60"), ("retry-after", "1"),
                                             ("server", "x")))
    assert passes(errors.rate_limit_headers, ex) == [
        Observation("rate-limit-headers", {"x-ratelimit-limit-requests": "60", "retry-after": "1"})]
    assert passes(errors.rate_limit_headers, OK) == [Observation("rate-limit-headers", None)]


OPENAI_RATE = (("x-ratelimit-limit-requests", "10000"), ("x-ratelimit-limit-tokens", "2000000"),
               ("x-ratelimit-remaining-requests", "9999"), ("x-ratelimit-remaining-tokens", "1999990"),
               ("x-ratelimit-reset-requests", "6ms"), ("x-ratelimit-reset-tokens", "1m0.3s"))


def test_rate_limit_values():
    passes(errors.rate_limit_values, json_exchange(completion(), headers=OPENAI_RATE))
    assert passes(errors.rate_limit_values, OK) == [Observation("x-ratelimit", "absent")]
    passes(errors.rate_limit_values, json_exchange(completion(), headers=(("x-ratelimit-reset-tokens", "30"),)))
    for bad in ((("x-ratelimit-limit-requests", "ten"),),
                (("x-ratelimit-remaining-tokens", "-1"),),
                (("x-ratelimit-limit-requests", "10"), ("x-ratelimit-remaining-requests", "11")),
                (("x-ratelimit-reset-requests", "soon"),),
                (("x-ratelimit-limit-requests", "\u00b2"), ("x-ratelimit-remaining-requests", "\u00b2"))):
        assert quirk_of(errors.rate_limit_values, json_exchange(completion(), headers=bad)) \
            == "errors.rate-limit-headers-malformed"
    assert blocked_by(errors.rate_limit_values, DROPPED) == "chat.status"


# -- probes -------------------------------------------------------------------------------------------------------

def test_probe_bodies_are_distinct_and_as_described():
    ctx = ProbeContext(dataclasses.replace(PROVIDER, params={"temperature": 0.5}), "gemma")
    specs = {n: PROBES[n].build(ctx) for n in (*errors.ERROR_PROBES, "chat.basic")}
    bodies = [(s.method, s.path, s.body_bytes()) for s in specs.values()]
    assert len(set(bodies)) == len(bodies)
    assert specs["errors.wrong-key"].auth == "wrong" and specs["errors.missing-key"].auth == "none"
    assert json.loads(specs["errors.temperature-range"].body_bytes())["temperature"] == 3.0
    assert "messages" not in json.loads(specs["errors.messages-missing"].body_bytes())
    with pytest.raises(ValueError):
        json.loads(specs["errors.malformed-json"].body_bytes())
    assert json.loads(specs["errors.unknown-model"].body_bytes())["model"] == errors.UNKNOWN_MODEL


# -- robustness ----------------------------------------------------------------------------------------------------

ERROR_CHECKS = [s for s in CHECKS.values() if s.area == "errors"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["error", "message", "type", "param", "code", "detail", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode())),
       status=st.sampled_from([None, 200, 400, 401, 404, 422, 500]),
       headers=st.lists(st.tuples(st.sampled_from(["x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                                                   "x-ratelimit-reset-tokens", "x-request-id", "content-type"]),
                                  st.text(max_size=6)), max_size=3))
def test_no_bytes_crash_an_error_check(body, status, headers):
    ex = Exchange(request=request(None), status=status, headers=tuple(headers), chunks=(Chunk(0.01, body),) if body else ())
    for spec in ERROR_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass


def test_every_error_quirk_is_tested():
    text = open(__file__, encoding="utf-8").read()
    missing = [q for s in ERROR_CHECKS for q in s.quirks if f'"{q}"' not in text]
    assert not missing


@pytest.mark.parametrize("status", [200, 400, 404, 500])
def test_deeply_nested_json_crashes_no_errors_check(status):
    deep = b"[" * 100_000 + b"]" * 100_000
    ex = Exchange(request=request(None), status=status, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, deep),))
    for spec in ERROR_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass
