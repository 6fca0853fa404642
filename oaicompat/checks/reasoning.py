"""Reasoning ("thinking") models: where the reasoning text travels, how it is counted, and whether it can be
sent back (openai-wire.md RESP-4, STREAM-10, MSG-3, §9 DEV-7).

OpenAI never returns reasoning text in Chat Completions: the message has `content` (the answer) and the usage
counts the hidden work in `usage.completion_tokens_details.reasoning_tokens`. Every place a vendor exposes
the reasoning is therefore a deviation with its own quirk id:
- `reasoning.content-field`: a `reasoning_content` string beside `content` (informational: extra fields are
  allowed, DEV-7, but clients must know where to look);
- `reasoning.alt-field`: the same under `reasoning`, `reasoning_details` or `thinking`;
- `reasoning.inline-think-tags`: `<think>…</think>` inside `content` itself, which breaks every client that
  shows or parses `content`.

All checks need a reasoning model: providers whose model does not reason declare `reasoning: false` in
providers.yaml `supports` and are skipped. No temperature is sent (several reasoning models refuse one) and
the output cap is `max_completion_tokens` (the field OpenAI's reasoning models accept), large enough for a
short chain of thought.
"""

from __future__ import annotations

import re
from typing import Any

from ..exchange import Exchange
from ..transport import RequestSpec
from .base import (
    Blocked,
    NotApplicable,
    Observation,
    ProbeContext,
    QuirkFound,
    check,
    clip,
    compact,
    evidence,
    first_choice,
    probe,
    require_success,
)
from .common import CHAT_USAGE, STREAM_STATUS
from .requires import OK, SOK
from .streamview import stream_view

STATUS_OWNER = "reasoning.status"

QUESTION = "What is 17 + 25? Think it through, then answer with the number only."
REASONING_BUDGET = 256               # max_completion_tokens: room for a short chain of thought

THINK_TAG = re.compile(r"</?think(?:ing)?>", re.IGNORECASE)
#: carrier names, in the order a finding prefers them (the most harmful first)
INLINE = "<think> tags in content"
CONTENT_FIELD = "reasoning_content"
ALT_FIELDS = ("reasoning", "reasoning_details", "thinking")
CARRIER_QUIRK = {INLINE: "reasoning.inline-think-tags", CONTENT_FIELD: "reasoning.content-field",
                 **{f: "reasoning.alt-field" for f in ALT_FIELDS}}
CARRIER_ORDER = (INLINE, CONTENT_FIELD, *ALT_FIELDS)


def _reasoning_request(ctx: ProbeContext, messages: list[dict[str, Any]], **fields: Any) -> RequestSpec:
    return RequestSpec(json=ctx.chat(messages, subject=("temperature",),
                                     max_completion_tokens=REASONING_BUDGET, **fields))


def _history(reasoning_key: str) -> list[dict[str, Any]]:
    """A finished turn whose assistant message carries reasoning under `reasoning_key`, then a new question."""
    return [
        {"role": "user", "content": "What is 2 + 3? Answer with the number only."},
        {"role": "assistant", "content": "5", reasoning_key: "2 plus 3 is 5."},
        {"role": "user", "content": "And 2 + 4? Answer with the number only."},
    ]


# -- probes ---------------------------------------------------------------------------------------

@probe("reasoning.basic")
def basic(ctx: ProbeContext) -> RequestSpec:
    """A small arithmetic question for a reasoning model (max_completion_tokens 256, no temperature)."""
    return _reasoning_request(ctx, [{"role": "user", "content": QUESTION}])


@probe("reasoning.stream")
def streamed(ctx: ProbeContext) -> RequestSpec:
    """reasoning.basic streamed."""
    return _reasoning_request(ctx, [{"role": "user", "content": QUESTION}], stream=True)


@probe("reasoning.replay-content")
def replay_content(ctx: ProbeContext) -> RequestSpec:
    """A history whose assistant turn carries `reasoning_content`, as a client replays a reply it received."""
    return _reasoning_request(ctx, _history("reasoning_content"))


@probe("reasoning.replay-alt")
def replay_alt(ctx: ProbeContext) -> RequestSpec:
    """The same history with the reasoning under `reasoning`."""
    return _reasoning_request(ctx, _history("reasoning"))


# -- where reasoning travels ----------------------------------------------------------------------

def _present(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, (list, dict)) and bool(value)


def _sample(value: Any) -> str:
    return clip(value if isinstance(value, str) else compact(value), 80)


def message_carriers(message: Any) -> dict[str, str]:
    """Where a non-streamed message carries reasoning text: carrier name → a sample of it."""
    if not isinstance(message, dict):
        return {}
    found: dict[str, str] = {}
    content = message.get("content")
    if isinstance(content, str) and THINK_TAG.search(content):
        found[INLINE] = _sample(content)
    for key in (CONTENT_FIELD, *ALT_FIELDS):
        if _present(message.get(key)):
            found[key] = _sample(message[key])
    return found


def delta_carriers(deltas: list[dict[str, Any]]) -> dict[str, str]:
    """Where streamed deltas carry reasoning text (string fields joined across deltas)."""
    joined: dict[str, list[Any]] = {}
    for delta in deltas:
        for key in ("content", CONTENT_FIELD, *ALT_FIELDS):
            if key in delta and delta[key] is not None:
                joined.setdefault(key, []).append(delta[key])
    found: dict[str, str] = {}
    content = "".join(v for v in joined.get("content", []) if isinstance(v, str))
    if THINK_TAG.search(content):
        found[INLINE] = _sample(content)
    for key in (CONTENT_FIELD, *ALT_FIELDS):
        parts = joined.get(key, [])
        text = "".join(p for p in parts if isinstance(p, str))
        if _present(text) or any(_present(p) for p in parts if not isinstance(p, str)):
            found[key] = _sample(text or parts[0])
    return found


def _ordered(carriers: dict[str, str]) -> list[str]:
    return [c for c in CARRIER_ORDER if c in carriers]


def _message(ex: Exchange) -> tuple[dict[str, Any], Any]:
    body = require_success(ex, STATUS_OWNER)
    return body, first_choice(body, STATUS_OWNER, ex).get("message")


@check("reasoning.status", rule="RESP-1", probes=["reasoning.basic", "reasoning.stream"],
       quirks=["reasoning.stream-only", "reasoning.basic-rejected"], needs=("reasoning",))
def reasoning_request_answered(ex: Exchange, stream_ex: Exchange) -> None:
    """A short non-streamed request to a reasoning model is answered 200."""
    if ex.status == 200:
        return
    what = f"HTTP {ex.status}" if ex.status is not None else "no response"
    if stream_ex.status == 200:
        raise QuirkFound("reasoning.stream-only",
                         f"the non-streamed request got {what} while the same request streamed got 200", ex,
                         evidence(ex) + [f"> the same request with stream: true → HTTP {stream_ex.status}"])
    raise QuirkFound("reasoning.basic-rejected", f"a short reasoning request got {what}", ex, evidence(ex))


@check("reasoning.message-field", rule="DEV-7", probes=["reasoning.basic"],
       quirks=["reasoning.inline-think-tags", "reasoning.content-field", "reasoning.alt-field"],
       needs=("reasoning",), requires=OK, observes=True)
def message_reasoning_field(ex: Exchange) -> list[Observation]:
    """The non-streamed message shows no reasoning text, as OpenAI's does (names the field when it does)."""
    _, message = _message(ex)
    carriers = message_carriers(message)
    if not carriers:
        return [Observation("reasoning.message-carrier", None)]
    order = _ordered(carriers)
    first = order[0]
    others = f" (also in {', '.join(order[1:])})" if len(order) > 1 else ""
    raise QuirkFound(CARRIER_QUIRK[first],
                     f"the message carries reasoning in {first}{others}: {carriers[first]!r}", ex,
                     evidence(ex, f"< message keys: {sorted(message) if isinstance(message, dict) else message!r}",
                              f"< {first}: {carriers[first]!r}"))


@check("reasoning.delta-field", rule="STREAM-10", probes=["reasoning.basic", "reasoning.stream"],
       quirks=["reasoning.stream-field-mismatch"], needs=("reasoning",))
def stream_reasoning_field_matches(message_ex: Exchange, stream_ex: Exchange) -> list[Observation]:
    """Streamed deltas carry reasoning in the same place as the non-streamed message."""
    _, message = _message(message_ex)
    if stream_ex.status is None or not 200 <= stream_ex.status < 300:
        raise Blocked(f"the streamed request was not answered with success ({stream_ex.summary()})",
                      STREAM_STATUS, stream_ex)
    deltas = stream_view(stream_ex).deltas(0)
    if not deltas:
        raise Blocked("the stream has no choice deltas", "stream.data-json", stream_ex)
    in_message, in_stream = set(message_carriers(message)), delta_carriers(deltas)
    if in_message != set(in_stream):
        raise QuirkFound("reasoning.stream-field-mismatch",
                         f"reasoning travels in {_ordered(dict.fromkeys(in_message, '')) or 'nothing'} when not "
                         f"streamed but in {_ordered(in_stream) or 'nothing'} when streamed",
                         stream_ex, evidence(stream_ex, *(f"< deltas' {k}: {v!r}" for k, v in in_stream.items())))
    return [Observation("reasoning.delta-carrier", _ordered(in_stream) or None)]


@check("reasoning.stream-carrier", rule="DEV-7", probes=["reasoning.stream"], kind="info", needs=("reasoning",),
       requires=SOK, observes=True)
def stream_reasoning_carrier(ex: Exchange) -> list[Observation]:
    """Where one stream's deltas carry reasoning text (reasoning_content, reasoning…, <think> tags in content),
    observed on any stream: a server that streams reasoning unasked shows it, whatever `supports:` says."""
    if ex.status is None or not 200 <= ex.status < 300:
        raise Blocked(f"the streamed request was not answered with success ({ex.summary()})", STREAM_STATUS, ex)
    carriers = delta_carriers(stream_view(ex).deltas(0))
    return [Observation("reasoning.delta-carrier", _ordered(carriers) or None),
            *(Observation(f"reasoning.delta-carrier.{k}", v) for k, v in carriers.items())]


# -- how reasoning is counted ---------------------------------------------------------------------

@check("reasoning.tokens", rule="RESP-4", probes=["reasoning.basic"], quirks=["reasoning.tokens-missing"],
       needs=("reasoning",))
def reasoning_tokens_reported(ex: Exchange) -> list[Observation]:
    """`usage.completion_tokens_details.reasoning_tokens` counts the reasoning a reasoning model did."""
    body, message = _message(ex)
    usage = body.get("usage")
    if not isinstance(usage, dict):
        raise Blocked("the reply has no usage object", CHAT_USAGE, ex)
    details = usage.get("completion_tokens_details")
    count = details.get("reasoning_tokens") if isinstance(details, dict) else None
    line = f"< \"usage\": {compact(usage)}"
    if not isinstance(count, int) or isinstance(count, bool):
        raise QuirkFound("reasoning.tokens-missing",
                         f"usage.completion_tokens_details.reasoning_tokens is {compact(count)} "
                         f"(completion_tokens_details is {compact(details)})", ex, evidence(ex, line))
    visible = message_carriers(message)
    if count == 0 and visible:
        first = _ordered(visible)[0]
        raise QuirkFound("reasoning.tokens-missing",
                         f"reasoning_tokens is 0 although the reply carries reasoning in {first}: the reasoning is "
                         f"not counted apart", ex, evidence(ex, line, f"< {first}: {visible[first]!r}"))
    return [Observation("reasoning.tokens", count)]


# -- sending reasoning back -----------------------------------------------------------------------

@check("reasoning.replay", rule="MSG-3",
       probes=["reasoning.basic", "reasoning.replay-content", "reasoning.replay-alt"],
       quirks=["reasoning.replay-rejected"], needs=("reasoning",))
def reasoning_replay_accepted(basic_ex: Exchange, content_ex: Exchange, alt_ex: Exchange) -> None:
    """An assistant message sent back with the reasoning field the server itself returns is accepted."""
    _, message = _message(basic_ex)
    carriers = message_carriers(message)
    if CONTENT_FIELD in carriers:
        field, ex = CONTENT_FIELD, content_ex
    elif any(f in carriers for f in ALT_FIELDS):
        field, ex = "reasoning", alt_ex
    else:
        raise NotApplicable("the server returns no reasoning field a client would send back")
    if ex.status is not None and 200 <= ex.status < 300:
        return
    if ex.status is None:
        raise Blocked(f"the replayed history got no response ({ex.summary()})", STATUS_OWNER, ex)
    raise QuirkFound("reasoning.replay-rejected",
                     f"the server returns reasoning in `{field}`, but a history whose assistant turn carries "
                     f"`{field}` was answered HTTP {ex.status}", ex, evidence(ex))
