"""Non-streaming chat completions: the response body's field rules (openai-wire.md §2) and the request
shapes a server must accept (system/developer roles, history, `name`, text parts; §1.2).

The helpers other areas share with this one (`require_accepted`, `guard_basic`, `error_message`,
`json_body`) live in checks/common.py.
"""

from __future__ import annotations

from typing import Any

from ..exchange import Exchange
from ..transport import RequestSpec
from .base import (
    Blocked,
    Observation,
    ProbeContext,
    QuirkFound,
    check,
    compact,
    evidence,
    first_choice,
    is_int,
    probe,
    raise_all,
    request_line,
    require_success,
    status_line,
)
from .common import CHAT_STATUS, FINISH_REASONS, guard_basic, json_body, reply_body, require_accepted, usage_quirks
from .requires import OK, OK_NO_LOGPROBS, OK_NO_TOOLS, OK_ONE, OK_TEXT


@probe("chat.basic")
def basic(ctx: ProbeContext) -> RequestSpec:
    """One short user message, temperature 0, a few tokens."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}],
                                     max_tokens=16, temperature=0))


def _body(ex: Exchange) -> dict:
    if ex.status is not None and 200 <= ex.status < 300 and not isinstance(json_body(ex), dict):
        raise Blocked(f"HTTP {ex.status} body is not a JSON object", "chat.body-json", ex)
    return require_success(ex, CHAT_STATUS)


@check("chat.status", rule="RESP-1", probes=["chat.basic"], quirks=["chat.basic-rejected"])
def status_is_success(ex: Exchange) -> None:
    """A minimal valid request is answered 200."""
    if ex.status != 200:
        raise QuirkFound("chat.basic-rejected", f"a minimal valid request got {ex.summary()}", ex, evidence(ex))


@check("chat.content-type", rule="RESP-1", probes=["chat.basic"], quirks=["chat.content-type-not-json"], requires=OK)
def content_type_is_json(ex: Exchange) -> None:
    """The response media type is application/json (or another type ending in json)."""
    _body(ex)
    if not ex.content_type.endswith("json"):
        raise QuirkFound("chat.content-type-not-json", f"content-type is {ex.header('content-type')!r}",
                         ex, evidence(ex, status_line(ex)))


@check("chat.object", rule="RESP-2", probes=["chat.basic"], quirks=["chat.object-wrong"], requires=OK)
def object_is_chat_completion(ex: Exchange) -> None:
    """`object` is exactly "chat.completion"."""
    body = _body(ex)
    if body.get("object") != "chat.completion":
        raise QuirkFound("chat.object-wrong", f"object is {body.get('object')!r}", ex,
                         evidence(ex, f"< \"object\": {compact(body.get('object'))}"))


@check("chat.id", rule="RESP-2", probes=["chat.basic"], quirks=["chat.id-missing"], requires=OK)
def id_is_nonempty_string(ex: Exchange) -> None:
    """`id` is a non-empty string."""
    body = _body(ex)
    value = body.get("id")
    if not isinstance(value, str) or not value:
        raise QuirkFound("chat.id-missing", f"id is {value!r}", ex, evidence(ex, f"< \"id\": {compact(value)}"))


@check("chat.created", rule="RESP-2", probes=["chat.basic"], quirks=["chat.created-not-unix-seconds"], requires=OK)
def created_is_unix_seconds(ex: Exchange) -> None:
    """`created` is an integer count of seconds since the epoch (not milliseconds, not a float)."""
    body = _body(ex)
    value = body.get("created")
    ok = isinstance(value, int) and not isinstance(value, bool) and 1_000_000_000 <= value < 10_000_000_000
    if not ok:
        raise QuirkFound("chat.created-not-unix-seconds", f"created is {value!r}", ex,
                         evidence(ex, f"< \"created\": {compact(value)}"))


@check("chat.model", rule="RESP-2", probes=["chat.basic"], quirks=["chat.model-missing"], requires=OK)
def model_is_string(ex: Exchange) -> None:
    """`model` is a non-empty string."""
    body = _body(ex)
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise QuirkFound("chat.model-missing", f"model is {value!r}", ex,
                         evidence(ex, f"< \"model\": {compact(value)}"))


@check("chat.choices", rule="RESP-CHOICE-2", probes=["chat.basic"], quirks=["chat.choices-not-one"], requires=OK_ONE)
def one_choice_with_index_zero(ex: Exchange) -> None:
    """Without `n`, `choices` has exactly one entry and its index is 0."""
    body = _body(ex)
    choices = body.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict) \
            or choices[0].get("index") != 0:
        raise QuirkFound("chat.choices-not-one", f"choices is {compact(choices)}", ex,
                         evidence(ex, f"< \"choices\": {compact(choices)}"))


@check("chat.choice-logprobs-key", rule="RESP-CHOICE-1", probes=["chat.basic"],
       quirks=["chat.choice-logprobs-key-missing"], requires=OK)
def choice_has_logprobs_key(ex: Exchange) -> None:
    """Every choice carries the key `logprobs` (null when not requested): it is required by the spec."""
    body = _body(ex)
    choice = first_choice(body, CHAT_STATUS, ex)
    if "logprobs" not in choice:
        raise QuirkFound("chat.choice-logprobs-key-missing", f"choice keys are {sorted(choice)}", ex,
                         evidence(ex, f"< choices[0] keys: {sorted(choice)}"))


@check("chat.role", rule="RESP-MSG-1", probes=["chat.basic"], quirks=["chat.role-not-assistant"], requires=OK)
def message_role_is_assistant(ex: Exchange) -> None:
    """`choices[0].message.role` is "assistant"."""
    message = first_choice(_body(ex), CHAT_STATUS, ex).get("message")
    role = message.get("role") if isinstance(message, dict) else None
    if role != "assistant":
        raise QuirkFound("chat.role-not-assistant", f"message is {compact(message)}", ex,
                         evidence(ex, f"< \"message\": {compact(message)}"))


@check("chat.refusal-key", rule="RESP-MSG-1", probes=["chat.basic"], quirks=["chat.refusal-key-missing"], requires=OK)
def message_has_refusal_key(ex: Exchange) -> None:
    """The message carries the key `refusal` (null when the model did not refuse): the spec requires it."""
    message = first_choice(_body(ex), CHAT_STATUS, ex).get("message")
    if isinstance(message, dict) and "refusal" not in message:
        raise QuirkFound("chat.refusal-key-missing", f"message keys are {sorted(message)}", ex,
                         evidence(ex, f"< message keys: {sorted(message)}"))


@check("chat.content", rule="RESP-MSG-1", probes=["chat.basic"], quirks=["chat.content-not-string"], requires=OK_TEXT)
def message_content_is_string(ex: Exchange) -> None:
    """Without tools, `message.content` is a string."""
    message = first_choice(_body(ex), CHAT_STATUS, ex).get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise QuirkFound("chat.content-not-string", f"content is {compact(content)}", ex,
                         evidence(ex, f"< \"content\": {compact(content)}"))


@check("chat.finish-reason", rule="RESP-CHOICE-3", probes=["chat.basic"], quirks=["chat.finish-reason-invalid"],
       requires=OK)
def finish_reason_in_enum(ex: Exchange) -> None:
    """`finish_reason` is one of stop, length, tool_calls, content_filter, function_call (never null)."""
    choice = first_choice(_body(ex), CHAT_STATUS, ex)
    reason = choice.get("finish_reason")
    if reason not in FINISH_REASONS:
        raise QuirkFound("chat.finish-reason-invalid", f"finish_reason is {reason!r}", ex,
                         evidence(ex, f"< \"finish_reason\": {compact(reason)}"))


@check("chat.usage", rule="RESP-3", probes=["chat.basic"], quirks=["chat.usage-missing"], requires=OK)
def usage_present(ex: Exchange) -> None:
    """A non-streamed reply carries `usage`."""
    body = _body(ex)
    if not isinstance(body.get("usage"), dict):
        raise QuirkFound("chat.usage-missing", f"usage is {compact(body.get('usage'))}", ex,
                         evidence(ex, f"< top-level keys: {sorted(body)}"))


@check("chat.usage-arithmetic", rule="RESP-3", probes=["chat.basic"], quirks=["chat.usage-inconsistent"], requires=OK)
def usage_integers_add_up(ex: Exchange) -> None:
    """`usage` holds integer prompt/completion/total tokens with total = prompt + completion."""
    usage = _body(ex).get("usage")
    if not isinstance(usage, dict):
        raise Blocked("the reply has no usage object", "chat.usage", ex)
    p, c, t = (usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens"))
    if not (is_int(p) and is_int(c) and is_int(t) and min(p, c, t) >= 0) or t != p + c:
        raise QuirkFound("chat.usage-inconsistent", f"prompt {p!r} + completion {c!r} vs total {t!r}", ex,
                         evidence(ex, f"< \"usage\": {compact(usage)}"))


# -- the rest of the non-streamed reply's field rules (openai-wire.md §2, §7) -------------------------

STANDARD_TOP = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint",
                          "service_tier"})
STANDARD_CHOICE = frozenset({"index", "message", "finish_reason", "logprobs"})
STANDARD_MESSAGE = frozenset({"role", "content", "refusal", "tool_calls", "function_call", "annotations",
                              "audio"})
STANDARD_USAGE = frozenset({"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
                            "completion_tokens_details"})
SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast"})
BODY_JSON_OWNER = "chat.body-json"


def _message(ex: Exchange) -> dict:
    message = first_choice(_body(ex), CHAT_STATUS, ex).get("message")
    if not isinstance(message, dict):
        raise Blocked(f"choices[0].message is {compact(message)}", "chat.role", ex)
    return message


@check("chat.body-json", rule="RESP-1", probes=["chat.basic"], quirks=["chat.body-not-json"], requires=OK)
def body_is_json_object(ex: Exchange) -> None:
    """A 200 reply's body parses as a JSON object (not HTML, plain text, a truncated or a bare JSON value)."""
    if ex.status is None or not 200 <= ex.status < 300:
        raise Blocked(f"the request was not answered with success: {ex.summary()}", CHAT_STATUS, ex)
    if ex.failure is not None:
        raise QuirkFound("chat.body-not-json", f"the body was cut off ({ex.failure.kind}: {ex.failure.message})",
                         ex, evidence(ex))
    body = json_body(ex)
    if not isinstance(body, dict):
        what = "not JSON" if body is None and ex.body.strip() != b"null" else f"JSON {type(body).__name__}"
        raise QuirkFound("chat.body-not-json", f"HTTP {ex.status} body is {what}", ex, evidence(ex))


@check("chat.usage-details", rule="RESP-4", probes=["chat.basic"], quirks=["chat.usage-details-malformed"], requires=OK)
def usage_details_are_counts(ex: Exchange) -> None:
    """`usage.*_tokens_details`, when present, are objects of non-negative integer counts that fit the totals."""
    usage = _body(ex).get("usage")
    if not isinstance(usage, dict):
        raise Blocked("the reply has no usage object", "chat.usage", ex)
    problems: list[str] = []
    for key, total_key in (("prompt_tokens_details", "prompt_tokens"),
                           ("completion_tokens_details", "completion_tokens")):
        if key not in usage or usage[key] is None:
            continue
        details = usage[key]
        if not isinstance(details, dict):
            problems.append(f"{key} is {compact(details)}")
            continue
        for name, value in details.items():
            if value is not None and not (is_int(value) and value >= 0):
                problems.append(f"{key}.{name} is {compact(value)}")
        total = usage.get(total_key)
        if is_int(total):
            for name in ("cached_tokens", "reasoning_tokens", "audio_tokens"):
                value = details.get(name)
                if is_int(value) and value > total:
                    problems.append(f"{key}.{name} = {value} exceeds {total_key} = {total}")
    if problems:
        raise QuirkFound("chat.usage-details-malformed", "; ".join(problems), ex,
                         evidence(ex, f"< \"usage\": {compact(usage)}"))


@check("chat.system-fingerprint", rule="RESP-5", probes=["chat.basic"],
       quirks=["chat.system-fingerprint-not-string"], requires=OK)
def system_fingerprint_is_string_or_null(ex: Exchange) -> None:
    """`system_fingerprint`, when present, is a string or null."""
    body = _body(ex)
    if "system_fingerprint" in body and not (body["system_fingerprint"] is None
                                             or isinstance(body["system_fingerprint"], str)):
        raise QuirkFound("chat.system-fingerprint-not-string", f"system_fingerprint is "
                         f"{compact(body['system_fingerprint'])}", ex,
                         evidence(ex, f"< \"system_fingerprint\": {compact(body['system_fingerprint'])}"))


@check("chat.service-tier", rule="RESP-5", probes=["chat.basic"], quirks=["chat.service-tier-invalid"], requires=OK)
def service_tier_in_enum(ex: Exchange) -> None:
    """`service_tier`, when present, is null or one of auto, default, flex, scale, priority, fast."""
    body = _body(ex)
    if "service_tier" in body and body["service_tier"] is not None \
            and not (isinstance(body["service_tier"], str) and body["service_tier"] in SERVICE_TIERS):
        raise QuirkFound("chat.service-tier-invalid", f"service_tier is {compact(body['service_tier'])}", ex,
                         evidence(ex, f"< \"service_tier\": {compact(body['service_tier'])}"))


@check("chat.usage-extensions", rule="RESP-4", probes=["chat.basic"],
       quirks=["chat.usage-extra-keys", "chat.usage-details-incomplete"], requires=OK)
def usage_has_openai_keys_only(ex: Exchange) -> None:
    """`usage` carries only OpenAI's keys, and any `*_tokens_details` object carries all of OpenAI's keys."""
    body = _body(ex)
    usage = body.get("usage")
    if not isinstance(usage, dict):
        raise Blocked(f"usage is {compact(usage)}", "chat.usage", ex)
    raise_all(usage_quirks(usage, "chat.usage-extra-keys", "chat.usage-details-incomplete", ex,
                           evidence(ex, f"< \"usage\": {compact(usage)}")))


@check("chat.openai-fields", rule="RESP-5", probes=["chat.basic"],
       quirks=["chat.system-fingerprint-absent", "chat.service-tier-absent"], requires=OK)
def openai_optional_fields_present(ex: Exchange) -> None:
    """The reply carries `system_fingerprint` and `service_tier`, as OpenAI's does (absence breaks no rule)."""
    body = _body(ex)
    found = [QuirkFound(quirk, f"the reply has no `{key}` key", ex, evidence(ex, f"< top-level keys: {sorted(body)}"))
             for key, quirk in (("system_fingerprint", "chat.system-fingerprint-absent"),
                                ("service_tier", "chat.service-tier-absent")) if key not in body]
    raise_all(found)


@check("chat.tool-calls-absent", rule="RESP-MSG-2", probes=["chat.basic"], quirks=["chat.tool-calls-empty-array"],
       requires=OK_NO_TOOLS)
def no_tool_calls_without_tools(ex: Exchange) -> None:
    """Without tools, the message carries no `tool_calls` (omitted or null, not an empty array)."""
    message = _message(ex)
    calls = message.get("tool_calls")
    if isinstance(calls, list) and not calls:
        raise QuirkFound("chat.tool-calls-empty-array", "message.tool_calls is [] on a request without tools", ex,
                         evidence(ex, f"< \"message\": {compact(message)}"))


@check("chat.logprobs-null", rule="RESP-LOGPROB-2", probes=["chat.basic"], quirks=["chat.logprobs-unrequested"],
       requires=OK_NO_LOGPROBS)
def logprobs_null_when_not_requested(ex: Exchange) -> None:
    """Without `logprobs: true`, `choices[0].logprobs` is null."""
    choice = first_choice(_body(ex), CHAT_STATUS, ex)
    if "logprobs" not in choice:
        raise Blocked("choices[0] has no logprobs key", "chat.choice-logprobs-key", ex)
    if choice["logprobs"] is not None:
        raise QuirkFound("chat.logprobs-unrequested", f"logprobs is {compact(choice['logprobs'])}", ex,
                         evidence(ex, f"< \"logprobs\": {compact(choice['logprobs'])}"))


def resolved_form(requested: str, returned: str) -> bool:
    """`returned` names the requested model: the same id, a dated/suffixed variant of it, or the id with or
    without an `owner/` prefix."""
    return (returned == requested or returned.startswith(requested + "-") or returned.startswith(requested + "@")
            or returned.endswith("/" + requested) or requested.endswith("/" + returned))


@check("chat.model-echo", rule="MODELS-4", probes=["chat.basic"], quirks=["chat.model-not-echoed"], requires=OK)
def model_names_requested_model(ex: Exchange) -> None:
    """The reply's `model` is the requested id or a resolved (dated, owner-prefixed) form of it."""
    body = _body(ex)
    requested, returned = ex.request.field("model"), body.get("model")
    if not isinstance(returned, str) or not returned:
        raise Blocked(f"model is {returned!r}", "chat.model", ex)
    if isinstance(requested, str) and not resolved_form(requested, returned):
        raise QuirkFound("chat.model-not-echoed", f"requested {requested!r}, the reply says {returned!r}", ex,
                         evidence(ex, f"> \"model\": {compact(requested)}", f"< \"model\": {compact(returned)}"))


@check("chat.extension-fields", rule="DEV-7", probes=["chat.basic"], kind="info", requires=OK, observes=True)
def extension_fields(ex: Exchange) -> list[Observation]:
    """Non-standard keys in the reply (top level, choice, message, usage), recorded as observations."""
    body = reply_body(ex)
    if body is None:
        return [Observation("reply", f"not a 2xx JSON object: {ex.summary()}")]
    found: dict[str, list[str]] = {"top": sorted(set(body) - STANDARD_TOP)}
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    found["choice"] = sorted(set(choice) - STANDARD_CHOICE)
    raw_message = choice.get("message")
    message = raw_message if isinstance(raw_message, dict) else {}
    found["message"] = sorted(set(message) - STANDARD_MESSAGE)
    raw_usage = body.get("usage")
    usage = raw_usage if isinstance(raw_usage, dict) else {}
    found["usage"] = sorted(set(usage) - STANDARD_USAGE)
    return [Observation(f"extension-fields.{where}", keys) for where, keys in found.items() if keys]


# -- request shapes a server must accept (openai-wire.md §1.2) -----------------------------------------

def _hello(ctx: ProbeContext, messages: list, **fields: Any) -> RequestSpec:
    return RequestSpec(json=ctx.chat(messages, max_tokens=8, temperature=0, **fields))


@probe("chat.system-role")
def system_role(ctx: ProbeContext) -> RequestSpec:
    """A system message before the user message."""
    return _hello(ctx, [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Say hello."}])


@probe("chat.developer-role")
def developer_role(ctx: ProbeContext) -> RequestSpec:
    """A developer message (the newer name of the system role) before the user message."""
    return _hello(ctx, [{"role": "developer", "content": "You are brief."}, {"role": "user", "content": "Say hello."}])


@probe("chat.multi-turn")
def multi_turn(ctx: ProbeContext) -> RequestSpec:
    """A user / assistant / user history."""
    return _hello(ctx, [{"role": "user", "content": "Say hello."}, {"role": "assistant", "content": "Hello!"},
                        {"role": "user", "content": "Now say goodbye."}])


@probe("chat.message-name")
def message_name(ctx: ProbeContext) -> RequestSpec:
    """A user message carrying the optional `name` field."""
    return _hello(ctx, [{"role": "user", "name": "alice", "content": "Say hello."}])


@probe("chat.content-parts")
def content_parts(ctx: ProbeContext) -> RequestSpec:
    """chat.basic's request with the user content as a list of one text part."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
                                     max_tokens=16, temperature=0))


def _accepts(basic: Exchange, ex: Exchange, quirk: str, what: str) -> None:
    guard_basic(basic)
    require_accepted(ex, quirk, what)


@check("chat.system-role", rule="MSG-1", probes=["chat.basic", "chat.system-role"],
       quirks=["chat.system-role-rejected"])
def system_role_accepted(basic: Exchange, ex: Exchange) -> None:
    """A `system` message is accepted."""
    _accepts(basic, ex, "chat.system-role-rejected", "a request with a system message")


@check("chat.developer-role", rule="MSG-1", probes=["chat.basic", "chat.developer-role"],
       quirks=["chat.developer-role-rejected"])
def developer_role_accepted(basic: Exchange, ex: Exchange) -> None:
    """A `developer` message is accepted."""
    _accepts(basic, ex, "chat.developer-role-rejected", "a request with a developer message")


@check("chat.multi-turn", rule="MSG-3", probes=["chat.basic", "chat.multi-turn"],
       quirks=["chat.multi-turn-rejected"])
def multi_turn_accepted(basic: Exchange, ex: Exchange) -> None:
    """A user / assistant / user history is accepted."""
    _accepts(basic, ex, "chat.multi-turn-rejected", "a multi-turn history")


@check("chat.message-name", rule="MSG-2", probes=["chat.basic", "chat.message-name"],
       quirks=["chat.name-rejected"])
def message_name_accepted(basic: Exchange, ex: Exchange) -> None:
    """A message's optional `name` field is accepted."""
    _accepts(basic, ex, "chat.name-rejected", "a user message with `name`")


@check("chat.content-parts", rule="MSG-2", probes=["chat.basic", "chat.content-parts"],
       quirks=["chat.content-parts-rejected"])
def content_parts_accepted(basic: Exchange, ex: Exchange) -> None:
    """User content given as a list of text parts is accepted."""
    _accepts(basic, ex, "chat.content-parts-rejected", "content as a list of text parts")


@check("chat.content-parts-seen", rule="MSG-2", probes=["chat.basic", "chat.content-parts"],
       quirks=["chat.content-parts-mangled"])
def content_parts_read_as_text(basic: Exchange, ex: Exchange) -> None:
    """The same text sent as a list of text parts costs the same prompt tokens as sent as a string (not
    dropped, not rendered as raw JSON)."""
    guard_basic(basic)
    base_body, parts_body = reply_body(basic), reply_body(ex)
    if base_body is None:
        raise Blocked("chat.basic's reply is not a JSON object", BODY_JSON_OWNER, basic)
    if parts_body is None:
        raise Blocked(f"the list-content request got {ex.summary()}", "chat.content-parts", ex)
    counts = []
    for b, e in ((base_body, basic), (parts_body, ex)):
        usage = b.get("usage")
        if not isinstance(usage, dict):
            raise Blocked("a reply has no usage object to compare", "chat.usage", e)
        tokens = usage.get("prompt_tokens")
        if not is_int(tokens):
            raise Blocked("no integer usage.prompt_tokens to compare", "chat.usage-arithmetic", e)
        counts.append(tokens)
    as_string, as_parts = counts
    if as_parts != as_string:
        how = "fewer (part text dropped?)" if as_parts < as_string else "more (parts rendered as raw JSON?)"
        raise QuirkFound("chat.content-parts-mangled",
                         f"prompt_tokens {as_parts} as parts vs {as_string} as a string: {how}", ex,
                         [request_line(basic), f"< usage.prompt_tokens: {as_string}",
                          request_line(ex), f"< usage.prompt_tokens: {as_parts}"])
