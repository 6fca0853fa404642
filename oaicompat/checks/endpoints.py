"""Which OpenAI API surfaces besides chat completions a provider offers, and which URL variants of chat
completions it answers. Informational only: every check here returns Observations and never fails.

Each surface is probed with a harmless list call (GET) or a deliberately invalid/tiny request, next to a path
that exists nowhere (`endpoints.unknown-path`), so a server that answers every path alike (a catch-all page,
auth before routing) is reported as "indistinguishable" rather than "present".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ..exchange import Exchange
from ..transport import RequestSpec
from .base import Observation, ProbeContext, check, clip, probe
from .common import error_message, json_body

UNKNOWN_PATH = "/oaicompat-no-such-endpoint"


@probe("endpoints.unknown-path")
def unknown_path(ctx: ProbeContext) -> RequestSpec:
    """GET a path no API has (the baseline for telling present from absent)."""
    return RequestSpec(method="GET", path=UNKNOWN_PATH, retries=0)


def verdict(ex: Exchange, baseline: Exchange | None = None) -> str:
    """present | absent | disabled | redirect | server-error | no-response | indistinguishable."""
    status = ex.status
    if status is None:
        return "no-response"
    if baseline is not None and baseline.status == status and status not in (404, 405) \
            and baseline.content_type == ex.content_type:
        return "indistinguishable"       # the unknown path gets the same answer
    if 200 <= status < 300:
        return "present"
    if 300 <= status < 400:
        return "redirect"
    if status in (404, 405):
        return "absent"
    if status == 501:
        return "disabled"
    if status >= 500:
        return "server-error"
    return "present"                     # 400/401/403/415/422…: the route exists and refused the request


def _observe(name: str, ex: Exchange, baseline: Exchange | None = None, **extra: Any) -> list[Observation]:
    body = json_body(ex)
    value: dict[str, Any] = {
        "request": f"{ex.request.method} {ex.request.path}",
        "status": ex.status,
        "verdict": verdict(ex, baseline),
        "content_type": ex.header("content-type"),
    }
    if ex.failure is not None:
        value["failure"] = f"{ex.failure.kind}: {clip(ex.failure.message, 120)}"
    if isinstance(body, dict) and isinstance(body.get("object"), str):
        value["object"] = clip(body["object"], 60)
    if ex.status is not None and ex.status >= 300:
        value["error"] = clip(error_message(ex, 120)[2:], 120) or None
    if baseline is not None:
        value["unknown_path_status"] = baseline.status
    if 300 <= (ex.status or 0) < 400 and ex.header("location"):
        value["location"] = clip(ex.header("location") or "", 200)
    value.update(extra)
    return [Observation(f"endpoint.{name}", value)]


# -- the surfaces -------------------------------------------------------------------------------------

SURFACES: dict[str, tuple[str, str, Callable[[ProbeContext], Any], dict[str, str]]] = {
    # name: (method, path, body builder, headers)
    "embeddings": ("POST", "/embeddings", lambda ctx: {"model": ctx.model, "input": []}, {}),
    "responses": ("POST", "/responses", lambda ctx: {"model": ctx.model, "input": 0, "max_output_tokens": 16}, {}),
    "files": ("GET", "/files", lambda ctx: None, {}),
    "batches": ("GET", "/batches", lambda ctx: None, {}),
    "assistants": ("GET", "/assistants", lambda ctx: None, {"OpenAI-Beta": "assistants=v2"}),
    "fine-tuning-jobs": ("GET", "/fine_tuning/jobs", lambda ctx: None, {}),
    "realtime": ("POST", "/realtime/client_secrets", lambda ctx: {"session": 0}, {}),
    "moderations": ("POST", "/moderations", lambda ctx: {"input": 0}, {}),
    "completions": ("POST", "/completions", lambda ctx: {"model": ctx.model, "prompt": "Hi", "max_tokens": 1}, {}),
}


def _surface_probe(name: str) -> None:
    method, path, build, headers = SURFACES[name]

    def build_spec(ctx: ProbeContext) -> RequestSpec:
        return RequestSpec(method=method, path=path, json=build(ctx), headers=dict(headers), retries=0)

    build_spec.__doc__ = f"{method} {path}" + (" with a deliberately invalid or tiny body" if method == "POST"
                                               else " (a list call)")
    probe(f"endpoints.{name}")(build_spec)


for _name in SURFACES:
    _surface_probe(_name)


def _surface(name: str, ex: Exchange, baseline: Exchange) -> list[Observation]:
    return _observe(name, ex, baseline)


@check("endpoints.embeddings", rule="ERR-404-2", probes=["endpoints.embeddings", "endpoints.unknown-path"],
       kind="info")
def embeddings(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Embeddings (POST /embeddings with an empty input list): present or absent."""
    return _surface("embeddings", ex, baseline)


@check("endpoints.responses", rule="ERR-404-2", probes=["endpoints.responses", "endpoints.unknown-path"],
       kind="info")
def responses(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Responses API (POST /responses with an invalid input): present or absent."""
    return _surface("responses", ex, baseline)


@check("endpoints.files", rule="ERR-404-2", probes=["endpoints.files", "endpoints.unknown-path"], kind="info")
def files(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Files (GET /files): present or absent."""
    return _surface("files", ex, baseline)


@check("endpoints.batches", rule="ERR-404-2", probes=["endpoints.batches", "endpoints.unknown-path"], kind="info")
def batches(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Batches (GET /batches): present or absent."""
    return _surface("batches", ex, baseline)


@check("endpoints.assistants", rule="ERR-404-2", probes=["endpoints.assistants", "endpoints.unknown-path"],
       kind="info")
def assistants(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Assistants (GET /assistants, OpenAI-Beta: assistants=v2): present or absent."""
    return _surface("assistants", ex, baseline)


@check("endpoints.fine-tuning-jobs", rule="ERR-404-2",
       probes=["endpoints.fine-tuning-jobs", "endpoints.unknown-path"], kind="info")
def fine_tuning_jobs(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Fine-tuning jobs (GET /fine_tuning/jobs): present or absent."""
    return _surface("fine-tuning-jobs", ex, baseline)


@check("endpoints.realtime", rule="ERR-404-2", probes=["endpoints.realtime", "endpoints.unknown-path"],
       kind="info")
def realtime(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Realtime (POST /realtime/client_secrets with an invalid session): present or absent."""
    return _surface("realtime", ex, baseline)


@check("endpoints.moderations", rule="ERR-404-2", probes=["endpoints.moderations", "endpoints.unknown-path"],
       kind="info")
def moderations(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Moderations (POST /moderations with an invalid input): present or absent."""
    return _surface("moderations", ex, baseline)


@check("endpoints.completions", rule="ERR-404-2", probes=["endpoints.completions", "endpoints.unknown-path"],
       kind="info")
def legacy_completions(ex: Exchange, baseline: Exchange) -> list[Observation]:
    """Legacy text completions (POST /completions, one token): present or absent."""
    return _surface("completions", ex, baseline)


# -- URL variants of chat completions -------------------------------------------------------------------

def _chat_body(ctx: ProbeContext, text: str) -> dict[str, Any]:
    return ctx.chat([{"role": "user", "content": text}], max_tokens=4, temperature=0)


@probe("endpoints.trailing-slash")
def trailing_slash(ctx: ProbeContext) -> RequestSpec:
    """POST /chat/completions/ (with a trailing slash)."""
    return RequestSpec(path="/chat/completions/", json=_chat_body(ctx, "Trailing-slash probe: say hi."), retries=0)


def other_prefix(base_url: str | None) -> tuple[str | None, str, str]:
    """(base_url override, path, label) for chat completions under the other prefix: without the base URL's
    trailing /v1, or with /v1 added when the base URL has none. The override is the bare origin and the path
    carries the rest, so that the recorded path and the URL agree."""
    if not base_url:
        return None, "/v1/chat/completions", "with /v1"
    url = httpx.URL(base_url.rstrip("/"))
    path = url.path.rstrip("/")
    if path.endswith("/v1"):
        origin = str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        return origin, path[: -len("/v1")] + "/chat/completions", "without /v1"
    return None, "/v1/chat/completions", "with /v1"


@probe("endpoints.other-prefix")
def other_prefix_probe(ctx: ProbeContext) -> RequestSpec:
    """POST chat completions at the server root without /v1 (or with /v1 added when the base URL has none)."""
    base, path, _ = other_prefix(ctx.provider.base_url)
    return RequestSpec(path=path, base_url=base, json=_chat_body(ctx, "Prefix probe: say hi."), retries=0)


def _chat_variant(name: str, ex: Exchange, label: str) -> list[Observation]:
    body = json_body(ex)
    works = ex.status == 200 and isinstance(body, dict) and body.get("object") == "chat.completion"
    obs = _observe(name, ex, variant=label)
    if works:
        obs[0].value["verdict"] = "works"
    elif ex.status is not None and 200 <= ex.status < 300:
        obs[0].value["verdict"] = "not-a-completion"     # 2xx, but not a chat.completion body
    return obs


@check("endpoints.trailing-slash", rule="ERR-404-2", probes=["endpoints.trailing-slash"], kind="info")
def chat_trailing_slash(ex: Exchange) -> list[Observation]:
    """Chat completions with a trailing slash in the path: answered, redirected or absent."""
    return _chat_variant("chat-completions-trailing-slash", ex, "/chat/completions/")


@check("endpoints.other-prefix", rule="ERR-404-2", probes=["endpoints.other-prefix"], kind="info")
def chat_other_prefix(ex: Exchange) -> list[Observation]:
    """Chat completions without the /v1 prefix (or with it, when the base URL has none): answered or absent."""
    label = "without /v1" if ex.request.path.rstrip("/").endswith("/chat/completions") \
        and not ex.request.path.startswith("/v1/") else "with /v1"
    return _chat_variant("chat-completions-other-prefix", ex, label)
