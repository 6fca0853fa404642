"""Function tools: the probes (requests with one `get_weather` function tool, tool_choice none/auto/
required/named, streamed, strict, parallel, and the tool round trip). The checks are in checks/tools.py,
the readers of tool calls in checks/tool_calls.py.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ..paths import SCHEMAS
from ..transport import RequestSpec
from .base import ProbeContext, probe

PROBE_SCHEMAS = SCHEMAS / "probes"
FUNCTION = "get_weather"
NAMED_CHOICE = {"type": "function", "function": {"name": FUNCTION}}
PROMPT = "What is the weather in Paris? Call get_weather."
PARALLEL_PROMPT = "What is the weather in Paris and in Tokyo? Call get_weather twice, once for each city."
CJK_PROMPT = "東京の天気は？ get_weather を呼んでください。"
SUBJECT = ("tools", "tool_choice", "parallel_tool_calls", "stream", "messages")


@cache
def _schema_text(name: str) -> str:
    return (PROBE_SCHEMAS / name).read_text(encoding="utf-8")


def load_probe_schema(name: str) -> dict[str, Any]:
    """A fresh copy of fixtures/schemas/probes/<name> (probes may not share mutable request parts)."""
    return json.loads(_schema_text(name))


def weather_tool(parameters: str = "get_weather.parameters.json", *, strict: bool | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": FUNCTION, "description": "Get the current weather in a city.",
                                "parameters": load_probe_schema(parameters)}
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def _tool_request(ctx: ProbeContext, prompt: str = PROMPT, *, tools: list[dict[str, Any]] | None = None,
                  max_tokens: int = 32, messages: list[dict[str, Any]] | None = None, **fields: Any) -> RequestSpec:
    msgs = messages if messages is not None else [{"role": "user", "content": prompt}]
    return RequestSpec(json=ctx.chat(msgs, subject=SUBJECT, tools=tools or [weather_tool()],
                                     max_tokens=max_tokens, temperature=0, **fields))


@probe("tools.basic")
def basic(ctx: ProbeContext) -> RequestSpec:
    """One function tool, no tool_choice (the default, auto)."""
    return _tool_request(ctx)


@probe("tools.none")
def choice_none(ctx: ProbeContext) -> RequestSpec:
    """One function tool with tool_choice "none"."""
    return _tool_request(ctx, tool_choice="none")


@probe("tools.auto")
def choice_auto(ctx: ProbeContext) -> RequestSpec:
    """One function tool with tool_choice "auto"."""
    return _tool_request(ctx, tool_choice="auto")


@probe("tools.required")
def choice_required(ctx: ProbeContext) -> RequestSpec:
    """One function tool with tool_choice "required"."""
    return _tool_request(ctx, tool_choice="required")


@probe("tools.named")
def choice_named(ctx: ProbeContext) -> RequestSpec:
    """One function tool, forced with the named tool_choice object."""
    return _tool_request(ctx, tool_choice=NAMED_CHOICE)


@probe("tools.named-stream")
def choice_named_stream(ctx: ProbeContext) -> RequestSpec:
    """tools.named, streamed (same body plus stream: true)."""
    return _tool_request(ctx, tool_choice=NAMED_CHOICE, stream=True)


@probe("tools.strict")
def strict_named(ctx: ProbeContext) -> RequestSpec:
    """tools.named with `strict: true` on the function (its parameters obey the strict subset)."""
    return _tool_request(ctx, tools=[weather_tool(strict=True)], tool_choice=NAMED_CHOICE)


@probe("tools.cjk")
def cjk_named(ctx: ProbeContext) -> RequestSpec:
    """A forced call whose only valid argument values are Japanese city names."""
    return _tool_request(ctx, CJK_PROMPT, tools=[weather_tool("get_weather_ja.parameters.json")],
                         tool_choice=NAMED_CHOICE)


@probe("tools.parallel")
def parallel(ctx: ProbeContext) -> RequestSpec:
    """Asks for two calls, tool_choice "required" (64 tokens: two calls do not fit in 32)."""
    return _tool_request(ctx, PARALLEL_PROMPT, tool_choice="required", max_tokens=64)


@probe("tools.parallel-stream")
def parallel_stream(ctx: ProbeContext) -> RequestSpec:
    """tools.parallel, streamed."""
    return _tool_request(ctx, PARALLEL_PROMPT, tool_choice="required", max_tokens=64, stream=True)


@probe("tools.parallel-off")
def parallel_off_request(ctx: ProbeContext) -> RequestSpec:
    """tools.parallel with parallel_tool_calls: false."""
    return _tool_request(ctx, PARALLEL_PROMPT, tool_choice="required", max_tokens=64, parallel_tool_calls=False)


def _round_trip_messages(tool_content: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc123", "type": "function",
             "function": {"name": FUNCTION, "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": tool_content},
    ]


@probe("tools.round-trip")
def round_trip(ctx: ProbeContext) -> RequestSpec:
    """Assistant message with a tool call, then the tool's answer (string content); tool_choice "none"."""
    return _tool_request(ctx, messages=_round_trip_messages("18 C, sunny"), tool_choice="none")


@probe("tools.round-trip-parts")
def round_trip_parts(ctx: ProbeContext) -> RequestSpec:
    """tools.round-trip with the tool message content as an array of text parts."""
    return _tool_request(ctx, messages=_round_trip_messages([{"type": "text", "text": "18 C, sunny"}]),
                         tool_choice="none")
