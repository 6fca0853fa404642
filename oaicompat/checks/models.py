"""The models endpoints: GET /models and GET /models/{id} (openai-wire.md §7, MODELS-1..4)."""

from __future__ import annotations

from typing import Any

from ..exchange import Exchange
from ..transport import RequestSpec
from .base import Blocked, ProbeContext, QuirkFound, check, clip, compact, evidence, is_int, probe, request_line
from .common import CHAT_STATUS, error_message, json_body

UNKNOWN_MODEL = "oaicompat-no-such-model"
NEEDS = ("models_endpoint",)
LIST_STATUS = "models.list-status"
LIST_SHAPE = "models.list-shape"
RETRIEVE_STATUS = "models.retrieve-status"


@probe("models.list")
def list_models(ctx: ProbeContext) -> RequestSpec:
    """GET /models."""
    return RequestSpec(method="GET", path="/models")


@probe("models.retrieve")
def retrieve_model(ctx: ProbeContext) -> RequestSpec:
    """GET /models/{the configured model id}."""
    return RequestSpec(method="GET", path="/models/" + ctx.model)


@probe("models.retrieve-unknown")
def retrieve_unknown(ctx: ProbeContext) -> RequestSpec:
    """GET /models/{an id that does not exist}."""
    return RequestSpec(method="GET", path="/models/" + UNKNOWN_MODEL, retries=0)


def _entries(ex: Exchange) -> list[dict[str, Any]]:
    """The list's entries that are objects; Blocked when the list itself is missing or malformed."""
    if ex.status != 200:
        raise Blocked(f"GET /models got {ex.summary()}", LIST_STATUS, ex)
    body = json_body(ex)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise Blocked("GET /models is not a {object: list, data: [objects]} body", LIST_SHAPE, ex)
    if not data:
        raise Blocked("GET /models lists no model", LIST_SHAPE, ex)
    return data


def _entry_rule(ex: Exchange, quirk: str, ok, what: str) -> None:
    bad = [e for e in _entries(ex) if not ok(e)]
    if bad:
        raise QuirkFound(quirk, f"{len(bad)} of {len(_entries(ex))} entries: {what}", ex,
                         evidence(ex, *(f"< data entry: {compact(e)}" for e in bad[:3])))


@check("models.list-status", rule="MODELS-1", probes=["models.list"], quirks=["models.unsupported",
       "models.list-error"],
       needs=NEEDS)
def list_status(ex: Exchange) -> None:
    """GET /models is answered 200."""
    if ex.status == 200:
        return
    if ex.status in (404, 405):
        raise QuirkFound("models.unsupported", f"GET /models got HTTP {ex.status}", ex, evidence(ex))
    raise QuirkFound("models.list-error", f"GET /models got {ex.summary()}{error_message(ex)}", ex, evidence(ex))


@check("models.list-shape", rule="MODELS-1", probes=["models.list"], quirks=["models.list-not-json",
       "models.non-list-shape"],
       needs=NEEDS)
def list_shape(ex: Exchange) -> None:
    """The list is `{"object": "list", "data": [model objects…]}`."""
    if ex.status != 200:
        raise Blocked(f"GET /models got {ex.summary()}", LIST_STATUS, ex)
    try:
        body = ex.json
    except (ValueError, RecursionError):
        raise QuirkFound("models.list-not-json", f"the body is not JSON: {clip(ex.text, 100)!r}", ex,
                         evidence(ex)) from None
    problems = []
    if not isinstance(body, dict):
        problems.append(f"the body is JSON {type(body).__name__}")
    else:
        if body.get("object") != "list":
            problems.append(f"object is {compact(body.get('object'))}")
        data = body.get("data")
        if not isinstance(data, list):
            problems.append(f"data is {compact(data)}")
        elif not all(isinstance(e, dict) for e in data):
            problems.append("data holds entries that are not objects")
    if problems:
        raise QuirkFound("models.non-list-shape", "; ".join(problems), ex, evidence(ex))


@check("models.entry-id", rule="MODELS-2", probes=["models.list"], quirks=["models.entry-id-missing"], needs=NEEDS)
def entry_id(ex: Exchange) -> None:
    """Every listed model has a non-empty string `id`."""
    _entry_rule(ex, "models.entry-id-missing", lambda e: isinstance(e.get("id"), str) and e["id"] != "",
                "`id` is missing, empty or not a string")


@check("models.entry-object", rule="MODELS-2", probes=["models.list"], quirks=["models.entry-object-wrong"],
       needs=NEEDS)
def entry_object(ex: Exchange) -> None:
    """Every listed model has `object: "model"`."""
    _entry_rule(ex, "models.entry-object-wrong", lambda e: e.get("object") == "model", "`object` is not \"model\"")


@check("models.entry-created", rule="MODELS-2", probes=["models.list"],
       quirks=["models.entry-created-not-unix-seconds"], needs=NEEDS)
def entry_created(ex: Exchange) -> None:
    """Every listed model has `created` as integer Unix seconds."""
    _entry_rule(ex, "models.entry-created-not-unix-seconds",
                lambda e: is_int(e.get("created")) and 0 <= e["created"] < 10_000_000_000,
                "`created` is missing or not integer Unix seconds")


@check("models.entry-owned-by", rule="MODELS-2", probes=["models.list"], quirks=["models.entry-owned-by-missing"],
       needs=NEEDS)
def entry_owned_by(ex: Exchange) -> None:
    """Every listed model has a string `owned_by`."""
    _entry_rule(ex, "models.entry-owned-by-missing", lambda e: isinstance(e.get("owned_by"), str),
                "`owned_by` is missing or not a string")


@check("models.configured-listed", rule="MODELS-4", probes=["models.list", "chat.basic"],
       quirks=["models.id-mismatch"], needs=NEEDS)
def configured_model_listed(listing: Exchange, basic: Exchange) -> None:
    """The model id that chat completions accepts is among the ids GET /models lists."""
    if basic.status != 200:
        raise Blocked(f"chat.basic got {basic.summary()}", CHAT_STATUS, basic)
    entries = _entries(listing)
    model = basic.request.field("model")
    ids = [e.get("id") for e in entries]
    if model not in ids:
        raise QuirkFound("models.id-mismatch", f"chat accepts {model!r}, GET /models lists {compact(ids)}", listing,
                         [request_line(basic), "< HTTP 200", request_line(listing), f"< ids: {compact(ids)}"])


@check("models.retrieve-status", rule="MODELS-3", probes=["models.retrieve"],
       quirks=["models.retrieve-unsupported", "models.retrieve-error"], needs=NEEDS)
def retrieve_status(ex: Exchange) -> None:
    """GET /models/{id} for the configured model is answered 200."""
    if ex.status == 200:
        return
    if ex.status in (404, 405):
        raise QuirkFound("models.retrieve-unsupported", f"{ex.request.path} got HTTP {ex.status}{error_message(ex)}",
                         ex, evidence(ex))
    raise QuirkFound("models.retrieve-error", f"{ex.summary()}{error_message(ex)}", ex, evidence(ex))


@check("models.retrieve-object", rule="MODELS-3", probes=["models.retrieve"],
       quirks=["models.retrieve-not-model", "models.retrieve-id-mismatch"], needs=NEEDS)
def retrieve_object(ex: Exchange) -> None:
    """GET /models/{id} returns one `object: "model"` whose `id` is the requested id."""
    if ex.status != 200:
        raise Blocked(f"{ex.request.path} got {ex.summary()}", RETRIEVE_STATUS, ex)
    body = json_body(ex)
    if not isinstance(body, dict) or body.get("object") != "model":
        what = f"object is {compact(body.get('object'))}" if isinstance(body, dict) else \
            ("the body is not JSON" if body is None else f"the body is JSON {type(body).__name__}")
        raise QuirkFound("models.retrieve-not-model", what, ex, evidence(ex))
    requested = ex.request.path[len("/models/"):]
    if body.get("id") != requested:
        raise QuirkFound("models.retrieve-id-mismatch", f"requested {requested!r}, got id {compact(body.get('id'))}",
                         ex, evidence(ex))


@check("models.retrieve-unknown", rule="MODELS-3", probes=["models.retrieve", "models.retrieve-unknown"],
       quirks=["models.retrieve-unknown-found", "models.retrieve-unknown-status"], needs=NEEDS)
def retrieve_unknown_is_404(known: Exchange, ex: Exchange) -> None:
    """GET /models/{id} for an id that does not exist is answered 404."""
    if known.status != 200:
        raise Blocked(f"the configured model's {known.request.path} got {known.summary()}", RETRIEVE_STATUS, known)
    if ex.status == 404:
        return
    if ex.status is not None and 200 <= ex.status < 300:
        raise QuirkFound("models.retrieve-unknown-found", f"{ex.request.path} got HTTP {ex.status}", ex, evidence(ex))
    raise QuirkFound("models.retrieve-unknown-status", f"{ex.summary()}{error_message(ex)}", ex, evidence(ex))
