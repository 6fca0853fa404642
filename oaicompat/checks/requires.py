"""What an exchange must carry for a check's rule to say anything about it.

A check declares its needs as data (`@check(..., requires=Requires(stream=True, tool_calls=True))`); a runner
asks `unmet(requires, exchange)` and gets one line per missing property, or [] when the check applies. A
check that declares nothing gets needs derived from its single probe (`from_probe`): the probe's request
features, its own parameters, and (capability checks) its prompt. Declared needs are the authority.

Properties (None = any):
    method, path, body           the request line and body kind ("none" / "json-object" / "not-a-json-object")
    stream                       the request asks for a stream
    include_usage                stream_options.include_usage
    tools, tool_choice           tools offered; tool_choice ("absent" when no tools, else auto/none/required/function)
    strict_tools                 a tool with strict: true
    response_format              "text" (none asked), "json_object", "json_schema"
    images, audio, tool_results  image / audio parts, tool results in the history
    part_types                   the other content-part types (beyond text and image_url), sorted
    n, logprobs, large_input     n choices, logprobs asked, a prompt over LARGE_INPUT_CHARS
    credentials                  "accepted" / "rejected" (a 401/403, or a 400 that blames the key)
    status                       "2xx", "4xx", "5xx" or "error" (4xx or 5xx)
    tool_calls                   the reply carries tool calls (message.tool_calls or delta.tool_calls)
    framing                      "raw": the exact chunk boundaries and bytes
    params                       (field, JSON value) pairs the request must carry equal
    fields_within                the request may carry no field beyond these and BENIGN_FIELDS
    prompt                       the request's messages, as JSON, must be exactly this
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from ..exchange import Exchange

LARGE_INPUT_CHARS = 32_000
_AUTH_BLAME = re.compile(r"(?i)api[ _-]?key|unauthori[sz]ed|authenticat|invalid[ _-]?token|incorrect[ _-]?key"
                         r"|invalid[ _-]?credential")
# fields a request may carry beyond a probe's without changing the reply's shape
BENIGN_FIELDS = frozenset({"model", "messages", "stream", "temperature", "top_p", "top_k", "max_tokens",
                           "max_completion_tokens", "seed", "user", "stop", "frequency_penalty", "presence_penalty",
                           "repetition_penalty", "min_p", "provider", "models", "transforms", "route"})
# body fields that request_features already covers, or that carry the conversation itself
FEATURE_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "tools", "functions", "tool_choice",
                            "function_call", "response_format", "n", "logprobs", "audio", "modalities"})
CHAT_PATH = "/chat/completions"


@dataclass(frozen=True)
class Requires:
    method: str | None = None
    path: str | None = None
    body: str | None = None
    stream: bool | None = None
    include_usage: bool | None = None
    tools: bool | None = None
    tool_choice: str | None = None
    strict_tools: bool | None = None
    response_format: str | None = None
    images: bool | None = None
    part_types: tuple[str, ...] | None = None
    audio: bool | None = None
    tool_results: bool | None = None
    n: int | None = None
    logprobs: bool | None = None
    large_input: bool | None = None
    credentials: str | None = None
    status: str | None = None
    tool_calls: bool | None = None
    framing: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    fields_within: frozenset[str] | None = None
    prompt: str | None = None

    def describe(self) -> str:
        """One line for docs and reports: the properties that are fixed."""
        parts = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in ("params", "fields_within", "prompt") and getattr(self, f.name) is not None]
        parts += [f"{k}={v}" for k, v in self.params]
        if self.fields_within is not None:
            parts.append("no unusual request fields")
        if self.prompt is not None:
            parts.append("the probe's own prompt")
        return ", ".join(parts) or "anything"


# convenient starting points for declarations
CHAT = Requires(method="POST", path=CHAT_PATH, body="json-object", stream=False)
STREAM = Requires(method="POST", path=CHAT_PATH, body="json-object", stream=True)
ANY_CHAT = Requires(method="POST", path=CHAT_PATH, body="json-object")

_SIMPLE = ("method", "path", "body", "stream", "include_usage", "tools", "tool_choice", "strict_tools",
           "response_format", "images", "part_types", "audio", "tool_results", "n", "logprobs", "large_input",
           "credentials",
           "status", "tool_calls", "framing")


# -- request features ---------------------------------------------------------------------------------------

def _parts(messages: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(messages, list):
        return
    for m in messages:
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            for part in m["content"]:
                if isinstance(part, dict):
                    yield part


def _text_size(messages: Any) -> int:
    total = 0
    if not isinstance(messages, list):
        return 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        c = m.get("content")
        if isinstance(c, str):
            total += len(c)
        for part in _parts([m]):
            if isinstance(part.get("text"), str):
                total += len(part["text"])
    return total


def _tool_choice(value: Any, has_tools: bool) -> str:
    if value is None:
        return "auto" if has_tools else "absent"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("type") or "function")
    return type(value).__name__


def request_features(method: str, path: str, body: Any, raw: bool) -> dict[str, Any]:
    """The features of a request that change what a reply may look like."""
    b = body if isinstance(body, dict) else {}
    tools = b.get("tools")
    functions = b.get("functions")
    has_tools = (isinstance(tools, list) and bool(tools)) or (isinstance(functions, list) and bool(functions))
    rf = b.get("response_format")
    rtype = rf.get("type") if isinstance(rf, dict) else (rf if isinstance(rf, str) else None)
    so = b.get("stream_options")
    messages = b.get("messages")
    parts = list(_parts(messages))
    n = b.get("n")
    return {
        "method": method.upper(),
        "path": path,
        "body": "none" if not raw else ("json-object" if isinstance(body, dict) else "not-a-json-object"),
        "stream": b.get("stream") is True,
        "include_usage": isinstance(so, dict) and so.get("include_usage") is True,
        "tools": has_tools,
        "tool_choice": _tool_choice(b.get("tool_choice", b.get("function_call")), has_tools),
        "response_format": "text" if rtype in (None, "text") else str(rtype),
        "strict_tools": isinstance(tools, list) and any(
            isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("strict") is True
            for t in tools),
        "images": any(p.get("type") in ("image_url", "input_image", "image") or "image_url" in p for p in parts),
        "part_types": sorted({str(p.get("type")) for p in parts} - {"text", "image_url"}),
        "audio": any(p.get("type") in ("input_audio", "audio") for p in parts) or bool(b.get("audio")),
        "tool_results": isinstance(messages, list) and any(
            isinstance(m, dict) and m.get("role") in ("tool", "function") for m in messages),
        "n": n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1,
        "logprobs": b.get("logprobs") is True,
        "large_input": _text_size(messages) > LARGE_INPUT_CHARS,
    }


# -- reply features -----------------------------------------------------------------------------------------

def credentials(ex: Exchange) -> str:
    """'rejected' when the response proves the credentials were not valid, else 'accepted'."""
    if ex.status in (401, 403):
        return "rejected"
    if ex.status == 400 and _AUTH_BLAME.search(ex.text[:4000]):
        return "rejected"
    return "accepted"


# what a 4xx error says when it blames a fault of the very request it answers (not the vendor's support of it)
_REQUEST_FAULT = re.compile(
    r"(?i)model[_ ]not[_ ]found|the model `?[^`'\"]*`? does not exist|does not exist or you do not have access"
    r"|invalid[_ ]value|invalid[_ ]image[_ ]url|failed to (download|fetch|retrieve)|could not (download|fetch|retrieve)"
    r"|unable to (download|fetch|retrieve)|decommissioned|has been deprecated|is not a valid model")


def request_fault(ex: Exchange) -> str | None:
    """The fault a 4xx reply finds in its own request (an unknown model, an invalid value, an image it could not
    fetch), else None. Such a reply says the request was wrong, which shows nothing about whether the vendor
    accepts a valid one: an acceptance check may judge it only when the request is known to be valid (the
    suite's own probe), never on a recording of somebody else's test."""
    if ex.status is None or not 400 <= ex.status < 500 or ex.status in (401, 403, 408, 409, 429):
        return None
    found = _REQUEST_FAULT.search(ex.text[:4000])
    return found.group(0) if found else None


def status_class(status: int | None) -> str:
    if status is None:
        return "none"
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def _has_calls(obj: Any, key: str) -> bool:
    if not isinstance(obj, dict):
        return False
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return False
    for ch in choices:
        part = ch.get(key) if isinstance(ch, dict) else None
        if isinstance(part, dict) and (part.get("tool_calls") or part.get("function_call")):
            return True
    return False


def reply_has_tool_calls(ex: Exchange) -> bool:
    """The reply carries tool calls: message.tool_calls (or function_call), or any delta.tool_calls."""
    if ex.content_type == "text/event-stream" or ex.request.stream:
        for ev in ex.sse.events:
            try:
                obj = json.loads(ev.data)
            except (ValueError, RecursionError):
                continue
            if _has_calls(obj, "delta"):
                return True
        return False
    return _has_calls(ex.json_or_none(), "message")


def exchange_features(ex: Exchange) -> dict[str, Any]:
    """Every property `Requires` names, read from one exchange (request and reply)."""
    req = ex.request
    feats = request_features(req.method, req.path, req.json, bool(req.body))
    feats["credentials"] = credentials(ex)
    feats["status"] = status_class(ex.status)
    feats["tool_calls"] = reply_has_tool_calls(ex) if ex.status is not None and 200 <= ex.status < 300 else False
    feats["framing"] = ex.framing
    return feats


# -- deciding -----------------------------------------------------------------------------------------------

def _status_ok(want: str, have: str | None) -> bool:
    return have in ("4xx", "5xx") if want == "error" else want == have


def _body_fields(ex: Exchange) -> dict[str, Any]:
    body = ex.request.json
    return {k: v for k, v in body.items() if v is not None} if isinstance(body, dict) else {}


def unmet(requires: Requires, exchange: Exchange, features: Mapping[str, Any] | None = None) -> list[str]:
    """One line per property `requires` names that `exchange` lacks; [] when the check applies."""
    have = features if features is not None else exchange_features(exchange)
    missing: list[str] = []
    for name in _SIMPLE:
        want = getattr(requires, name)
        if want is None:
            continue
        got = have.get(name)
        if name == "part_types" and isinstance(got, list):
            got = tuple(got)
        ok = _status_ok(want, got) if name == "status" else got == want
        if not ok:
            missing.append(f"{name}: needs {want!r}, the exchange has {got!r}")
    if requires.params or requires.fields_within is not None or requires.prompt is not None:
        body = _body_fields(exchange)
        for key, value in requires.params:
            if json.dumps(body.get(key), sort_keys=True) != value:
                missing.append(f"{key}: needs {value}, the exchange sends {json.dumps(body.get(key))[:80]}")
        if requires.fields_within is not None:
            extra = sorted(set(body) - BENIGN_FIELDS - FEATURE_FIELDS - requires.fields_within)
            if extra:
                missing.append(f"fields: the exchange also sends {', '.join(extra)}, which may change the reply")
        if requires.prompt is not None and json.dumps(body.get("messages"), sort_keys=True) != requires.prompt:
            missing.append("prompt: needs the probe's own prompt (the model must cooperate on it)")
    return missing


def from_probe(features: Mapping[str, Any], *, auth: str | None, params: Mapping[str, Any],
               body_keys: Iterable[str], messages: Any = None) -> Requires:
    """Default needs of a single-probe check: what its probe's request fixes.

    The request line, stream, credentials and everything the probe asks for (tools with its tool_choice,
    a response format, images, audio, tool results, n, logprobs, include_usage, a large prompt) must be
    there; of what the probe leaves out, only what changes the reply's shape must be absent too (tool calls
    in the reply, logprobs, n > 1). The probe's own parameters must be equal, and no unusual field may be
    sent. A capability check (messages given) needs the probe's prompt.
    """
    f = dict(features)
    return Requires(
        method=f["method"], path=f["path"], body=f["body"], stream=f["stream"],
        include_usage=True if f["include_usage"] else None,
        tools=True if f["tools"] else None,
        tool_choice=f["tool_choice"] if f["tools"] else None,
        strict_tools=True if f["strict_tools"] else None,
        response_format=f["response_format"] if f["response_format"] != "text" else None,
        images=True if f["images"] else None,
        part_types=tuple(f["part_types"]) if f["part_types"] else None,
        audio=True if f["audio"] else None,
        tool_results=True if f["tool_results"] else None,
        n=f["n"], logprobs=f["logprobs"],
        large_input=True if f["large_input"] else None,
        credentials=auth,
        tool_calls=None if f["tools"] else False,
        params=tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in params.items())),
        fields_within=frozenset(body_keys),
        prompt=json.dumps(messages, sort_keys=True) if messages is not None else None,
    )


# -- the needs checks declare (names say what the exchange must carry) ---------------------------------------

OK = replace(CHAT, status="2xx")                        # a non-streamed chat request answered 2xx
OK_ONE = replace(OK, n=1)                               # … with one choice asked
OK_TEXT = replace(OK, tool_calls=False)                 # … whose reply carries no tool call
OK_NO_TOOLS = replace(OK, tools=False)                  # … that offered no tools
OK_NO_LOGPROBS = replace(OK, logprobs=False)            # … that asked no logprobs
SOK = replace(STREAM, status="2xx")                     # a streamed chat request answered 2xx
SOK_NO_USAGE = replace(SOK, include_usage=False)        # … without stream_options.include_usage
SOK_USAGE = replace(SOK, include_usage=True)            # … with stream_options.include_usage
CALLS = replace(OK, tools=True, tool_calls=True)       # non-streamed, tools offered, the reply calls one
ANY_CALLS = replace(ANY_CHAT, status="2xx", tools=True, tool_calls=True)   # streamed or not
STREAMED_CALLS = replace(SOK, tools=True, tool_calls=True)                   # streamed, the deltas call one
REJECTED = Requires(status="error")                     # any request answered 4xx or 5xx
ANY_REPLY = Requires()                                  # any exchange
OK_JSON_OBJECT = replace(OK_TEXT, response_format="json_object")   # … with response_format json_object
ANY_OK = Requires(status="2xx")                         # any request answered 2xx (headers of a success)
OK_LOGPROBS = replace(OK, logprobs=True)                # a non-streamed 2xx reply to a request asking logprobs
