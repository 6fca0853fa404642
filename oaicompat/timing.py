"""Latency figures from an Exchange's chunk arrival times (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from statistics import quantiles
from typing import Any

from .exchange import Exchange

TOKEN_FIELDS = ("content", "tool_calls", "reasoning_content", "reasoning")   # a delta that carries any has a token


@dataclass(frozen=True)
class Timing:
    ttft: float | None            # first content token (streams) or first body byte
    total: float | None
    completion_tokens: int | None
    gaps: tuple[float, ...] = ()  # inter-chunk gaps of a stream

    def as_dict(self) -> dict[str, Any]:
        return {"ttft": _r(self.ttft), "total": _r(self.total), "completion_tokens": self.completion_tokens,
                "gap_p50": _r(percentile(self.gaps, 50)), "gap_p95": _r(percentile(self.gaps, 95))}


def _r(v: float | None) -> float | None:
    return round(v, 6) if v is not None else None


def percentile(values: tuple[float, ...] | list[float], p: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return quantiles(sorted(values), n=100, method="inclusive")[p - 1]


def _usage_tokens(obj: Any) -> int | None:
    if isinstance(obj, dict) and isinstance(obj.get("usage"), dict):
        v = obj["usage"].get("completion_tokens")
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    return None


def timing_of(ex: Exchange) -> Timing:
    if not ex.chunks:
        return Timing(None, ex.elapsed, None)
    if ex.request.stream and ex.content_type == "text/event-stream":
        ttft = None
        tokens = None
        offsets = [0]
        for c in ex.chunks:
            offsets.append(offsets[-1] + len(c.data))
        times = [c.t for c in ex.chunks]
        for ev in ex.sse.events:
            try:
                obj = json.loads(ev.data)
            except (ValueError, RecursionError):
                continue
            tokens = _usage_tokens(obj) or tokens
            if ttft is None and isinstance(obj, dict):
                for ch in obj.get("choices") or []:
                    delta = ch.get("delta") if isinstance(ch, dict) else None
                    if isinstance(delta, dict) and any(delta.get(k) for k in TOKEN_FIELDS):
                        ttft = times[min(ev.chunk_index, len(times) - 1)]
                        break
        gaps = tuple(b - a for a, b in zip(times, times[1:]))
        return Timing(ttft if ttft is not None else times[0], ex.elapsed, tokens, gaps)
    return Timing(ex.chunks[0].t, ex.elapsed, _usage_tokens(ex.json_or_none()))
