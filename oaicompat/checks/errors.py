"""Error responses: status codes, the OpenAI error envelope, and the headers every reply carries
(openai-wire.md §5, REQ-1, REQ-RANGE-1, MSG-1).

Ownership of the aspects several probes share: `errors.envelope` owns the shape of every error body,
`errors.code-type` the type of `error.code`, `errors.error-content-type` the media type of error replies,
`errors.bad-request-no-5xx` server errors and dropped connections on a client mistake, `errors.bad-request-400`
the exact 4xx status. The per-probe checks only own "the mistake was accepted (2xx)".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..exchange import Exchange
from ..transport import RequestSpec
from .base import (
    Blocked,
    Observation,
    ProbeContext,
    QuirkFound,
    body_line,
    check,
    clip,
    compact,
    evidence,
    probe,
    raise_all,
    request_line,
    status_line,
)
from .common import error_message, guard_basic, json_body
from .requires import ANY_OK, ANY_REPLY, REJECTED

UNKNOWN_MODEL = "oaicompat-no-such-model"
INVALID_ROLE = "oaicompat-invalid-role"

# -- probes -------------------------------------------------------------------------------------------
# Every body differs from every other probe's: live requests are shared by (method, path, body), whatever
# the credentials.


@probe("errors.wrong-key")
def wrong_key(ctx: ProbeContext) -> RequestSpec:
    """A valid request sent with a deliberately wrong API key."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Wrong-key probe: say hi."}], max_tokens=8),
                       auth="wrong", retries=0)


@probe("errors.missing-key")
def missing_key(ctx: ProbeContext) -> RequestSpec:
    """A valid request sent with no API key at all."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Missing-key probe: say hi."}], max_tokens=8),
                       auth="none", retries=0)


@probe("errors.unknown-model")
def unknown_model(ctx: ProbeContext) -> RequestSpec:
    """A valid request naming a model that does not exist."""
    body = ctx.chat([{"role": "user", "content": "Say hi."}], max_tokens=8)
    body["model"] = UNKNOWN_MODEL
    return RequestSpec(json=body, retries=0)


@probe("errors.malformed-json")
def malformed_json(ctx: ProbeContext) -> RequestSpec:
    """A body cut off in the middle of the JSON (Content-Type: application/json)."""
    return RequestSpec(raw_body=b'{"model": ' + json.dumps(ctx.model).encode() + b', "messages": [', retries=0)


@probe("errors.messages-missing")
def messages_missing(ctx: ProbeContext) -> RequestSpec:
    """A body without the required `messages`."""
    body = ctx.chat([], max_tokens=8)
    del body["messages"]
    return RequestSpec(json=body, retries=0)


@probe("errors.messages-empty")
def messages_empty(ctx: ProbeContext) -> RequestSpec:
    """`messages: []` (the spec requires at least one message)."""
    return RequestSpec(json=ctx.chat([], max_tokens=8), retries=0)


@probe("errors.messages-type")
def messages_type(ctx: ProbeContext) -> RequestSpec:
    """`messages` given as a string instead of an array."""
    body = ctx.chat([], max_tokens=8)
    body["messages"] = "Say hi."
    return RequestSpec(json=body, retries=0)


@probe("errors.invalid-role")
def invalid_role(ctx: ProbeContext) -> RequestSpec:
    """A message whose role is not one of the spec's roles."""
    return RequestSpec(json=ctx.chat([{"role": INVALID_ROLE, "content": "Say hi."}], max_tokens=8), retries=0)


@probe("errors.temperature-range")
def temperature_range(ctx: ProbeContext) -> RequestSpec:
    """temperature 3.0 (the spec's range is 0..2)."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hi."}], subject=("temperature",),
                                     max_tokens=8, temperature=3.0), retries=0)


BAD_PROBES = ("errors.malformed-json", "errors.messages-missing", "errors.messages-empty", "errors.messages-type",
              "errors.invalid-role", "errors.temperature-range")
ERROR_PROBES = ("errors.wrong-key", "errors.missing-key", "errors.unknown-model", *BAD_PROBES)
NO_5XX_OWNER = "errors.bad-request-no-5xx"
ENVELOPE_OWNER = "errors.envelope"


# -- helpers ------------------------------------------------------------------------------------------

def _is_2xx(ex: Exchange) -> bool:
    return ex.status is not None and 200 <= ex.status < 300


def _is_error(ex: Exchange) -> bool:
    return ex.status is not None and ex.status >= 300


def _named(exs: Sequence[Exchange]) -> list[tuple[str, Exchange]]:
    """(probe name, exchange) for the suite's own error probes; one exchange from elsewhere is named by its
    request line."""
    if len(exs) == len(ERROR_PROBES):
        return list(zip(ERROR_PROBES, exs))
    return [(f"{e.request.method} {e.request.path}", e) for e in exs]


def _lines(pairs: Sequence[tuple[str, Exchange]], limit: int = 4) -> list[str]:
    out: list[str] = []
    for name, ex in pairs[:limit]:
        out += [f"[{name}]", request_line(ex), status_line(ex), body_line(ex)]
    if len(pairs) > limit:
        out.append(f"… and {len(pairs) - limit} more")
    return out


def envelope_problem(ex: Exchange) -> tuple[str, str] | None:
    """(quirk, detail) when the body is not `{"error": {"message", "type", "param", "code"}}`; None when it is.
    `code`'s type is not judged here (errors.code-type owns it)."""
    if not ex.body.strip():
        return "errors.non-json-body", "the error body is empty"
    try:
        body = ex.json
    except (ValueError, RecursionError):
        return "errors.non-json-body", f"the error body is not JSON: {clip(ex.text, 100)!r}"
    if isinstance(body, list):
        return "errors.array-envelope", f"the error body is a JSON array: {compact(body)}"
    if not isinstance(body, dict):
        return "errors.non-openai-shape", f"the error body is JSON {type(body).__name__}: {compact(body)}"
    err = body.get("error")
    if isinstance(err, str):
        return "errors.string-error", f"`error` is a string: {compact(err)}"
    if not isinstance(err, dict):
        return "errors.non-openai-shape", f"no `error` object; top-level keys {sorted(body)}"
    problems = [f"no `{k}`" for k in ("message", "type", "param", "code") if k not in err]
    if "message" in err and not isinstance(err["message"], str):
        problems.append(f"message is {compact(err['message'])}")
    if "type" in err and not isinstance(err["type"], str):
        problems.append(f"type is {compact(err['type'])}")
    if "param" in err and not (err["param"] is None or isinstance(err["param"], str)):
        problems.append(f"param is {compact(err['param'])}")
    if problems:
        return "errors.envelope-incomplete", f"error object {', '.join(problems)}"
    return None


def error_object(ex: Exchange) -> dict[str, Any] | None:
    body = json_body(ex)
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else None


def _status_check(basic: Exchange, ex: Exchange, *, want: int, accepted: str, other: str, what: str) -> None:
    guard_basic(basic)
    if ex.status == want:
        return
    if _is_2xx(ex):
        raise QuirkFound(accepted, f"{what} was accepted: HTTP {ex.status}", ex, evidence(ex))
    raise QuirkFound(other, f"{what} got {ex.summary()} instead of {want}{error_message(ex)}", ex, evidence(ex))


def _not_accepted(basic: Exchange, ex: Exchange, quirk: str, what: str) -> None:
    """A client mistake is refused with a 4xx; 5xx and dropped connections belong to errors.bad-request-no-5xx."""
    guard_basic(basic)
    if _is_2xx(ex):
        raise QuirkFound(quirk, f"{what} was accepted: HTTP {ex.status}", ex, evidence(ex))
    if ex.status is None or ex.status >= 500:
        raise Blocked(f"{what} got {ex.summary()}", NO_5XX_OWNER, ex)


# -- credentials and model (ERR-401-1, ERR-404-1) -----------------------------------------------------

@check("errors.wrong-key-status", rule="ERR-401-1", probes=["chat.basic", "errors.wrong-key"],
       quirks=["errors.wrong-key-accepted", "errors.wrong-key-status"])
def wrong_key_is_401(basic: Exchange, ex: Exchange) -> None:
    """A wrong API key is refused with 401."""
    _status_check(basic, ex, want=401, accepted="errors.wrong-key-accepted", other="errors.wrong-key-status",
                  what="a request with a wrong API key")


@check("errors.missing-key-status", rule="ERR-401-1", probes=["chat.basic", "errors.missing-key"],
       quirks=["errors.missing-key-accepted", "errors.missing-key-status"])
def missing_key_is_401(basic: Exchange, ex: Exchange) -> None:
    """A request without any API key is refused with 401."""
    _status_check(basic, ex, want=401, accepted="errors.missing-key-accepted", other="errors.missing-key-status",
                  what="a request without an API key")


@check("errors.unknown-model-status", rule="ERR-404-1", probes=["chat.basic", "errors.unknown-model"],
       quirks=["errors.unknown-model-accepted", "errors.unknown-model-status"])
def unknown_model_is_404(basic: Exchange, ex: Exchange) -> None:
    """A model id that does not exist is refused with 404."""
    _status_check(basic, ex, want=404, accepted="errors.unknown-model-accepted",
                  other="errors.unknown-model-status", what=f"a request for model {UNKNOWN_MODEL!r}")


@check("errors.unknown-model-code", rule="ERR-404-1", probes=["errors.unknown-model"],
       quirks=["errors.unknown-model-code"])
def unknown_model_code(ex: Exchange) -> None:
    """The 404 for an unknown model carries `code: "model_not_found"`."""
    if ex.status != 404:
        raise Blocked(f"the unknown model got {ex.summary()}, not 404", "errors.unknown-model-status", ex)
    err = error_object(ex)
    if err is None:
        raise Blocked("the 404 body has no error object", ENVELOPE_OWNER, ex)
    if err.get("code") != "model_not_found":
        raise QuirkFound("errors.unknown-model-code", f"error.code is {compact(err.get('code'))}", ex,
                         evidence(ex, f"< \"error\": {compact(err)}"))


# -- client mistakes (REQ-1, MSG-1, REQ-RANGE-1, ERR-400-1) --------------------------------------------

@check("errors.malformed-json", rule="ERR-400-1", probes=["chat.basic", "errors.malformed-json"],
       quirks=["errors.malformed-json-accepted"])
def malformed_json_refused(basic: Exchange, ex: Exchange) -> None:
    """A body that is not valid JSON is refused with a 4xx."""
    _not_accepted(basic, ex, "errors.malformed-json-accepted", "a truncated JSON body")


@check("errors.messages-missing", rule="REQ-1", probes=["chat.basic", "errors.messages-missing"],
       quirks=["errors.lenient-validation"])
def messages_missing_refused(basic: Exchange, ex: Exchange) -> None:
    """A request without `messages` is refused with a 4xx."""
    _not_accepted(basic, ex, "errors.lenient-validation", "a request without `messages`")


@check("errors.messages-empty", rule="REQ-1", probes=["chat.basic", "errors.messages-empty"],
       quirks=["errors.messages-empty-accepted"])
def messages_empty_refused(basic: Exchange, ex: Exchange) -> None:
    """`messages: []` is refused with a 4xx."""
    _not_accepted(basic, ex, "errors.messages-empty-accepted", "a request with `messages: []`")


@check("errors.messages-type", rule="REQ-1", probes=["chat.basic", "errors.messages-type"],
       quirks=["errors.messages-type-accepted"])
def messages_type_refused(basic: Exchange, ex: Exchange) -> None:
    """`messages` given as a string is refused with a 4xx."""
    _not_accepted(basic, ex, "errors.messages-type-accepted", "`messages` as a string")


@check("errors.invalid-role", rule="MSG-1", probes=["chat.basic", "errors.invalid-role"],
       quirks=["errors.invalid-role-accepted"])
def invalid_role_refused(basic: Exchange, ex: Exchange) -> None:
    """A message role outside the spec's enum is refused with a 4xx."""
    _not_accepted(basic, ex, "errors.invalid-role-accepted", f"role {INVALID_ROLE!r}")


@check("errors.temperature-range", rule="REQ-RANGE-1", probes=["chat.basic", "errors.temperature-range"],
       quirks=["errors.temperature-range-accepted"])
def temperature_range_refused(basic: Exchange, ex: Exchange) -> None:
    """temperature 3.0 (outside 0..2) is refused with a 4xx, not clamped."""
    _not_accepted(basic, ex, "errors.temperature-range-accepted", "temperature 3.0")


@check("errors.bad-request-no-5xx", rule="ERR-400-1", probes=["chat.basic", *BAD_PROBES],
       quirks=["errors.server-500-on-bad-request", "errors.no-response-on-bad-request"])
def bad_requests_not_5xx(basic: Exchange, *exs: Exchange) -> None:
    """Client mistakes are answered with a 4xx, never a 5xx or a dropped connection."""
    guard_basic(basic)
    pairs = list(zip(BAD_PROBES, exs))
    server = [(n, e) for n, e in pairs if e.status is not None and e.status >= 500]
    dropped = [(n, e) for n, e in pairs if e.status is None]
    if server:
        what = "; ".join(f"{n} → HTTP {e.status}" for n, e in server)
        raise QuirkFound("errors.server-500-on-bad-request", f"client mistakes answered as server errors: {what}",
                         server[0][1], _lines(server))
    if dropped:
        what = "; ".join(f"{n} → {e.summary()}" for n, e in dropped)
        raise QuirkFound("errors.no-response-on-bad-request", f"client mistakes got no response: {what}",
                         dropped[0][1], _lines(dropped))


@check("errors.bad-request-400", rule="ERR-400-1", probes=["chat.basic", *BAD_PROBES],
       quirks=["errors.validation-422", "errors.bad-request-status"])
def bad_requests_are_400(basic: Exchange, *exs: Exchange) -> None:
    """Client mistakes that are refused with a 4xx are refused with exactly 400 (not 422, 404, 403…)."""
    guard_basic(basic)
    pairs = list(zip(BAD_PROBES, exs))
    refused = [(n, e) for n, e in pairs if e.status is not None and 400 <= e.status < 500]
    if not refused:
        raise Blocked("no client mistake was refused with a 4xx", NO_5XX_OWNER if any(
            not _is_2xx(e) for _, e in pairs) else "errors.malformed-json", exs[0] if exs else None)
    other = [(n, e) for n, e in refused if e.status not in (400, 422)]
    unprocessable = [(n, e) for n, e in refused if e.status == 422]
    if other:
        what = "; ".join(f"{n} → HTTP {e.status}" for n, e in other)
        raise QuirkFound("errors.bad-request-status", f"client mistakes refused with a status other than 400: {what}",
                         other[0][1], _lines(other))
    if unprocessable:
        what = ", ".join(n for n, _ in unprocessable)
        raise QuirkFound("errors.validation-422", f"client mistakes refused with 422, not 400: {what}",
                         unprocessable[0][1], _lines(unprocessable))


# -- the error body and its media type (ERR-1, ERR-2) --------------------------------------------------

ENVELOPE_SEVERITY = ("errors.non-json-body", "errors.array-envelope", "errors.string-error",
                     "errors.non-openai-shape", "errors.envelope-incomplete")


@check("errors.envelope", rule="ERR-1", probes=list(ERROR_PROBES), quirks=list(ENVELOPE_SEVERITY), requires=REJECTED)
def error_envelope(*exs: Exchange) -> None:
    """Every error reply's body is `{"error": {"message", "type", "param", "code"}}`."""
    errors = [(n, e) for n, e in _named(exs) if _is_error(e)]
    if not errors:
        raise Blocked("no probe was answered with an error status", "errors.malformed-json", exs[0] if exs else None)
    found = [(n, e, p) for n, e in errors if (p := envelope_problem(e)) is not None]
    # every distinct shape is its own quirk, most severe first: a string `error` must not hide a flat one
    by_quirk: dict[str, list[tuple[str, Exchange, tuple[str, str]]]] = {}
    for f in sorted(found, key=lambda f: ENVELOPE_SEVERITY.index(f[2][0])):
        by_quirk.setdefault(f[2][0], []).append(f)
    raise_all([QuirkFound(quirk, f"{len(group)} of {len(errors)} error replies: "
                                 + "; ".join(f"{n} (HTTP {e.status}): {p[1]}" for n, e, p in group),
                          group[0][1], _lines([(n, e) for n, e, _ in group]))
               for quirk, group in by_quirk.items()])


@check("errors.code-type", rule="ERR-1", probes=list(ERROR_PROBES), quirks=["errors.code-type-mismatch"],
       requires=REJECTED)
def error_code_is_string(*exs: Exchange) -> None:
    """`error.code` is a string or null (not the HTTP status as a number)."""
    objs = [(n, e, o) for n, e in _named(exs) if _is_error(e) and (o := error_object(e)) is not None]
    if not objs:
        raise Blocked("no error reply carries an error object", ENVELOPE_OWNER, exs[0] if exs else None)
    bad = [(n, e, o) for n, e, o in objs if "code" in o and not (o["code"] is None or isinstance(o["code"], str))]
    if bad:
        what = "; ".join(f"{n}: code {compact(o['code'])}" for n, _, o in bad)
        raise QuirkFound("errors.code-type-mismatch", f"error.code is not a string or null: {what}", bad[0][1],
                         _lines([(n, e) for n, e, _ in bad]))


@check("errors.error-content-type", rule="ERR-2", probes=list(ERROR_PROBES), quirks=["errors.content-type-not-json"],
       requires=REJECTED)
def error_content_type_is_json(*exs: Exchange) -> None:
    """Error replies with a body are sent as application/json (a media type ending in json)."""
    errors = [(n, e) for n, e in _named(exs) if _is_error(e) and e.body]
    if not errors:
        raise Blocked("no probe was answered with an error body", ENVELOPE_OWNER, exs[0] if exs else None)
    bad = [(n, e) for n, e in errors if not e.content_type.endswith("json")]
    if bad:
        what = "; ".join(f"{n}: {e.header('content-type')!r}" for n, e in bad)
        raise QuirkFound("errors.content-type-not-json", f"error replies not labelled JSON: {what}", bad[0][1],
                         [line for n, e in bad[:4] for line in (f"[{n}]", request_line(e), status_line(e))])


@check("errors.replies", rule="ERR-3", probes=list(ERROR_PROBES), kind="info", requires=REJECTED)
def error_replies(*exs: Exchange) -> list[Observation]:
    """What each error probe got back: status, media type, error type, code and param."""
    out = []
    for name, ex in _named(exs):
        err = error_object(ex) or {}
        out.append(Observation(name, {
            "status": ex.status, "content_type": ex.header("content-type"),
            "type": err.get("type") if isinstance(err.get("type"), (str, int, type(None))) else compact(err["type"]),
            "code": err.get("code") if isinstance(err.get("code"), (str, int, type(None))) else compact(err["code"]),
            "param": err.get("param") if isinstance(err.get("param"), (str, type(None))) else compact(err["param"]),
            "message": (clip(error_message(ex)[2:], 160) or None) if _is_error(ex) else None,
        }))
    return out


# -- unknown path (ERR-404-2) ---------------------------------------------------------------------------

@check("errors.unknown-path-status", rule="ERR-404-2", probes=["endpoints.unknown-path"],
       quirks=["errors.unknown-path-answered", "errors.unknown-path-status"])
def unknown_path_is_404(ex: Exchange) -> None:
    """A path the API does not have is answered 404 (not 200 from a catch-all page, not 401/405/500)."""
    if ex.status == 404:
        return
    if _is_2xx(ex):
        raise QuirkFound("errors.unknown-path-answered", f"an unknown path got HTTP {ex.status} "
                         f"({ex.header('content-type') or 'no content-type'})", ex, evidence(ex))
    raise QuirkFound("errors.unknown-path-status", f"an unknown path got {ex.summary()}{error_message(ex)}", ex,
                     evidence(ex))


# -- headers (HDR-1..3) ----------------------------------------------------------------------------------

_ID_HEADER = re.compile(r"(request|call|trace)[-_]?id$", re.I)
_RATE_HEADER = re.compile(r"(^|-)ratelimit|^retry-after", re.I)
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_UINT = re.compile(r"^[0-9]+$")


@check("errors.request-id", rule="HDR-1", probes=["chat.basic", "errors.wrong-key", "errors.unknown-model"],
       kind="info", requires=ANY_REPLY)
def request_id_headers(*exs: Exchange) -> list[Observation]:
    """Request-id headers on a success and on error replies (x-request-id and vendor variants)."""
    out = []
    for name, ex in zip(("chat.basic", "errors.wrong-key", "errors.unknown-model"), exs):
        ids = {k.lower(): clip(v, 120) for k, v in ex.headers if _ID_HEADER.search(k)}
        out.append(Observation(f"request-id.{name}", ids or None))
    return out


@check("errors.rate-limit-headers", rule="HDR-2", probes=["chat.basic"], kind="info", requires=ANY_OK)
def rate_limit_headers(ex: Exchange) -> list[Observation]:
    """Rate-limit headers on a successful reply (x-ratelimit-* and vendor variants)."""
    found = {k.lower(): clip(v, 120) for k, v in ex.headers if _RATE_HEADER.search(k)}
    return [Observation("rate-limit-headers", found or None)]


@check("errors.rate-limit-values", rule="HDR-3", probes=["chat.basic"],
       quirks=["errors.rate-limit-headers-malformed"], requires=ANY_OK)
def rate_limit_values(ex: Exchange) -> list[Observation]:
    """x-ratelimit-* headers, when sent, hold non-negative integers (remaining ≤ limit) and durations."""
    if ex.status is None:
        raise Blocked(f"no response: {ex.summary()}", "chat.status", ex)
    headers = {k.lower(): v.strip() for k, v in ex.headers if k.lower().startswith("x-ratelimit-")}
    if not headers:
        return [Observation("x-ratelimit", "absent")]
    problems = []
    for key, value in headers.items():
        if key.startswith(("x-ratelimit-limit-", "x-ratelimit-remaining-")) and not _UINT.match(value):
            problems.append(f"{key}: {value!r} is not a non-negative integer")
        elif key.startswith("x-ratelimit-reset-") and not (_DURATION.match(value) or _NUMBER.match(value)):
            problems.append(f"{key}: {value!r} is not a duration")
    for key, value in headers.items():
        if key.startswith("x-ratelimit-remaining-"):
            limit = headers.get("x-ratelimit-limit-" + key[len("x-ratelimit-remaining-"):])
            if _UINT.match(value) and limit is not None and _UINT.match(limit) and int(value) > int(limit):
                problems.append(f"{key} {value} exceeds the limit {limit}")
    if problems:
        raise QuirkFound("errors.rate-limit-headers-malformed", "; ".join(problems), ex,
                         [request_line(ex), status_line(ex), *(f"< {k}: {clip(v, 80)}" for k, v in headers.items())])
    return [Observation("x-ratelimit", headers)]
