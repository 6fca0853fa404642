"""Latency per provider, from the `timing` of its results records (pure: no files, no clock).

    for name, figures in provider_latency(records).items(): ...
    annotate_latency(log.providers, log.records)     # providers[<name>]["latency"] = figures

Each record's `timing` (oaicompat.timing / results.make_record) describes the first successful exchange of a
check: `ttft` (first content token of a stream, else first body byte), `total` (send → end of body),
`completion_tokens` (from usage), the stream's own inter-chunk `gap_p50` / `gap_p95`, and its evidence `level`.
Per provider this gives:

    samples             exchanges the figures come from (identical timings of the same request count once:
                        checks share memoised live exchanges, and their cassettes share the recording)
    ttft_p50, ttft_p95  seconds to the first token, over all timed exchanges
    gap_p50, gap_p95    inter-chunk gap of a typical stream: the median, over streamed exchanges, of each
                        stream's own p50 and p95 (a record keeps per-stream percentiles, not every gap)
    tokens_per_s        output tokens per second: the median, over streamed exchanges that report
                        completion_tokens, of tokens / (total - ttft) (basis "decode"); a provider with no
                        such stream gets tokens / total over its one-piece bodies (basis "end-to-end", which
                        includes prompt processing: a one-piece body's first byte is also its last)
    tokens_per_s_basis  decode | end-to-end | null
    total_p50, total_p95, total_sum   request time, send to end of body
    level               live | recorded (live figures win when a provider has both; third-party evidence,
                        whose arrival times are not ours, is never used)
    recorded_at         for recorded figures: the oldest and newest `recorded_at` of the cassettes, else null

Figures that have no sample are null. Seconds are rounded to the microsecond, rates to 0.01.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from statistics import median
from typing import Any

from .timing import percentile

LEVELS = ("live", "recorded")          # in order of preference


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value >= 0 else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return round(value, digits) if value is not None else None


def _sample_key(rec: Mapping[str, Any], timing: Mapping[str, Any]) -> tuple[Any, ...]:
    evidence = rec.get("evidence") or [{}]
    first = evidence[0] if isinstance(evidence[0], Mapping) else {}
    return (rec.get("model"), first.get("request"), first.get("body_head"),
            *(timing.get(k) for k in ("ttft", "total", "completion_tokens", "gap_p50", "gap_p95")))


def _recorded_at(recs: Iterable[Mapping[str, Any]]) -> dict[str, str] | None:
    dates = sorted({str(ev["recorded_at"]) for r in recs for ev in (r.get("evidence") or [])
                    if isinstance(ev, Mapping) and ev.get("level") == "recorded" and ev.get("recorded_at")})
    return {"oldest": dates[0], "newest": dates[-1]} if dates else None


def summarise(records: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The latency figures of one provider's records, or None when none of them is timed (live or recorded)."""
    by_level: dict[str, list[tuple[Mapping[str, Any], Mapping[str, Any]]]] = {lv: [] for lv in LEVELS}
    for rec in records:
        timing = rec.get("timing")
        if isinstance(timing, Mapping) and timing.get("level") in by_level:
            by_level[str(timing["level"])].append((rec, timing))
    level = next((lv for lv in LEVELS if by_level[lv]), None)
    if level is None:
        return None
    seen: set[tuple[Any, ...]] = set()
    samples: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for rec, timing in by_level[level]:
        key = _sample_key(rec, timing)
        if key not in seen:
            seen.add(key)
            samples.append((rec, timing))
    ttfts = [v for _, t in samples if (v := _num(t.get("ttft"))) is not None]
    totals = [v for _, t in samples if (v := _num(t.get("total"))) is not None]
    gap50 = [v for _, t in samples if (v := _num(t.get("gap_p50"))) is not None]
    gap95 = [v for _, t in samples if (v := _num(t.get("gap_p95"))) is not None]
    decode: list[float] = []          # streams: tokens over the time after the first token
    whole: list[float] = []           # one-piece bodies: the first byte is the last, only the whole time counts
    for _, t in samples:
        tokens, total, ttft = t.get("completion_tokens"), _num(t.get("total")), _num(t.get("ttft"))
        if not (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0 and total):
            continue
        if _num(t.get("gap_p50")) is not None and ttft is not None and ttft < total:
            decode.append(tokens / (total - ttft))
        else:
            whole.append(tokens / total)
    rates, basis = (decode, "decode") if decode else (whole, "end-to-end") if whole else ([], None)
    return {
        "level": level,
        "recorded_at": _recorded_at(r for r, _ in samples) if level == "recorded" else None,
        "samples": len(samples),
        "ttft_p50": _round(percentile(ttfts, 50)),
        "ttft_p95": _round(percentile(ttfts, 95)),
        "gap_p50": _round(median(gap50)) if gap50 else None,
        "gap_p95": _round(median(gap95)) if gap95 else None,
        "tokens_per_s": _round(median(rates), 2) if rates else None,
        "tokens_per_s_basis": basis,
        "total_p50": _round(percentile(totals, 50)),
        "total_p95": _round(percentile(totals, 95)),
        "total_sum": _round(sum(totals)) if totals else None,
    }


def provider_latency(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """provider name → latency figures (see the module doc), for every provider that has a timed record."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        grouped.setdefault(str(rec.get("provider")), []).append(rec)
    out: dict[str, dict[str, Any]] = {}
    for name, recs in grouped.items():
        figures = summarise(recs)
        if figures is not None:
            out[name] = figures
    return out


def annotate_latency(providers: MutableMapping[str, dict[str, Any]], records: Iterable[Mapping[str, Any]]) -> None:
    """Set providers[<name>]["latency"] for every provider listed in `providers` that has timed records."""
    for name, figures in provider_latency(records).items():
        if name in providers:
            providers[name]["latency"] = figures
