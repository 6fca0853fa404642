"""Unit tests of the endpoint-survey checks: they only observe (present, absent, disabled…), never raise a
quirk on any bytes, and their probes build URLs that replay from a cassette."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import endpoints
from oaicompat.checks.base import CHECKS, PROBES, Blocked, Finding, ProbeContext, QuirkFound, spec_of
from oaicompat.config import load_providers
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from oaicompat.paths import PROVIDERS_FILE
from tests.exchanges import completion, request

PROVIDER = next(iter(load_providers(PROVIDERS_FILE, {}).providers.values()))
SURFACE_CHECKS = {
    "embeddings": endpoints.embeddings, "responses": endpoints.responses, "files": endpoints.files,
    "batches": endpoints.batches, "assistants": endpoints.assistants,
    "fine-tuning-jobs": endpoints.fine_tuning_jobs, "realtime": endpoints.realtime,
    "moderations": endpoints.moderations, "completions": endpoints.legacy_completions,
}
ERROR = {"error": {"message": "nope", "type": "invalid_request_error", "param": None, "code": None}}


def reply(status: int | None, payload: Any = ERROR, *, path: str = "/embeddings", method: str = "POST",
          content_type: str | None = "application/json", headers: tuple = (),
          failure: TransportFailure | None = None) -> Exchange:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    hdrs = ((("content-type", content_type),) if content_type else ()) + headers
    return Exchange(request=request(None, path=path, method=method), status=status, headers=hdrs,
                    chunks=(Chunk(0.01, body),) if body else (), failure=failure)


BASELINE_404 = reply(404, path=endpoints.UNKNOWN_PATH, method="GET")
BASELINE_HTML = reply(200, b"<html>app</html>", path=endpoints.UNKNOWN_PATH, method="GET", content_type="text/html")


def observe(fn, *exs: Exchange) -> dict[str, Any]:
    obs = spec_of(fn).run(*exs)
    assert len(obs) == 1
    return obs[0].value


@pytest.mark.parametrize("status,payload,verdict", [
    (200, {"object": "list", "data": []}, "present"),
    (400, ERROR, "present"),
    (422, {"detail": "x"}, "present"),
    (401, ERROR, "present"),
    (404, ERROR, "absent"),
    (405, b"", "absent"),
    (501, ERROR, "disabled"),
    (500, b"boom", "server-error"),
    (307, b"", "redirect"),
])
def test_surface_verdicts(status, payload, verdict):
    value = observe(endpoints.embeddings, reply(status, payload), BASELINE_404)
    assert value["verdict"] == verdict and value["status"] == status
    assert value["request"] == "POST /embeddings" and value["unknown_path_status"] == 404


def test_surface_same_as_unknown_path_is_indistinguishable():
    html = reply(200, b"<html>app</html>", path="/files", method="GET", content_type="text/html")
    assert observe(endpoints.files, html, BASELINE_HTML)["verdict"] == "indistinguishable"
    listing = reply(200, {"object": "list", "data": []}, path="/files", method="GET")
    assert observe(endpoints.files, listing, BASELINE_HTML)["verdict"] == "present"
    auth_first = reply(401, path="/files", method="GET")
    assert observe(endpoints.files, auth_first, reply(401, path=endpoints.UNKNOWN_PATH, method="GET"))["verdict"] \
        == "indistinguishable"


def test_surface_records_object_error_and_failure():
    value = observe(endpoints.moderations, reply(400, {"error": {"message": "input is required"}}), BASELINE_404)
    assert value["error"] == "input is required"
    value = observe(endpoints.batches, reply(200, {"object": "list", "data": []}, method="GET"), BASELINE_404)
    assert value["object"] == "list" and "error" not in value
    value = observe(endpoints.realtime, reply(None, b"", failure=TransportFailure("reset", "reset")), BASELINE_404)
    assert value["verdict"] == "no-response" and value["failure"] == "reset: reset"
    value = observe(endpoints.responses, reply(308, b"", headers=(("location", "/v1/responses/"),)), BASELINE_404)
    assert value["location"] == "/v1/responses/"


@pytest.mark.parametrize("name", list(SURFACE_CHECKS))
def test_each_surface_check_is_info_and_probes_its_path(name):
    spec = spec_of(SURFACE_CHECKS[name])
    assert spec.kind == "info" and spec.quirks == ()
    assert spec.probes == (f"endpoints.{name}", "endpoints.unknown-path")
    method, path, _, _ = endpoints.SURFACES[name]
    built = PROBES[f"endpoints.{name}"].build(ProbeContext(PROVIDER, "gemma"))
    assert (built.method, built.path) == (method, path)
    assert built.retries == 0
    if method == "GET":
        assert built.body_bytes() == b""
    value = observe(SURFACE_CHECKS[name], reply(404, path=path, method=method), BASELINE_404)
    assert value["verdict"] == "absent"


def test_assistants_probe_sends_the_beta_header():
    built = PROBES["endpoints.assistants"].build(ProbeContext(PROVIDER, "gemma"))
    assert built.headers == {"OpenAI-Beta": "assistants=v2"}


# -- chat completions URL variants -------------------------------------------------------------------------

def chat_reply(status: int, payload: Any, path: str) -> Exchange:
    return reply(status, payload, path=path)


def test_trailing_slash():
    path = "/chat/completions/"
    assert observe(endpoints.chat_trailing_slash, chat_reply(200, completion(), path))["verdict"] == "works"
    assert observe(endpoints.chat_trailing_slash, chat_reply(404, ERROR, path))["verdict"] == "absent"
    value = observe(endpoints.chat_trailing_slash, reply(307, b"", path=path, headers=(("location", "/v1/x"),)))
    assert value["verdict"] == "redirect" and value["location"] == "/v1/x"
    assert observe(endpoints.chat_trailing_slash, chat_reply(200, b"<html>", path))["verdict"] == "not-a-completion"
    assert observe(endpoints.chat_trailing_slash, chat_reply(400, ERROR, path))["verdict"] == "present"


def test_other_prefix_observation():
    value = observe(endpoints.chat_other_prefix, chat_reply(200, completion(), "/chat/completions"))
    assert value["verdict"] == "works" and value["variant"] == "without /v1"
    value = observe(endpoints.chat_other_prefix, chat_reply(404, ERROR, "/v1/chat/completions"))
    assert value["verdict"] == "absent" and value["variant"] == "with /v1"


@pytest.mark.parametrize("base,override,path,label", [
    ("http://127.0.0.1:8083/v1", "http://127.0.0.1:8083", "/chat/completions", "without /v1"),
    ("http://127.0.0.1:8083/v1/", "http://127.0.0.1:8083", "/chat/completions", "without /v1"),
    ("https://h.example/api/v1", "https://h.example", "/api/chat/completions", "without /v1"),
    ("http://h:4000", None, "/v1/chat/completions", "with /v1"),
    ("https://h.example/openai", None, "/v1/chat/completions", "with /v1"),
    (None, None, "/v1/chat/completions", "with /v1"),
])
def test_other_prefix_urls(base, override, path, label):
    assert endpoints.other_prefix(base) == (override, path, label)
    built = PROBES["endpoints.other-prefix"].build(ProbeContext(dataclasses.replace(PROVIDER, base_url=base), "gemma"))
    assert (built.base_url, built.path) == (override, path)
    if base:
        # the URL the transport sends, minus the provider's base path, is the recorded path (cassette replay)
        url = httpx.URL((built.base_url or base.rstrip("/")) + built.path)
        base_path = httpx.URL(base).raw_path.decode().rstrip("/")
        sent = url.raw_path.decode()
        replayed = sent[len(base_path):] if base_path and sent.startswith(base_path) else sent
        assert replayed == built.path


def test_url_variant_probes_differ_from_every_other_chat_probe():
    ctx = ProbeContext(PROVIDER, "gemma")
    keys = [(s.method, s.path, s.body_bytes()) for s in (PROBES[n].build(ctx) for n in PROBES)]
    mine = [(s.method, s.path, s.body_bytes()) for s in (PROBES[n].build(ctx) for n in
                                                          ("endpoints.trailing-slash", "endpoints.other-prefix"))]
    for key in mine:
        assert keys.count(key) == 1


# -- never a quirk ----------------------------------------------------------------------------------------------

ENDPOINT_CHECKS = [s for s in CHECKS.values() if s.area == "endpoints"]


def test_endpoint_checks_are_all_info():
    assert all(s.kind == "info" and not s.quirks for s in ENDPOINT_CHECKS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=64), status=st.sampled_from([None, 200, 204, 301, 400, 404, 405, 500, 501]),
       base_status=st.sampled_from([None, 200, 404]), ctype=st.sampled_from([None, "application/json", "text/html"]))
def test_no_bytes_make_an_endpoint_check_raise(body, status, base_status, ctype):
    ex = reply(status, body, content_type=ctype)
    base = reply(base_status, body, path=endpoints.UNKNOWN_PATH, method="GET", content_type=ctype)
    for spec in ENDPOINT_CHECKS:
        try:
            obs = spec.run(*[ex, base][:len(spec.probes)])
        except (QuirkFound, Blocked, Finding) as exc:   # pragma: no cover - the assertion below explains
            pytest.fail(f"{spec.id} raised {exc!r}")
        json.dumps([o.value for o in obs])          # results.json must be able to hold them


@pytest.mark.parametrize("status", [200, 400, 404, 500])
def test_deeply_nested_json_crashes_no_endpoints_check(status):
    deep = b"[" * 100_000 + b"]" * 100_000
    ex = Exchange(request=request(None), status=status, headers=(("content-type", "application/json"),),
                  chunks=(Chunk(0.01, deep),))
    for spec in ENDPOINT_CHECKS:
        try:
            spec.run(*([ex] * len(spec.probes)))
        except Finding:
            pass
