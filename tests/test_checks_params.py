"""Unit tests of the request-parameter checks on hand-built exchanges: OpenAI-like replies pass, each
deviation raises exactly its quirk id, what another check owns is Blocked, and no bytes crash a check."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import params
from oaicompat.checks.base import CHECKS, PROBES, Finding, Observation, ProbeContext, spec_of
from oaicompat.config import load_providers
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from oaicompat.paths import PROVIDERS_FILE
from tests.exchanges import blocked_by, completion, json_exchange, passes, quirk_of, request

PROVIDER = next(iter(load_providers(PROVIDERS_FILE, {}).providers.values()))
ERROR = {"error": {"message": "Unrecognized request argument supplied", "type": "invalid_request_error",
                   "param": None, "code": None}}
BASIC = json_exchange(completion())
REJECTED = json_exchange(ERROR, status=400)
SERVER_ERROR = json_exchange(b"Internal Server Error", status=500, content_type="text/plain")
HTML_200 = json_exchange(b"<html></html>", content_type="text/html")
DROPPED = Exchange(request=request({}), status=None, failure=TransportFailure("reset", "connection reset"))


def reply(content: str = "Hello", *, finish: str = "stop", completion_tokens: int | None = 2, **extra: Any) -> Exchange:
    body = completion(content, finish_reason=finish, **extra)
    if completion_tokens is None:
        del body["usage"]
    else:
        body["usage"] = {"prompt_tokens": 5, "completion_tokens": completion_tokens,
                         "total_tokens": 5 + completion_tokens}
    return json_exchange(body)



# -- token caps ---------------------------------------------------------------------------------------------

def test_max_tokens_cap():
    passes(params.max_tokens_caps_output, reply(finish="length", completion_tokens=5))
    passes(params.max_tokens_caps_output, reply(completion_tokens=3))
    assert quirk_of(params.max_tokens_caps_output, reply(finish="length", completion_tokens=16)) \
        == "params.max-tokens-exceeded"
    for bad in (REJECTED, SERVER_ERROR, HTML_200, DROPPED):
        assert quirk_of(params.max_tokens_caps_output, bad) == "params.max-tokens-rejected"
    assert blocked_by(params.max_tokens_caps_output, reply(completion_tokens=None)) == "chat.usage-arithmetic"


def test_max_tokens_length():
    assert passes(params.max_tokens_finish_length, reply(finish="length", completion_tokens=5)) == []
    assert passes(params.max_tokens_finish_length, reply(finish="length", completion_tokens=None)) == []
    obs = passes(params.max_tokens_finish_length, reply(finish="stop", completion_tokens=2))
    assert obs and "before the cap" in obs[0].value
    assert quirk_of(params.max_tokens_finish_length, reply(finish="stop", completion_tokens=5)) \
        == "params.max-tokens-finish-reason"
    assert quirk_of(params.max_tokens_finish_length, reply(finish="eos", completion_tokens=5)) \
        == "params.max-tokens-finish-reason"
    # over the cap: max_tokens was ignored, which params.max-tokens-cap reports
    assert blocked_by(params.max_tokens_finish_length, reply(finish="stop", completion_tokens=6)) \
        == "params.max-tokens-cap"
    assert blocked_by(params.max_tokens_finish_length, reply(finish="stop", completion_tokens=None)) \
        == "chat.usage-arithmetic"
    assert blocked_by(params.max_tokens_finish_length, REJECTED) == "params.max-tokens-cap"


def test_max_completion_tokens():
    passes(params.max_completion_tokens_honoured, reply(finish="length", completion_tokens=5))
    assert quirk_of(params.max_completion_tokens_honoured, reply(finish="length", completion_tokens=400)) \
        == "params.max-completion-tokens-ignored"
    timed_out = Exchange(request=request({}), status=None, failure=TransportFailure("timeout", "no complete response"))
    assert quirk_of(params.max_completion_tokens_honoured, timed_out) == "params.max-completion-tokens-ignored"
    for bad in (REJECTED, SERVER_ERROR, HTML_200, DROPPED):
        assert quirk_of(params.max_completion_tokens_honoured, bad) == "params.max-completion-tokens-rejected"
    assert blocked_by(params.max_completion_tokens_honoured, reply(completion_tokens=None)) == "chat.usage-arithmetic"


# -- stop ----------------------------------------------------------------------------------------------------

def test_stop():
    obs = passes(params.stop_honoured, reply("Th", finish="stop"))
    assert obs == [Observation("stop", "honoured: the output stops before the stop string")]
    assert "not triggered" in passes(params.stop_honoured, reply("Sunny wind", finish="length"))[0].value
    passes(params.stop_honoured, reply("", finish="stop"))
    assert quirk_of(params.stop_honoured, reply("The", finish="stop")) == "params.stop-included"
    assert quirk_of(params.stop_honoured, reply("The weather is", finish="length")) == "params.stop-ignored"
    for bad in (REJECTED, SERVER_ERROR, HTML_200, DROPPED):
        assert quirk_of(params.stop_honoured, bad) == "params.stop-rejected"
    assert blocked_by(params.stop_honoured, json_exchange(completion(None))) == "chat.content"


# -- acceptance -------------------------------------------------------------------------------------------------

ACCEPTANCE = [
    (params.seed_accepted, "params.seed-rejected"),
    (params.top_p_accepted, "params.top-p-rejected"),
    (params.presence_penalty_accepted, "params.presence-penalty-rejected"),
    (params.frequency_penalty_accepted, "params.frequency-penalty-rejected"),
    (params.user_accepted, "params.user-rejected"),
    (params.metadata_accepted, "params.metadata-rejected"),
]


@pytest.mark.parametrize("fn,quirk", ACCEPTANCE, ids=[q for _, q in ACCEPTANCE])
def test_acceptance(fn, quirk):
    passes(fn, BASIC, reply())
    for bad in (REJECTED, SERVER_ERROR, HTML_200, DROPPED):
        assert quirk_of(fn, BASIC, bad) == quirk
    assert blocked_by(fn, REJECTED, reply()) == "chat.status"


@pytest.mark.parametrize("name,field,value", [
    ("params.seed", "seed", 1234), ("params.top-p", "top_p", 0.5), ("params.presence-penalty", "presence_penalty", 0.5),
    ("params.frequency-penalty", "frequency_penalty", 0.5), ("params.user", "user", "oaicompat-user"),
    ("params.metadata", "metadata", {"suite": "oaicompat"}),
])
def test_acceptance_probes_send_the_field_over_provider_params(name, field, value):
    provider = dataclasses.replace(PROVIDER, params={field: "provider-value", "temperature": 0.7})
    body = json.loads(PROBES[name].build(ProbeContext(provider, "gemma")).body_bytes())
    assert body[field] == value and body["temperature"] == 0.7 and body["max_tokens"] == 8


# -- determinism ----------------------------------------------------------------------------------------------------

def test_temperature_zero():
    passes(params.temperature_zero_greedy, reply("same"), reply("same"))
    assert quirk_of(params.temperature_zero_greedy, reply("one"), reply("two")) \
        == "params.temperature-zero-nondeterministic"
    assert quirk_of(params.temperature_zero_greedy, REJECTED, REJECTED) == "params.temperature-zero-rejected"
    assert quirk_of(params.temperature_zero_greedy, reply("same"), SERVER_ERROR) == "params.temperature-zero-rejected"


def test_seed_deterministic():
    passes(params.seed_reproducible, reply("same"), reply("same"))
    assert quirk_of(params.seed_reproducible, reply("one"), reply("two")) == "params.seed-ignored"
    assert blocked_by(params.seed_reproducible, REJECTED, reply()) == "params.seed"
    assert blocked_by(params.seed_reproducible, reply(), HTML_200) == "params.seed"


def test_twin_probes_are_fresh_and_identical():
    ctx = ProbeContext(PROVIDER, "gemma")
    for twin in ("temperature-zero", "seed"):
        a, b = PROBES[f"params.{twin}-a"], PROBES[f"params.{twin}-b"]
        assert a.fresh and b.fresh
        assert a.build(ctx).body_bytes() == b.build(ctx).body_bytes()
    assert json.loads(PROBES["params.seed-a"].build(ctx).body_bytes())["seed"] == 7


# -- n ----------------------------------------------------------------------------------------------------------------

def n_reply(*indexes: Any) -> Exchange:
    body = completion()
    body["choices"] = [{**body["choices"][0], "index": i} for i in indexes]
    return json_exchange(body)


def test_n():
    assert passes(params.n_honoured, n_reply(0, 1)) == []
    assert passes(params.n_honoured, n_reply(1, 0)) == []
    obs = passes(params.n_honoured, json_exchange({"error": {"message": "n must be 1", "type": "x",
                                                              "param": "n", "code": None}}, status=400))
    assert "refused cleanly: HTTP 400: n must be 1" in obs[0].value
    assert quirk_of(params.n_honoured, n_reply(0)) == "params.n-ignored"
    assert quirk_of(params.n_honoured, n_reply(0, 0)) == "params.n-reply-malformed"
    assert quirk_of(params.n_honoured, n_reply(0, 1, 2)) == "params.n-reply-malformed"
    assert quirk_of(params.n_honoured, n_reply()) == "params.n-reply-malformed"
    assert quirk_of(params.n_honoured, HTML_200) == "params.n-reply-malformed"
    assert quirk_of(params.n_honoured, json_exchange({"detail": "n"}, status=422)) == "params.n-rejected-unclean"
    assert quirk_of(params.n_honoured, json_exchange(b"no", status=400, content_type="text/plain")) \
        == "params.n-rejected-unclean"
    assert quirk_of(params.n_honoured, SERVER_ERROR) == "params.n-server-error"
    assert quirk_of(params.n_honoured, DROPPED) == "params.n-server-error"
    assert spec_of(params.n_honoured).needs == ("n",)


# -- logprobs ---------------------------------------------------------------------------------------------------------

def token(tok: str, lp: float, tops: int = 2) -> dict[str, Any]:
    return {"token": tok, "logprob": lp, "bytes": list(tok.encode()),
            "top_logprobs": [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}] +
                            [{"token": "x", "logprob": lp - 1, "bytes": None}] * (tops - 1)}


GOOD_LP = {"content": [token("Hel", -0.1), token("lo", -0.02)], "refusal": None}


def lp_reply(lp: Any, *, drop: bool = False) -> Exchange:
    body = completion()
    if drop:
        del body["choices"][0]["logprobs"]
    else:
        body["choices"][0]["logprobs"] = lp
    return json_exchange(body)


def test_logprobs_returned():
    passes(params.logprobs_returned, lp_reply(GOOD_LP))
    assert quirk_of(params.logprobs_returned, lp_reply(None)) == "params.logprobs-ignored"
    assert quirk_of(params.logprobs_returned, lp_reply(None, drop=True)) == "params.logprobs-ignored"
    for bad in (REJECTED, SERVER_ERROR, HTML_200, DROPPED):
        assert quirk_of(params.logprobs_returned, bad) == "params.logprobs-rejected"


@pytest.mark.parametrize("lp", [
    {"content": GOOD_LP["content"]},                                         # no refusal key
    {"refusal": None},                                                       # no content key
    {"content": "Hello", "refusal": None},
    {"content": [{"token": "a", "logprob": -1, "bytes": [97]}], "refusal": None},          # no top_logprobs
    {"content": [{"token": "a", "logprob": "-1", "bytes": [97], "top_logprobs": []}], "refusal": None},
    {"content": [{"token": 97, "logprob": -1, "bytes": [97], "top_logprobs": []}], "refusal": None},
    {"content": [{"token": "a", "logprob": -1, "top_logprobs": []}], "refusal": None},     # no bytes key
    {"content": [{"token": "a", "logprob": -1, "bytes": "a", "top_logprobs": []}], "refusal": None},
    {"content": [{"token": "a", "logprob": -1, "bytes": [97], "top_logprobs": [{"token": "a"}]}], "refusal": None},
    {"content": ["a"], "refusal": None},
])
def test_logprobs_shape(lp):
    passes(params.logprobs_shape, lp_reply(GOOD_LP))
    passes(params.logprobs_shape, lp_reply({"content": None, "refusal": None}))
    assert quirk_of(params.logprobs_shape, lp_reply(lp)) == "params.logprobs-shape"


def test_logprobs_shape_blocked():
    assert blocked_by(params.logprobs_shape, lp_reply(None)) == "params.logprobs"
    assert blocked_by(params.logprobs_shape, REJECTED) == "params.logprobs"


def test_top_logprobs():
    passes(params.top_logprobs_bounded, lp_reply(GOOD_LP))
    passes(params.top_logprobs_bounded, lp_reply({"content": [token("a", 0.0, tops=1)], "refusal": None}))
    assert quirk_of(params.top_logprobs_bounded, lp_reply({"content": [token("a", -1, tops=5)], "refusal": None})) \
        == "params.top-logprobs-too-many"
    assert quirk_of(params.top_logprobs_bounded, lp_reply({"content": [token("a", 0.3)], "refusal": None})) \
        == "params.logprob-positive"
    assert blocked_by(params.top_logprobs_bounded, lp_reply({"content": None, "refusal": None})) \
        == "params.logprobs-shape"
    assert blocked_by(params.top_logprobs_bounded, lp_reply(None)) == "params.logprobs"


# -- unknown field -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ex,verdict", [
    (reply(), "ignored"), (REJECTED, "rejected"), (json_exchange({"detail": "extra"}, status=422), "rejected"),
    (SERVER_ERROR, "server-error"), (DROPPED, "no-response"),
])
def test_unknown_field(ex, verdict):
    [obs] = passes(params.unknown_field_handling, ex)
    assert obs.key == "unknown-field" and obs.value["verdict"] == verdict
    json.dumps(obs.value)


def test_unknown_field_probe():
    body = json.loads(PROBES["params.unknown-field"].build(ProbeContext(PROVIDER, "gemma")).body_bytes())
    assert body["oaicompat_unknown_field"] is True


# -- probes and robustness --------------------------------------------------------------------------------------------------

def test_cap_probes_exclude_provider_token_params():
    provider = dataclasses.replace(PROVIDER, params={"max_tokens": 256, "max_completion_tokens": 256})
    ctx = ProbeContext(provider, "gemma")
    capped = json.loads(PROBES["params.max-tokens"].build(ctx).body_bytes())
    assert capped["max_tokens"] == params.CAP
    mct = json.loads(PROBES["params.max-completion-tokens"].build(ctx).body_bytes())
    assert mct["max_completion_tokens"] == params.CAP and "max_tokens" not in mct


def test_every_params_probe_body_is_unique():
    ctx = ProbeContext(PROVIDER, "gemma")
    keys = {}
    for name, p in PROBES.items():
        if p.fresh:
            continue
        spec = p.build(ctx)
        keys.setdefault((spec.method, spec.path, spec.body_bytes(), spec.base_url), []).append(name)
    assert not {k: v for k, v in keys.items() if len(v) > 1 and any(n.startswith(("params.", "chat.", "errors."))
                                                                     for n in v)}


PARAM_CHECKS = [s for s in CHECKS.values() if s.area == "params"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["choices", "logprobs", "content", "token", "top_logprobs", "usage", "message", "index", "x"]),
        inner, max_size=4),
    max_leaves=14)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=64), json_values.map(lambda v: json.dumps(v).encode())),
       status=st.sampled_from([None, 200, 400, 500]))
def test_no_bytes_crash_a_params_check(body, status):
    ex = Exchange(request=request({}), status=status, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, body),) if body else ())
    for spec in PARAM_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass


def test_every_params_quirk_is_tested():
    text = open(__file__, encoding="utf-8").read()
    assert not [q for s in PARAM_CHECKS for q in s.quirks if f'"{q}"' not in text]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def _mutated(template: dict[str, Any]) -> st.SearchStrategy[bytes]:
    paths = _paths(template)[1:]

    def build(path: tuple, value: Any) -> bytes:
        body = json.loads(json.dumps(template))
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return json.dumps(body).encode()
    return st.builds(build, st.sampled_from(paths), json_values)


LP_TEMPLATE = json.loads(lp_reply(GOOD_LP).body)
N_TEMPLATE = json.loads(n_reply(0, 1).body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(_mutated(LP_TEMPLATE), _mutated(N_TEMPLATE)))
def test_no_mutated_reply_crashes_a_params_check(body):
    ex = Exchange(request=request({}), status=200, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, body),))
    for spec in PARAM_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass


@pytest.mark.parametrize("status", [200, 400, 404, 500])
def test_deeply_nested_json_crashes_no_params_check(status):
    deep = b"[" * 100_000 + b"]" * 100_000
    ex = Exchange(request=request(None), status=status, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, deep),))
    for spec in PARAM_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass
