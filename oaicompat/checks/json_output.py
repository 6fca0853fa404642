"""JSON output: `response_format` json_object and json_schema (openai-wire.md §1.5 RF-1..4, §8 STRICT-*).

A reply cut at max_tokens is not valid JSON and that is not a schema failure: the content checks raise
Blocked for it, and the `*-cut-length` checks own the rule that such a reply says finish_reason "length".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..exchange import Exchange, Request
from ..paths import SCHEMAS
from ..transport import RequestSpec
from .base import (
    Blocked,
    Observation,
    ProbeContext,
    QuirkFound,
    check,
    clip,
    compact,
    error_shape,
    evidence,
    first_choice,
    is_int,
    parse_json,
    probe,
    require_success,
    schema_error,
)
from .common import require_200_object
from .requires import OK_JSON_OBJECT

PROBE_SCHEMAS = SCHEMAS / "probes"
SUBJECT = ("response_format", "max_tokens", "max_completion_tokens", "messages", "tools", "stream")
OBJECT_PROMPT = 'Reply in JSON, exactly like this: {"greeting": "hello"}'
SCHEMA_PROMPT = "Is it sunny in Paris? Answer in JSON."
CUT_MAX_TOKENS = 3

OBJECT_ACCEPTED = "json.object-accepted"
OBJECT_VALID = "json.object-valid"
OBJECT_CUT = "json.object-cut-length"
SCHEMA_ACCEPTED = "json.schema-accepted"
SCHEMA_VALID = "json.schema-valid"
SCHEMA_CUT = "json.schema-cut-length"


# -- probes -----------------------------------------------------------------------------------------

@cache
def _schema_text(name: str) -> str:
    return (PROBE_SCHEMAS / name).read_text(encoding="utf-8")


def load_probe_schema(name: str) -> dict[str, Any]:
    """A fresh copy of fixtures/schemas/probes/<name>."""
    return json.loads(_schema_text(name))


def schema_format(schema: str = "weather_answer.schema.json", *, strict: bool = True) -> dict[str, Any]:
    return {"type": "json_schema",
            "json_schema": {"name": "weather_answer", "strict": strict, "schema": load_probe_schema(schema)}}


def _request(ctx: ProbeContext, prompt: str, response_format: dict[str, Any], max_tokens: int) -> RequestSpec:
    return RequestSpec(json=ctx.chat([{"role": "user", "content": prompt}], subject=SUBJECT,
                                     response_format=response_format, max_tokens=max_tokens, temperature=0))


@probe("json.object")
def object_basic(ctx: ProbeContext) -> RequestSpec:
    """json_object with "JSON" in the prompt (48 tokens, so a short object completes)."""
    return _request(ctx, OBJECT_PROMPT, {"type": "json_object"}, 48)


@probe("json.object-no-word")
def object_no_word(ctx: ProbeContext) -> RequestSpec:
    """json_object, and the word "json" appears nowhere in the messages."""
    return _request(ctx, "Say hello.", {"type": "json_object"}, 16)


@probe("json.object-cut")
def object_cut(ctx: ProbeContext) -> RequestSpec:
    """json.object with max_tokens 3: the object cannot complete."""
    return _request(ctx, OBJECT_PROMPT, {"type": "json_object"}, CUT_MAX_TOKENS)


@probe("json.schema")
def schema_basic(ctx: ProbeContext) -> RequestSpec:
    """json_schema, strict, an enum and a boolean (short output; 48 tokens leave room for whitespace)."""
    return _request(ctx, SCHEMA_PROMPT, schema_format(), 48)


@probe("json.schema-cut")
def schema_cut(ctx: ProbeContext) -> RequestSpec:
    """json.schema with max_tokens 3: no valid instance fits."""
    return _request(ctx, SCHEMA_PROMPT, schema_format(), CUT_MAX_TOKENS)


@probe("json.schema-not-strict")
def schema_not_strict(ctx: ProbeContext) -> RequestSpec:
    """strict: true with a schema outside the strict subset (no additionalProperties: false, an optional key)."""
    return _request(ctx, SCHEMA_PROMPT, schema_format("weather_answer.not-strict.schema.json"), 16)


# -- helpers ----------------------------------------------------------------------------------------

def _wants(kind: str):
    def applies(req: Request) -> bool:
        rf = req.field("response_format")
        return isinstance(rf, dict) and rf.get("type") == kind
    return applies


def unclosed(text: str) -> bool:
    """True when `text` is the start of a JSON object/array cut short: an open string or bracket at the end."""
    text = text.strip()
    if not text or text[0] not in "{[":
        return False
    stack: list[str] = []
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if not stack or stack.pop() != c:
                return False
    return in_string or bool(stack)


@dataclass(frozen=True)
class Reply:
    ex: Exchange
    choice: dict[str, Any]
    message: dict[str, Any]
    body: dict[str, Any]

    @property
    def content(self) -> Any:
        return self.message.get("content")

    @property
    def finish(self) -> Any:
        return self.choice.get("finish_reason")

    def at_cap(self) -> bool:
        """completion_tokens reached the requested max_tokens (or max_completion_tokens)."""
        usage = self.body.get("usage")
        used = usage.get("completion_tokens") if isinstance(usage, dict) else None
        cap = self.ex.request.field("max_completion_tokens", self.ex.request.field("max_tokens"))
        return is_int(used) and is_int(cap) and used >= cap

    def lines(self) -> list[str]:
        usage = self.body.get("usage")
        return evidence(self.ex, f"< \"content\": {compact(self.content)}",
                        f"< \"finish_reason\": {compact(self.finish)}, \"usage\": {compact(usage)}")


def reply(ex: Exchange, owner: str) -> Reply:
    body = require_success(ex, owner)
    choice = first_choice(body, owner, ex)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise Blocked("choices[0] has no message object", owner, ex)
    return Reply(ex, choice, message, body)


def starts_as_json(text: str) -> bool:
    """True when `text` could be the beginning of a JSON object or array (empty counts: nothing came yet)."""
    stripped = text.lstrip()
    return not stripped or stripped[0] in "{["


def _content_or_block(r: Reply, cut_owner: str) -> Any:
    """The content to judge (any type); Blocked when the reply was cut at max_tokens, unless what came does not
    even begin as JSON (then the format was not applied, cut or not); None for a refusal."""
    content = r.content
    if r.finish == "length" and not (isinstance(content, str) and not starts_as_json(content)):
        raise Blocked("the reply was cut at max_tokens (finish_reason \"length\"); its JSON is not judged",
                      cut_owner, r.ex)
    if isinstance(content, str) and not parse_json(content)[0] and unclosed(content) and r.at_cap():
        raise Blocked(f"the content stops mid-JSON at max_tokens, yet finish_reason is {r.finish!r}", cut_owner, r.ex)
    return content


def not_json(kind: str, r: Reply, err: str) -> str:
    text = r.content if isinstance(r.content, str) else ""
    cut = (" (cut at max_tokens, but no JSON had begun: the format was not applied)" if r.finish == "length"
           else "")
    return f"{kind} reply content is not JSON ({err}); it begins {clip(text.lstrip(), 60)!r}{cut}"


def _requested_schema(req: Request) -> Any:
    rf = req.field("response_format")
    spec = rf.get("json_schema") if isinstance(rf, dict) else None
    return spec.get("schema") if isinstance(spec, dict) else None


# -- json_object ------------------------------------------------------------------------------------

@check("json.object-accepted", rule="RF-1", probes=["json.object"], quirks=["json.object-rejected"],
       needs=("json_object",), applies=_wants("json_object"))
def object_accepted(ex: Exchange) -> None:
    """`response_format: {"type": "json_object"}` is accepted."""
    require_200_object(ex, "json.object-rejected", "response_format json_object was not answered 200")


@check("json.object-valid", rule="RF-2", probes=["json.object"], quirks=["json.object-ignored",
       "json.object-blank-output"],
       needs=("json_object",), applies=_wants("json_object"), requires=OK_JSON_OBJECT)
def object_valid(ex: Exchange) -> list[Observation]:
    """With json_object, `message.content` parses as a JSON object."""
    r = reply(ex, OBJECT_ACCEPTED)
    content = _content_or_block(r, OBJECT_CUT)
    if content is None and isinstance(r.message.get("refusal"), str):
        return [Observation("refusal", r.message.get("refusal"))]
    if not isinstance(content, str):
        raise QuirkFound("json.object-ignored", f"json_object reply content is {type(content).__name__} "
                         f"{clip(compact(content), 80)}, not a string holding JSON", ex, r.lines())
    if not content.strip():
        raise QuirkFound("json.object-blank-output", f"json_object reply content is {content!r} "
                         f"(finish_reason {r.finish!r})", ex, r.lines())
    ok, value, err = parse_json(content)
    if not ok:
        raise QuirkFound("json.object-ignored", not_json("json_object", r, err), ex, r.lines())
    if not isinstance(value, dict):
        raise QuirkFound("json.object-ignored", f"json_object reply content is JSON {type(value).__name__}, "
                         "not an object", ex, r.lines())
    return []


@check("json.object-no-word", rule="RF-2", probes=["json.object", "json.object-no-word"],
       quirks=["json.object-needs-json-word"], needs=("json_object",), applies=_wants("json_object"))
def object_without_word(with_word: Exchange, without: Exchange) -> None:
    """json_object is accepted when the word "json" appears nowhere in the prompt."""
    if without.status == 200:
        return
    if with_word.status != 200:
        raise Blocked("json_object is rejected even with \"JSON\" in the prompt", OBJECT_ACCEPTED, with_word)
    raise QuirkFound("json.object-needs-json-word", "json_object is accepted with \"JSON\" in the prompt but "
                     f"not without it: {error_shape(without)}", without, evidence(without))


def _cut(ex: Exchange, quirk: str, accepted_owner: str, valid_owner: str) -> list[Observation]:
    r = reply(ex, accepted_owner)
    if r.finish == "length":
        return [Observation("finish_reason", "length")]
    content = r.content if isinstance(r.content, str) else None
    if content is not None and parse_json(content)[0]:
        return [Observation("not-cut", f"the reply completed as JSON within max_tokens ({clip(content, 60)!r}); "
                            "the rule held trivially")]
    if content is not None and (unclosed(content) or r.at_cap()):
        raise QuirkFound(quirk, f"the content {clip(content, 80)!r} is cut at max_tokens but finish_reason is "
                         f"{r.finish!r}", ex, r.lines())
    raise Blocked(f"the content {clip(compact(r.content), 80)} is not JSON but was not cut at max_tokens",
                  valid_owner, ex)


@check("json.object-cut-length", rule="RF-4", probes=["json.object-cut"], quirks=["json.object-cut-not-length"],
       needs=("json_object",), applies=_wants("json_object"))
def object_cut_length(ex: Exchange) -> list[Observation]:
    """A json_object reply cut at max_tokens says finish_reason "length"."""
    return _cut(ex, "json.object-cut-not-length", OBJECT_ACCEPTED, OBJECT_VALID)


# -- json_schema ------------------------------------------------------------------------------------

@check("json.schema-accepted", rule="RF-1", probes=["json.schema"], quirks=["json.schema-rejected"],
       needs=("json_schema",), applies=_wants("json_schema"))
def schema_accepted(ex: Exchange) -> None:
    """`response_format` json_schema with `strict: true` and a strict-subset schema is accepted."""
    require_200_object(ex, "json.schema-rejected", "response_format json_schema (strict) was not answered 200")


@check("json.schema-valid", rule="RF-3", probes=["json.schema"], quirks=["json.schema-ignored"],
       needs=("json_schema",), applies=_wants("json_schema"))
def schema_valid(ex: Exchange) -> list[Observation]:
    """With strict json_schema, `message.content` validates against the schema (or `refusal` is set)."""
    r = reply(ex, SCHEMA_ACCEPTED)
    content = _content_or_block(r, SCHEMA_CUT)
    if content is None and isinstance(r.message.get("refusal"), str):
        return [Observation("refusal", r.message.get("refusal"))]
    if not isinstance(content, str):
        raise QuirkFound("json.schema-ignored", f"json_schema reply content is {type(content).__name__} "
                         f"{clip(compact(content), 80)}, not a string holding JSON", ex, r.lines())
    ok, value, err = parse_json(content)
    if not ok:
        raise QuirkFound("json.schema-ignored", not_json("json_schema", r, err), ex, r.lines())
    schema = _requested_schema(ex.request)
    problem = schema_error(value, schema) if schema is not None else None
    if problem:
        raise QuirkFound("json.schema-ignored", f"json_schema reply content does not validate {problem}", ex,
                         r.lines())
    return []


@check("json.schema-cut-length", rule="RF-4", probes=["json.schema-cut"], quirks=["json.schema-cut-not-length"],
       needs=("json_schema",), applies=_wants("json_schema"))
def schema_cut_length(ex: Exchange) -> list[Observation]:
    """A json_schema reply cut at max_tokens says finish_reason "length" (openai-python's .parse() relies on it)."""
    return _cut(ex, "json.schema-cut-not-length", SCHEMA_ACCEPTED, SCHEMA_VALID)


@check("json.schema-strict-checked", rule="STRICT-9", probes=["json.schema", "json.schema-not-strict"],
       quirks=["json.schema-strict-unchecked"], needs=("json_schema",), applies=_wants("json_schema"))
def schema_strict_checked(valid: Exchange, invalid: Exchange) -> list[Observation]:
    """`strict: true` with a schema outside the strict subset is rejected with a 4xx."""
    if valid.status != 200:
        raise Blocked("the strict-subset schema is rejected too", SCHEMA_ACCEPTED, valid)
    if invalid.status is not None and 400 <= invalid.status < 500:
        return [Observation("rejection", error_shape(invalid))]
    raise QuirkFound("json.schema-strict-unchecked", "a strict schema without additionalProperties: false and "
                     f"with an optional key was not rejected with a 4xx: {error_shape(invalid)}", invalid,
                     evidence(invalid))
