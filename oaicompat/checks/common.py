"""Readers and owner ids that more than one check area uses.

An area module (chat, stream, tools, …) imports from here, from `base` and from the reader modules
(`streamview`, `tool_calls`), never from another area: a helper two areas need lives here, and an owner
id that names another area's check (`Blocked(..., owner=CHAT_STATUS)`) is declared here once.
"""

from __future__ import annotations

import reprlib
from typing import Any

from ..exchange import Exchange
from .base import Blocked, QuirkFound, clip, compact, error_shape, evidence

# -- owner ids of checks that other areas name in Blocked(...) ----------------------------------------

CHAT_STATUS = "chat.status"                  # a minimal valid request is answered 200
CHAT_USAGE = "chat.usage"                    # a non-streamed reply carries usage
CHAT_CONTENT_PARTS = "chat.content-parts"    # owns "content as a list of parts is refused"
STREAM_STATUS = "stream.status"              # a streamed request is answered 200 with SSE

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


# -- reading a reply ------------------------------------------------------------------------------

def json_body(ex: Exchange) -> Any:
    """The parsed body, or None when it is not JSON (including JSON nested too deeply to parse)."""
    try:
        return ex.json_or_none()
    except RecursionError:
        return None


def error_message(ex: Exchange, limit: int = 160) -> str:
    """`error.message` (or the start of the body) of a rejection, for a finding's detail; never raises."""
    body = json_body(ex)
    msg = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message")
        elif isinstance(err, str):
            msg = err
        if msg is None:
            msg = body.get("message") or body.get("detail")
    if msg is None and ex.body:
        msg = ex.text
    return f": {clip(str(msg), limit)}" if msg else ""


def reply_body(ex: Exchange) -> dict | None:
    """The body when the exchange is a 2xx whose body is a JSON object, else None."""
    if ex.status is None or not 200 <= ex.status < 300:
        return None
    body = json_body(ex)
    return body if isinstance(body, dict) else None


def outcome(ex: Exchange) -> str:
    """'HTTP 400' or 'no response (reset: …)', for messages."""
    if ex.status is not None:
        return f"HTTP {ex.status}"
    return f"no response ({ex.failure.kind}: {ex.failure.message})" if ex.failure else "no response"


def error_envelope_problem(ex: Exchange) -> str | None:
    """Why the body is not the OpenAI error envelope, or None when it is.

    The envelope here is what a client needs to report the error: a JSON object whose `error` is an object
    with a non-empty string `message` and a string `type` (ERR-1). Whether `param` and `code` have the
    exact types ERR-1 demands is the errors area's concern, checked on its own probes.
    """
    if not ex.body:
        return "the body is empty"
    try:
        body = ex.json
    except (ValueError, RecursionError):
        return f"the body is not JSON: {clip(ex.text, 120)!r}"
    if not isinstance(body, dict):
        return f"the body is JSON {type(body).__name__}, not an object"
    err = body.get("error")
    if not isinstance(err, dict):
        return f"`error` is {compact(err)}, not an object (top-level keys {sorted(body)[:10]})"
    message = err.get("message")
    if not isinstance(message, str) or not message.strip():
        return f"error.message is {compact(message)}, not a non-empty string"
    if not isinstance(err.get("type"), str):
        return f"error.type is {compact(err.get('type'))}, not a string"
    return None


def show(value: Any) -> str:
    """compact(value), also for JSON nested too deep to re-encode (vendor bytes are untrusted)."""
    try:
        return compact(value)
    except (RecursionError, ValueError, TypeError):
        return clip(reprlib.repr(value))


# -- a valid request must be accepted ---------------------------------------------------------------

def require_accepted(ex: Exchange, quirk: str, what: str) -> dict:
    """The reply body of a valid request, or QuirkFound(quirk) when it was not answered 2xx with a JSON
    object (rejected with 4xx/5xx, dropped, or answered with a body that is not JSON)."""
    body = reply_body(ex)
    if body is not None:
        return body
    if ex.status is not None and 200 <= ex.status < 300:
        raise QuirkFound(quirk, f"{what}: HTTP {ex.status} but the body is not a JSON object", ex, evidence(ex))
    raise QuirkFound(quirk, f"{what} got {ex.summary()}{error_message(ex)}", ex, evidence(ex))


def require_200_object(ex: Exchange, quirk: str, what: str) -> None:
    """Answered 200 with a JSON object, else `quirk` naming the status and the error shape."""
    if ex.status == 200:
        try:
            if isinstance(ex.json, dict):
                return
        except (ValueError, RecursionError):
            pass
    raise QuirkFound(quirk, f"{what}: {error_shape(ex)}", ex, evidence(ex))


def guard_basic(basic: Exchange) -> None:
    """Blocked unless the plain request (chat.basic) succeeded: another request's rejection would only
    repeat that failure."""
    if basic.status != 200:
        raise Blocked(f"the plain request chat.basic got {basic.summary()}", CHAT_STATUS, basic)


# -- usage objects (non-streamed and streamed) -----------------------------------------------------------

USAGE_KEYS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
                        "completion_tokens_details"})
USAGE_DETAIL_KEYS: dict[str, frozenset[str]] = {
    "prompt_tokens_details": frozenset({"cached_tokens", "audio_tokens"}),
    "completion_tokens_details": frozenset({"reasoning_tokens", "audio_tokens", "accepted_prediction_tokens",
                                            "rejected_prediction_tokens"}),
}


def usage_extra_keys(usage: dict[str, Any]) -> list[str]:
    """Keys of a usage object that OpenAI does not send (OpenRouter's cost, is_byok, cost_details…)."""
    return sorted(k for k in usage if k not in USAGE_KEYS)


def usage_details_missing(usage: dict[str, Any]) -> list[str]:
    """`*_tokens_details` objects that are present but lack keys OpenAI always sends in them."""
    out = []
    for name, keys in USAGE_DETAIL_KEYS.items():
        details = usage.get(name)
        if isinstance(details, dict):
            missing = sorted(keys - set(details))
            if missing:
                out.append(f"{name} lacks {', '.join(missing)}")
    return out


def usage_quirks(usage: dict[str, Any], extra_quirk: str, details_quirk: str, ex: Exchange,
                 lines: list[str]) -> list[QuirkFound]:
    """A QuirkFound for extra usage keys and one for incomplete token details (either, both or none)."""
    found = []
    extra = usage_extra_keys(usage)
    if extra:
        shown = ", ".join(f"{k}={clip(compact(usage[k]), 60)}" for k in extra)
        found.append(QuirkFound(extra_quirk, f"usage carries keys OpenAI does not send: {shown}", ex, lines))
    details = usage_details_missing(usage)
    if details:
        found.append(QuirkFound(details_quirk, "; ".join(details), ex, lines))
    return found
