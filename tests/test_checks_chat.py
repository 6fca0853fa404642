"""Unit tests of the non-streaming chat checks on hand-built exchanges: the conformant reply passes, each
deviation raises exactly its quirk id, what another check owns is Blocked, and no bytes crash a check."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import chat
from oaicompat.checks.base import CHECKS, Finding, QuirkFound, spec_of
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from tests.exchanges import blocked_by, completion, json_exchange, passes, quirk_of, request

BASIC_REQ = {"model": "m", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16, "temperature": 0}
PARTS_REQ = {**BASIC_REQ, "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}]}
ERROR = {"error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}}


def ok(body: Any = None, **kw: Any) -> Exchange:
    return json_exchange(completion() if body is None else body, req=kw.pop("req", BASIC_REQ), **kw)


def with_(path: str, value: Any, *, delete: bool = False) -> Exchange:
    """The conformant reply with one field (dotted path, digits index lists) replaced or removed."""
    body = completion()
    node: Any = body
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for k in keys[:-1]:
        node = node[k]
    if delete:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return ok(body)



REJECTED = json_exchange(ERROR, status=400, req=BASIC_REQ)
SERVER_ERROR = json_exchange(b"Internal Server Error", status=500, content_type="text/plain", req=BASIC_REQ)
HTML_200 = json_exchange(b"<html><body>app</body></html>", content_type="text/html", req=BASIC_REQ)
DROPPED = Exchange(request=request(BASIC_REQ), status=None, failure=TransportFailure("reset", "connection reset"))


# -- the original field checks (one conformant, one deviating exchange each) ---------------------------

ORIGINAL = [
    (chat.status_is_success, REJECTED, "chat.basic-rejected"),
    (chat.content_type_is_json, ok(content_type="text/plain"), "chat.content-type-not-json"),
    (chat.object_is_chat_completion, with_("object", "chat.completion.chunk"), "chat.object-wrong"),
    (chat.id_is_nonempty_string, with_("id", ""), "chat.id-missing"),
    (chat.created_is_unix_seconds, with_("created", 1_726_012_687_000), "chat.created-not-unix-seconds"),
    (chat.model_is_string, with_("model", None), "chat.model-missing"),
    (chat.one_choice_with_index_zero, with_("choices.0.index", 1), "chat.choices-not-one"),
    (chat.choice_has_logprobs_key, with_("choices.0.logprobs", None, delete=True), "chat.choice-logprobs-key-missing"),
    (chat.message_role_is_assistant, with_("choices.0.message.role", "model"), "chat.role-not-assistant"),
    (chat.message_has_refusal_key, with_("choices.0.message.refusal", None, delete=True), "chat.refusal-key-missing"),
    (chat.message_content_is_string, with_("choices.0.message.content", None), "chat.content-not-string"),
    (chat.finish_reason_in_enum, with_("choices.0.finish_reason", "eos"), "chat.finish-reason-invalid"),
    (chat.usage_present, with_("usage", None, delete=True), "chat.usage-missing"),
    (chat.usage_integers_add_up, with_("usage.total_tokens", 8), "chat.usage-inconsistent"),
]


@pytest.mark.parametrize("fn,bad,quirk", ORIGINAL, ids=[spec_of(f).id for f, _, _ in ORIGINAL])
def test_original_checks(fn, bad, quirk):
    passes(fn, ok())
    assert quirk_of(fn, bad) == quirk


# -- the added field rules -----------------------------------------------------------------------------

def test_body_json():
    passes(chat.body_is_json_object, ok())
    assert quirk_of(chat.body_is_json_object, HTML_200) == "chat.body-not-json"
    assert quirk_of(chat.body_is_json_object, ok([1, 2])) == "chat.body-not-json"
    cut = Exchange(request=request(BASIC_REQ), status=200, headers=(("content-type", "application/json"),),
                   chunks=(Chunk(0.01, b'{"id": "x", "obj'),), failure=TransportFailure("reset", "reset", 16))
    assert quirk_of(chat.body_is_json_object, cut) == "chat.body-not-json"
    assert blocked_by(chat.body_is_json_object, REJECTED) == "chat.status"


def test_usage_details():
    details = {"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": None},
               "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0}}
    good = completion()
    good["usage"].update(details)
    passes(chat.usage_details_are_counts, ok(good))
    passes(chat.usage_details_are_counts, with_("usage.prompt_tokens_details", None))
    passes(chat.usage_details_are_counts, ok())
    for bad in ({"prompt_tokens_details": {"cached_tokens": "0"}},
                {"prompt_tokens_details": [0]},
                {"completion_tokens_details": {"reasoning_tokens": -1}},
                {"prompt_tokens_details": {"cached_tokens": 99}}):
        body = completion()
        body["usage"].update(bad)
        assert quirk_of(chat.usage_details_are_counts, ok(body)) == "chat.usage-details-malformed"
    assert blocked_by(chat.usage_details_are_counts, with_("usage", None, delete=True)) == "chat.usage"


def test_system_fingerprint():
    passes(chat.system_fingerprint_is_string_or_null, ok(completion(system_fingerprint="fp_1")))
    passes(chat.system_fingerprint_is_string_or_null, ok(completion(system_fingerprint=None)))
    passes(chat.system_fingerprint_is_string_or_null, ok())
    assert quirk_of(chat.system_fingerprint_is_string_or_null,
                    ok(completion(system_fingerprint=12))) == "chat.system-fingerprint-not-string"


def test_service_tier():
    passes(chat.service_tier_in_enum, ok(completion(service_tier="default")))
    passes(chat.service_tier_in_enum, ok(completion(service_tier=None)))
    passes(chat.service_tier_in_enum, ok())
    assert quirk_of(chat.service_tier_in_enum, ok(completion(service_tier="gold"))) == "chat.service-tier-invalid"
    assert quirk_of(chat.service_tier_in_enum, ok(completion(service_tier=["auto"]))) == "chat.service-tier-invalid"


def test_tool_calls_absent():
    passes(chat.no_tool_calls_without_tools, ok())
    passes(chat.no_tool_calls_without_tools, with_("choices.0.message.tool_calls", None))
    assert quirk_of(chat.no_tool_calls_without_tools,
                    with_("choices.0.message.tool_calls", [])) == "chat.tool-calls-empty-array"
    assert blocked_by(chat.no_tool_calls_without_tools, with_("choices.0.message", "hi")) == "chat.role"


def test_logprobs_null():
    passes(chat.logprobs_null_when_not_requested, ok())
    assert quirk_of(chat.logprobs_null_when_not_requested,
                    with_("choices.0.logprobs", {"content": []})) == "chat.logprobs-unrequested"
    assert blocked_by(chat.logprobs_null_when_not_requested,
                      with_("choices.0.logprobs", None, delete=True)) == "chat.choice-logprobs-key"


@pytest.mark.parametrize("requested,returned,fine", [
    ("m", "m", True), ("gpt-4o", "gpt-4o-2024-08-06", True), ("gemma", "openai/gemma", True),
    ("org/gemma", "gemma", True), ("gemma", "gemma-3-270m.gguf", True),
    ("gemma", "models/gemma-3-270m-Q4_K_M.gguf", False), ("gemma", "gpt-3.5-turbo", False),
])
def test_model_echo(requested, returned, fine):
    ex = ok(completion(model=returned), req={**BASIC_REQ, "model": requested})
    if fine:
        passes(chat.model_names_requested_model, ex)
    else:
        assert quirk_of(chat.model_names_requested_model, ex) == "chat.model-not-echoed"


def test_model_echo_blocked_without_model():
    assert blocked_by(chat.model_names_requested_model, with_("model", 5)) == "chat.model"


def test_extension_fields_observed():
    body = completion(timings={"predicted_n": 2}, system_fingerprint="b1")
    body["choices"][0]["provider_specific_fields"] = {}
    body["choices"][0]["message"]["reasoning_content"] = None
    body["usage"]["cache_hit"] = 0
    obs = {o.key: o.value for o in passes(chat.extension_fields, ok(body))}
    assert obs == {"extension-fields.top": ["timings"], "extension-fields.choice": ["provider_specific_fields"],
                   "extension-fields.message": ["reasoning_content"], "extension-fields.usage": ["cache_hit"]}
    assert passes(chat.extension_fields, ok()) == []
    assert passes(chat.extension_fields, HTML_200)[0].key == "reply"


# -- request shapes that must be accepted -----------------------------------------------------------------

ACCEPTANCE = [
    (chat.system_role_accepted, "chat.system-role-rejected"),
    (chat.developer_role_accepted, "chat.developer-role-rejected"),
    (chat.multi_turn_accepted, "chat.multi-turn-rejected"),
    (chat.message_name_accepted, "chat.name-rejected"),
    (chat.content_parts_accepted, "chat.content-parts-rejected"),
]


@pytest.mark.parametrize("fn,quirk", ACCEPTANCE, ids=[q for _, q in ACCEPTANCE])
def test_acceptance(fn, quirk):
    passes(fn, ok(), ok())
    for bad in (REJECTED, SERVER_ERROR, HTML_200, DROPPED):
        assert quirk_of(fn, ok(), bad) == quirk
    assert blocked_by(fn, REJECTED, ok()) == "chat.status"


def test_acceptance_detail_names_the_error_message():
    with pytest.raises(QuirkFound) as info:
        spec_of(chat.developer_role_accepted).run(ok(), json_exchange(
            {"error": {"message": "Unknown role: developer", "type": "x", "param": None, "code": None}}, status=400))
    assert "Unknown role: developer" in info.value.detail


def _prompt(n: int, req: Any = BASIC_REQ) -> Exchange:
    body = completion()
    body["usage"] = {"prompt_tokens": n, "completion_tokens": 2, "total_tokens": n + 2}
    return ok(body, req=req)


def test_content_parts_seen():
    passes(chat.content_parts_read_as_text, _prompt(9), _prompt(9, PARTS_REQ))
    assert quirk_of(chat.content_parts_read_as_text, _prompt(9), _prompt(4, PARTS_REQ)) == "chat.content-parts-mangled"
    assert quirk_of(chat.content_parts_read_as_text, _prompt(9), _prompt(30, PARTS_REQ)) == "chat.content-parts-mangled"
    assert blocked_by(chat.content_parts_read_as_text, _prompt(9), REJECTED) == "chat.content-parts"
    assert blocked_by(chat.content_parts_read_as_text, _prompt(9), with_("usage", None, delete=True)) == "chat.usage"
    assert blocked_by(chat.content_parts_read_as_text, _prompt(9),
                      with_("usage.prompt_tokens", "9")) == "chat.usage-arithmetic"
    assert blocked_by(chat.content_parts_read_as_text, REJECTED, _prompt(9)) == "chat.status"


# -- robustness: no bytes crash a chat check -----------------------------------------------------------------

CHAT_CHECKS = [s for s in CHECKS.values() if s.area == "chat"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _mutations() -> st.SearchStrategy[bytes]:
    def mutate(value: Any, path: list[str]) -> bytes:
        import json
        body: Any = completion()
        node = body
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, dict):
            node[path[-1]] = value
        return json.dumps(body).encode()
    paths = st.sampled_from([["id"], ["choices"], ["usage"], ["model"], ["system_fingerprint"], ["service_tier"]])
    return st.builds(mutate, json_values, paths)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=64), _mutations(), json_values.map(lambda v: __import__("json").dumps(v).encode())),
       status=st.sampled_from([200, 400, 500, 404]))
def test_no_body_crashes_a_chat_check(body, status):
    ex = Exchange(request=request(BASIC_REQ), status=status, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, body),) if body else ())
    for spec in CHAT_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass


def test_every_chat_quirk_is_tested():
    text = open(__file__, encoding="utf-8").read()
    missing = [q for s in CHAT_CHECKS for q in s.quirks if f'"{q}"' not in text]
    assert not missing


def test_info_check_never_raises_a_quirk():
    for ex in (ok(), HTML_200, REJECTED, DROPPED, ok(copy.deepcopy({"choices": "x"}))):
        passes(chat.extension_fields, ex)


def test_deeply_nested_json_is_not_json_to_a_check():
    deep = b"[" * 100_000 + b"]" * 100_000
    ex = json_exchange(deep, req=BASIC_REQ)
    assert quirk_of(chat.body_is_json_object, ex) == "chat.body-not-json"
    for spec in CHAT_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass


def test_non_json_success_is_blocked_by_body_json():
    assert blocked_by(chat.object_is_chat_completion, HTML_200) == "chat.body-json"
    assert blocked_by(chat.usage_details_are_counts, HTML_200) == "chat.body-json"


# -- usage extras and OpenAI's optional fields (issue 16: OpenRouter's cost, is_byok, cost_details) ------------

OPENAI_USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


def test_usage_extensions():
    passes(chat.usage_has_openai_keys_only, ok(completion(usage=OPENAI_USAGE)))
    passes(chat.usage_has_openai_keys_only, ok())
    extra = {**OPENAI_USAGE, "cost": 0.0001, "is_byok": False, "cost_details": {"upstream_inference_cost": None}}
    assert quirk_of(chat.usage_has_openai_keys_only, ok(completion(usage=extra))) == "chat.usage-extra-keys"
    thin = {**OPENAI_USAGE, "prompt_tokens_details": {"cached_tokens": 0}}
    assert quirk_of(chat.usage_has_openai_keys_only, ok(completion(usage=thin))) == "chat.usage-details-incomplete"
    with pytest.raises(QuirkFound) as both:
        spec_of(chat.usage_has_openai_keys_only).run(ok(completion(usage={**thin, "cost": 1})))
    assert set(both.value.quirks) == {"chat.usage-extra-keys", "chat.usage-details-incomplete"}  # type: ignore[attr-defined]
    assert blocked_by(chat.usage_has_openai_keys_only, ok(completion(usage=None))) == "chat.usage"


def test_openai_fields():
    passes(chat.openai_optional_fields_present, ok(completion(system_fingerprint=None, service_tier="default")))
    assert quirk_of(chat.openai_optional_fields_present, ok(completion(service_tier="default"))) \
        == "chat.system-fingerprint-absent"
    assert quirk_of(chat.openai_optional_fields_present, ok(completion(system_fingerprint="fp"))) \
        == "chat.service-tier-absent"
