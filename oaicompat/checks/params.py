"""Request parameters: token caps, stop sequences, sampling knobs, n, logprobs and unknown fields
(openai-wire.md §1.1, §1.3, RESP-CHOICE-2, RESP-LOGPROB-1/2, REQ-4).

Acceptance means: answered 2xx with a JSON object body. A check whose probe was not accepted is Blocked
by the check that owns that probe's "-rejected" quirk.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from ..exchange import Exchange
from ..transport import RequestSpec
from .base import Blocked, Observation, ProbeContext, QuirkFound, check, compact, evidence, is_int, probe, request_line
from .common import error_message, guard_basic, json_body, reply_body, require_accepted
from .requires import OK_LOGPROBS

CAP = 5              # max_tokens / max_completion_tokens in the cap probes
STOP = "e"           # a stop string any English sentence reaches within a few tokens
TOP_LOGPROBS = 2
RAMBLE = "Write a long story about a dragon who lives in a castle by the sea."


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(body: dict[str, Any]) -> dict[str, Any]:
    choices = body.get("choices")
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}


def _content(body: dict[str, Any]) -> Any:
    message = _choice(body).get("message")
    return message.get("content") if isinstance(message, dict) else None


def _completion_tokens(body: dict[str, Any]) -> int | None:
    usage = body.get("usage")
    value = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return value if is_int(value) else None


def _accepted_body(ex: Exchange, owner: str) -> dict[str, Any]:
    body = reply_body(ex)
    if body is None:
        raise Blocked(f"the request was not accepted: {ex.summary()}", owner, ex)
    return body


# -- token caps (REQ-MAXTOK-1/2) --------------------------------------------------------------------

@probe("params.max-tokens")
def max_tokens(ctx: ProbeContext) -> RequestSpec:
    """A prompt that invites a long answer, max_tokens 5."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": RAMBLE}], subject=("max_tokens",),
                                     max_tokens=CAP, temperature=0))


@probe("params.max-completion-tokens")
def max_completion_tokens(ctx: ProbeContext) -> RequestSpec:
    """The same prompt capped with max_completion_tokens 5 (and no max_tokens)."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": RAMBLE}],
                                     subject=("max_tokens", "max_completion_tokens"),
                                     max_completion_tokens=CAP, temperature=0), timeout=60, retries=0)


@check("params.max-tokens-cap", rule="REQ-MAXTOK-1", probes=["params.max-tokens"],
       quirks=["params.max-tokens-rejected", "params.max-tokens-exceeded"])
def max_tokens_caps_output(ex: Exchange) -> None:
    """`max_tokens` caps the generated tokens: usage.completion_tokens ≤ max_tokens."""
    body = require_accepted(ex, "params.max-tokens-rejected", f"max_tokens {CAP}")
    used = _completion_tokens(body)
    if used is None:
        raise Blocked("the reply has no integer usage.completion_tokens", "chat.usage-arithmetic", ex)
    if used > CAP:
        raise QuirkFound("params.max-tokens-exceeded", f"max_tokens {CAP} but completion_tokens {used}", ex,
                         evidence(ex, f"< \"usage\": {compact(body.get('usage'))}"))


@check("params.max-tokens-length", rule="REQ-MAXTOK-1", probes=["params.max-tokens"],
       quirks=["params.max-tokens-finish-reason"])
def max_tokens_finish_length(ex: Exchange) -> list[Observation]:
    """Output cut by `max_tokens` ends with finish_reason "length"."""
    body = _accepted_body(ex, "params.max-tokens-cap")
    reason = _choice(body).get("finish_reason")
    used = _completion_tokens(body)
    if reason == "length":
        return []
    if used is None:
        raise Blocked(f"finish_reason is {reason!r} and there is no usage to tell whether the cap was hit",
                      "chat.usage-arithmetic", ex)
    if used > CAP:
        raise Blocked(f"completion_tokens {used} exceed max_tokens {CAP}", "params.max-tokens-cap", ex)
    if used == CAP:
        raise QuirkFound("params.max-tokens-finish-reason",
                         f"completion_tokens {used} reached max_tokens {CAP} but finish_reason is {reason!r}", ex,
                         evidence(ex, f"< \"finish_reason\": {compact(reason)}, "
                                      f"\"usage\": {compact(body.get('usage'))}"))
    return [Observation("max-tokens", f"the model stopped after {used} tokens, before the cap ({reason!r})")]


@check("params.max-completion-tokens", rule="REQ-MAXTOK-2", probes=["params.max-completion-tokens"],
       quirks=["params.max-completion-tokens-rejected", "params.max-completion-tokens-ignored"])
def max_completion_tokens_honoured(ex: Exchange) -> None:
    """`max_completion_tokens` is accepted and caps the generated tokens."""
    if ex.failure is not None and ex.failure.kind in ("timeout", "read-timeout") and ex.status in (None, 200):
        raise QuirkFound("params.max-completion-tokens-ignored",
                         f"a {CAP}-token request got no complete reply in time ({ex.failure.message}): "
                         f"the cap was not applied", ex, evidence(ex))
    body = require_accepted(ex, "params.max-completion-tokens-rejected", f"max_completion_tokens {CAP}")
    used = _completion_tokens(body)
    if used is None:
        raise Blocked("the reply has no integer usage.completion_tokens", "chat.usage-arithmetic", ex)
    if used > CAP:
        raise QuirkFound("params.max-completion-tokens-ignored",
                         f"max_completion_tokens {CAP} but completion_tokens {used}", ex,
                         evidence(ex, f"< \"usage\": {compact(body.get('usage'))}"))


# -- stop (REQ table, RESP-CHOICE-4) -------------------------------------------------------------------

@probe("params.stop")
def stop(ctx: ProbeContext) -> RequestSpec:
    """A sentence-inviting prompt with stop ["e"], max_tokens 32."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Write one sentence about the weather."}],
                                     subject=("stop",), max_tokens=32, temperature=0, stop=[STOP]))


@check("params.stop", rule="RESP-CHOICE-4", probes=["params.stop"],
       quirks=["params.stop-rejected", "params.stop-included", "params.stop-ignored"])
def stop_honoured(ex: Exchange) -> list[Observation]:
    """A `stop` string ends the output and is not included in it."""
    body = require_accepted(ex, "params.stop-rejected", f"stop [{STOP!r}]")
    content = _content(body)
    if not isinstance(content, str):
        raise Blocked(f"message.content is {compact(content)}", "chat.content", ex)
    reason = _choice(body).get("finish_reason")
    at = content.find(STOP)
    if at < 0:
        if reason == "stop":
            return [Observation("stop", "honoured: the output stops before the stop string")]
        return [Observation("stop", f"not triggered: the output never reached {STOP!r} ({reason!r})")]
    line = f"< \"content\": {compact(content)}, \"finish_reason\": {compact(reason)}"
    if at == len(content) - len(STOP):
        raise QuirkFound("params.stop-included", f"the output ends with the stop string {STOP!r}", ex,
                         evidence(ex, line))
    raise QuirkFound("params.stop-ignored", f"the stop string {STOP!r} occurs at offset {at} and the output goes on",
                     ex, evidence(ex, line))


# -- sampling and bookkeeping fields that must be accepted ----------------------------------------------

def _param_probe(name: str, field: str, value: Any, doc: str) -> None:
    def build(ctx: ProbeContext) -> RequestSpec:
        return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}], subject=(field,),
                                         max_tokens=8, **{field: value}))
    build.__doc__ = doc
    probe(name)(build)


_param_probe("params.seed", "seed", 1234, "seed 1234.")
_param_probe("params.top-p", "top_p", 0.5, "top_p 0.5.")
_param_probe("params.presence-penalty", "presence_penalty", 0.5, "presence_penalty 0.5.")
_param_probe("params.frequency-penalty", "frequency_penalty", 0.5, "frequency_penalty 0.5.")
_param_probe("params.user", "user", "oaicompat-user", "user \"oaicompat-user\".")
_param_probe("params.metadata", "metadata", {"suite": "oaicompat"}, "metadata {\"suite\": \"oaicompat\"}.")


def _accepts(basic: Exchange, ex: Exchange, quirk: str, what: str) -> None:
    guard_basic(basic)
    require_accepted(ex, quirk, what)


@check("params.seed", rule="REQ-RANGE-1", probes=["chat.basic", "params.seed"], quirks=["params.seed-rejected"])
def seed_accepted(basic: Exchange, ex: Exchange) -> None:
    """`seed` is accepted."""
    _accepts(basic, ex, "params.seed-rejected", "seed 1234")


@check("params.top-p", rule="REQ-RANGE-1", probes=["chat.basic", "params.top-p"], quirks=["params.top-p-rejected"])
def top_p_accepted(basic: Exchange, ex: Exchange) -> None:
    """`top_p` is accepted."""
    _accepts(basic, ex, "params.top-p-rejected", "top_p 0.5")


@check("params.presence-penalty", rule="REQ-RANGE-1", probes=["chat.basic", "params.presence-penalty"],
       quirks=["params.presence-penalty-rejected"])
def presence_penalty_accepted(basic: Exchange, ex: Exchange) -> None:
    """`presence_penalty` is accepted."""
    _accepts(basic, ex, "params.presence-penalty-rejected", "presence_penalty 0.5")


@check("params.frequency-penalty", rule="REQ-RANGE-1", probes=["chat.basic", "params.frequency-penalty"],
       quirks=["params.frequency-penalty-rejected"])
def frequency_penalty_accepted(basic: Exchange, ex: Exchange) -> None:
    """`frequency_penalty` is accepted."""
    _accepts(basic, ex, "params.frequency-penalty-rejected", "frequency_penalty 0.5")


@check("params.user", rule="REQ-1", probes=["chat.basic", "params.user"], quirks=["params.user-rejected"])
def user_accepted(basic: Exchange, ex: Exchange) -> None:
    """`user` is accepted."""
    _accepts(basic, ex, "params.user-rejected", "user \"oaicompat-user\"")


@check("params.metadata", rule="REQ-1", probes=["chat.basic", "params.metadata"],
       quirks=["params.metadata-rejected"])
def metadata_accepted(basic: Exchange, ex: Exchange) -> None:
    """`metadata` (a string map) is accepted."""
    _accepts(basic, ex, "params.metadata-rejected", "metadata {\"suite\": \"oaicompat\"}")


# -- determinism: temperature 0 and seed ---------------------------------------------------------------

def _twin_probe(name: str, doc: str, **fields: Any) -> None:
    def build(ctx: ProbeContext) -> RequestSpec:
        return RequestSpec(json=ctx.chat([{"role": "user", "content": "Write a short poem about rain."}],
                                         subject=tuple(fields), max_tokens=16, **fields))
    build.__doc__ = doc
    probe(name, fresh=True)(build)


for _twin in ("a", "b"):
    _twin_probe(f"params.temperature-zero-{_twin}", f"temperature 0, 16 tokens (copy {_twin}; sent afresh).",
                temperature=0)
    _twin_probe(f"params.seed-{_twin}", f"seed 7 at temperature 1, 16 tokens (copy {_twin}; sent afresh).",
                seed=7, temperature=1.0)


def _same_output(a: Exchange, b: Exchange, quirk: str, what: str) -> None:
    ca, cb = (_content(reply_body(ex) or {}) for ex in (a, b))
    if ca != cb:
        raise QuirkFound(quirk, f"two identical requests with {what} gave different outputs", b,
                         [request_line(a), f"< \"content\": {compact(ca)}",
                          request_line(b), f"< \"content\": {compact(cb)}"])


@check("params.temperature-zero", rule="REQ-RANGE-1", probes=["params.temperature-zero-a", "params.temperature-zero-b"],
       quirks=["params.temperature-zero-rejected", "params.temperature-zero-nondeterministic"])
def temperature_zero_greedy(a: Exchange, b: Exchange) -> None:
    """`temperature: 0` is accepted and two identical requests give the same output."""
    for ex in (a, b):
        require_accepted(ex, "params.temperature-zero-rejected", "temperature 0")
    _same_output(a, b, "params.temperature-zero-nondeterministic", "temperature 0")


@check("params.seed-deterministic", rule="REQ-RANGE-1", probes=["params.seed-a", "params.seed-b"],
       quirks=["params.seed-ignored"])
def seed_reproducible(a: Exchange, b: Exchange) -> None:
    """Two identical sampled requests (temperature 1) with the same `seed` give the same output."""
    for ex in (a, b):
        if reply_body(ex) is None:
            raise Blocked(f"the seeded request got {ex.summary()}", "params.seed", ex)
    _same_output(a, b, "params.seed-ignored", "seed 7 and temperature 1")


# -- n (RESP-CHOICE-2) -------------------------------------------------------------------------------------

@probe("params.n")
def n_two(ctx: ProbeContext) -> RequestSpec:
    """n 2, 8 tokens."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}], subject=("n",),
                                     max_tokens=8, n=2), retries=0)


@check("params.n", rule="RESP-CHOICE-2", probes=["params.n"], needs=("n",),
       quirks=["params.n-ignored", "params.n-reply-malformed", "params.n-rejected-unclean", "params.n-server-error"])
def n_honoured(ex: Exchange) -> list[Observation]:
    """`n: 2` gives two choices with indexes 0 and 1, or is refused cleanly (4xx with an error object)."""
    if ex.status is None or ex.status >= 500:
        raise QuirkFound("params.n-server-error", f"n 2 got {ex.summary()}{error_message(ex)}", ex, evidence(ex))
    if ex.status >= 300:
        body = json_body(ex)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return [Observation("n", f"refused cleanly: HTTP {ex.status}: {err['message'][:160]}")]
        raise QuirkFound("params.n-rejected-unclean", f"n 2 refused with HTTP {ex.status} without an error object",
                         ex, evidence(ex))
    body = reply_body(ex)
    choices = body.get("choices") if body is not None else None
    if not isinstance(choices, list):
        raise QuirkFound("params.n-reply-malformed", "the 2xx reply has no choices list"
                         + ("" if body is not None else " (the body is not a JSON object)"), ex, evidence(ex))
    indexes = [c.get("index") if isinstance(c, dict) else None for c in choices]
    if len(choices) == 1:
        raise QuirkFound("params.n-ignored", "n 2 but one choice came back", ex,
                         evidence(ex, f"< choices indexes: {compact(indexes)}"))
    if sorted(i for i in indexes if is_int(i)) != [0, 1] or len(indexes) != 2:
        raise QuirkFound("params.n-reply-malformed", f"n 2 but choices indexes are {compact(indexes)}", ex,
                         evidence(ex, f"< choices indexes: {compact(indexes)}"))
    return []


# -- logprobs (RESP-LOGPROB-1/2) ----------------------------------------------------------------------------

@probe("params.logprobs")
def logprobs(ctx: ProbeContext) -> RequestSpec:
    """logprobs true, top_logprobs 2, 4 tokens."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}], subject=("logprobs", "top_logprobs"),
                                     max_tokens=4, temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS))


def _logprobs(ex: Exchange) -> dict[str, Any]:
    body = _accepted_body(ex, "params.logprobs")
    lp = _choice(body).get("logprobs")
    if not isinstance(lp, dict):
        raise Blocked(f"choices[0].logprobs is {compact(lp)}", "params.logprobs", ex)
    return lp


@check("params.logprobs", rule="RESP-LOGPROB-1", probes=["params.logprobs"], needs=("logprobs",),
       quirks=["params.logprobs-rejected", "params.logprobs-ignored"])
def logprobs_returned(ex: Exchange) -> None:
    """`logprobs: true` is accepted and `choices[0].logprobs` is an object."""
    body = require_accepted(ex, "params.logprobs-rejected", f"logprobs true, top_logprobs {TOP_LOGPROBS}")
    choice = _choice(body)
    if not isinstance(choice.get("logprobs"), dict):
        raise QuirkFound("params.logprobs-ignored", f"choices[0].logprobs is {compact(choice.get('logprobs'))}"
                         + ("" if "logprobs" in choice else " (key absent)"), ex, evidence(ex))


def _entry_problems(entry: Any, *, nested: bool) -> list[str]:
    if not isinstance(entry, dict):
        return [f"entry is {compact(entry)}"]
    out = []
    if not isinstance(entry.get("token"), str):
        out.append(f"token is {compact(entry.get('token'))}")
    if not _is_number(entry.get("logprob")):
        out.append(f"logprob is {compact(entry.get('logprob'))}")
    if "bytes" not in entry:
        out.append("no bytes key")
    elif entry["bytes"] is not None and not (isinstance(entry["bytes"], list)
                                             and all(is_int(b) and 0 <= b < 256 for b in entry["bytes"])):
        out.append(f"bytes is {compact(entry['bytes'])}")
    if not nested and not isinstance(entry.get("top_logprobs"), list):
        out.append(f"top_logprobs is {compact(entry.get('top_logprobs'))}")
    return out


@check("params.logprobs-shape", rule="RESP-LOGPROB-1", probes=["params.logprobs"], needs=("logprobs",),
       quirks=["params.logprobs-shape"], requires=OK_LOGPROBS)
def logprobs_shape(ex: Exchange) -> None:
    """`logprobs` is `{content, refusal}`; each entry has token, logprob, bytes and top_logprobs entries alike."""
    lp = _logprobs(ex)
    problems = [f"no `{k}` key" for k in ("content", "refusal") if k not in lp]
    content = lp.get("content")
    if content is not None and not isinstance(content, list):
        problems.append(f"content is {compact(content)}")
    for i, entry in enumerate(content if isinstance(content, list) else []):
        problems += [f"content[{i}]: {p}" for p in _entry_problems(entry, nested=False)]
        tops = entry.get("top_logprobs") if isinstance(entry, dict) else None
        for j, top in enumerate(tops if isinstance(tops, list) else []):
            problems += [f"content[{i}].top_logprobs[{j}]: {p}" for p in _entry_problems(top, nested=True)]
    if problems:
        raise QuirkFound("params.logprobs-shape", "; ".join(problems[:6]) + (" …" if len(problems) > 6 else ""), ex,
                         evidence(ex, f"< \"logprobs\": {compact(lp)}"))


@check("params.top-logprobs", rule="RESP-LOGPROB-2", probes=["params.logprobs"], needs=("logprobs",),
       quirks=["params.top-logprobs-too-many", "params.logprob-positive"])
def top_logprobs_bounded(ex: Exchange) -> None:
    """At most `top_logprobs` alternatives per token, and every logprob ≤ 0."""
    lp = _logprobs(ex)
    content = lp.get("content")
    if not isinstance(content, list):
        raise Blocked(f"logprobs.content is {compact(content)}", "params.logprobs-shape", ex)
    entries = [e for e in content if isinstance(e, dict)]
    too_many = [(e.get("token"), len(e["top_logprobs"])) for e in entries
                if isinstance(e.get("top_logprobs"), list) and len(e["top_logprobs"]) > TOP_LOGPROBS]
    if too_many:
        raise QuirkFound("params.top-logprobs-too-many", f"top_logprobs {TOP_LOGPROBS} but tokens carry "
                         f"{compact(too_many[:4])} alternatives", ex, evidence(ex, f"< \"logprobs\": {compact(lp)}"))
    values = [e.get("logprob") for e in entries]
    values += [t.get("logprob") for e in entries if isinstance(e.get("top_logprobs"), list)
               for t in e["top_logprobs"] if isinstance(t, dict)]
    positive = [v for v in values if _is_number(v) and v > 0]
    if positive:
        raise QuirkFound("params.logprob-positive", f"logprob values above 0: {compact(positive[:5])}", ex,
                         evidence(ex, f"< \"logprobs\": {compact(lp)}"))


# -- unknown fields (REQ-4) -------------------------------------------------------------------------------

@probe("params.unknown-field")
def unknown_field(ctx: ProbeContext) -> RequestSpec:
    """A top-level field no API defines (`oaicompat_unknown_field: true`)."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}], max_tokens=8,
                                     oaicompat_unknown_field=True), retries=0)


@check("params.unknown-field", rule="REQ-4", probes=["params.unknown-field"], kind="info")
def unknown_field_handling(ex: Exchange) -> list[Observation]:
    """An unknown top-level request field: rejected (as OpenAI does) or ignored."""
    if ex.status is None:
        verdict = "no-response"
    elif 200 <= ex.status < 300:
        verdict = "ignored"
    elif 400 <= ex.status < 500:
        verdict = "rejected"
    else:
        verdict = "server-error"
    value: dict[str, Any] = {"status": ex.status, "verdict": verdict}
    if ex.status is not None and ex.status >= 300:
        value["error"] = error_message(ex, 160)[2:] or None
    return [Observation("unknown-field", value)]
