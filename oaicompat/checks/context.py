"""Context-window limits: prompts longer than the window, streamed and not (openai-wire.md ERR-400-2,
STREAM-ERR-1, REQ-MAXTOK-1; §9 DEV-2).

The window size comes from providers.yaml `limits.context_tokens`; when a provider declares none, the probes
assume 8192 tokens (DEFAULT_CONTEXT_TOKENS) and the checks only conclude what that assumption cannot falsify.
The over-long prompt repeats one short word (about one token per word for the tokenizers seen here) 1.5 times
the window, never more than MAX_PROMPT_CHARS characters (providers.yaml `limits.max_prompt_chars` raises or lowers
that cap for one provider: a local server with a large window, where a prompt costs nothing).

Every context probe opens its prompt with a one-line preamble that states the plan it was built from
("Context probe: N filler words follow, sized for a context of L tokens (declared|assumed)."), so a check
reads the limit from the request it is judging (and the evidence shows it) instead of guessing it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..exchange import Exchange, Request
from ..transport import RequestSpec
from .base import (
    Blocked,
    NotApplicable,
    Observation,
    ProbeContext,
    QuirkFound,
    Violation,
    check,
    clip,
    compact,
    evidence,
    probe,
    status_line,
)
from .common import CHAT_STATUS, CHAT_USAGE, error_envelope_problem, outcome
from .streamview import event_line, stream_view

DEFAULT_CONTEXT_TOKENS = 8192       # assumed when providers.yaml declares no limits.context_tokens
OVERFLOW_FACTOR = 1.5               # the overflow prompt has this many words per token of context
MAX_PROMPT_CHARS = 64_000           # bound on the filler text unless providers.yaml declares limits.max_prompt_chars
FILLER_WORD = "dog"
NEAR_FULL = 7 / 8                   # the max_tokens probe's prompt fills this share of the window …
MAX_TOKENS_SHARE = 1 / 4            # … and asks for this share of the window as max_tokens


def max_words(prompt_chars: int) -> int:
    """Most filler words a prompt of `prompt_chars` characters holds (200 kept for the preamble)."""
    return (prompt_chars - 200) // (len(FILLER_WORD) + 1)


MAX_WORDS = max_words(MAX_PROMPT_CHARS)

OVERFLOW_STATUS = "context.overflow-status"
OVERFLOW_ENVELOPE = "context.overflow-envelope"

_PREAMBLE = "Context probe: {words} filler words follow, sized for a context of {limit} tokens ({source})."
_PREAMBLE_RE = re.compile(r"Context probe: (\d+) filler words follow, sized for a context of (\d+) tokens "
                          r"\((declared|assumed)\)\.")


@dataclass(frozen=True)
class Plan:
    """What a context probe was built from: filler words sent, the window it targets, where that came from."""
    words: int
    limit: int
    source: str          # "declared" (providers.yaml) or "assumed" (DEFAULT_CONTEXT_TOKENS)

    @property
    def overflow_capped(self) -> bool:
        """True when the prompt cap kept the overflow prompt below OVERFLOW_FACTOR × limit words."""
        return self.words < math.ceil(OVERFLOW_FACTOR * self.limit)

    @property
    def tokens_floor(self) -> float:
        """Fewest prompt tokens an untruncated overflow prompt can count (≥ 1/OVERFLOW_FACTOR token a word)."""
        return self.words / OVERFLOW_FACTOR


def context_limit(ctx: ProbeContext) -> tuple[int, str]:
    """(tokens, "declared") from providers.yaml limits.context_tokens, else (8192, "assumed")."""
    value = ctx.provider.limits.get("context_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, "declared"
    return DEFAULT_CONTEXT_TOKENS, "assumed"


def prompt_words_cap(ctx: ProbeContext) -> int:
    """Most filler words a probe may send: providers.yaml limits.max_prompt_chars, else MAX_PROMPT_CHARS."""
    value = ctx.provider.limits.get("max_prompt_chars")
    return max_words(value if isinstance(value, int) and not isinstance(value, bool) and value >= 1000
                     else MAX_PROMPT_CHARS)


def filler_prompt(words: int, limit: int, source: str) -> str:
    head = _PREAMBLE.format(words=words, limit=limit, source=source)
    return head + ("\n" + " ".join([FILLER_WORD] * words) if words else "")


def plan_of(req: Request) -> Plan | None:
    """The plan stated in a context probe's prompt, or None for any other request."""
    messages = req.field("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return None
    content = messages[0].get("content")
    if not isinstance(content, str):
        return None
    m = _PREAMBLE_RE.match(content[:300])
    return Plan(int(m.group(1)), int(m.group(2)), m.group(3)) if m else None


def _require_plan(ex: Exchange) -> Plan:
    plan = plan_of(ex.request)
    if plan is None:
        raise NotApplicable("the request is not a context probe (no plan preamble in the first message)")
    return plan


def is_context_probe(req: Request) -> bool:
    return plan_of(req) is not None


def _overflow_body(ctx: ProbeContext, **fields: Any) -> dict[str, Any]:
    limit, source = context_limit(ctx)
    words = min(math.ceil(OVERFLOW_FACTOR * limit), prompt_words_cap(ctx))
    return ctx.chat([{"role": "user", "content": filler_prompt(words, limit, source)}],
                    max_tokens=8, temperature=0, **fields)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(body: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None, None
    return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))


def _json_object(ex: Exchange) -> dict[str, Any] | None:
    try:
        body = ex.json
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


# -- probes ---------------------------------------------------------------------------------------

@probe("context.overflow")
def overflow(ctx: ProbeContext) -> RequestSpec:
    """A prompt of 1.5× the context window (limits.context_tokens, default 8192) in repeated words, within the
    prompt cap (limits.max_prompt_chars, default 64k chars)."""
    return RequestSpec(json=_overflow_body(ctx))


@probe("context.overflow-stream", fresh=True)
def overflow_stream(ctx: ProbeContext) -> RequestSpec:
    """The over-long prompt, streamed. Fresh: the keep-alive check needs it sent on its own connection."""
    return RequestSpec(json=_overflow_body(ctx, stream=True))


@probe("context.after-overflow", fresh=True)
def after_overflow(ctx: ProbeContext) -> RequestSpec:
    """A small request sent right after the streamed overflow, on the same client, without retries."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say OK."}], max_tokens=4, temperature=0),
                       retries=0)


@probe("context.max-tokens-over-remaining")
def max_tokens_over_remaining(ctx: ProbeContext) -> RequestSpec:
    """A prompt filling 7/8 of a declared window with max_tokens a quarter of it (prompt + max_tokens > window).

    Without a declared limit, or when 7/8 of it does not fit in the prompt cap (limits.max_prompt_chars, default
    64k characters), a token request with the plan preamble only is sent (the check then reports not-applicable):
    an accepted request would cost up to the rest of an unknown window in generated tokens.
    """
    limit, source = context_limit(ctx)
    words = int(limit * NEAR_FULL)
    if source != "declared" or words > prompt_words_cap(ctx):
        return RequestSpec(json=ctx.chat([{"role": "user", "content": filler_prompt(0, limit, source)}],
                                         subject=("max_tokens",), max_tokens=4, temperature=0))
    return RequestSpec(json=ctx.chat([{"role": "user", "content": filler_prompt(words, limit, source)}],
                                     subject=("max_tokens",), max_tokens=int(limit * MAX_TOKENS_SHARE),
                                     temperature=0))


@probe("context.models")
def models(ctx: ProbeContext) -> RequestSpec:
    """GET /models, for a context length the provider publishes in model metadata."""
    return RequestSpec(method="GET", path="/models")


# -- non-streamed overflow ------------------------------------------------------------------------

@check("context.overflow-status", rule="ERR-400-2", probes=["context.overflow"],
       quirks=["context.overflow-wrong-status", "context.overflow-silent-truncation", "context.overflow-accepted"],
       applies=is_context_probe)
def overflow_is_400(ex: Exchange) -> None:
    """A prompt longer than the context window is refused with HTTP 400 (not truncated, not another status)."""
    plan = _require_plan(ex)
    if ex.status == 400:
        return
    if ex.status is None or not 200 <= ex.status < 300:
        raise QuirkFound("context.overflow-wrong-status",
                         f"a prompt of {plan.words} words for a {plan.limit}-token window got {outcome(ex)}, not 400",
                         ex, evidence(ex))
    body = _json_object(ex)
    if body is None:
        raise Blocked(f"HTTP {ex.status} body is not a JSON object: {clip(ex.text, 120)!r}", CHAT_STATUS, ex)
    prompt_tokens, _ = _usage(body)
    usage_line = f"< \"usage\": {compact(body.get('usage'))}"
    if prompt_tokens is not None and prompt_tokens < plan.tokens_floor:
        raise QuirkFound("context.overflow-silent-truncation",
                         f"a prompt of {plan.words} words ({plan.source} window {plan.limit} tokens) was answered "
                         f"HTTP {ex.status} with usage.prompt_tokens {prompt_tokens}: the prompt was cut, silently",
                         ex, evidence(ex, usage_line))
    counted = f"prompt_tokens {prompt_tokens}" if prompt_tokens is not None else "no usage.prompt_tokens"
    if plan.overflow_capped:
        raise NotApplicable(f"the {plan.words}-word prompt was accepted ({counted}): the {plan.source} "
                            f"{plan.limit}-token window is larger than the prompt cap ({plan.words} words) can "
                            f"overflow")
    if plan.source == "assumed":
        raise NotApplicable(f"the {plan.words}-word prompt was accepted ({counted}): providers.yaml declares no "
                            f"limits.context_tokens and the window is larger than the assumed {plan.limit}")
    raise QuirkFound("context.overflow-accepted",
                     f"a prompt of {plan.words} words, 1.5× the declared {plan.limit}-token window, was answered "
                     f"HTTP {ex.status} ({counted}): the server read past its window, or providers.yaml "
                     f"limits.context_tokens is smaller than the server's real window",
                     ex, evidence(ex, usage_line))


@check("context.overflow-envelope", rule="ERR-1", probes=["context.overflow"],
       quirks=["context.overflow-not-enveloped"],
       applies=is_context_probe)
def overflow_error_has_envelope(ex: Exchange) -> None:
    """The context-overflow refusal carries the OpenAI error envelope (error.message, error.type)."""
    _require_plan(ex)
    if ex.status is None or ex.status < 400:
        raise Blocked(f"the over-long prompt was not refused ({outcome(ex)})", OVERFLOW_STATUS, ex)
    problem = error_envelope_problem(ex)
    if problem is not None:
        raise QuirkFound("context.overflow-not-enveloped",
                         f"the HTTP {ex.status} context-overflow refusal is not an error envelope: {problem}",
                         ex, evidence(ex))


@check("context.overflow-code", rule="ERR-400-2", probes=["context.overflow"],
       quirks=["context.overflow-nonstandard-error"], applies=is_context_probe)
def overflow_code_is_context_length_exceeded(ex: Exchange) -> list[Observation]:
    """The context-overflow error has `code: "context_length_exceeded"`."""
    _require_plan(ex)
    if ex.status is None or ex.status < 400:
        raise Blocked(f"the over-long prompt was not refused ({outcome(ex)})", OVERFLOW_STATUS, ex)
    if error_envelope_problem(ex) is not None:
        raise Blocked("the refusal is not an error envelope", OVERFLOW_ENVELOPE, ex)
    body = _json_object(ex) or {}
    raw_error = body.get("error")
    err = raw_error if isinstance(raw_error, dict) else {}
    code = err.get("code")
    shown = {k: err.get(k) for k in ("type", "code", "param") if k in err}
    extra = sorted(set(err) - {"message", "type", "param", "code"})
    if code != "context_length_exceeded":
        raise QuirkFound("context.overflow-nonstandard-error",
                         f"the overflow error has code {compact(code)} (type {compact(err.get('type'))}), "
                         f"not \"context_length_exceeded\"" + (f"; extra keys {extra}" if extra else ""),
                         ex, evidence(ex, f"< \"error\": {compact(err)}"))
    return [Observation("context.overflow-error", shown)]


# -- streamed overflow ----------------------------------------------------------------------------

@check("context.stream-overflow", rule="STREAM-ERR-1", probes=["context.overflow-stream"],
       quirks=["context.stream-overflow-empty-body", "context.stream-overflow-error-event",
               "context.stream-overflow-accepted"],
       applies=lambda req: req.stream and is_context_probe(req))
def stream_overflow_is_http_error(ex: Exchange) -> None:
    """A streamed request with a prompt longer than the window is refused with an HTTP error before any SSE."""
    plan = _require_plan(ex)
    if ex.status is not None and ex.status >= 400:
        return
    what = f"a streamed prompt of {plan.words} words for a {plan.limit}-token window"
    failure = f", then {ex.failure.kind}: {ex.failure.message}" if ex.failure else ""
    if ex.status is None:
        raise QuirkFound("context.stream-overflow-empty-body", f"{what} got no response at all{failure}",
                         ex, evidence(ex))
    view = stream_view(ex)
    error_events = [c for c in view.chunks if c.event.event == "error" or (c.is_object and c.obj.get("error"))]
    if error_events:
        first = error_events[0]
        raise QuirkFound("context.stream-overflow-error-event",
                         f"{what} was answered HTTP {ex.status} and the error came inside the stream",
                         ex, evidence(ex, status_line(ex), event_line(first.event)))
    if not view.parse.events:
        body = _json_object(ex)
        if body is not None and body.get("error"):
            raise QuirkFound("context.stream-overflow-error-event",
                             f"{what} was answered HTTP {ex.status} with a JSON error body", ex, evidence(ex))
    if not any(c.choices() for c in view.chunks):
        raise QuirkFound("context.stream-overflow-empty-body",
                         f"{what} was answered HTTP {ex.status} with no chunk at all ({len(ex.body)} body bytes"
                         f"{failure}): the client sees an empty stream instead of an error",
                         ex, evidence(ex))
    raise QuirkFound("context.stream-overflow-accepted",
                     f"{what} was answered HTTP {ex.status} with {len(view.chunks)} chunk(s) carrying choices"
                     f"{failure}: the window was not enforced (or providers.yaml limits.context_tokens is too small)",
                     ex, evidence(ex, status_line(ex), event_line(view.chunks[0].event)))


@check("context.connection-reuse", rule="STREAM-ERR-1", probes=["context.overflow-stream", "context.after-overflow"],
       quirks=["context.connection-broken-after-overflow"])
def connection_usable_after_overflow(overflow_ex: Exchange, next_ex: Exchange) -> None:
    """After a streamed context overflow, the next request on the same keep-alive client succeeds."""
    failed_tries = [a for a in next_ex.attempts if a.status is None]
    if next_ex.status is None or failed_tries:
        why = (f"{next_ex.failure.kind}: {next_ex.failure.message}" if next_ex.status is None and next_ex.failure
               else f"first try failed ({failed_tries[0].failure})" if failed_tries else "no response")
        raise QuirkFound("context.connection-broken-after-overflow",
                         f"the small request sent right after the streamed overflow ({outcome(overflow_ex)}) "
                         f"failed on the transport: {why}",
                         next_ex, [*evidence(overflow_ex, status_line(overflow_ex)), *evidence(next_ex)])
    if 200 <= next_ex.status < 300:
        return
    if next_ex.status >= 500:
        raise Violation("STREAM-ERR-1", f"after the streamed overflow a small request got HTTP {next_ex.status}",
                        next_ex, evidence(next_ex))
    raise Blocked(f"the small request was refused (HTTP {next_ex.status})", CHAT_STATUS, next_ex)


# -- max_tokens beyond the remaining window -------------------------------------------------------

@check("context.max-tokens-over-remaining", rule="REQ-MAXTOK-1", probes=["context.max-tokens-over-remaining"],
       quirks=["context.overflow-max-tokens-shrunk", "context.overflow-max-tokens-unanswered"],
       applies=is_context_probe)
def max_tokens_beyond_window_refused(ex: Exchange) -> list[Observation]:
    """`max_tokens` larger than what the window leaves after the prompt is refused, not silently lowered."""
    plan = _require_plan(ex)
    if plan.words == 0:
        raise NotApplicable(
            "no near-full prompt was sent: " + ("providers.yaml declares no limits.context_tokens"
                                                if plan.source != "declared" else
                                                f"7/8 of a {plan.limit}-token window does not fit in "
                                                f"the prompt cap (limits.max_prompt_chars)"))
    if ex.status is None:   # e.g. transformers serve: no window enforced, computes until the client times out
        raise QuirkFound("context.overflow-max-tokens-unanswered",
                         f"a prompt of {plan.words} words (7/8 of the {plan.source} {plan.limit}-token window) with "
                         f"max_tokens {compact(ex.request.field('max_tokens'))} beyond what the window leaves got "
                         f"{outcome(ex)}: neither refused nor answered", ex, evidence(ex))
    if 400 <= ex.status < 500:
        return []
    if ex.status >= 500 or ex.status < 200:
        raise Violation("REQ-MAXTOK-1", f"prompt + max_tokens over the window got HTTP {ex.status}", ex,
                        evidence(ex))
    body = _json_object(ex)
    if body is None:
        raise Blocked(f"HTTP {ex.status} body is not a JSON object: {clip(ex.text, 120)!r}", CHAT_STATUS, ex)
    prompt_tokens, completion_tokens = _usage(body)
    if prompt_tokens is None or completion_tokens is None:
        raise Blocked(f"the reply has no integer prompt/completion tokens (usage {compact(body.get('usage'))})",
                      CHAT_USAGE, ex)
    max_tokens = _int(ex.request.field("max_tokens"))
    if max_tokens is None:
        raise NotApplicable("the request has no integer max_tokens")
    if prompt_tokens + max_tokens <= plan.limit:
        raise NotApplicable(f"prompt_tokens {prompt_tokens} + max_tokens {max_tokens} fit the {plan.limit}-token "
                            f"window: the tokenizer counts fewer tokens than words")
    if completion_tokens >= max_tokens:
        raise NotApplicable(f"the server generated all {max_tokens} tokens after {prompt_tokens} prompt tokens: its "
                            f"window is larger than the declared {plan.limit}; fix limits.context_tokens")
    choices = body.get("choices")
    finish = choices[0].get("finish_reason") if isinstance(choices, list) and choices \
        and isinstance(choices[0], dict) else None
    if finish != "length":   # stopped on its own: whether max_tokens was lowered does not show
        return [Observation("context.max-tokens-over-remaining",
                            f"answered HTTP {ex.status}; the model stopped by itself ({finish!r}) after "
                            f"{completion_tokens} tokens, before the window ran out")]
    raise QuirkFound("context.overflow-max-tokens-shrunk",
                     f"prompt_tokens {prompt_tokens} + max_tokens {max_tokens} exceed the {plan.limit}-token window, "
                     f"yet the request was answered HTTP {ex.status} with {completion_tokens} completion tokens "
                     f"(finish_reason {finish!r}): max_tokens was lowered to what the window leaves",
                     ex, evidence(ex, f"< \"usage\": {compact(body.get('usage'))}, "
                                      f"\"finish_reason\": {compact(finish)}"))


# -- what the provider says its window is ---------------------------------------------------------

_LIMIT_PATTERNS = (
    re.compile(r"maximum context length (?:is|of) (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"context (?:size|window|length) (?:is |of )?\(?(\d[\d,]*) tokens", re.IGNORECASE),
    re.compile(r"context (?:size|window|length) (?:is|of) (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"must be <= (\d[\d,]*)"),
    re.compile(r"input length should be \[1, (\d+)\]", re.IGNORECASE),
)
_ERROR_LIMIT_KEYS = ("n_ctx", "max_context_length", "context_length", "context_window", "max_model_len")
_MODEL_LIMIT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx",
                     "max_input_tokens", "input_token_limit")


def limit_from_error(ex: Exchange) -> int | None:
    """The window size an error body states (a key like n_ctx, or "maximum context length is N" wording)."""
    body = _json_object(ex)
    err = body.get("error") if body is not None else None
    for holder in (err, body):
        if isinstance(holder, dict):
            for key in _ERROR_LIMIT_KEYS:
                value = _int(holder.get(key))
                if value:
                    return value
    text = ex.text[:4000]
    for pattern in _LIMIT_PATTERNS:
        m = pattern.search(text)
        if m:
            return int(m.group(1).replace(",", ""))
    return None


def limit_from_models(ex: Exchange, model: Any) -> dict[str, Any]:
    """Context-length fields of `model`'s entry in a /models reply (vendor metadata), by key."""
    body = _json_object(ex)
    data = body.get("data") if body is not None else None
    if not isinstance(data, list):
        return {}
    entries = [e for e in data if isinstance(e, dict) and e.get("id") == model] or \
              ([data[0]] if len(data) == 1 and isinstance(data[0], dict) else [])
    found: dict[str, Any] = {}
    for entry in entries[:1]:
        for holder, prefix in ((entry, ""), (entry.get("meta"), "meta.")):
            if isinstance(holder, dict):
                for key in (*_MODEL_LIMIT_KEYS, "n_ctx_train"):
                    value = _int(holder.get(key))
                    if value:
                        found[prefix + key] = value
    return found


@check("context.limit", rule="ERR-400-2", probes=["context.overflow", "context.models"], kind="info")
def context_limit_sources(overflow_ex: Exchange, models_ex: Exchange) -> list[Observation]:
    """The context window: as declared in providers.yaml, as the overflow error states it, as /models lists it."""
    plan = plan_of(overflow_ex.request)
    out = [Observation("context.limit.probed", {"tokens": plan.limit, "source": plan.source, "words": plan.words}
                       if plan else None)]
    stated = limit_from_error(overflow_ex) if overflow_ex.status is not None and overflow_ex.status >= 400 else None
    out.append(Observation("context.limit.error-states", stated))
    out.append(Observation("context.limit.models-metadata",
                           limit_from_models(models_ex, overflow_ex.request.field("model")) or None))
    return out
