"""Unit tests of the models checks on hand-built GET exchanges: OpenAI's shapes pass, each deviation raises
exactly its quirk id, what another check owns is Blocked, and no bytes crash a check."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import models
from oaicompat.checks.base import CHECKS, Blocked, Finding, QuirkFound, spec_of
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from tests.exchanges import completion, json_exchange, request

ENTRY = {"id": "gemma", "object": "model", "created": 1_715_367_049, "owned_by": "system"}
LIST = {"object": "list", "data": [ENTRY, {**ENTRY, "id": "other"}]}
BASIC = json_exchange(completion(model="gemma"), req={"model": "gemma", "messages": [{"role": "user", "content": "hi"}]})


def get(payload: Any, *, status: int | None = 200, path: str = "/models", content_type: str = "application/json",
        failure: TransportFailure | None = None) -> Exchange:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Exchange(request=request(None, method="GET", path=path), status=status,
                    headers=(("content-type", content_type),), chunks=(Chunk(0.01, body),) if body else (),
                    failure=failure)


def listing(*entries: Any, **top: Any) -> Exchange:
    return get({"object": "list", "data": list(entries), **top})


def retrieved(payload: Any = ENTRY, status: int = 200, model: str = "gemma") -> Exchange:
    return get(payload, status=status, path="/models/" + model)


NOT_FOUND = {"error": {"message": "not found", "type": "invalid_request_error", "param": None, "code": None}}
DROPPED = get(b"", status=None, failure=TransportFailure("reset", "connection reset"))


def quirk_of(fn, *exs: Exchange) -> str:
    with pytest.raises(QuirkFound) as info:
        spec_of(fn).run(*exs)
    return info.value.quirk


def blocked_by(fn, *exs: Exchange) -> str:
    with pytest.raises(Blocked) as info:
        spec_of(fn).run(*exs)
    return info.value.owner


def passes(fn, *exs: Exchange) -> None:
    spec_of(fn).run(*exs)


def test_list_status():
    passes(models.list_status, get(LIST))
    assert quirk_of(models.list_status, get(NOT_FOUND, status=404)) == "models.unsupported"
    assert quirk_of(models.list_status, get(b"Method Not Allowed", status=405, content_type="text/plain")) \
        == "models.unsupported"
    assert quirk_of(models.list_status, get(NOT_FOUND, status=401)) == "models.list-error"
    assert quirk_of(models.list_status, DROPPED) == "models.list-error"


def test_list_shape():
    passes(models.list_shape, get(LIST))
    passes(models.list_shape, listing(ENTRY, models=[{"name": "gemma"}]))        # extra keys are fine
    passes(models.list_shape, listing())
    assert quirk_of(models.list_shape, get(b"<html>", content_type="text/html")) == "models.list-not-json"
    assert quirk_of(models.list_shape, get([ENTRY])) == "models.non-list-shape"
    assert quirk_of(models.list_shape, get({"data": [ENTRY]})) == "models.non-list-shape"
    assert quirk_of(models.list_shape, get({"object": "list", "models": [ENTRY]})) == "models.non-list-shape"
    assert quirk_of(models.list_shape, listing("gemma")) == "models.non-list-shape"
    assert blocked_by(models.list_shape, get(NOT_FOUND, status=404)) == "models.list-status"


ENTRY_RULES = [
    (models.entry_id, "models.entry-id-missing", [{"id": ""}, {"id": 3}, {"id": None}]),
    (models.entry_object, "models.entry-object-wrong", [{"object": "engine"}, {"object": None}]),
    (models.entry_created, "models.entry-created-not-unix-seconds",
     [{"created": 1_715_367_049_000}, {"created": "2024-05-10"}, {"created": 1.5e9}, {"created": True}]),
    (models.entry_owned_by, "models.entry-owned-by-missing", [{"owned_by": None}, {"owned_by": 1}]),
]


@pytest.mark.parametrize("fn,quirk,changes", ENTRY_RULES, ids=[q for _, q, _ in ENTRY_RULES])
def test_entry_rules(fn, quirk, changes):
    passes(fn, get(LIST))
    for change in changes:
        assert quirk_of(fn, listing(ENTRY, {**ENTRY, **change})) == quirk
    key = next(iter(changes[0]))
    assert quirk_of(fn, listing({k: v for k, v in ENTRY.items() if k != key})) == quirk
    assert blocked_by(fn, get(NOT_FOUND, status=404)) == "models.list-status"
    assert blocked_by(fn, get([ENTRY])) == "models.list-shape"
    assert blocked_by(fn, listing()) == "models.list-shape"


def test_entry_created_measured_shape():
    """An entry like {"id","object","owned_by","permissions"} without `created`."""
    ex = listing({"id": "gemma", "object": "model", "owned_by": "me", "permissions": []})
    assert quirk_of(models.entry_created, ex) == "models.entry-created-not-unix-seconds"
    passes(models.entry_owned_by, ex)


def test_configured_listed():
    passes(models.configured_model_listed, get(LIST), BASIC)
    assert quirk_of(models.configured_model_listed, listing({**ENTRY, "id": "models/gemma"}), BASIC) \
        == "models.id-mismatch"
    assert quirk_of(models.configured_model_listed, listing({**ENTRY, "id": "gemma-3-270m.gguf", "aliases": ["gemma"]}),
                    BASIC) == "models.id-mismatch"
    assert blocked_by(models.configured_model_listed, get(LIST), json_exchange(NOT_FOUND, status=404)) == "chat.status"
    assert blocked_by(models.configured_model_listed, get(NOT_FOUND, status=404), BASIC) == "models.list-status"


def test_retrieve_status():
    passes(models.retrieve_status, retrieved())
    assert quirk_of(models.retrieve_status, retrieved(NOT_FOUND, 404)) == "models.retrieve-unsupported"
    assert quirk_of(models.retrieve_status, retrieved(NOT_FOUND, 405)) == "models.retrieve-unsupported"
    assert quirk_of(models.retrieve_status, retrieved(NOT_FOUND, 500)) == "models.retrieve-error"


def test_retrieve_object():
    passes(models.retrieve_object, retrieved())
    passes(models.retrieve_object, retrieved({**ENTRY, "id": "org/gemma"}, model="org/gemma"))
    assert quirk_of(models.retrieve_object, retrieved(LIST)) == "models.retrieve-not-model"
    assert quirk_of(models.retrieve_object, retrieved(b"<html>")) == "models.retrieve-not-model"
    assert quirk_of(models.retrieve_object, retrieved([ENTRY])) == "models.retrieve-not-model"
    assert quirk_of(models.retrieve_object, retrieved({**ENTRY, "id": "gemma-3-270m"})) == "models.retrieve-id-mismatch"
    assert blocked_by(models.retrieve_object, retrieved(NOT_FOUND, 404)) == "models.retrieve-status"


def test_retrieve_unknown():
    unknown = "/models/" + models.UNKNOWN_MODEL
    passes(models.retrieve_unknown_is_404, retrieved(), get(NOT_FOUND, status=404, path=unknown))
    assert quirk_of(models.retrieve_unknown_is_404, retrieved(), get(ENTRY, path=unknown)) \
        == "models.retrieve-unknown-found"
    assert quirk_of(models.retrieve_unknown_is_404, retrieved(), get(NOT_FOUND, status=400, path=unknown)) \
        == "models.retrieve-unknown-status"
    assert quirk_of(models.retrieve_unknown_is_404, retrieved(), DROPPED) == "models.retrieve-unknown-status"
    assert blocked_by(models.retrieve_unknown_is_404, retrieved(NOT_FOUND, 404), get(NOT_FOUND, status=404)) \
        == "models.retrieve-status"


def test_probe_paths():
    from oaicompat.checks.base import PROBES, ProbeContext
    from oaicompat.config import load_providers
    from oaicompat.paths import PROVIDERS_FILE
    ctx = ProbeContext(next(iter(load_providers(PROVIDERS_FILE, {}).providers.values())), "org/gemma")
    assert [(s.method, s.path, s.body_bytes()) for s in (PROBES[n].build(ctx) for n in
            ("models.list", "models.retrieve", "models.retrieve-unknown"))] == [
        ("GET", "/models", b""), ("GET", "/models/org/gemma", b""), ("GET", "/models/" + models.UNKNOWN_MODEL, b"")]


MODEL_CHECKS = [s for s in CHECKS.values() if s.area == "models"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["object", "data", "id", "created", "owned_by", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(st.binary(max_size=48), json_values.map(lambda v: json.dumps(v).encode())),
       status=st.sampled_from([None, 200, 404, 500]))
def test_no_bytes_crash_a_models_check(body, status):
    ex = get(body, status=status, path="/models/gemma")
    for spec in MODEL_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass


def test_every_models_quirk_is_tested():
    text = open(__file__, encoding="utf-8").read()
    assert not [q for s in MODEL_CHECKS for q in s.quirks if f'"{q}"' not in text]


def test_models_checks_need_the_models_endpoint():
    assert all(s.needs == ("models_endpoint",) for s in MODEL_CHECKS)


@pytest.mark.parametrize("status", [200, 400, 404, 500])
def test_deeply_nested_json_crashes_no_models_check(status):
    deep = b"[" * 100_000 + b"]" * 100_000
    ex = Exchange(request=request(None), status=status, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, deep),))
    for spec in MODEL_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass
