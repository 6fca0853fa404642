"""Emulated deviations for the reference server, one per catalogued quirk id, and the in-process suite runner.

Every behaviour is labelled EMULATED in its docstring and cites the documented source of what it imitates (a
vendor from fixtures/quirks/*.yaml `vendors`, ../shared/reference/vendor-quirks.md or llama-server.md) or, where
no vendor is documented, the openai-wire.md rule it violates. A behaviour is a set of hooks into
`wire_server.Reference` (see its docstring); `also` names the other quirk ids the emulation unavoidably raises.

    ref = reference(BEHAVIOURS["chat.object-wrong"])       # a Reference with that deviation on
    run = await run_suite(provider(server.base_url))        # every registered check, in process

The suite runner evaluates every registered check through `oaicompat.runner.evaluate`, the path the pytest plugin
takes, for one live run: probes sent through `ProbeSession` (live only, one LiveMemo for the run, `fresh` probes
re-sent), the check run and its finding turned into an `Outcome` by `oaicompat.outcomes.decide`.
`run_behaviour` runs it for one behaviour: probes whose bytes the behaviour does not change (rendered in process
by the same handler, see wire_server.render) are not re-sent, and checks none of whose probes changed keep the
conformant outcome they would compute again from byte-identical exchanges.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import oaicompat.checks  # noqa: F401  (registers every check and probe)
from oaicompat import runner
from oaicompat.checks.base import CHECKS, PROBES, CheckSpec, ProbeContext
from oaicompat.config import Provider, parse_providers
from oaicompat.exchange import Exchange
from oaicompat.outcomes import Outcome
from oaicompat.run_mode import RunMode
from oaicompat.scrub import Scrubber
from oaicompat.session import LiveMemo, ProbeSession
from oaicompat.transport import RequestSpec, Transport

from .wire_server import (
    CONTEXT_TOKENS,
    MODEL,
    ROLES,
    WRONG_KEY,
    Framing,
    Reference,
    Reply,
    Req,
    WireRequest,
    canonical,
    error_payload,
    render,
    tokenize,
    valid_data_url,
)

KEY_ENV = "OAICOMPAT_REF_KEY"
KEY = "sk-oaicompat-reference-key-0123456789"


# -- the reference provider ---------------------------------------------------------------------------------

def provider_entry(base_url: str, **overrides: Any) -> dict[str, Any]:
    """The providers.yaml entry of the reference server (test equipment, never in the matrix).

    It declares reasoning unsupported (the reference has none) and its context window; retries are quick so
    that 5xx emulations cost milliseconds."""
    entry: dict[str, Any] = {
        "kind": "local", "title": "Reference test server", "base_url": base_url, "api_key_env": KEY_ENV,
        "model": MODEL, "limits": {"context_tokens": CONTEXT_TOKENS},
        "supports": {"reasoning": False},
        "timeouts": {"connect": 2, "read": 10, "total": 20},
        "retries": {"max_retries": 2, "max_delay": 0.01},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(entry.get(key), dict):
            entry[key] = {**entry[key], **value}
        else:
            entry[key] = value
    return entry


def provider(base_url: str, name: str = "ref", **overrides: Any) -> Provider:
    doc = {"version": 1, "providers": {name: provider_entry(base_url, **overrides)}}
    return parse_providers(doc, Path("reference-providers.yaml"), {KEY_ENV: KEY}).get(name)


def probe_keys(prov: Provider) -> dict[str, tuple[str, str | None, str]]:
    """(method, path under /v1, canonical body) of every probe as `prov` would send it."""
    ctx = ProbeContext(prov, prov.model)
    out = {}
    for name, p in PROBES.items():
        spec = p.build(ctx)
        body = spec.body_bytes()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        out[name] = (spec.method, None if spec.base_url else spec.path, canonical(parsed))
    return out


_KEYS: dict[str, dict[str, tuple[str, str | None, str]]] = {}



DEFAULT_FRAMING = Framing()   # frozen: one shared default is safe

def reference(*behaviours: Behaviour, framing: Framing = DEFAULT_FRAMING, **options: Any) -> Reference:
    """A Reference with `behaviours` on, which knows the probes' requests (for `Req.is_probe`)."""
    if "keys" not in _KEYS:
        _KEYS["keys"] = probe_keys(provider("http://reference.invalid/v1"))
    return Reference(*behaviours, framing=framing, probe_keys=_KEYS["keys"], api_key=KEY, **options)


# -- behaviours -----------------------------------------------------------------------------------------------

HOOKS = ("request", "generation", "completion", "chunks", "events", "reply")


@dataclass
class Behaviour:
    quirk: str
    doc: str = ""
    hooks: dict[str, list[Callable[..., Any]]] = field(default_factory=dict)
    also: tuple[str, ...] = ()
    provider: dict[str, Any] = field(default_factory=dict)   # overrides of the reference's providers.yaml entry
    reasoning: bool = False                                   # the emulated server is a reasoning model

    def __repr__(self) -> str:
        return f"Behaviour({self.quirk})"


BEHAVIOURS: dict[str, Behaviour] = {}


def emulates(quirk: str, hook: str, *, also: Iterable[str] = (), provider: Mapping[str, Any] | None = None,
             reasoning: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` as the `hook` of the behaviour emulating `quirk` (several hooks: decorate several
    functions; the first one's docstring, which must say EMULATED and cite a source, documents it)."""
    if hook not in HOOKS:
        raise ValueError(f"unknown hook {hook!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        b = BEHAVIOURS.get(quirk)
        if b is None:
            doc = (fn.__doc__ or "").strip()
            if "EMULATED" not in doc:
                raise ValueError(f"behaviour {quirk}: the docstring must say EMULATED and cite its source")
            b = BEHAVIOURS[quirk] = Behaviour(quirk, doc)
        b.hooks.setdefault(hook, []).append(fn)
        b.also = tuple(dict.fromkeys((*b.also, *also)))
        if provider:
            b.provider = {**b.provider, **provider}
        b.reasoning = b.reasoning or reasoning
        return fn
    return register


# Quirks no wire behaviour of this server can show, with the reason. None so far: every catalogued id has an
# emulation (capability quirks too: the reference plays a model that misses).
NOT_EMULABLE: dict[str, str] = {}


# -- what behaviours share -----------------------------------------------------------------------------------

def plain(req: Req) -> bool:
    """A text chat request: no tools, no response_format."""
    return not req.has_tools and req.format is None


def text_stream(req: Req) -> bool:
    """A streamed request without tools (the tools area owns the rules of tool-call streams)."""
    return req.stream and not req.has_tools


def chat_path(req: Req) -> bool:
    return req.api_path == "/chat/completions"


def refuse(req: Req, status: int, message: str, *, param: str | None = None, code: str | None = None,
           type_: str = "invalid_request_error", tag: str = "behaviour") -> Reply:
    return req.ref.error(status, message, type_, param, code, tag=tag)


def answer(req: Req, *, check_window: bool = True, **changes: Any) -> Reply:
    """What the reference answers to `req` with body fields changed (None removes a field); credentials are
    still checked."""
    denied = req.ref.authenticate(req)
    if denied is not None:
        return denied
    return req.ref.chat(req.with_json(**changes) if changes else req, check_window=check_window)


def choices(body: Any) -> list[dict[str, Any]]:
    ch = body.get("choices") if isinstance(body, dict) else None
    return [c for c in ch if isinstance(c, dict)] if isinstance(ch, list) else []


def messages_of(body: Any) -> list[dict[str, Any]]:
    return [c["message"] for c in choices(body) if isinstance(c.get("message"), dict)]


def chunk_objects(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c for c in chunks if isinstance(c, dict)]


def deltas(chunks: list[Any]) -> list[dict[str, Any]]:
    return [ch["delta"] for c in chunk_objects(chunks) for ch in choices(c) if isinstance(ch.get("delta"), dict)]


def finish_chunk(chunks: list[Any]) -> dict[str, Any] | None:
    for c in chunk_objects(chunks):
        if any(ch.get("finish_reason") is not None for ch in choices(c)):
            return c
    return None


def index_of(items: list[Any], item: Any) -> int:
    """list.index by identity (chunk dicts can be equal to each other)."""
    return next(i for i, x in enumerate(items) if x is item)


def clone(obj: Any) -> Any:
    return copy.deepcopy(obj)


def raw_event(data: bytes, *, event: bytes | None = None) -> bytes:
    return (b"event: " + event + b"\n" if event else b"") + b"data: " + data + b"\n\n"


def tool_entries(chunks: list[Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(chunk, tool-call entry) for every entry of every delta.tool_calls, in stream order."""
    out = []
    for c in chunk_objects(chunks):
        for ch in choices(c):
            delta = ch.get("delta")
            for entry in (delta.get("tool_calls") or []) if isinstance(delta, dict) else []:
                out.append((c, entry))
    return out


def call_count(chunks: list[Any]) -> int:
    return len({e.get("index") for _, e in tool_entries(chunks) if e.get("id")})


def has_role(req: Req, role: str) -> bool:
    return any(m.get("role") == role for m in req.messages)


def context_reply(reply: Reply) -> bool:
    return reply.kind == "error" and reply.tag == "context"


def client_error(reply: Reply, req: Req) -> bool:
    """A refusal of a client mistake on chat completions, other than the context window."""
    return reply.kind == "error" and chat_path(req) and reply.tag in ("auth", "json", "validation", "model")


def error_object(reply: Reply) -> dict[str, Any] | None:
    err = reply.payload.get("error") if isinstance(reply.payload, dict) else None
    return err if isinstance(err, dict) else None


def rebuild_choice(choice: Any, text: str, finish: str) -> None:
    """Set a generated Choice to `text` (the reference's tokenizer) and `finish`."""
    choice.tokens = tokenize(text)
    choice.content = "".join(choice.tokens)
    choice.finish = finish


WEATHER_JSON = '{"city": "Paris"}'
HTML_PAGE = (b"<!DOCTYPE html><html><head><title>Gateway</title></head><body><h1>OK</h1>"
             b"<p>The request was handled.</p></body></html>")


# -- chat ------------------------------------------------------------------------------------------------------

@emulates("chat.basic-rejected", "request")
def chat_basic_rejected(req: Req) -> Reply | None:
    """EMULATED: the plain request (chat.basic's: one user message, max_tokens 16, temperature 0) is refused with
    400, as a server refuses a request that lacks a vendor parameter it requires. Narrowed to that one request so
    that the other probes still reach the checks that own them. Source: no vendor documented; violates
    openai-wire.md RESP-1."""
    if req.is_probe("chat.basic"):
        return refuse(req, 400, "Missing required parameter: 'top_k'.", param="top_k")
    return None


@emulates("chat.content-type-not-json", "reply")
def chat_content_type(reply: Reply, req: Req) -> None:
    """EMULATED: non-streamed chat replies are labelled `text/plain; charset=utf-8` (the JSON body is unchanged;
    openai-python still parses it). Source: no vendor documented; violates openai-wire.md RESP-1."""
    if reply.kind == "completion":
        reply.content_type = "text/plain; charset=utf-8"


@emulates("chat.object-wrong", "completion")
def chat_object_wrong(body: dict, req: Req) -> None:
    """EMULATED: non-streamed replies say `"object": "text_completion"` (the legacy completions object).
    Source: no vendor documented; violates openai-wire.md RESP-2."""
    body["object"] = "text_completion"


@emulates("chat.id-missing", "completion")
def chat_id_missing(body: dict, req: Req) -> None:
    """EMULATED: non-streamed replies carry no `id`. Source: no vendor documented; violates openai-wire.md
    RESP-2."""
    body.pop("id", None)


@emulates("chat.created-not-unix-seconds", "completion")
def chat_created_ms(body: dict, req: Req) -> None:
    """EMULATED: `created` is in milliseconds (13 digits). Source: no vendor documented; violates
    openai-wire.md RESP-2."""
    body["created"] = body["created"] * 1000


@emulates("chat.model-missing", "completion")
def chat_model_missing(body: dict, req: Req) -> None:
    """EMULATED: `model` is an empty string. Source: no vendor documented; violates openai-wire.md RESP-2."""
    body["model"] = ""


@emulates("chat.choices-not-one", "completion")
def chat_choices_not_one(body: dict, req: Req) -> None:
    """EMULATED: without `n`, the reply carries the choice twice (indexes 0 and 1), as if n defaulted to 2.
    Source: no vendor documented; violates openai-wire.md RESP-CHOICE-2."""
    if req.field("n") is None and body["choices"]:
        body["choices"].append({**clone(body["choices"][0]), "index": 1})


@emulates("chat.choice-logprobs-key-missing", "completion")
def chat_choice_logprobs_missing(body: dict, req: Req) -> None:
    """EMULATED: when logprobs were not requested, choices have no `logprobs` key at all. Source: llama-server
    (measured), ../shared/reference/llama-server.md ("no `logprobs` key")."""
    if req.field("logprobs") is not True:
        for c in choices(body):
            c.pop("logprobs", None)


@emulates("chat.role-not-assistant", "completion")
def chat_role_missing(body: dict, req: Req) -> None:
    """EMULATED: the message has no `role`. Source: no vendor documented; violates openai-wire.md RESP-MSG-1."""
    for m in messages_of(body):
        m.pop("role", None)


@emulates("chat.refusal-key-missing", "completion")
def chat_refusal_missing(body: dict, req: Req) -> None:
    """EMULATED: the message has no `refusal` key. Source: no vendor documented; violates openai-wire.md
    RESP-MSG-1."""
    for m in messages_of(body):
        m.pop("refusal", None)


@emulates("chat.content-not-string", "completion")
def chat_content_parts(body: dict, req: Req) -> None:
    """EMULATED: text replies give `content` as a list of text parts. Only for requests without tools and
    response_format (the JSON and tools areas own those replies). Source: no vendor documented; violates
    openai-wire.md RESP-MSG-1."""
    if plain(req):
        for m in messages_of(body):
            if isinstance(m.get("content"), str):
                m["content"] = [{"type": "text", "text": m["content"]}]


@emulates("chat.finish-reason-invalid", "completion", also=("stream.finish-reason-differs",))
def chat_finish_reason_invalid(body: dict, req: Req) -> None:
    """EMULATED: a natural end says `"finish_reason": "end_turn"` in non-streamed replies (streams keep "stop").
    Also raises stream.finish-reason-differs: the seeded pair then ends differently streamed and not. Source: no
    vendor documented; violates openai-wire.md RESP-CHOICE-3."""
    for c in choices(body):
        if c.get("finish_reason") == "stop":
            c["finish_reason"] = "end_turn"


@emulates("chat.usage-missing", "completion")
def chat_usage_missing(body: dict, req: Req) -> None:
    """EMULATED: non-streamed replies carry no `usage`. Source: no vendor documented; violates openai-wire.md
    RESP-3."""
    body.pop("usage", None)


@emulates("chat.usage-inconsistent", "completion")
def chat_usage_inconsistent(body: dict, req: Req) -> None:
    """EMULATED: `total_tokens` is one more than prompt + completion. Source: no vendor documented; violates
    openai-wire.md RESP-3."""
    body["usage"]["total_tokens"] += 1


@emulates("chat.body-not-json", "reply", also=("sdk.completion-parse-error",))
def chat_body_not_json(reply: Reply, req: Req) -> None:
    """EMULATED: the 200 reply to the plain request is labelled JSON but cut off mid-object. Narrowed to
    chat.basic's request (every check that reads another 200 would name its own probe). Also raises
    sdk.completion-parse-error: openai-python fails on the same bytes. Source: no vendor documented; violates
    openai-wire.md RESP-1."""
    if reply.kind == "completion" and req.is_probe("chat.basic"):
        reply.raw = req.ref.encode(reply.payload)[:40]


@emulates("chat.usage-details-malformed", "completion")
def chat_usage_details(body: dict, req: Req) -> None:
    """EMULATED: `usage.prompt_tokens_details.cached_tokens` is the string "0". Source: no vendor documented;
    violates openai-wire.md RESP-4."""
    body["usage"]["prompt_tokens_details"]["cached_tokens"] = "0"


@emulates("chat.system-fingerprint-not-string", "completion")
def chat_fingerprint(body: dict, req: Req) -> None:
    """EMULATED: `system_fingerprint` is a number. Source: no vendor documented; violates openai-wire.md
    RESP-5."""
    body["system_fingerprint"] = 20240801


@emulates("chat.service-tier-invalid", "completion")
def chat_service_tier(body: dict, req: Req) -> None:
    """EMULATED: `service_tier` is "standard" (outside the enum). Source: no vendor documented; violates
    openai-wire.md RESP-5."""
    body["service_tier"] = "standard"


@emulates("chat.tool-calls-empty-array", "completion")
def chat_tool_calls_empty(body: dict, req: Req) -> None:
    """EMULATED: requests without tools get `"tool_calls": []` in the message. Source: no vendor documented;
    violates openai-wire.md RESP-MSG-2."""
    if not req.has_tools:
        for m in messages_of(body):
            m["tool_calls"] = []


@emulates("chat.logprobs-unrequested", "completion")
def chat_logprobs_unrequested(body: dict, req: Req) -> None:
    """EMULATED: `logprobs` is an (empty) object although the request did not ask for it. Source: no vendor
    documented; violates openai-wire.md RESP-LOGPROB-2."""
    if req.field("logprobs") is not True:
        for c in choices(body):
            c["logprobs"] = {"content": [], "refusal": None}


@emulates("chat.model-not-echoed", "completion")
def chat_model_not_echoed(body: dict, req: Req) -> None:
    """EMULATED: the reply names the model file the server loaded, not the requested id. Source: llama-server
    (reported), ggml-org/llama.cpp tools/server/tests/unit/test_chat_completion.py (openai-wire.md DEV-6)."""
    body["model"] = "ggml-model-q4_k_m.gguf"


@emulates("chat.system-role-rejected", "request")
def chat_system_rejected(req: Req) -> Reply | None:
    """EMULATED: a `system` message is refused (400), as templates without a system role do. Source: no vendor
    documented; violates openai-wire.md MSG-1."""
    if chat_path(req) and has_role(req, "system"):
        return refuse(req, 400, "System role not supported", param="messages")
    return None


@emulates("chat.developer-role-rejected", "request")
def chat_developer_rejected(req: Req) -> Reply | None:
    """EMULATED: a `developer` message is refused (400): the server predates the role. Source: no vendor
    documented; violates openai-wire.md MSG-1."""
    if chat_path(req) and has_role(req, "developer"):
        return refuse(req, 400, "Invalid value: 'developer'. Supported values are: 'system', 'assistant', 'user', "
                                "'function', and 'tool'.", param="messages[0].role", code="invalid_value")
    return None


@emulates("chat.multi-turn-rejected", "request")
def chat_multi_turn_rejected(req: Req) -> Reply | None:
    """EMULATED: a history with an assistant text turn is refused (400, "conversation roles must alternate"
    style). Assistant turns that only carry tool calls are still accepted (the tools area owns those). Source: no
    vendor documented; violates openai-wire.md MSG-3."""
    if chat_path(req) and any(m.get("role") == "assistant" and isinstance(m.get("content"), str)
                              for m in req.messages):
        return refuse(req, 400, "Conversation roles must alternate user/assistant/user/assistant/...",
                      param="messages")
    return None


@emulates("chat.name-rejected", "request")
def chat_name_rejected(req: Req) -> Reply | None:
    """EMULATED: a message carrying `name` is refused (400). Source: groq (documented),
    https://console.groq.com/docs/openai (via ../shared/reference/vendor-quirks.md)."""
    if chat_path(req) and any("name" in m for m in req.messages):
        return refuse(req, 400, "'messages.0' : for 'role:user' the following must be satisfied[('messages.0' : "
                                "property 'name' is unsupported)]", param="messages")
    return None


@emulates("chat.content-parts-rejected", "request", provider={"supports": {"vision": False}})
def chat_content_parts_rejected(req: Req) -> Reply | None:
    """EMULATED: user content given as a list of parts is refused (400): a text-only model that wants string
    content; the provider entry accordingly declares no vision. Source: dashscope (reported),
    ../shared/reference/vendor-quirks.md (LiteLLM flattens content lists for it)."""
    if chat_path(req) and any(m.get("role") == "user" and isinstance(m.get("content"), list) for m in req.messages):
        return refuse(req, 400, "Input should be a valid string: messages[0].content", param="messages")
    return None


@emulates("chat.content-parts-mangled", "generation")
def chat_content_parts_mangled(gen: Any, req: Req) -> None:
    """EMULATED: content given as a list of parts is rendered into the prompt as raw JSON, so it costs more
    prompt tokens than the same text as a string. Source: no vendor documented; violates openai-wire.md MSG-2."""
    for m in req.messages:
        if isinstance(m.get("content"), list):
            gen.prompt_tokens += len(tokenize(canonical(m["content"]))) - len(tokenize(
                "\n".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))))


# -- context ---------------------------------------------------------------------------------------------------

def prompt_over_window(req: Req) -> bool:
    if not chat_path(req) or req.ref.validate(req) is not None:
        return False
    return req.ref.prompt_tokens(req) > req.ref.context_tokens


@emulates("context.overflow-wrong-status", "reply")
def context_wrong_status(reply: Reply, req: Req) -> None:
    """EMULATED: a context overflow is refused with 413 instead of 400 (body unchanged). Source: no vendor
    documented; violates openai-wire.md ERR-400-2."""
    if context_reply(reply):
        reply.status = 413


@emulates("context.overflow-silent-truncation", "generation")
def context_silent_truncation(gen: Any, req: Req) -> None:
    """EMULATED: a non-streamed prompt longer than the window is cut to fit (the oldest tokens dropped) and
    answered 200; usage counts what was kept. Source: ollama (reported), ../shared/reference/vendor-quirks.md."""
    room = req.ref.context_tokens - (req.cap or 0)
    if not req.stream and gen.prompt_tokens > room:
        gen.prompt_tokens = room


@emulates("context.overflow-accepted", "request")
def context_overflow_accepted(req: Req) -> Reply | None:
    """EMULATED: a non-streamed prompt longer than the declared window is answered 200 in full (the server's
    real window is larger than providers.yaml declares). Source: no vendor documented; violates openai-wire.md
    ERR-400-2."""
    if not req.stream and prompt_over_window(req):
        return answer(req, check_window=False)
    return None


@emulates("context.overflow-not-enveloped", "reply")
def context_not_enveloped(reply: Reply, req: Req) -> None:
    """EMULATED: the context-overflow refusal is a plain-text body. Source: no vendor documented; violates
    openai-wire.md ERR-1."""
    if context_reply(reply):
        reply.raw, reply.content_type = b"context length exceeded", "text/plain; charset=utf-8"


@emulates("context.overflow-nonstandard-error", "reply")
def context_nonstandard_error(reply: Reply, req: Req) -> None:
    """EMULATED: the overflow error is llama-server's: `{"error": {"code": 400, "message": "request (N tokens)
    exceeds the available context size (512 tokens), try increasing it", "type": "exceed_context_size_error",
    "n_prompt_tokens": N, "n_ctx": 512}}`. Source: llama-server (measured), ../shared/reference/llama-server.md."""
    if context_reply(reply):
        n = req.ref.prompt_tokens(req)
        reply.payload = {"error": {"code": 400, "message": f"request ({n} tokens) exceeds the available context "
                                   f"size ({req.ref.context_tokens} tokens), try increasing it",
                                   "type": "exceed_context_size_error", "n_prompt_tokens": n,
                                   "n_ctx": req.ref.context_tokens}}


@emulates("context.stream-overflow-empty-body", "reply")
def context_stream_empty(reply: Reply, req: Req) -> Reply | None:
    """EMULATED: a streamed overflow gets 200 event-stream headers, an empty body, and the connection closed.
    Source: llama-cpp-python (measured), ../shared/reference/llama-server.md."""
    if context_reply(reply) and req.stream:
        return Reply(200, events=[], content_type="text/event-stream", kind="stream", after="close")
    return None


@emulates("context.stream-overflow-error-event", "reply")
def context_stream_error_event(reply: Reply, req: Req) -> Reply | None:
    """EMULATED: a streamed overflow gets 200 and the error as an SSE event (`data: {"error": …}`), then
    `[DONE]`. Source: no vendor documented; violates openai-wire.md STREAM-ERR-1."""
    if context_reply(reply) and req.stream:
        return Reply(200, events=[req.ref.event(reply.payload), req.ref.event("[DONE]")],
                     content_type="text/event-stream", kind="stream")
    return None


@emulates("context.stream-overflow-accepted", "request")
def context_stream_accepted(req: Req) -> Reply | None:
    """EMULATED: a streamed prompt longer than the window is streamed as if it fitted (non-streamed it is still
    refused). Source: no vendor documented; violates openai-wire.md STREAM-ERR-1."""
    if req.stream and prompt_over_window(req):
        return answer(req, check_window=False)
    return None


@emulates("context.connection-broken-after-overflow", "reply")
def context_poison(reply: Reply, req: Req) -> None:
    """EMULATED: after refusing a streamed overflow (a correct 400), the keep-alive connection is left broken:
    the next request on it is answered with a reset. Source: llama-cpp-python (measured),
    ../shared/reference/llama-server.md."""
    if context_reply(reply) and req.stream:
        req.conn["poisoned"] = True


@emulates("context.connection-broken-after-overflow", "request")
def context_poisoned(req: Req) -> Reply | None:
    if req.conn.pop("poisoned", False):
        return Reply(drop=True)
    return None


@emulates("context.overflow-max-tokens-shrunk", "request")
def context_max_tokens_shrunk(req: Req) -> Reply | None:
    """EMULATED: when prompt + max_tokens exceed the window but the prompt fits, max_tokens is lowered to what the
    window leaves and the reply is generated up to that (finish_reason "length"). Source: fireworks
    (documented), ../shared/reference/vendor-quirks.md."""
    ref = req.ref
    if not chat_path(req) or req.stream or req.cap is None or ref.validate(req) is not None:
        return None
    prompt = ref.prompt_tokens(req)
    left = ref.context_tokens - prompt
    if prompt > ref.context_tokens or req.cap <= left:
        return None
    reply = answer(req, check_window=False, max_tokens=left, max_completion_tokens=None)
    if reply.kind != "completion":
        return reply
    for c in choices(reply.payload):
        c["message"]["content"] = " ".join(["story"] * left)
        c["finish_reason"] = "length"
    reply.payload["usage"].update(completion_tokens=left, total_tokens=prompt + left)
    return reply


@emulates("context.overflow-max-tokens-unanswered", "request")
def context_max_tokens_unanswered(req: Req) -> Reply | None:
    """EMULATED: when prompt + max_tokens exceed the window but the prompt fits, nothing is sent back: the
    connection is reset (the real server computes until the client times out). Source: transformers-serve
    (measured), ../shared/reference/llama-server.md: an over-long prompt is never refused and the server
    computes for minutes."""
    ref = req.ref
    if not chat_path(req) or req.stream or req.cap is None or ref.validate(req) is not None:
        return None
    prompt = ref.prompt_tokens(req)
    if prompt > ref.context_tokens or req.cap <= ref.context_tokens - prompt:
        return None
    return Reply(drop=True)


# -- errors ----------------------------------------------------------------------------------------------------

def wrong_key(req: Req) -> bool:
    return req.key == WRONG_KEY


@emulates("errors.wrong-key-accepted", "request")
def errors_wrong_key_accepted(req: Req) -> Reply | None:
    """EMULATED: any non-empty API key is accepted (keys are not checked). Source: no vendor documented; violates
    openai-wire.md ERR-401-1."""
    if req.key is not None:
        return req.ref.route(req, check_auth=False)
    return None


@emulates("errors.wrong-key-status", "request")
def errors_wrong_key_status(req: Req) -> Reply | None:
    """EMULATED: a wrong key is refused with 400 `{"error": {"message": "No connected db.", "type":
    "no_db_connection", …}}` (a proxy that checks keys in a database it does not have). Source: litellm
    (measured), ../shared/reference/llama-server.md."""
    if wrong_key(req):
        return refuse(req, 400, "No connected db.", type_="no_db_connection", code="400")
    return None


@emulates("errors.missing-key-accepted", "request")
def errors_missing_key_accepted(req: Req) -> Reply | None:
    """EMULATED: a request without any API key is served. Source: no vendor documented; violates openai-wire.md
    ERR-401-1."""
    if req.key is None:
        return req.ref.route(req, check_auth=False)
    return None


@emulates("errors.missing-key-status", "request")
def errors_missing_key_status(req: Req) -> Reply | None:
    """EMULATED: a request without an API key is refused with 403 (a gateway's "Forbidden"). Source: no vendor
    documented; violates openai-wire.md ERR-401-1."""
    if req.key is None:
        return refuse(req, 403, "Forbidden: missing credentials", type_="permission_error", code="forbidden")
    return None


def unknown_model(req: Req) -> bool:
    model = req.field("model")
    return chat_path(req) and isinstance(model, str) and model not in req.ref.models


@emulates("errors.unknown-model-accepted", "request")
def errors_unknown_model_accepted(req: Req) -> Reply | None:
    """EMULATED: an unknown model id is served by the one loaded model. Source: no vendor documented; violates
    openai-wire.md ERR-404-1."""
    if unknown_model(req):
        return answer(req, model=req.ref.models[0])
    return None


@emulates("errors.unknown-model-status", "reply")
def errors_unknown_model_status(reply: Reply, req: Req) -> None:
    """EMULATED: an unknown model on chat completions is refused with 400 `invalid_request_error` (not 404).
    Source: litellm (measured), ../shared/reference/llama-server.md."""
    if reply.kind == "error" and reply.tag == "model" and chat_path(req):
        reply.status = 400
        reply.payload = error_payload(f"Invalid model name passed in model={req.field('model')}. Call `/v1/models` "
                                      f"to view available models for your key.", param="model", code="400")


@emulates("errors.unknown-model-code", "reply")
def errors_unknown_model_code(reply: Reply, req: Req) -> None:
    """EMULATED: the 404 for an unknown model carries `code: null`. Source: no vendor documented; violates
    openai-wire.md ERR-404-1."""
    err = error_object(reply)
    if reply.tag == "model" and chat_path(req) and err is not None:
        err["code"] = None


def default_body(req: Req, **fields: Any) -> Req:
    body = {"model": req.ref.models[0], "messages": [{"role": "user", "content": ""}]}
    if isinstance(req.json, dict):
        body.update({k: v for k, v in req.json.items() if k in ("model", "max_tokens", "temperature")
                     and isinstance(v, (int, float, str))})
    body.update(fields)
    return Req(req.wire, req.ref, body)


@emulates("errors.malformed-json-accepted", "request")
def errors_malformed_accepted(req: Req) -> Reply | None:
    """EMULATED: a body that is not JSON is taken as an empty request and answered 200. Source: no vendor
    documented; violates openai-wire.md ERR-400-1."""
    if chat_path(req) and not req.parsed and req.ref.authenticate(req) is None:
        return req.ref.chat(default_body(req))
    return None


@emulates("errors.lenient-validation", "request")
def errors_lenient(req: Req) -> Reply | None:
    """EMULATED: a request without `messages` is answered 200 (messages default to an empty conversation).
    Source: llama-cpp-python (measured), ../shared/reference/llama-server.md."""
    if chat_path(req) and isinstance(req.json, dict) and "messages" not in req.json:
        return answer(req, messages=[{"role": "user", "content": ""}])
    return None


@emulates("errors.messages-empty-accepted", "request")
def errors_messages_empty(req: Req) -> Reply | None:
    """EMULATED: `messages: []` is answered 200. Source: no vendor documented; violates openai-wire.md REQ-1."""
    if chat_path(req) and req.field("messages") == []:
        return answer(req, messages=[{"role": "user", "content": ""}])
    return None


@emulates("errors.messages-type-accepted", "request")
def errors_messages_type(req: Req) -> Reply | None:
    """EMULATED: `messages` given as a string is taken as one user message. Source: no vendor documented;
    violates openai-wire.md REQ-1."""
    if chat_path(req) and isinstance(req.field("messages"), str):
        return answer(req, messages=[{"role": "user", "content": req.field("messages")}])
    return None


@emulates("errors.invalid-role-accepted", "request")
def errors_invalid_role(req: Req) -> Reply | None:
    """EMULATED: a message role outside the spec is accepted (a chat template that takes custom roles). Source:
    vllm (documented), vllm-project/vllm tests/entrypoints/openai/chat_completion/test_chat.py::test_custom_role
    (openai-wire.md DEV-3)."""
    msgs = req.messages
    if chat_path(req) and any(m.get("role") not in ROLES for m in msgs):
        return answer(req, messages=[{**m, "role": m.get("role") if m.get("role") in ROLES else "user"}
                                     for m in msgs])
    return None


@emulates("errors.temperature-range-accepted", "request")
def errors_temperature(req: Req) -> Reply | None:
    """EMULATED: a temperature above 2 is clamped to 2, not refused. Source: no vendor documented; violates
    openai-wire.md REQ-RANGE-1."""
    t = req.field("temperature")
    if chat_path(req) and isinstance(t, (int, float)) and t > 2:
        return answer(req, temperature=2)
    return None


@emulates("errors.server-500-on-bad-request", "reply")
def errors_500(reply: Reply, req: Req) -> None:
    """EMULATED: a malformed JSON body is answered 500 `server_error`. Source: llama-server (measured),
    llama-cpp-python (measured), ../shared/reference/llama-server.md."""
    if reply.kind == "error" and reply.tag == "json":
        reply.status = 500
        reply.payload = error_payload("[json.exception.parse_error.101] parse error: unexpected end of input",
                                      "server_error")


@emulates("errors.no-response-on-bad-request", "reply")
def errors_no_response(reply: Reply, req: Req) -> Reply | None:
    """EMULATED: a malformed JSON body gets no response: the connection is dropped. Source: no vendor documented;
    violates openai-wire.md ERR-400-1."""
    if reply.kind == "error" and reply.tag == "json":
        return Reply(drop=True)
    return None


@emulates("errors.validation-422", "reply")
def errors_422(reply: Reply, req: Req) -> None:
    """EMULATED: invalid parameters are refused with 422 (a body that is not JSON still gets 400). Source:
    deepseek (documented), https://api-docs.deepseek.com/quick_start/error_codes."""
    if reply.kind == "error" and reply.tag == "validation" and chat_path(req) and reply.status == 400:
        reply.status = 422


@emulates("errors.bad-request-status", "reply")
def errors_415(reply: Reply, req: Req) -> None:
    """EMULATED: a body that is not JSON is refused with 415 Unsupported Media Type instead of 400. Source: no
    vendor documented; violates openai-wire.md ERR-400-1."""
    if reply.kind == "error" and reply.tag == "json":
        reply.status = 415


@emulates("errors.non-json-body", "reply")
def errors_non_json_body(reply: Reply, req: Req) -> None:
    """EMULATED: the refusal of a malformed body is plain text ("Bad Request", as llama-cpp-python answers one;
    status 400 and the application/json label kept, which other checks own). Source: llama-cpp-python
    (measured), ../shared/reference/llama-server.md."""
    if reply.kind == "error" and reply.tag == "json":
        reply.raw = b"Bad Request"


@emulates("errors.array-envelope", "reply")
def errors_array(reply: Reply, req: Req) -> None:
    """EMULATED: refusals of client mistakes on chat completions are a JSON array `[{"error": {…}}]`. Source:
    gemini (reported), FuzzAnything/PromptFuzz#42 (../shared/reference/vendor-quirks.md)."""
    if client_error(reply, req):
        reply.payload = [reply.payload]


@emulates("errors.string-error", "reply")
def errors_string(reply: Reply, req: Req) -> None:
    """EMULATED: refusals of client mistakes on chat completions are `{"error": "<message>"}`. Source: lm-studio
    (reported), lmstudio-ai/lmstudio-bug-tracker#189 (../shared/reference/vendor-quirks.md)."""
    err = error_object(reply)
    if client_error(reply, req) and err is not None:
        reply.payload = {"error": err["message"]}


@emulates("errors.non-openai-shape", "reply")
def errors_other_shape(reply: Reply, req: Req) -> None:
    """EMULATED: refusals of client mistakes on chat completions are `{"code": 20015, "message": …, "data":
    null}`. Source: siliconflow (documented), https://docs.siliconflow.com/en/faqs/error-code
    (../shared/reference/vendor-quirks.md); mistral (reported)."""
    err = error_object(reply)
    if client_error(reply, req) and err is not None:
        reply.payload = {"code": 20015, "message": err["message"], "data": None}


@emulates("errors.envelope-incomplete", "reply")
def errors_incomplete(reply: Reply, req: Req) -> None:
    """EMULATED: error objects carry code, message and type, but no `param`. Source: llama-server (measured),
    ../shared/reference/llama-server.md."""
    err = error_object(reply)
    if reply.kind == "error" and err is not None:
        err.pop("param", None)


@emulates("errors.code-type-mismatch", "reply")
def errors_code_int(reply: Reply, req: Req) -> None:
    """EMULATED: `error.code` is the HTTP status as a number in refusals of credentials and invalid requests
    (unknown-model and context-window refusals keep their string codes: errors.unknown-model-code and
    context.overflow-code own those). Source: llama-server (measured), ../shared/reference/llama-server.md;
    vllm (reported)."""
    err = error_object(reply)
    if reply.kind == "error" and err is not None and reply.tag in ("auth", "json", "validation"):
        err["code"] = reply.status


@emulates("errors.content-type-not-json", "reply")
def errors_content_type(reply: Reply, req: Req) -> None:
    """EMULATED: error replies are labelled `text/plain` (the body is the JSON envelope). Source: no vendor
    documented; violates openai-wire.md ERR-2."""
    if reply.kind == "error":
        reply.content_type = "text/plain; charset=utf-8"


@emulates("errors.unknown-path-answered", "reply")
def errors_path_answered(reply: Reply, req: Req) -> Reply | None:
    """EMULATED: a path the API does not have is answered 200 with an HTML page (a catch-all web UI). Source: no
    vendor documented; violates openai-wire.md ERR-404-2."""
    if reply.kind == "error" and reply.tag == "path":
        return Reply(200, raw=HTML_PAGE, content_type="text/html; charset=utf-8")
    return None


@emulates("errors.unknown-path-status", "reply")
def errors_path_status(reply: Reply, req: Req) -> None:
    """EMULATED: a path the API does not have is answered 405 Method Not Allowed. Source: no vendor documented;
    violates openai-wire.md ERR-404-2."""
    if reply.kind == "error" and reply.tag == "path":
        reply.status = 405


@emulates("errors.rate-limit-headers-malformed", "reply")
def errors_rate_limit(reply: Reply, req: Req) -> None:
    """EMULATED: `x-ratelimit-reset-requests` says "soon" and `x-ratelimit-remaining-tokens` is negative. Source:
    no vendor documented; violates openai-wire.md HDR-3."""
    reply.headers += [("x-ratelimit-reset-requests", "soon"), ("x-ratelimit-remaining-tokens", "-5")]


# -- image -----------------------------------------------------------------------------------------------------

NO_VISION = {"supports": {"vision": False}}


def with_images(req: Req) -> bool:
    return chat_path(req) and bool(req.images)


def without_parts(req: Req, drop: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    out = []
    for m in req.messages:
        content = m.get("content")
        if isinstance(content, list):
            m = {**m, "content": [p for p in content if not (isinstance(p, dict) and drop(p))]}
        out.append(m)
    return out


def unknown_part(p: dict[str, Any]) -> bool:
    return p.get("type") not in ("text", "image_url", "input_audio", "file", "refusal")


@emulates("image.unsupported-5xx", "request", provider=NO_VISION)
def image_500(req: Req) -> Reply | None:
    """EMULATED: a request with an image part is answered 500 "image input is not supported" (no multimodal
    projector loaded); the provider entry declares no vision. Source: llama-server (measured),
    ../shared/reference/llama-server.md."""
    if with_images(req):
        return refuse(req, 500, "image input is not supported - hint: if this is unexpected, you may need to "
                                "provide the mmproj", type_="server_error")
    return None


@emulates("image.rejection-not-enveloped", "request", provider=NO_VISION)
def image_refused_plain(req: Req) -> Reply | None:
    """EMULATED: a request with an image part is refused with 400 and a plain-text body; the provider entry
    declares no vision. Source: no vendor documented; violates openai-wire.md ERR-1."""
    if with_images(req):
        return Reply(400, raw=b"image input is not supported", content_type="text/plain; charset=utf-8",
                     kind="error", tag="image")
    return None


@emulates("image.silently-dropped", "request", provider=NO_VISION)
def image_dropped(req: Req) -> Reply | None:
    """EMULATED: image parts are dropped before the prompt is built and the request is answered 200 (usage
    counts the text only); the provider entry declares no vision. Source: llama-cpp-python (measured),
    ../shared/reference/llama-server.md."""
    if with_images(req) and req.ref.validate(req) is None:
        return answer(req, messages=without_parts(req, lambda p: p.get("type") == "image_url"))
    return None


@emulates("image.unknown-part-accepted", "request")
def image_unknown_accepted(req: Req) -> Reply | None:
    """EMULATED: content parts of an unknown `type` are ignored and the request answered 200. Source: no vendor
    documented; violates openai-wire.md MSG-PART-1."""
    if chat_path(req) and any(unknown_part(p) for p in req.parts()):
        return answer(req, messages=without_parts(req, unknown_part))
    return None


@emulates("image.unknown-part-5xx", "request")
def image_unknown_500(req: Req) -> Reply | None:
    """EMULATED: a content part of an unknown `type` makes the server fail with 500. Source: no vendor
    documented; violates openai-wire.md MSG-PART-1."""
    if chat_path(req) and any(unknown_part(p) for p in req.parts()):
        return refuse(req, 500, "Internal server error: unhandled content part", type_="server_error")
    return None


@emulates("image.unsupported", "request")
def image_unsupported(req: Req) -> Reply | None:
    """EMULATED: every image part is refused with 400 although the provider entry declares vision. Source: no
    vendor documented; violates openai-wire.md MSG-2."""
    if with_images(req):
        return refuse(req, 400, "This model does not support image inputs.", param="messages",
                      code="image_not_supported")
    return None


@emulates("image.data-url-rejected", "request")
def image_data_url_rejected(req: Req) -> Reply | None:
    """EMULATED: images given as `data:` URIs are refused (400); http(s) URLs are accepted. Source: no vendor
    documented; violates openai-wire.md MSG-2."""
    if with_images(req) and any(str(i.get("url", "")).startswith("data:") for i in req.images):
        return refuse(req, 400, "Only http(s) image URLs are supported.", param="messages")
    return None


@emulates("image.http-url-rejected", "request")
def image_http_rejected(req: Req) -> Reply | None:
    """EMULATED: images given as http(s) URLs are refused (400: the server cannot fetch them); data URIs are
    accepted. Source: no vendor documented; violates openai-wire.md MSG-2."""
    if with_images(req) and any(str(i.get("url", "")).startswith(("http://", "https://")) for i in req.images):
        return refuse(req, 400, "Failed to fetch image: network access is disabled.", param="messages")
    return None


@emulates("image.detail-rejected", "request")
def image_detail_rejected(req: Req) -> Reply | None:
    """EMULATED: `image_url.detail` is refused as an unknown field (400). Source: no vendor documented; violates
    openai-wire.md MSG-2."""
    if with_images(req) and any("detail" in i for i in req.images):
        return refuse(req, 400, "Unrecognized field 'detail' in image_url.", param="messages")
    return None


def image_urls(req: Req) -> list[str]:
    return [str(i.get("url", "")) for i in req.images]


@emulates("image.bad-image-5xx", "request")
def image_bad_5xx(req: Req) -> Reply | None:
    """EMULATED: a data URL without `;base64` is answered 501 (NotImplementedError, "Only base64 data URLs are
    supported for now.") and a `file://` URL 500 (InternalServerError), both in the error envelope; other bad
    images get the reference's 400. Source: vllm (measured on vllm-vision), violates openai-wire.md ERR-400-1."""
    if not with_images(req):
        return None
    urls = image_urls(req)
    if any(u.startswith("data:") and ";base64" not in u.split(",", 1)[0] for u in urls):
        return refuse(req, 501, "Only base64 data URLs are supported for now.", type_="NotImplementedError")
    if any(u.lower().startswith("file:") for u in urls):
        return refuse(req, 500, "Cannot load local files without `--allowed-local-media-path`.",
                      type_="InternalServerError")
    return None


@emulates("image.bad-image-accepted", "request")
def image_bad_accepted(req: Req) -> Reply | None:
    """EMULATED: data URLs whose payload is no image are dropped from the prompt and the request answered 200.
    Source: no vendor documented; violates openai-wire.md ERR-400-1."""
    def broken(p: dict[str, Any]) -> bool:
        image = p.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        return p.get("type") == "image_url" and isinstance(url, str) and url.startswith("data:") \
            and not valid_data_url(url)
    if chat_path(req) and any(broken(p) for p in req.parts()):
        return answer(req, messages=without_parts(req, broken))
    return None


@emulates("image.url-string-accepted", "request")
def image_url_string_accepted(req: Req) -> Reply | None:
    """EMULATED: `image_url` given as a string is read as the URL and the request answered 200. Source:
    transformers-serve (measured on transformers-serve-vision), mistral; violates openai-wire.md ERR-400-1."""
    if not chat_path(req) or not any(p.get("type") == "image_url" and isinstance(p.get("image_url"), str)
                                     for p in req.parts()):
        return None
    messages = []
    for m in req.messages:
        content = m.get("content")
        if isinstance(content, list):
            m = {**m, "content": [{**p, "image_url": {"url": p["image_url"]}}
                                  if isinstance(p, dict) and isinstance(p.get("image_url"), str) else p
                                  for p in content]}
        messages.append(m)
    return answer(req, messages=messages)


@emulates("image.bad-image-not-enveloped", "reply")
def image_bad_plain(reply: Reply, req: Req) -> None:
    """EMULATED: the refusal of a bad image keeps its 400 but its body is plain text. Source: transformers-serve
    (measured on transformers-serve-vision, where it is a 500 'Internal Server Error'), violates openai-wire.md
    ERR-1."""
    if reply.kind == "error" and reply.tag == "image":
        reply.raw, reply.content_type = b"Bad Request: the image could not be read", "text/plain; charset=utf-8"


@emulates("image.content-not-seen", "completion")
def image_not_seen(body: dict, req: Req) -> None:
    """EMULATED: image parts are accepted and counted, but the model names the wrong colour (a model that does
    not see the pixels). Source: no vendor documented; the capability behind openai-wire.md MSG-2."""
    if req.images:
        for m in messages_of(body):
            m["content"] = "Blue."


# -- json ------------------------------------------------------------------------------------------------------

def wants(req: Req, kind: str) -> bool:
    return chat_path(req) and req.format == kind


@emulates("json.object-rejected", "request")
def json_object_rejected(req: Req) -> Reply | None:
    """EMULATED: `response_format: json_object` is refused (400). Source: lm-studio (reported), mistral.rs
    (documented), ../shared/reference/vendor-quirks.md."""
    if wants(req, "json_object"):
        return refuse(req, 400, "'response_format.type' must be 'json_schema' or 'text'",
                      param="response_format.type")
    return None


@emulates("json.object-ignored", "request")
def json_object_ignored(req: Req) -> Reply | None:
    """EMULATED: `response_format: json_object` is silently ignored: the reply is plain text. Source:
    anthropic-openai-compat (documented), ../shared/reference/vendor-quirks.md."""
    if wants(req, "json_object") and req.ref.validate(req) is None:
        return answer(req, response_format=None)
    return None


@emulates("json.object-blank-output", "completion")
def json_object_blank(body: dict, req: Req) -> None:
    """EMULATED: json_object replies come back as blanks (the text replaced by spaces), finish_reason unchanged.
    Source: deepseek (documented), ../shared/reference/vendor-quirks.md."""
    if req.format == "json_object":
        for m in messages_of(body):
            if isinstance(m.get("content"), str):
                m["content"] = " " * len(m["content"])


@emulates("json.object-needs-json-word", "request")
def json_object_word(req: Req) -> Reply | None:
    """EMULATED: json_object is refused unless the word "json" appears in the messages. Source: deepseek
    (documented), ../shared/reference/vendor-quirks.md."""
    if wants(req, "json_object") and not any("json" in str(m.get("content", "")).lower() for m in req.messages):
        return refuse(req, 400, "'messages' must contain the word 'json' in some form, to use 'response_format' of "
                                "type 'json_object'.", param="messages")
    return None


@emulates("json.object-cut-not-length", "completion")
def json_object_cut(body: dict, req: Req) -> None:
    """EMULATED: a json_object reply cut at max_tokens says finish_reason "stop". Source: no vendor documented;
    violates openai-wire.md RF-4."""
    if req.format == "json_object":
        for c in choices(body):
            if c.get("finish_reason") == "length":
                c["finish_reason"] = "stop"


@emulates("json.schema-rejected", "request")
def json_schema_rejected(req: Req) -> Reply | None:
    """EMULATED: `response_format: json_schema` makes the server fail with 500 `internal_server_error` (a
    validation error of its own request model). Source: llama-cpp-python (measured),
    ../shared/reference/llama-server.md."""
    if wants(req, "json_schema"):
        return refuse(req, 500, "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input "
                                "should be 'text' or 'json_object'", type_="internal_server_error")
    return None


@emulates("json.schema-ignored", "request")
def json_schema_ignored(req: Req) -> Reply | None:
    """EMULATED: a json_schema request is validated (a non-strict schema is still refused) but the schema does
    not constrain the output: the model answers `{"greeting": "hello"}`. Source: anthropic-openai-compat
    (documented), ../shared/reference/vendor-quirks.md."""
    if wants(req, "json_schema") and req.ref.validate(req) is None:
        return answer(req, response_format={"type": "json_object"})
    return None


@emulates("json.schema-cut-not-length", "completion")
def json_schema_cut(body: dict, req: Req) -> None:
    """EMULATED: a json_schema reply cut at max_tokens says finish_reason "stop". Source: no vendor documented;
    violates openai-wire.md RF-4."""
    if req.format == "json_schema":
        for c in choices(body):
            if c.get("finish_reason") == "length":
                c["finish_reason"] = "stop"


@emulates("json.schema-strict-unchecked", "request")
def json_schema_unchecked(req: Req) -> Reply | None:
    """EMULATED: `strict: true` is not checked against the strict subset: any schema is accepted. Source: no
    vendor documented; violates openai-wire.md STRICT-9."""
    rf = req.field("response_format")
    if wants(req, "json_schema") and isinstance(rf.get("json_schema"), dict) and rf["json_schema"].get("strict"):
        return answer(req, response_format={**rf, "json_schema": {**rf["json_schema"], "strict": False}})
    return None


# -- models ----------------------------------------------------------------------------------------------------

def lists_models(req: Req) -> bool:
    return req.method == "GET" and req.api_path == "/models"


def retrieves_model(req: Req) -> str | None:
    if req.method == "GET" and req.api_path and req.api_path.startswith("/models/"):
        return req.api_path[len("/models/"):]
    return None


@emulates("models.unsupported", "request", also=("models.retrieve-unsupported",))
def models_unsupported(req: Req) -> Reply | None:
    """EMULATED: the server has no models API: GET /models and GET /models/{id} are 404. Also raises
    models.retrieve-unsupported (the same missing API, seen from the retrieve route). Source: no vendor
    documented; violates openai-wire.md MODELS-1."""
    if lists_models(req) or retrieves_model(req) is not None:
        return refuse(req, 404, f"Invalid URL ({req.method} {req.raw_path})", tag="path")
    return None


@emulates("models.list-error", "request")
def models_list_error(req: Req) -> Reply | None:
    """EMULATED: GET /models fails with 500. Source: no vendor documented; violates openai-wire.md MODELS-1."""
    if lists_models(req):
        return refuse(req, 500, "upstream model registry unavailable", type_="server_error")
    return None


@emulates("models.list-not-json", "request")
def models_list_html(req: Req) -> Reply | None:
    """EMULATED: GET /models is answered 200 with an HTML page. Source: no vendor documented; violates
    openai-wire.md MODELS-1."""
    if lists_models(req):
        return Reply(200, raw=HTML_PAGE, content_type="text/html; charset=utf-8", kind="models")
    return None


@emulates("models.non-list-shape", "reply")
def models_bare_array(reply: Reply, req: Req) -> None:
    """EMULATED: GET /models returns a bare JSON array of model objects. Source: together (inferred),
    ../shared/reference/vendor-quirks.md."""
    if reply.kind == "models":
        reply.payload = reply.payload["data"]


@emulates("models.entry-id-missing", "reply")
def models_entry_id(reply: Reply, req: Req) -> None:
    """EMULATED: the list holds a second entry that has a `name` but no `id`. Source: no vendor documented;
    violates openai-wire.md MODELS-2."""
    if reply.kind == "models":
        reply.payload["data"].append({"name": "embedding-model", "object": "model", "created": 1_700_000_000,
                                      "owned_by": "oaicompat-tests"})


@emulates("models.entry-object-wrong", "reply")
def models_entry_object(reply: Reply, req: Req) -> None:
    """EMULATED: list entries say `"object": "engine"`. Source: no vendor documented; violates openai-wire.md
    MODELS-2."""
    if reply.kind == "models":
        for e in reply.payload["data"]:
            e["object"] = "engine"


@emulates("models.entry-created-not-unix-seconds", "reply")
def models_entry_created(reply: Reply, req: Req) -> None:
    """EMULATED: list entries carry id, object, owned_by and permissions, no `created`. Source: llama-cpp-python
    (measured), ../shared/reference/llama-server.md."""
    if reply.kind == "models":
        for e in reply.payload["data"]:
            e.pop("created", None)
            e["permissions"] = []


@emulates("models.entry-owned-by-missing", "reply")
def models_entry_owner(reply: Reply, req: Req) -> None:
    """EMULATED: list entries have no `owned_by`. Source: no vendor documented; violates openai-wire.md
    MODELS-2."""
    if reply.kind == "models":
        for e in reply.payload["data"]:
            e.pop("owned_by", None)


@emulates("models.id-mismatch", "reply")
def models_id_prefixed(reply: Reply, req: Req) -> None:
    """EMULATED: the list names models with a `models/` prefix that chat completions does not use. Source: gemini
    (inferred), ../shared/reference/vendor-quirks.md."""
    if reply.kind == "models":
        for e in reply.payload["data"]:
            e["id"] = "models/" + e["id"]


@emulates("models.retrieve-unsupported", "request")
def models_no_retrieve(req: Req) -> Reply | None:
    """EMULATED: GET /models/{id} is 404 for every id (only the list route exists). Source: no vendor documented;
    violates openai-wire.md MODELS-3."""
    if retrieves_model(req) is not None:
        return refuse(req, 404, f"Invalid URL ({req.method} {req.raw_path})", tag="path")
    return None


@emulates("models.retrieve-error", "request")
def models_retrieve_error(req: Req) -> Reply | None:
    """EMULATED: GET /models/{id} fails with 500. Source: no vendor documented; violates openai-wire.md
    MODELS-3."""
    if retrieves_model(req) is not None:
        return refuse(req, 500, "model lookup failed", type_="server_error")
    return None


@emulates("models.retrieve-not-model", "reply")
def models_retrieve_list(reply: Reply, req: Req) -> Reply | None:
    """EMULATED: GET /models/{id} of a known model returns the whole list object. Source: no vendor documented;
    violates openai-wire.md MODELS-3."""
    if reply.kind == "model":
        return req.ref.list_models(req)
    return None


@emulates("models.retrieve-id-mismatch", "reply")
def models_retrieve_prefixed(reply: Reply, req: Req) -> None:
    """EMULATED: GET /models/{id} returns the model under a `models/`-prefixed id. Source: no vendor documented;
    violates openai-wire.md MODELS-3."""
    if reply.kind == "model":
        reply.payload["id"] = "models/" + reply.payload["id"]


@emulates("models.retrieve-unknown-found", "reply")
def models_retrieve_any(reply: Reply, req: Req) -> Reply | None:
    """EMULATED: GET /models/{id} answers 200 for any id. Source: no vendor documented; violates openai-wire.md
    MODELS-3."""
    model = retrieves_model(req)
    if model is not None and reply.kind == "error" and reply.tag == "model":
        return Reply(200, req.ref.model_object(model), kind="model")
    return None


@emulates("models.retrieve-unknown-status", "reply")
def models_retrieve_400(reply: Reply, req: Req) -> None:
    """EMULATED: GET /models/{id} of an unknown id is refused with 400. Source: no vendor documented; violates
    openai-wire.md MODELS-3."""
    if retrieves_model(req) is not None and reply.kind == "error" and reply.tag == "model":
        reply.status = 400


# -- params ----------------------------------------------------------------------------------------------------

def full_text(req: Req) -> str:
    return req.ref.compose(req)


def reject_field(quirk: str, name: str, source: str) -> None:
    def hook(req: Req) -> Reply | None:
        if chat_path(req) and req.has(name):
            return refuse(req, 400, f"Unrecognized request argument supplied: {name}", param=name)
        return None
    hook.__name__ = f"reject_{name}"
    hook.__doc__ = (f"EMULATED: requests carrying `{name}` are refused (400, \"Unrecognized request argument\"). "
                    f"Source: {source}")
    emulates(quirk, "request")(hook)


@emulates("params.max-tokens-rejected", "request")
def params_max_tokens_rejected(req: Req) -> Reply | None:
    """EMULATED: `max_tokens` is refused with 400 "use max_completion_tokens", as OpenAI's reasoning models do
    (openai-wire.md REQ-MAXTOK-2). Narrowed to the params.max-tokens request: every probe carries max_tokens.
    Source: no vendor documented for chat models; violates openai-wire.md REQ-MAXTOK-1."""
    if req.is_probe("params.max-tokens"):
        return refuse(req, 400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                "'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
    return None


@emulates("params.max-tokens-exceeded", "generation")
def params_max_tokens_exceeded(gen: Any, req: Req) -> None:
    """EMULATED: an output cut by `max_tokens` holds one token more than asked (an off-by-one cap), still with
    finish_reason "length". Source: no vendor documented; violates openai-wire.md REQ-MAXTOK-1."""
    if req.field("max_tokens") is None:
        return
    for c in gen.choices:
        if c.finish == "length" and c.tool_calls is None:
            full = tokenize(full_text(req))
            rebuild_choice(c, "".join(full[:len(c.tokens) + 1]), "length")


@emulates("params.max-tokens-finish-reason", "generation")
def params_max_tokens_stop(gen: Any, req: Req) -> None:
    """EMULATED: a text reply cut at max_tokens says finish_reason "stop". Only replies without response_format
    (the JSON area owns cut JSON). Source: no vendor documented; violates openai-wire.md REQ-MAXTOK-1."""
    if plain(req):
        for c in gen.choices:
            if c.finish == "length":
                c.finish = "stop"


@emulates("params.max-completion-tokens-rejected", "request")
def params_mct_rejected(req: Req) -> Reply | None:
    """EMULATED: `max_completion_tokens` is refused (400, unknown argument): the server only knows max_tokens.
    Source: no vendor documented; violates openai-wire.md REQ-MAXTOK-2."""
    if chat_path(req) and req.has("max_completion_tokens"):
        return refuse(req, 400, "Unrecognized request argument supplied: max_completion_tokens",
                      param="max_completion_tokens")
    return None


@emulates("params.max-completion-tokens-ignored", "request")
def params_mct_ignored(req: Req) -> Reply | None:
    """EMULATED: `max_completion_tokens` is accepted and ignored (no cap). Source: moonshot (reported),
    ../shared/reference/vendor-quirks.md (LiteLLM rewrites it)."""
    if chat_path(req) and req.has("max_completion_tokens"):
        return answer(req, max_completion_tokens=None)
    return None


@emulates("params.stop-rejected", "request")
def params_stop_rejected(req: Req) -> Reply | None:
    """EMULATED: `stop` is refused (400). Source: no vendor documented; violates openai-wire.md RESP-CHOICE-4."""
    if chat_path(req) and req.has("stop"):
        return refuse(req, 400, "'stop' is not supported by this model", param="stop")
    return None


@emulates("params.stop-included", "generation")
def params_stop_included(gen: Any, req: Req) -> None:
    """EMULATED: the output stops at the stop string but includes it. Source: no vendor documented; violates
    openai-wire.md RESP-CHOICE-4."""
    stops = req.field("stop")
    stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
    text = full_text(req)
    hits = [(text.find(s), s) for s in stops if isinstance(s, str) and s and s in text]
    if hits:
        at, s = min(hits)
        for c in gen.choices:
            if c.tool_calls is None:
                rebuild_choice(c, text[:at + len(s)], "stop")


@emulates("params.stop-ignored", "request")
def params_stop_ignored(req: Req) -> Reply | None:
    """EMULATED: `stop` is accepted and ignored. Source: no vendor documented; violates openai-wire.md
    RESP-CHOICE-4."""
    if chat_path(req) and req.has("stop"):
        return answer(req, stop=None)
    return None


reject_field("params.seed-rejected", "seed", "no vendor documented; violates openai-wire.md REQ-RANGE-1.")
reject_field("params.top-p-rejected", "top_p", "no vendor documented; violates openai-wire.md REQ-RANGE-1.")
reject_field("params.presence-penalty-rejected", "presence_penalty",
             "no vendor documented; violates openai-wire.md REQ-RANGE-1.")
reject_field("params.frequency-penalty-rejected", "frequency_penalty",
             "no vendor documented; violates openai-wire.md REQ-RANGE-1.")
reject_field("params.user-rejected", "user", "no vendor documented; violates openai-wire.md REQ-1.")
reject_field("params.metadata-rejected", "metadata", "no vendor documented; violates openai-wire.md REQ-1.")


@emulates("params.temperature-zero-rejected", "request")
def params_temperature_zero_rejected(req: Req) -> Reply | None:
    """EMULATED: `temperature: 0` is refused with 400 (a range of (0, 1], like older GLM models). Narrowed to the
    params.temperature-zero probes: almost every probe sends temperature 0. Source: no vendor documented in the
    catalogue (../shared/reference/vendor-quirks.md §3 notes GLM's (0, 1]); violates openai-wire.md
    REQ-RANGE-1."""
    if req.is_probe("params.temperature-zero-a") or req.is_probe("params.temperature-zero-b"):
        return refuse(req, 400, "temperature must be in (0, 1]", param="temperature")
    return None


def vary(gen: Any, req: Req) -> None:
    """Make the generated text differ from one request to the next (a counter on the Reference)."""
    n = req.ref.state["draw"] = req.ref.state.get("draw", 0) + 1
    for c in gen.choices:
        if c.tool_calls is None:
            rebuild_choice(c, f"Rain, take {n}: grey skies sing softly.", "stop")


@emulates("params.temperature-zero-nondeterministic", "generation")
def params_temperature_zero_varies(gen: Any, req: Req) -> None:
    """EMULATED: at temperature 0 the sampler is not greedy: two identical requests get different poems.
    Narrowed to the poem prompt of the params.temperature-zero probes (every probe runs at temperature 0, and the
    seeded stream/plain pair is compared elsewhere). Source: no vendor documented; violates openai-wire.md
    REQ-RANGE-1."""
    if req.field("temperature") == 0 and req.user_text == "Write a short poem about rain.":
        vary(gen, req)


@emulates("params.seed-ignored", "generation")
def params_seed_ignored(gen: Any, req: Req) -> None:
    """EMULATED: `seed` is ignored when sampling (temperature > 0): two identical seeded requests differ.
    Source: anthropic-openai-compat (documented), mistral.rs (documented), ../shared/reference/vendor-quirks.md."""
    t = req.field("temperature")
    if req.has("seed") and (t is None or t > 0):
        vary(gen, req)


@emulates("params.n-ignored", "request")
def params_n_ignored(req: Req) -> Reply | None:
    """EMULATED: `n` is ignored: one choice comes back. Source: no vendor documented; violates openai-wire.md
    RESP-CHOICE-2."""
    n = req.field("n")
    if chat_path(req) and isinstance(n, int) and n > 1:
        return answer(req, n=None)
    return None


@emulates("params.n-reply-malformed", "completion")
def params_n_malformed(body: dict, req: Req) -> None:
    """EMULATED: with `n: 2` both choices say `index: 0`. Source: no vendor documented; violates openai-wire.md
    RESP-CHOICE-2."""
    for c in choices(body):
        c["index"] = 0


@emulates("params.n-rejected-unclean", "request")
def params_n_unclean(req: Req) -> Reply | None:
    """EMULATED: `n` > 1 is refused with 400 and a plain-text body. Source: no vendor documented; violates
    openai-wire.md RESP-CHOICE-2."""
    n = req.field("n")
    if chat_path(req) and isinstance(n, int) and n > 1:
        return Reply(400, raw=b"n must be 1", content_type="text/plain; charset=utf-8", kind="error", tag="n")
    return None


@emulates("params.n-server-error", "request")
def params_n_500(req: Req) -> Reply | None:
    """EMULATED: `n` > 1 makes the server fail with 500. Source: no vendor documented; violates openai-wire.md
    RESP-CHOICE-2."""
    n = req.field("n")
    if chat_path(req) and isinstance(n, int) and n > 1:
        return refuse(req, 500, "Internal error: batch size mismatch", type_="server_error")
    return None


@emulates("params.logprobs-rejected", "request")
def params_logprobs_rejected(req: Req) -> Reply | None:
    """EMULATED: `logprobs` is refused (400). Source: groq (documented), https://console.groq.com/docs/openai
    (../shared/reference/vendor-quirks.md)."""
    if chat_path(req) and req.field("logprobs") is True:
        return refuse(req, 400, "logprobs is not supported", param="logprobs")
    return None


@emulates("params.logprobs-ignored", "request")
def params_logprobs_ignored(req: Req) -> Reply | None:
    """EMULATED: `logprobs` is accepted and ignored (choices carry `logprobs: null`). Source:
    anthropic-openai-compat (documented), ../shared/reference/vendor-quirks.md."""
    if chat_path(req) and req.field("logprobs") is True:
        return answer(req, logprobs=None, top_logprobs=None)
    return None


@emulates("params.logprobs-shape", "completion")
def params_logprobs_legacy(body: dict, req: Req) -> None:
    """EMULATED: logprobs come in the legacy completions shape (`tokens`, `token_logprobs`, `top_logprobs`,
    `text_offset`). Source: no vendor documented; violates openai-wire.md RESP-LOGPROB-1."""
    for c in choices(body):
        lp = c.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            entries = lp["content"]
            c["logprobs"] = {"tokens": [e["token"] for e in entries],
                             "token_logprobs": [e["logprob"] for e in entries],
                             "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
                             "text_offset": [0] * len(entries)}


@emulates("params.top-logprobs-too-many", "completion")
def params_top_logprobs(body: dict, req: Req) -> None:
    """EMULATED: every token carries five alternatives whatever `top_logprobs` asked. Source: no vendor
    documented; violates openai-wire.md RESP-LOGPROB-2."""
    for c in choices(body):
        lp = c.get("logprobs")
        for e in lp.get("content") or [] if isinstance(lp, dict) else []:
            e["top_logprobs"] = [{"token": f" t{i}", "logprob": e["logprob"] - i, "bytes": list(f" t{i}".encode())}
                                 for i in range(5)]


@emulates("params.logprob-positive", "completion")
def params_logprob_positive(body: dict, req: Req) -> None:
    """EMULATED: logprob values are positive (probabilities or raw scores, not log-probabilities). Source: no
    vendor documented; violates openai-wire.md RESP-LOGPROB-2."""
    for c in choices(body):
        lp = c.get("logprobs")
        for e in lp.get("content") or [] if isinstance(lp, dict) else []:
            e["logprob"] = 0.5
            for t in e.get("top_logprobs") or []:
                t["logprob"] = 0.25


# -- reasoning (the emulated server is a reasoning model; its provider entry declares reasoning) --------------

REASONING_MODEL = {"supports": {"reasoning": True}}


def reasoning_text(req: Req) -> str:
    return req.gen.reasoning if req.gen is not None else ""


def insert_reasoning_deltas(chunks: list[Any], req: Req, key: str) -> None:
    """Stream the generation's reasoning as `delta.<key>` pieces right after the role chunk."""
    text = reasoning_text(req)
    objs = chunk_objects(chunks)
    if not text or not objs:
        return
    head = objs[0]
    at = index_of(chunks, head) + 1
    for i, piece in enumerate(tokenize(text)):
        c = clone(head)
        for ch in choices(c):
            ch["delta"] = {key: piece}
        chunks.insert(at + i, c)


@emulates("reasoning.inline-think-tags", "completion", provider=REASONING_MODEL, reasoning=True)
def reasoning_think_tags(body: dict, req: Req) -> None:
    """EMULATED: the reasoning is sent inside `content` as `<think>…</think>` before the answer, streamed and
    not (a stop string then ends the output inside the reasoning). Source: no vendor documented in the catalogue; violates openai-wire.md DEV-7 (R1-style models served
    without a reasoning parser, ../shared/reference/vendor-quirks.md)."""
    text = reasoning_text(req)
    if text:
        stops = req.field("stop")
        stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
        for m in messages_of(body):
            if isinstance(m.get("content"), str):
                content = f"<think>{text}</think>" + m["content"]
                hits = [content.find(x) for x in stops if isinstance(x, str) and x and x in content]
                m["content"] = content[:min(hits)] if hits else content


@emulates("reasoning.inline-think-tags", "chunks")
def reasoning_think_tags_stream(chunks: list[Any], req: Req) -> None:
    text = reasoning_text(req)
    objs = chunk_objects(chunks)
    if text and objs and not req.has("stop"):
        c = clone(objs[0])
        for ch in choices(c):
            ch["delta"] = {"content": f"<think>{text}</think>"}
        chunks.insert(index_of(chunks, objs[0]) + 1, c)


@emulates("reasoning.content-field", "completion", provider=REASONING_MODEL, reasoning=True)
def reasoning_content(body: dict, req: Req) -> None:
    """EMULATED: the reasoning travels in `message.reasoning_content` and `delta.reasoning_content`. Source:
    deepseek (documented), dashscope (documented), moonshot (documented), ../shared/reference/vendor-quirks.md."""
    if reasoning_text(req):
        for m in messages_of(body):
            m["reasoning_content"] = reasoning_text(req)


@emulates("reasoning.content-field", "chunks")
def reasoning_content_stream(chunks: list[Any], req: Req) -> None:
    insert_reasoning_deltas(chunks, req, "reasoning_content")


@emulates("reasoning.alt-field", "completion", provider=REASONING_MODEL, reasoning=True)
def reasoning_alt(body: dict, req: Req) -> None:
    """EMULATED: the reasoning travels in `message.reasoning` and `delta.reasoning`. Source: openrouter
    (documented), ../shared/reference/vendor-quirks.md."""
    if reasoning_text(req):
        for m in messages_of(body):
            m["reasoning"] = reasoning_text(req)


@emulates("reasoning.alt-field", "chunks")
def reasoning_alt_stream(chunks: list[Any], req: Req) -> None:
    insert_reasoning_deltas(chunks, req, "reasoning")


@emulates("reasoning.stream-field-mismatch", "chunks", provider=REASONING_MODEL, reasoning=True)
def reasoning_mismatch(chunks: list[Any], req: Req) -> None:
    """EMULATED: the non-streamed message hides the reasoning (as OpenAI's does) but streams carry it in
    `delta.reasoning_content`. Source: no vendor documented; violates openai-wire.md STREAM-10."""
    insert_reasoning_deltas(chunks, req, "reasoning_content")


@emulates("reasoning.tokens-missing", "completion", provider=REASONING_MODEL, reasoning=True)
def reasoning_tokens_missing(body: dict, req: Req) -> None:
    """EMULATED: a reasoning model whose usage has no `completion_tokens_details` (the hidden reasoning is only
    inside completion_tokens). Source: no vendor documented; violates openai-wire.md RESP-4."""
    body["usage"].pop("completion_tokens_details", None)


@emulates("reasoning.replay-rejected", "completion", provider=REASONING_MODEL, reasoning=True,
          also=("reasoning.content-field",))
def reasoning_replay_content(body: dict, req: Req) -> None:
    """EMULATED: the server returns `reasoning_content` but refuses (400) a history whose assistant turn carries
    it back. Also raises reasoning.content-field: the field it returns is that quirk. Source: deepseek
    (documented), ../shared/reference/vendor-quirks.md."""
    reasoning_content(body, req)


@emulates("reasoning.replay-rejected", "chunks")
def reasoning_replay_stream(chunks: list[Any], req: Req) -> None:
    insert_reasoning_deltas(chunks, req, "reasoning_content")


@emulates("reasoning.replay-rejected", "request")
def reasoning_replay_refused(req: Req) -> Reply | None:
    if chat_path(req) and any("reasoning_content" in m for m in req.messages):
        return refuse(req, 400, "The reasoning_content is an intermediate result for display purposes only and "
                                "will not be included in the context for inference. Please remove the "
                                "reasoning_content from your message to reduce network traffic.",
                      param="messages")
    return None


@emulates("reasoning.stream-only", "request", provider=REASONING_MODEL, reasoning=True)
def reasoning_stream_only(req: Req) -> Reply | None:
    """EMULATED: a reasoning model that only supports incremental output: a non-streamed request that would make
    it think is refused (400), the same request streamed is answered. Source: qwen (documented),
    https://www.alibabacloud.com/help/en/model-studio/deep-thinking (../shared/reference/vendor-quirks.md §2)."""
    if chat_path(req) and not req.stream:
        reply = req.ref.route(req)
        if reply.kind == "completion" and req.gen is not None and req.gen.reasoning:
            return refuse(req, 400, "This model only support stream mode, please enable the stream parameter to "
                                    "access the model.", param="stream")
        return reply
    return None


@emulates("reasoning.basic-rejected", "request", provider=REASONING_MODEL, reasoning=True)
def reasoning_fails(req: Req) -> Reply | None:
    """EMULATED: whenever the model would think (the request leaves room for reasoning), the server fails with
    500 from its reasoning parser, streamed and not. Source: no vendor documented; violates openai-wire.md
    RESP-1."""
    if chat_path(req):
        reply = req.ref.route(req)
        if reply.kind in ("completion", "stream") and req.gen is not None and req.gen.reasoning:
            return refuse(req, 500, "reasoning parser failed: unterminated <think> block", type_="server_error")
        return reply
    return None


# -- sdk (measured through openai-python) ------------------------------------------------------------------

@emulates("sdk.stream-parse-error", "events", also=("stream.event-without-data", "sdk.helper-error"))
def sdk_retry_field(events: list[bytes], req: Req) -> None:
    """EMULATED: text streams open with a reconnection hint, `retry: 3000` and a blank line (valid SSE: WHATWG
    dispatches nothing), which openai-python dispatches as an event with empty data and fails to json-decode.
    Also raises stream.event-without-data (the check that names that event) and sdk.helper-error (the helper
    reads the same events). Source: no vendor documented; violates openai-wire.md SSE-9."""
    if text_stream(req):
        events.insert(0, b"retry: 3000\n\n")


def two_choice_stream(chunks: list[Any], other_finish: str | None, other_text: bool) -> list[Any]:
    """Each chunk carries a copy of choice 0 as index 1, listed first (as a server that streams n=2 out of
    order)."""
    out = []
    for c in chunks:
        if isinstance(c, dict) and choices(c):
            c = clone(c)
            ch0 = c["choices"][0]
            twin = {**clone(ch0), "index": 1}
            delta = twin.get("delta")
            if other_text and isinstance(delta, dict) and delta.get("content"):
                delta["content"] = delta["content"].upper()
            if other_finish is not None and twin.get("finish_reason") is not None:
                twin["finish_reason"] = other_finish
            c["choices"] = [twin, ch0]
        out.append(c)
    return out


@emulates("sdk.stream-text-differs", "chunks")
def sdk_stream_text(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: text streams carry a second choice (index 1, upper-case text) listed before choice 0 in every
    chunk; a caller reading `choices[0]` gets choice 1's text. Source: no vendor documented; violates
    openai-wire.md STREAM-9/STREAM-7."""
    return two_choice_stream(chunks, None, True) if text_stream(req) else None


@emulates("sdk.stream-finish-reason-differs", "chunks")
def sdk_stream_finish(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: text streams carry a second choice (index 1, same text, finish_reason "length") listed before
    choice 0; a caller reading `choices[0]` gets the other finish_reason. Source: no vendor documented; violates
    openai-wire.md STREAM-7 (as openai-python reads it; STREAM-9 allows the order, n was not asked)."""
    return two_choice_stream(chunks, "length", False) if text_stream(req) else None


@emulates("sdk.helper-error", "chunks")
def sdk_helper_error(chunks: list[Any], req: Req) -> None:
    """EMULATED: one content chunk of a text stream also lists an empty choice with index 3 (no choices 1 and 2
    exist); openai-python's .stream() helper then fails. Source: no vendor documented; violates openai-wire.md
    STREAM-13."""
    if text_stream(req):
        for c in chunk_objects(chunks):
            ch = choices(c)
            if ch and isinstance(ch[0].get("delta"), dict) and ch[0]["delta"].get("content"):
                c["choices"].append({"index": 3, "delta": {}, "logprobs": None, "finish_reason": None})
                return


@emulates("sdk.helper-role-mangled", "chunks")
def sdk_helper_role(chunks: list[Any], req: Req) -> None:
    """EMULATED: the first chunk of a text stream lists choice 0 twice, the second time without a role (an
    empty keep-alive entry); the .stream() helper keeps only the last entry of its first chunk and loses the
    role. Source: no vendor documented; violates openai-wire.md STREAM-6 (for the helper, STREAM-13)."""
    objs = chunk_objects(chunks)
    if text_stream(req) and objs and choices(objs[0]):
        objs[0]["choices"].append({"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": None})


@emulates("sdk.helper-text-differs", "chunks")
def sdk_helper_text(chunks: list[Any], req: Req) -> None:
    """EMULATED: the first delta of a text stream carries `content: []` (an empty list of parts); the .stream()
    helper then cannot append the later text. Source: no vendor documented; violates openai-wire.md STREAM-7
    (what the helper accumulates, STREAM-12)."""
    objs = chunk_objects(chunks)
    if text_stream(req) and objs:
        for ch in choices(objs[0]):
            if isinstance(ch.get("delta"), dict):
                ch["delta"]["content"] = []


@emulates("sdk.completion-parse-error", "reply", also=("chat.body-not-json",))
def sdk_completion_twice(reply: Reply, req: Req) -> None:
    """EMULATED: the reply to the plain request is written twice in one body (`{…}{…}`), so no JSON parser reads
    it. Narrowed to chat.basic's request. Also raises chat.body-not-json: openai-python constructs any JSON
    object, so it only fails on bodies that check already names. Source: no vendor documented; violates
    openai-wire.md RESP-1."""
    if reply.kind == "completion" and req.is_probe("chat.basic"):
        body = req.ref.encode(reply.payload)
        reply.raw = body + body


@emulates("sdk.completion-not-parsed", "reply", also=("chat.body-not-json",))
def sdk_completion_text(reply: Reply, req: Req) -> None:
    """EMULATED: the plain request is answered with the bare text, `text/plain` (openai-python returns a str).
    Narrowed to chat.basic's request. Also raises chat.body-not-json: openai-python parses any body that is JSON
    whatever its label, so only a non-JSON body is left unparsed. Source: no vendor documented; violates
    openai-wire.md RESP-1."""
    if reply.kind == "completion" and req.is_probe("chat.basic"):
        reply.raw = messages_of(reply.payload)[0]["content"].encode()
        reply.content_type = "text/plain; charset=utf-8"


# -- stream (text streams; the tools area owns tool-call streams) -----------------------------------------------

@emulates("stream.basic-rejected", "request", provider={"supports": {"streaming": False}},
          also=("stream.usage-rejected",))
def stream_rejected(req: Req) -> Reply | None:
    """EMULATED: `stream: true` is refused (400): a server without streaming; its provider entry declares so.
    Also raises stream.usage-rejected (the include_usage probe is a streamed request too). Source: no vendor
    documented; violates openai-wire.md RESP-1."""
    if chat_path(req) and req.stream:
        return refuse(req, 400, "Streaming is not supported", param="stream")
    return None


@emulates("stream.content-type-wrong", "reply")
def stream_content_type(reply: Reply, req: Req) -> None:
    """EMULATED: text streams are labelled `text/plain; charset=utf-8` (the SSE bytes are unchanged). Source: no
    vendor documented; violates openai-wire.md SSE-1."""
    if reply.kind == "stream" and text_stream(req):
        reply.content_type = "text/plain; charset=utf-8"


@emulates("stream.body-not-sse", "reply")
def stream_ndjson(reply: Reply, req: Req) -> None:
    """EMULATED: text streams are sent as newline-delimited JSON (one chunk object a line, no `data:`), still
    labelled text/event-stream. Source: no vendor documented; violates openai-wire.md SSE-1."""
    if reply.kind == "stream" and text_stream(req):
        reply.events = [ev[len(b"data: "):].rstrip(b"\n") + b"\n" for ev in reply.events
                        if ev.startswith(b"data: {")]


@emulates("stream.not-streamed", "request")
def stream_not_streamed(req: Req) -> Reply | None:
    """EMULATED: `stream: true` is ignored and the whole chat.completion comes back as one JSON object (labelled
    text/event-stream: the media type is stream.content-type's rule). Source: no vendor documented; violates
    openai-wire.md SSE-1."""
    if chat_path(req) and text_stream(req) and req.ref.validate(req) is None:
        reply = answer(req, stream=None, stream_options=None)
        if reply.kind == "completion":
            reply.content_type = "text/event-stream"
        return reply
    return None


@emulates("stream.empty-body", "reply")
def stream_empty(reply: Reply, req: Req) -> None:
    """EMULATED: text streams are answered 200 text/event-stream with an empty body. Source: no vendor
    documented; violates openai-wire.md SSE-1."""
    if reply.kind == "stream" and text_stream(req):
        reply.events = []


@emulates("stream.truncated", "reply")
def stream_reset(reply: Reply, req: Req) -> None:
    """EMULATED: text streams are reset (TCP RST) after the second event. Source: no vendor documented; violates
    openai-wire.md STREAM-DONE-2."""
    if reply.kind == "stream" and text_stream(req):
        reply.events, reply.after = reply.events[:2], "reset"


@emulates("stream.never-ends", "reply", provider={"timeouts": {"read": 0.3}})
def stream_hang(reply: Reply, req: Req) -> None:
    """EMULATED: text streams stop sending after the second event and never end (the provider entry's read
    timeout is 0.3 s so that the probe gives up quickly). Source: no vendor documented; violates openai-wire.md
    STREAM-DONE-2."""
    if reply.kind == "stream" and text_stream(req):
        reply.events, reply.after = reply.events[:2], "hang"


@emulates("transport.too-large", "reply", also=("chat.body-not-json",))   # chat.body-json judges a cut body
def transport_too_large(reply: Reply, req: Req) -> None:
    """EMULATED: the plain request's completion is followed by 13 MiB of JSON whitespace, past the 12 MiB the
    transport keeps. Source: issue 19 (a hostile server's 40 MB body); no vendor documented; bounds rule LIMIT-1."""
    if reply.kind == "completion" and req.is_probe("chat.basic"):
        reply.raw = req.ref.encode(reply.payload) + b" " * (13 * 1024 * 1024)


@emulates("transport.too-many-chunks", "reply")
def transport_too_many_chunks(reply: Reply, req: Req) -> None:
    """EMULATED: the plain streamed request's reply opens with a 5,000-byte SSE comment and is written one
    byte per chunk, so it arrives in more than 4,096 reads. Source: issue 19 (a million 1-byte chunks); no
    vendor documented; bounds rule LIMIT-3."""
    if reply.kind == "stream" and req.is_probe("stream.basic"):
        reply.events = [b": " + b"p" * 5000 + b"\n\n", *(reply.events or [])]
        reply.piece = 1


@emulates("transport.too-slow", "reply", also=("chat.body-not-json",), provider={"timeouts": {"total": 1, "read": 5}})
def transport_too_slow(reply: Reply, req: Req) -> None:
    """EMULATED: the plain request's completion is drip-fed, 8 bytes every 0.2 s, past the 1 s deadline of the
    provider entry. Source: issue 19 (a body still arriving at the deadline); no vendor documented; bounds rule LIMIT-2."""
    if reply.kind == "completion" and req.is_probe("chat.basic"):
        reply.piece, reply.pace = 8, 0.2


@emulates("stream.data-not-json", "events", also=("sdk.helper-error",))
def stream_data_null(events: list[bytes], req: Req) -> None:
    """EMULATED: text streams carry a `data: null` keep-alive event after the first chunk. Also raises
    sdk.helper-error: openai-python's .stream() helper reads `.object` of every event. Source: no vendor
    documented; violates openai-wire.md SSE-9."""
    if text_stream(req) and events:
        events.insert(1, b"data: null\n\n")


@emulates("stream.event-without-data", "events", also=("sdk.stream-parse-error", "sdk.helper-error"))
def stream_id_only(events: list[bytes], req: Req) -> None:
    """EMULATED: text streams carry an event with only `id: 1` (no data) after the first chunk. Also raises
    sdk.stream-parse-error and sdk.helper-error: openai-python dispatches it and fails to json-decode ''. Source:
    no vendor documented; violates openai-wire.md SSE-9/SSE-10."""
    if text_stream(req) and events:
        events.insert(1, b"id: 1\n\n")


@emulates("stream.invalid-utf8", "events", also=("sdk.stream-parse-error", "sdk.helper-error"))
def stream_bad_utf8(events: list[bytes], req: Req) -> list[bytes] | None:
    """EMULATED: the first chunk of a text stream carries an `obfuscation` padding string (openai-wire.md
    STREAM-11) made of random bytes that are not valid UTF-8. Also raises sdk.stream-parse-error and
    sdk.helper-error: openai-python decodes lines strictly. Source: no vendor documented; violates openai-wire.md
    SSE-2."""
    if not text_stream(req) or not events or not events[0].endswith(b"}\n\n"):
        return None
    return [events[0][:-3] + b', "obfuscation": "\xe2\x82\xff"}\n\n'] + events[1:]


@emulates("stream.leading-bom", "events")
def stream_bom(events: list[bytes], req: Req) -> None:
    """EMULATED: text streams start with a UTF-8 byte order mark and a comment line. Source: no vendor
    documented; violates openai-wire.md SSE-2."""
    if text_stream(req):
        events.insert(0, b"\xef\xbb\xbf: stream start\n\n")


@emulates("stream.unterminated-event", "events", also=("stream.done-missing",))
def stream_unterminated(events: list[bytes], req: Req) -> list[bytes] | None:
    """EMULATED: text streams end with an extra chunk object that has no blank line after it, and no `[DONE]`.
    Also raises stream.done-missing: an event left open at the end is by construction not followed by [DONE].
    Source: no vendor documented; violates openai-wire.md SSE-4."""
    if not text_stream(req):
        return None
    out = [ev for ev in events if ev != b"data: [DONE]\n\n"]
    last = next((ev for ev in reversed(out) if ev.startswith(b"data: {")), None)
    if last is None:
        return None
    tail = json.loads(last[6:])
    tail["choices"] = []
    return out + [b"data: " + json.dumps(tail).encode() + b"\n"]


@emulates("stream.done-missing", "events")
def stream_no_done(events: list[bytes], req: Req) -> list[bytes] | None:
    """EMULATED: text streams end without `data: [DONE]`. Source: transformers-serve (measured),
    ../shared/reference/llama-server.md."""
    if text_stream(req):
        return [ev for ev in events if ev != b"data: [DONE]\n\n"]
    return None


@emulates("stream.data-after-done", "events")
def stream_after_done(events: list[bytes], req: Req) -> None:
    """EMULATED: text streams repeat their last chunk after `data: [DONE]`. Source: no vendor documented; violates
    openai-wire.md STREAM-DONE-3."""
    if text_stream(req) and len(events) >= 2:
        events.append(events[-2])


@emulates("stream.midstream-error-event", "events")
def stream_error_event(events: list[bytes], req: Req) -> list[bytes] | None:
    """EMULATED: text streams break off after the second chunk with an error event `data: {"error": {…}}`.
    Source: openrouter (documented), vllm (reported), ../shared/reference/vendor-quirks.md."""
    if text_stream(req) and len(events) > 2:
        err = error_payload("upstream provider error: overloaded", "server_error", code="upstream_error")
        return events[:2] + [b"data: " + json.dumps(err).encode() + b"\n\n"]
    return None


@emulates("stream.error-event-unwrapped", "chunks")
def stream_error_unwrapped(chunks: list[Any], req: Req) -> None:
    """EMULATED: text streams carry an `event: error` whose data is a chunk-shaped object with a `detail`
    message and no `error` object. Source: no vendor documented; violates openai-wire.md STREAM-ERR-2 (the
    error shape of STREAM-ERR-4)."""
    objs = chunk_objects(chunks)
    if text_stream(req) and objs:
        data = {**clone(objs[0]), "choices": [], "detail": "rate limited, slowing down"}
        data.pop("usage", None)
        chunks.insert(index_of(chunks, objs[0]) + 1, raw_event(json.dumps(data).encode(), event=b"error"))


@emulates("stream.object-wrong", "chunks")
def stream_object_empty(chunks: list[Any], req: Req) -> None:
    """EMULATED: text streams carry an extra chunk with `"object": ""` and no choices, as a content-filter
    event (openai-wire.md STREAM-12 describes Azure's). Source: no vendor documented in the catalogue; violates
    openai-wire.md STREAM-1."""
    objs = chunk_objects(chunks)
    if text_stream(req) and objs:
        extra = {**clone(objs[0]), "object": "", "choices": []}
        extra.pop("usage", None)
        chunks.insert(index_of(chunks, objs[0]) + 1, extra)


@emulates("stream.chunk-field-missing", "chunks")
def stream_no_created(chunks: list[Any], req: Req) -> None:
    """EMULATED: chunks of text streams have no `created`. Source: no vendor documented; violates openai-wire.md
    STREAM-1."""
    if text_stream(req):
        for c in chunk_objects(chunks):
            c.pop("created", None)


@emulates("stream.id-changes", "chunks")
def stream_ids(chunks: list[Any], req: Req) -> None:
    """EMULATED: every chunk of a text stream has its own `id`. Source: no vendor documented; violates
    openai-wire.md STREAM-2."""
    if text_stream(req):
        for i, c in enumerate(chunk_objects(chunks)):
            c["id"] = f"{c['id']}-{i}"


@emulates("stream.created-changes", "chunks")
def stream_created(chunks: list[Any], req: Req) -> None:
    """EMULATED: `created` counts up by one per chunk of a text stream. Source: no vendor documented; violates
    openai-wire.md STREAM-2."""
    if text_stream(req):
        for i, c in enumerate(chunk_objects(chunks)):
            c["created"] = c["created"] + i


@emulates("stream.model-changes", "chunks")
def stream_model(chunks: list[Any], req: Req) -> None:
    """EMULATED: after the first chunk of a text stream, `model` names a dated variant. Source: no vendor
    documented; violates openai-wire.md STREAM-3."""
    if text_stream(req):
        for c in chunk_objects(chunks)[1:]:
            c["model"] = f"{c['model']}-2024-08-06"


@emulates("stream.fingerprint-changes", "chunks")
def stream_fingerprint(chunks: list[Any], req: Req) -> None:
    """EMULATED: the last chunk of a text stream has another `system_fingerprint`. Source: no vendor documented;
    violates openai-wire.md STREAM-3."""
    objs = chunk_objects(chunks)
    if text_stream(req) and objs:
        objs[-1]["system_fingerprint"] = "fp_ref0002"


@emulates("stream.choice-field-missing", "chunks")
def stream_no_finish_key(chunks: list[Any], req: Req) -> None:
    """EMULATED: streamed choices omit the `finish_reason` key until the last chunk. Source: no vendor
    documented; violates openai-wire.md STREAM-4."""
    if text_stream(req):
        for c in chunk_objects(chunks):
            for ch in choices(c):
                if ch.get("finish_reason") is None:
                    ch.pop("finish_reason", None)


@emulates("stream.finish-reason-invalid", "chunks", also=("stream.finish-reason-differs",))
def stream_finish_eos(chunks: list[Any], req: Req) -> None:
    """EMULATED: a streamed natural end says `"finish_reason": "eos"`. Also raises stream.finish-reason-differs:
    the same request not streamed says "stop". Source: no vendor documented; violates openai-wire.md STREAM-5."""
    if text_stream(req):
        for c in chunk_objects(chunks):
            for ch in choices(c):
                if ch.get("finish_reason") == "stop":
                    ch["finish_reason"] = "eos"


@emulates("stream.role-missing-or-late", "chunks")
def stream_no_role(chunks: list[Any], req: Req) -> None:
    """EMULATED: no delta of a text stream carries the role. Source: no vendor documented; violates
    openai-wire.md STREAM-6."""
    if text_stream(req):
        for d in deltas(chunks):
            d.pop("role", None)


@emulates("stream.role-repeated", "chunks", also=("sdk.helper-role-mangled",))
def stream_role_repeated(chunks: list[Any], req: Req) -> None:
    """EMULATED: every content delta of a text stream repeats `role: "assistant"`. Also raises
    sdk.helper-role-mangled: openai-python's .stream() helper concatenates the repeated role. Source: no vendor
    documented; violates openai-wire.md STREAM-6."""
    if text_stream(req):
        for d in deltas(chunks):
            if d.get("content"):
                d["role"] = "assistant"


@emulates("stream.finish-reason-count", "chunks")
def stream_two_finish(chunks: list[Any], req: Req) -> None:
    """EMULATED: text streams send the finish chunk twice. Source: no vendor documented; violates openai-wire.md
    STREAM-8."""
    last = finish_chunk(chunks)
    if text_stream(req) and last is not None:
        chunks.insert(index_of(chunks, last) + 1, clone(last))


@emulates("stream.content-after-finish", "chunks")
def stream_after_finish(chunks: list[Any], req: Req) -> None:
    """EMULATED: a content delta (" Bye.") follows the finish chunk. Narrowed to stream.basic's request: the
    seeded stream is compared with its non-streamed twin by stream.text-matches. Source: no vendor documented;
    violates openai-wire.md STREAM-8."""
    last = finish_chunk(chunks)
    if req.is_probe("stream.basic") and last is not None:
        extra = clone(last)
        for ch in choices(extra):
            ch.update(delta={"content": " Bye."}, finish_reason=None)
        chunks.insert(index_of(chunks, last) + 1, extra)


def usage_of(chunks: list[Any], req: Req) -> dict[str, Any]:
    return req.ref.usage(req.gen) if req.gen is not None else {"prompt_tokens": 0, "completion_tokens": 0,
                                                                "total_tokens": 0}


def include_usage(req: Req) -> bool:
    opts = req.field("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


@emulates("stream.usage-unrequested", "chunks")
def stream_usage_always(chunks: list[Any], req: Req) -> None:
    """EMULATED: text streams end with a usage chunk even without `stream_options.include_usage`. Source:
    fireworks (documented), moonshot (documented), ../shared/reference/vendor-quirks.md."""
    objs = chunk_objects(chunks)
    if text_stream(req) and not include_usage(req) and objs:
        chunks.append({**clone(objs[0]), "choices": [], "usage": usage_of(chunks, req)})


@emulates("stream.usage-rejected", "request")
def stream_usage_rejected(req: Req) -> Reply | None:
    """EMULATED: `stream_options` is refused (400, unknown argument). Source: no vendor documented; violates
    openai-wire.md STREAM-USAGE-1."""
    if chat_path(req) and req.has("stream_options"):
        return refuse(req, 400, "Unrecognized request argument supplied: stream_options", param="stream_options")
    return None


def usage_chunk(chunks: list[Any]) -> dict[str, Any] | None:
    for c in chunk_objects(chunks):
        if c.get("choices") == [] and isinstance(c.get("usage"), dict):
            return c
    return None


@emulates("stream.usage-missing", "chunks")
def stream_usage_missing(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: `stream_options.include_usage` is ignored: no usage chunk, no usage keys. Source:
    llama-cpp-python (measured), ../shared/reference/llama-server.md; mistral-rs (documented)."""
    if not text_stream(req):
        return None
    uc = usage_chunk(chunks)
    out = [c for c in chunks if c is not uc]
    for c in chunk_objects(out):
        c.pop("usage", None)
    return out


@emulates("stream.usage-in-choice-chunk", "chunks")
def stream_usage_on_finish(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: the usage object rides on the finish chunk (which carries choices) instead of a separate
    `choices: []` chunk. Source: no vendor documented (../shared/reference/vendor-quirks.md §4 reports Kimi
    placing it on the final choice chunk); violates openai-wire.md STREAM-USAGE-1."""
    uc, last = usage_chunk(chunks), finish_chunk(chunks)
    if not text_stream(req) or uc is None or last is None:
        return None
    last["usage"] = uc["usage"]
    return [c for c in chunks if c is not uc]


@emulates("stream.usage-choices-absent", "chunks")
def stream_usage_no_choices(chunks: list[Any], req: Req) -> None:
    """EMULATED: the usage chunk has no `choices` key at all. Source: no vendor documented; violates
    openai-wire.md STREAM-USAGE-1."""
    uc = usage_chunk(chunks)
    if text_stream(req) and uc is not None:
        del uc["choices"]


@emulates("stream.usage-not-last", "chunks")
def stream_usage_early(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: the usage chunk comes before the finish chunk. Source: no vendor documented; violates
    openai-wire.md STREAM-USAGE-4."""
    uc, last = usage_chunk(chunks), finish_chunk(chunks)
    if not text_stream(req) or uc is None or last is None:
        return None
    out = [c for c in chunks if c is not uc]
    out.insert(out.index(last), uc)
    return out


@emulates("stream.usage-inconsistent", "chunks")
def stream_usage_total(chunks: list[Any], req: Req) -> None:
    """EMULATED: the usage chunk's `total_tokens` is one more than prompt + completion. Source: no vendor
    documented; violates openai-wire.md STREAM-USAGE-4."""
    uc = usage_chunk(chunks)
    if text_stream(req) and uc is not None:
        uc["usage"]["total_tokens"] += 1


@emulates("stream.usage-repeated", "chunks")
def stream_usage_every_chunk(chunks: list[Any], req: Req) -> None:
    """EMULATED: with include_usage every chunk carries a (running) usage object, not null. Source: no vendor
    documented; violates openai-wire.md STREAM-USAGE-2 (vLLM's continuous_usage_stats, STREAM-USAGE-6)."""
    uc = usage_chunk(chunks)
    if text_stream(req) and uc is not None:
        for i, c in enumerate(chunk_objects(chunks)):
            if c is not uc:
                p = uc["usage"]["prompt_tokens"]
                c["usage"] = {"prompt_tokens": p, "completion_tokens": i, "total_tokens": p + i}


@emulates("stream.text-differs", "chunks")
def stream_text_differs(chunks: list[Any], req: Req) -> None:
    """EMULATED: streamed text differs from the same request not streamed (the first content delta gains a
    leading space). Source: no vendor documented; violates openai-wire.md STREAM-10."""
    if text_stream(req):
        for d in deltas(chunks):
            if d.get("content"):
                d["content"] = " " + d["content"]
                return


@emulates("stream.finish-reason-differs", "chunks")
def stream_finish_length(chunks: list[Any], req: Req) -> None:
    """EMULATED: a streamed natural end says finish_reason "length" (not streamed it says "stop"). Source: no
    vendor documented; violates openai-wire.md STREAM-10."""
    if text_stream(req):
        for c in chunk_objects(chunks):
            for ch in choices(c):
                if ch.get("finish_reason") == "stop":
                    ch["finish_reason"] = "length"


# -- tools -----------------------------------------------------------------------------------------------------

def with_tools(req: Req) -> bool:
    return chat_path(req) and req.has_tools


def calls_of(body: Any) -> list[dict[str, Any]]:
    return [c for m in messages_of(body) for c in (m.get("tool_calls") or []) if isinstance(c, dict)]


def required(req: Req) -> bool:
    return req.tool_choice == "required"


@emulates("tools.rejected", "request", also=("tools.choice-auto-rejected",))
def tools_auto_refused(req: Req) -> Reply | None:
    """EMULATED: a request with tools and tool_choice "auto" (explicit or by default) is refused (400) because
    no tool parser is configured. Also raises tools.choice-auto-rejected: the explicit "auto" is refused the same
    way. Source: vllm (measured), ../shared/reference/llama-server.md."""
    if with_tools(req) and req.tool_choice in (None, "auto"):
        return refuse(req, 400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to '
                                'be set', param="tool_choice")
    return None


def refuse_choice(req: Req, value: Any, message: str) -> Reply | None:
    if with_tools(req) and req.tool_choice == value:
        return refuse(req, 400, message, param="tool_choice")
    return None


@emulates("tools.choice-none-rejected", "request")
def tools_none_refused(req: Req) -> Reply | None:
    """EMULATED: tool_choice "none" is refused (400). Source: no vendor documented; violates openai-wire.md
    TOOLS-5."""
    return refuse_choice(req, "none", "Invalid value: 'none'. Supported values are: 'auto' and 'required'.")


@emulates("tools.choice-none-ignored", "request")
def tools_none_ignored(req: Req) -> Reply | None:
    """EMULATED: tool_choice "none" is treated as "required": the reply calls the tool anyway. Source: no vendor
    documented; violates openai-wire.md TOOLS-5."""
    if with_tools(req) and req.tool_choice == "none" and req.ref.validate(req) is None:
        return answer(req, tool_choice="required")
    return None


@emulates("tools.choice-auto-rejected", "request")
def tools_auto_explicit_refused(req: Req) -> Reply | None:
    """EMULATED: an explicit tool_choice "auto" is refused (400); leaving tool_choice out works. Source: vllm
    (measured), ../shared/reference/llama-server.md."""
    return refuse_choice(req, "auto", '"auto" tool choice requires --enable-auto-tool-choice and '
                                      '--tool-call-parser to be set')


@emulates("tools.choice-required-rejected", "request")
def tools_required_refused(req: Req) -> Reply | None:
    """EMULATED: tool_choice "required" is refused (400). Source: moonshot (reported),
    ../shared/reference/vendor-quirks.md."""
    return refuse_choice(req, "required", "tool_choice 'required' is not supported")


@emulates("tools.choice-required-ignored", "request", also=("tools.parallel-not-made",))
def tools_required_ignored(req: Req) -> Reply | None:
    """EMULATED: tool_choice "required" is treated as "auto": the model answers in text. Also raises
    tools.parallel-not-made: the parallel probes ask with "required" too. Source: llama-cpp-python (measured),
    ../shared/reference/llama-server.md."""
    if with_tools(req) and required(req) and req.ref.validate(req) is None:
        return answer(req, tool_choice="auto")
    return None


@emulates("tools.choice-named-rejected", "request", also=("tools.strict-rejected",))
def tools_named_refused(req: Req) -> Reply | None:
    """EMULATED: the named tool_choice object is refused (400). Also raises tools.strict-rejected: the strict
    probe forces its function by name too. Source: mistral (reported), ../shared/reference/vendor-quirks.md."""
    if with_tools(req) and req.forced is not None:
        return refuse(req, 400, "Invalid tool_choice: expected 'auto', 'none', 'any' or 'required'",
                      param="tool_choice")
    return None


@emulates("tools.choice-named-ignored", "request", also=("tools.stream-named-ignored",))
def tools_named_ignored(req: Req) -> Reply | None:
    """EMULATED: the named tool_choice object is treated as "auto" (text answers), streamed and not. Also raises
    tools.stream-named-ignored (the same behaviour seen on the streamed probe). Source: llama-server (measured),
    ../shared/reference/llama-server.md."""
    if with_tools(req) and req.forced is not None and req.ref.validate(req) is None:
        return answer(req, tool_choice="auto")
    return None


@emulates("tools.call-in-content", "completion")
def tools_call_text(body: dict, req: Req) -> None:
    """EMULATED: a forced named call is returned as `<tool_call>{…}</tool_call>` text in `content`, with no
    tool_calls (non-streamed; streams are parsed). Source: vllm (measured), ../shared/reference/llama-server.md."""
    if req.forced is not None and not req.stream:
        for c in choices(body):
            m = c["message"]
            calls = m.pop("tool_calls", None) or []
            m["content"] = "".join(
                f'<tool_call>\n{{"name": "{k["function"]["name"]}", "arguments": {k["function"]["arguments"]}}}\n'
                f'</tool_call>' for k in calls)
            c["finish_reason"] = "stop"


@emulates("tools.empty-tool-calls", "completion")
def tools_empty_calls(body: dict, req: Req) -> None:
    """EMULATED: replies to tool requests that make no call carry `"tool_calls": []`. Source: no vendor
    documented; violates openai-wire.md RESP-MSG-2."""
    if req.has_tools:
        for m in messages_of(body):
            if not m.get("tool_calls"):
                m["tool_calls"] = []


@emulates("tools.call-id-missing", "completion")
def tools_no_id(body: dict, req: Req) -> None:
    """EMULATED: the first tool call of a non-streamed reply has no `id`. Source: no vendor documented; violates
    openai-wire.md RESP-MSG-3."""
    calls = calls_of(body)
    if calls:
        calls[0].pop("id", None)


@emulates("tools.call-type-wrong", "completion")
def tools_no_type(body: dict, req: Req) -> None:
    """EMULATED: non-streamed tool calls have no `type`. Source: no vendor documented; violates openai-wire.md
    RESP-MSG-3."""
    for call in calls_of(body):
        call.pop("type", None)


@emulates("tools.call-name-missing", "completion")
def tools_no_name(body: dict, req: Req) -> None:
    """EMULATED: when the model picked the function itself (tool_choice "required"), non-streamed calls have an
    empty `function.name`. Source: no vendor documented; violates openai-wire.md RESP-MSG-3."""
    if required(req):
        for call in calls_of(body):
            call["function"]["name"] = ""


@emulates("tools.arguments-not-string", "completion")
def tools_args_object(body: dict, req: Req) -> None:
    """EMULATED: with tool_choice "required", non-streamed `function.arguments` is a JSON object, not a string.
    Source: no vendor documented; violates openai-wire.md RESP-MSG-3."""
    if required(req):
        for call in calls_of(body):
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])


@emulates("tools.arguments-invalid-json", "completion")
def tools_args_invalid(body: dict, req: Req) -> None:
    """EMULATED: with tool_choice "required", non-streamed arguments are JavaScript-style `{city: 'Paris'}`.
    Source: no vendor documented; violates openai-wire.md RESP-MSG-4."""
    if required(req):
        for call in calls_of(body):
            args = json.loads(call["function"]["arguments"])
            call["function"]["arguments"] = "{" + ", ".join(f"{k}: '{v}'" for k, v in args.items()) + "}"


@emulates("tools.arguments-schema-mismatch", "completion")
def tools_args_mismatch(body: dict, req: Req) -> None:
    """EMULATED: with tool_choice "required", non-streamed arguments name a city outside the parameters' enum.
    Source: no vendor documented; violates openai-wire.md RESP-MSG-4."""
    if required(req):
        for call in calls_of(body):
            call["function"]["arguments"] = '{"city": "Berlin"}'


def set_finish(body_or_chunks: Any, value: str, when: Callable[[Req], bool], req: Req) -> None:
    if not when(req):
        return
    items = [body_or_chunks] if isinstance(body_or_chunks, dict) else chunk_objects(body_or_chunks)
    for obj in items:
        for c in choices(obj):
            if c.get("finish_reason") == "tool_calls":
                c["finish_reason"] = value


@emulates("tools.finish-reason-stop", "completion")
def tools_finish_stop(body: dict, req: Req) -> None:
    """EMULATED: replies with tool calls the model chose (tool_choice "required"/"auto") finish with "stop".
    Source: gemini (reported), ../shared/reference/vendor-quirks.md."""
    set_finish(body, "stop", lambda r: r.forced is None, req)


@emulates("tools.finish-reason-stop", "chunks")
def tools_finish_stop_stream(chunks: list[Any], req: Req) -> None:
    set_finish(chunks, "stop", lambda r: r.forced is None, req)


@emulates("tools.finish-reason-wrong", "completion")
def tools_finish_wrong(body: dict, req: Req) -> None:
    """EMULATED: replies with tool calls finish with "tool_use", streamed and not. Source: no vendor documented;
    violates openai-wire.md TOOLS-DELTA-6."""
    set_finish(body, "tool_use", lambda r: True, req)


@emulates("tools.finish-reason-wrong", "chunks")
def tools_finish_wrong_stream(chunks: list[Any], req: Req) -> None:
    set_finish(chunks, "tool_use", lambda r: True, req)


@emulates("tools.legacy-function-call", "completion")
def tools_legacy(body: dict, req: Req) -> None:
    """EMULATED: non-streamed tool-call replies also carry the deprecated `function_call`. Source:
    llama-cpp-python (measured), ../shared/reference/llama-server.md."""
    for m in messages_of(body):
        if m.get("tool_calls"):
            m["function_call"] = dict(m["tool_calls"][0]["function"])


def escape_args(args: str) -> str:
    try:
        return json.dumps(json.loads(args), ensure_ascii=True)
    except ValueError:
        return args


@emulates("tools.arguments-unicode-escaped", "completion")
def tools_escaped(body: dict, req: Req) -> None:
    """EMULATED: non-ASCII text in `arguments` is \\u-escaped inside the JSON string, streamed and not. Source: no
    vendor documented; violates openai-wire.md RESP-MSG-3."""
    for call in calls_of(body):
        call["function"]["arguments"] = escape_args(call["function"]["arguments"])


@emulates("tools.arguments-unicode-escaped", "chunks")
def tools_escaped_stream(chunks: list[Any], req: Req) -> None:
    for _, entry in tool_entries(chunks):
        fn = entry.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            fn["arguments"] = fn["arguments"].encode("ascii", "backslashreplace").decode().replace("\\x", "\\u00")


@emulates("tools.strict-rejected", "request")
def tools_strict_refused(req: Req) -> Reply | None:
    """EMULATED: a function with `strict: true` is refused (400). Source: no vendor documented; violates
    openai-wire.md TOOLS-7."""
    if with_tools(req) and any(t.get("function", {}).get("strict") is True for t in req.tools):
        return refuse(req, 400, "Unrecognized field 'strict' in function definition", param="tools[0].function")
    return None


@emulates("tools.strict-ignored", "completion")
def tools_strict_ignored(body: dict, req: Req) -> None:
    """EMULATED: `strict: true` does not constrain the arguments: calls add a `unit` property the schema forbids.
    Source: anthropic-openai-compat (documented), ../shared/reference/vendor-quirks.md."""
    if any(t.get("function", {}).get("strict") is True for t in req.tools):
        for call in calls_of(body):
            args = json.loads(call["function"]["arguments"])
            call["function"]["arguments"] = json.dumps({**args, "unit": "celsius"}, ensure_ascii=False)


@emulates("tools.parallel-not-made", "request")
def tools_one_call(req: Req) -> Reply | None:
    """EMULATED: the model makes one call even when asked for two (parallel calls allowed). Source: no vendor
    documented; the capability behind openai-wire.md TOOLS-6."""
    if with_tools(req) and req.field("parallel_tool_calls") is None and req.ref.validate(req) is None:
        reply = answer(req, parallel_tool_calls=False)
        return reply
    return None


@emulates("tools.call-ids-duplicate", "completion")
def tools_same_ids(body: dict, req: Req) -> None:
    """EMULATED: every tool call of a non-streamed reply has the same id. Source: no vendor documented; violates
    openai-wire.md RESP-MSG-4."""
    calls = calls_of(body)
    for call in calls[1:]:
        call["id"] = calls[0].get("id")


@emulates("tools.parallel-param-rejected", "request")
def tools_parallel_refused(req: Req) -> Reply | None:
    """EMULATED: `parallel_tool_calls` is refused (400, unknown argument). Source: no vendor documented; violates
    openai-wire.md TOOLS-6."""
    if with_tools(req) and req.has("parallel_tool_calls"):
        return refuse(req, 400, "Unrecognized request argument supplied: parallel_tool_calls",
                      param="parallel_tool_calls")
    return None


@emulates("tools.parallel-param-ignored", "request")
def tools_parallel_ignored(req: Req) -> Reply | None:
    """EMULATED: `parallel_tool_calls: false` is accepted and ignored (two calls still come back). Source:
    mistral.rs (documented), ../shared/reference/vendor-quirks.md."""
    if with_tools(req) and req.field("parallel_tool_calls") is False:
        return answer(req, parallel_tool_calls=None)
    return None


@emulates("tools.round-trip-rejected", "request")
def tools_round_trip_refused(req: Req) -> Reply | None:
    """EMULATED: a history with a `tool` message is refused (400). Source: no vendor documented; violates
    openai-wire.md MSG-6."""
    if chat_path(req) and has_role(req, "tool"):
        return refuse(req, 400, "Invalid role 'tool': tool results are not supported", param="messages")
    return None


@emulates("tools.tool-content-parts-rejected", "request")
def tools_tool_parts_refused(req: Req) -> Reply | None:
    """EMULATED: a `tool` message whose content is a list of parts is refused (400). Source: no vendor
    documented; violates openai-wire.md MSG-4."""
    if chat_path(req) and any(m.get("role") == "tool" and isinstance(m.get("content"), list) for m in req.messages):
        return refuse(req, 400, "tool message content must be a string", param="messages")
    return None


@emulates("tools.stream-rejected", "request")
def tools_stream_refused(req: Req) -> Reply | None:
    """EMULATED: streamed requests with tools are refused (400). Source: no vendor documented; violates
    openai-wire.md TOOLS-1."""
    if with_tools(req) and req.stream:
        return refuse(req, 400, "Streaming is not supported with tools", param="stream")
    return None


@emulates("tools.stream-named-ignored", "request")
def tools_stream_named_text(req: Req) -> Reply | None:
    """EMULATED: a streamed request with a named tool_choice is streamed as text (the tool parser only runs on
    whole replies). Source: no vendor documented; violates openai-wire.md TOOLS-5."""
    if with_tools(req) and req.stream and req.forced is not None and req.ref.validate(req) is None:
        return answer(req, tool_choice="auto")
    return None


def parallel_stream(chunks: list[Any]) -> bool:
    return call_count(chunks) >= 2


@emulates("tools.delta-missing-index", "chunks")
def tools_no_index(chunks: list[Any], req: Req) -> None:
    """EMULATED: streamed parallel tool calls carry no `index` in their deltas. Source: gemini (reported),
    ../shared/reference/vendor-quirks.md."""
    if parallel_stream(chunks):
        for _, entry in tool_entries(chunks):
            entry.pop("index", None)


@emulates("tools.delta-index-collision", "chunks",
          also=("tools.delta-repeats-id-name", "tools.delta-arguments-invalid-json",
                "tools.delta-continuation-extras"))
def tools_index_zero(chunks: list[Any], req: Req) -> None:
    """EMULATED: streamed parallel calls all use index 0. Also raises tools.delta-repeats-id-name (later deltas
    at index 0 carry the second call's id and name) and tools.delta-arguments-invalid-json (the two calls'
    arguments join into one string at index 0): both follow from the collision. Source: gemini (reported),
    ../shared/reference/vendor-quirks.md."""
    if parallel_stream(chunks):
        for _, entry in tool_entries(chunks):
            entry["index"] = 0


@emulates("tools.delta-index-gap", "chunks")
def tools_index_gap(chunks: list[Any], req: Req) -> None:
    """EMULATED: streamed parallel calls are numbered 0, 2, 4… Source: no vendor documented; violates
    openai-wire.md TOOLS-DELTA-2."""
    if parallel_stream(chunks):
        for _, entry in tool_entries(chunks):
            entry["index"] = 2 * entry["index"]


@emulates("tools.delta-first-incomplete", "chunks")
def tools_first_no_type(chunks: list[Any], req: Req) -> None:
    """EMULATED: the first delta of each streamed call lacks `type`. Source: no vendor documented; violates
    openai-wire.md TOOLS-DELTA-3."""
    for _, entry in tool_entries(chunks):
        entry.pop("type", None)


@emulates("tools.delta-repeats-id-name", "chunks", also=("tools.delta-continuation-extras",))
def tools_repeat_id_name(chunks: list[Any], req: Req) -> None:
    """EMULATED: every delta of a streamed call repeats its index, id, type and function name. Source:
    llama-cpp-python (measured), ../shared/reference/llama-server.md."""
    heads: dict[Any, dict[str, Any]] = {}
    for _, entry in tool_entries(chunks):
        if entry.get("id"):
            heads[entry.get("index")] = entry
        else:
            head = heads.get(entry.get("index"))
            if head is not None:
                entry.update(id=head["id"], type="function")
                entry.setdefault("function", {})["name"] = head["function"]["name"]


@emulates("tools.delta-arguments-not-string", "chunks")
def tools_args_object_delta(chunks: list[Any], req: Req) -> None:
    """EMULATED: after its string fragments, each streamed call gets one more delta whose `arguments` is the
    parsed object. Source: no vendor documented; violates openai-wire.md TOOLS-DELTA-4."""
    entries = tool_entries(chunks)
    last: dict[Any, dict[str, Any]] = {}
    for c, entry in entries:
        last[entry.get("index")] = c
    for index, c in last.items():
        extra = clone(c)
        for ch in choices(extra):
            ch["delta"] = {"tool_calls": [{"index": index, "function": {"arguments": {}}}]}
        chunks.insert(index_of(chunks, c) + 1, extra)


@emulates("tools.delta-arguments-invalid-json", "chunks")
def tools_args_doubled(chunks: list[Any], req: Req) -> None:
    """EMULATED: in streamed parallel calls every arguments fragment is sent twice. Source: no vendor documented;
    violates openai-wire.md TOOLS-DELTA-5."""
    if parallel_stream(chunks):
        for _, entry in tool_entries(chunks):
            fn = entry.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                fn["arguments"] = fn["arguments"] * 2


@emulates("tools.stream-differs", "chunks")
def tools_stream_other_city(chunks: list[Any], req: Req) -> None:
    """EMULATED: a streamed forced call names another city than the same request not streamed. Source: no vendor
    documented; violates openai-wire.md TOOLS-DELTA-5."""
    if req.forced is not None:
        for _, entry in tool_entries(chunks):
            fn = entry.get("function")
            if isinstance(fn, dict) and fn.get("arguments") == "Paris":
                fn["arguments"] = "Tokyo"


@emulates("tools.delta-interleaved", "chunks")
def tools_interleaved(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: streamed parallel calls are interleaved: every call's first delta, then the arguments fragments
    of all calls. Source: no vendor documented; violates openai-wire.md TOOLS-DELTA-7."""
    if not parallel_stream(chunks):
        return None
    entry_chunks = [c for c, _ in tool_entries(chunks)]
    heads = [c for c, e in tool_entries(chunks) if e.get("id")]
    rest = [c for c in entry_chunks if not any(c is h for h in heads)]
    first = index_of(chunks, entry_chunks[0])
    others = [c for c in chunks if not any(c is e for e in entry_chunks)]
    return others[:first] + heads + rest + others[first:]




# -- issue 16: what OpenRouter's traffic shows (informational quirks) ---------------------------------------------

OPENROUTER_USAGE_EXTRAS = {"cost": 0.0000195, "is_byok": False,
                           "cost_details": {"upstream_inference_cost": None}}


@emulates("tools.delta-continuation-extras", "chunks")
def tools_continuation_extras(chunks: list[Any], req: Req) -> None:
    """EMULATED: every continuation delta of a streamed call repeats `type`, `role: "assistant"` and
    `content: null` beside its argument fragment (no id, no name). Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16 (simonw/llm
    test_tools_streaming_variant_* carry the same shape); breaks no rule of openai-wire.md TOOLS-DELTA-3."""
    for c, entry in tool_entries(chunks):
        if not entry.get("id"):
            entry["type"] = "function"
            for ch in choices(c):
                if isinstance(ch.get("delta"), dict) and entry in (ch["delta"].get("tool_calls") or []):
                    ch["delta"].update(role="assistant", content=None)


@emulates("chat.usage-extra-keys", "completion")
def chat_usage_extras(body: dict, req: Req) -> None:
    """EMULATED: `usage` carries OpenRouter's `cost`, `is_byok` and `cost_details`. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-4."""
    if isinstance(body.get("usage"), dict):
        body["usage"].update(copy.deepcopy(OPENROUTER_USAGE_EXTRAS))


@emulates("chat.usage-details-incomplete", "completion")
def chat_usage_details_incomplete(body: dict, req: Req) -> None:
    """EMULATED: `prompt_tokens_details` is only `{"cached_tokens": 0}`. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-4."""
    if isinstance(body.get("usage"), dict):
        body["usage"]["prompt_tokens_details"] = {"cached_tokens": 0}


@emulates("chat.system-fingerprint-absent", "completion")
def chat_no_fingerprint(body: dict, req: Req) -> None:
    """EMULATED: the reply has no `system_fingerprint` key. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-5."""
    body.pop("system_fingerprint", None)


@emulates("chat.service-tier-absent", "completion")
def chat_no_service_tier(body: dict, req: Req) -> None:
    """EMULATED: the reply has no `service_tier` key. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-5."""
    body.pop("service_tier", None)


@emulates("stream.usage-extra-keys", "chunks")
def stream_usage_extras(chunks: list[Any], req: Req) -> None:
    """EMULATED: the streamed usage carries OpenRouter's `cost`, `is_byok` and `cost_details`. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-4."""
    uc = usage_chunk(chunks)
    if uc is not None:
        uc["usage"].update(copy.deepcopy(OPENROUTER_USAGE_EXTRAS))


@emulates("stream.usage-details-incomplete", "chunks")
def stream_usage_details_incomplete(chunks: list[Any], req: Req) -> None:
    """EMULATED: the streamed usage's `prompt_tokens_details` is only `{"cached_tokens": 0}`. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-4."""
    uc = usage_chunk(chunks)
    if uc is not None:
        uc["usage"]["prompt_tokens_details"] = {"cached_tokens": 0}


@emulates("stream.system-fingerprint-absent", "chunks")
def stream_no_fingerprint(chunks: list[Any], req: Req) -> None:
    """EMULATED: no chunk has a `system_fingerprint` key. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-5."""
    for c in chunk_objects(chunks):
        c.pop("system_fingerprint", None)


@emulates("stream.service-tier-absent", "chunks")
def stream_no_service_tier(chunks: list[Any], req: Req) -> None:
    """EMULATED: no chunk has a `service_tier` key. Source: ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16. Breaks no rule of openai-wire.md RESP-5."""
    for c in chunk_objects(chunks):
        c.pop("service_tier", None)


@emulates("stream.empty-delta", "chunks")
def stream_empty_delta(chunks: list[Any], req: Req) -> list[Any] | None:
    """EMULATED: after the role chunk, a text stream sends a chunk whose delta is `{"content": ""}`. Source:
    ../shared/reference/public-recordings.md §5 (OpenRouter, e.g. pydantic/pydantic-ai tests/models/cassettes/test_openrouter/*) and issue 16 (mirascope's claude-3.5-sonnet stream, crmne/ruby_llm's mistral streams). Breaks no rule of openai-wire.md STREAM-7."""
    objs = chunk_objects(chunks)
    if not text_stream(req) or not objs or not objs[0].get("choices"):
        return None
    empty = clone(objs[0])
    empty["choices"][0]["delta"] = {"content": ""}
    at = index_of(chunks, objs[0]) + 1
    return chunks[:at] + [empty] + chunks[at:]


# -- running the suite in process --------------------------------------------------------------------------

# Short reprs: asyncio.run (Python 3.11) reprs the main task's result when it restores the SIGINT handler, and
# a dataclass repr of a run would render every exchange's body.

@dataclass(repr=False)
class CheckRun:
    spec: CheckSpec
    outcome: Outcome
    exchanges: list[Exchange]
    live: bool = True          # False: reused from a run whose exchanges were byte-identical

    @property
    def quirk(self) -> str | None:
        return self.outcome.quirks[0] if self.outcome.name == "unexpected-quirk" and self.outcome.quirks else None

    def __repr__(self) -> str:
        return f"CheckRun({self.spec.id}: {self.outcome.name})"


@dataclass(repr=False)
class SuiteRun:
    provider: Provider
    checks: dict[str, CheckRun]
    memo: LiveMemo
    sent: int = 0              # probe requests that went over the socket

    def __repr__(self) -> str:
        return f"SuiteRun({self.provider.name}: {len(self.checks)} checks, {self.sent} sent, quirks {self.quirks()})"

    def quirks(self) -> dict[str, str]:
        """quirk id → the check that raised it."""
        return {q: cid for cid, r in self.checks.items() if r.quirk for q in r.outcome.quirks}

    def by_outcome(self, *names: str) -> dict[str, CheckRun]:
        return {cid: r for cid, r in self.checks.items() if r.outcome.name in names}

    def problems(self) -> dict[str, str]:
        """Every outcome that is not a pass: quirks, violations, harness errors (blocked/unsupported excluded)."""
        bad = ("unexpected-quirk", "violation", "error", "stale-expectation", "unavailable")
        return {cid: f"{r.outcome.name}: {r.outcome.message}" for cid, r in self.checks.items()
                if r.outcome.name in bad}


def session(prov: Provider, memo: LiveMemo, test_id: str) -> ProbeSession:
    return ProbeSession(provider=prov, model=prov.model, path=Path("/nonexistent/live-only.yaml"),
                        mode=RunMode.parse("none", live=True), api_key=KEY,
                        scrubber=Scrubber.from_env([KEY_ENV], {KEY_ENV: KEY}),
                        memo=memo, test_id=test_id, rerecord="(live only)")


def memo_key(memo: LiveMemo, prov: Provider, spec: RequestSpec) -> Any:
    """The key ProbeSession files a live exchange under (LiveMemo.key has taken a RequestSpec or a
    (method, path, body) tuple; a spec with a base_url override was never memoised by the tuple form)."""
    try:
        return memo.key(prov.name, prov.model, spec)
    except (AttributeError, TypeError):
        if spec.base_url is not None:
            return ("unmemoised", id(spec))
        return memo.key(prov.name, prov.model, (spec.method, spec.path, spec.body_bytes()))


async def evaluate(spec: CheckSpec, prov: Provider, memo: LiveMemo) -> CheckRun:
    """One check for a live run, through oaicompat.runner.evaluate (the plugin's own path) without pytest.
    A probe already in the memo is not re-sent (the session opens no client for it)."""
    evaluation = await runner.evaluate(spec, runner.Target(prov, prov.model), session(prov, memo, spec.id))
    return CheckRun(spec, evaluation.outcome, list(evaluation.exchanges))


class _SharedTLS:
    """httpx builds a new TLS trust store (about 50 ms) for every AsyncClient, and ProbeSession opens one client
    per check. While the in-process runner works, `oaicompat.session` sees an httpx whose AsyncClient reuses one
    verified SSLContext: the same transport, the same bytes, minus the repeated certificate loading. The
    reference server is plain HTTP on loopback anyway."""

    context = None

    def __init__(self) -> None:
        import oaicompat.session as session_module
        self.module = session_module
        self.saved = None

    def __enter__(self) -> None:
        import ssl
        import types
        if _SharedTLS.context is None:
            _SharedTLS.context = ssl.create_default_context()
        real = self.saved = self.module.httpx

        def client(*args: Any, **kwargs: Any) -> httpx.AsyncClient:
            kwargs.setdefault("verify", _SharedTLS.context)
            return real.AsyncClient(*args, **kwargs)

        shim = types.ModuleType("httpx_shared_tls")
        shim.__dict__.update(real.__dict__)
        shim.AsyncClient = client  # type: ignore[attr-defined]
        self.module.httpx = shim

    def __exit__(self, *exc: object) -> None:
        self.module.httpx = self.saved


async def run_suite(prov: Provider, *, checks: Iterable[str] | None = None, memo: LiveMemo | None = None,
                    reuse: Mapping[str, CheckRun] | None = None) -> SuiteRun:
    """Run every registered check (or `checks`) against `prov`, live. `reuse`: outcomes to take as they are
    for checks not in `checks` (they were evaluated on byte-identical exchanges)."""
    memo = memo if memo is not None else LiveMemo()
    before = len(memo.store)
    wanted = list(checks) if checks is not None else list(CHECKS)
    out: dict[str, CheckRun] = {}
    sent = 0
    with _SharedTLS():
        for cid in CHECKS:
            if cid in wanted:
                out[cid] = await evaluate(CHECKS[cid], prov, memo)
                sent += sum(1 for n in CHECKS[cid].probes if PROBES[n].fresh)
            elif reuse is not None and cid in reuse:
                r = reuse[cid]
                out[cid] = CheckRun(r.spec, r.outcome, r.exchanges, live=False)
    return SuiteRun(prov, out, memo, sent + len(memo.store) - before)


# -- which probes a behaviour changes (rendered in process, no socket) ---------------------------------------

_WIRE: dict[tuple[str | None, str, str], WireRequest] = {}


def wire_request(prov: Provider, name: str) -> WireRequest:
    """The request the server receives for probe `name` (as oaicompat.transport builds it). Cached: probes
    depend on the provider's URL, model, headers and limits, which no behaviour changes."""
    key = (prov.base_url, prov.model, name)
    if key not in _WIRE:
        _WIRE[key] = _wire_request(prov, name)
    return _WIRE[key]


def _wire_request(prov: Provider, name: str) -> WireRequest:
    spec = PROBES[name].build(ProbeContext(prov, prov.model))
    transport = Transport(prov, None, api_key=KEY)  # type: ignore[arg-type]
    url, headers, body = transport.build_request(spec)
    path = httpx.URL(url).raw_path.decode().split("?")[0]
    hdrs = {k.lower(): v for k, v in headers.items()}
    if body:
        hdrs["content-length"] = str(len(body))
    return WireRequest(spec.method, path, hdrs, body)


async def rendered(handler: Any, prov: Provider, names: Iterable[str]) -> dict[str, tuple[bytes, str]]:
    out = {}
    for name in names:
        out[name] = (await render(handler, wire_request(prov, name))).key()
    return out


def probes_of(check_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(p for cid in check_ids for p in CHECKS[cid].probes))


# -- recall: the suite against one behaviour ------------------------------------------------------------------

@dataclass(repr=False)
class Baseline:
    """The conformant run: every check's outcome, what every probe renders to, and the LiveMemo key of every
    probe that is not fresh."""
    run: SuiteRun
    renders: dict[str, tuple[bytes, str]]
    keys: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Baseline({self.run!r})"


async def conformant_baseline(server: Any, framing: Framing = DEFAULT_FRAMING) -> Baseline:
    server.handler = reference(framing=framing)
    prov = provider(server.base_url)
    run = await run_suite(prov)
    ctx = ProbeContext(prov, prov.model)
    keys = {name: memo_key(run.memo, prov, p.build(ctx)) for name, p in PROBES.items() if not p.fresh}
    return Baseline(run, await rendered(server.handler, prov, PROBES), keys)


async def run_behaviour(server: Any, behaviour: Behaviour, base: Baseline) -> SuiteRun:
    """The whole suite with `behaviour` on. A check is run live when one of its probes renders differently from
    the conformant server (or it was not evaluated there); the others keep their conformant outcome, which is
    what they would compute again from byte-identical exchanges. Probes that render alike are not re-sent."""
    prov = provider(server.base_url, **behaviour.provider)
    handler = server.handler = reference(behaviour)
    renders = await rendered(handler, prov, PROBES)
    changed = {name for name, r in renders.items() if base.renders.get(name) != r}
    live = []
    for cid, spec in CHECKS.items():
        before = base.run.checks.get(cid)
        supported = all(prov.supports_feature(n) for n in spec.needs)
        if not supported or before is None or before.outcome.name == "unsupported" or set(spec.probes) & changed:
            live.append(cid)
    memo = LiveMemo()
    for name, key in base.keys.items():
        if name not in changed and key in base.run.memo.store:
            memo.store[key] = base.run.memo.store[key]
    return await run_suite(prov, checks=live, memo=memo, reuse=base.run.checks)
