"""Synthetic, schema-valid results documents (deterministic) for the report's tests, benchmark and demos.

Never written to fixtures: generated on the fly, like benchmarks/bench_sse.py's stream.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

AREAS = ("chat", "streaming", "tools", "json", "errors", "models", "params")
_OUTCOMES = (("pass", 70), ("expected-quirk", 8), ("unexpected-quirk", 5), ("violation", 3), ("unsupported", 5),
             ("not-recorded", 3), ("error", 2), ("info", 2), ("blocked", 1), ("stale-expectation", 1))
STARTED = "2026-10-30T02:00:00Z"
FINISHED = "2026-10-30T02:10:00Z"


def _body(rng: random.Random, model: str, sse: bool) -> tuple[str, str]:
    if sse:
        events = []
        for i in range(rng.randint(3, 6)):
            chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1730000000, "model": model,
                     "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]}
            events.append("data: " + json.dumps(chunk, separators=(",", ":")))
        events.append("data: [DONE]")
        return "text/event-stream", ("\n\n".join(events) + "\n\n")[:500]
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1730000000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there. " * rng.randint(1, 12)},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}}
    return "application/json", json.dumps(body)[:500]


def _level(p: int) -> str:
    return "third-party" if p % 5 == 4 else ("live" if p % 3 == 0 else "recorded")


def synthetic_results(n_providers: int = 5, n_checks: int = 30, seed: int = 7,
                      quirk_ids: Sequence[str] = (), started_at: str = STARTED) -> dict[str, Any]:
    """A results document: n_providers × n_checks records with every kind of outcome and evidence level."""
    rng = random.Random(seed)
    names, weights = zip(*_OUTCOMES)
    checks = [(AREAS[i % len(AREAS)], f"{AREAS[i % len(AREAS)]}.check-{i:03d}") for i in range(n_checks)]
    providers: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for p in range(n_providers):
        name, model = f"provider-{p:02d}", f"model-{p % 4}-large"
        providers[name] = {"title": f"Provider {p:02d} Inc.", "kind": ("hosted", "local", "gateway")[p % 3],
                           "models": [model], "software": None, "docs": f"https://docs.example.com/{name}",
                           "recorded": True}
        level = _level(p)
        for area, check in checks:
            outcome = rng.choices(names, weights)[0]
            quirk = (rng.choice(list(quirk_ids)) if quirk_ids else f"{area}.quirk-{rng.randint(0, 9)}")
            quirks = [quirk] if outcome in ("expected-quirk", "unexpected-quirk", "stale-expectation") else []
            declared = ({quirk: {"reason": "vendor documents it", "source": f"https://docs.example.com/{name}#q",
                                 "origin": "server"}} if outcome in ("expected-quirk", "stale-expectation") else {})
            rec: dict[str, Any] = {
                "test": f"suites/test_{area}.py::test_{check.split('.')[1]}[{name}-{model}]",
                "check": check, "area": area, "rule": f"RULE-{rng.randint(1, 9)}", "kind": "protocol",
                "title": f"Synthetic check {check}", "provider": name, "model": model, "outcome": outcome,
                "quirks": quirks, "message": "" if outcome == "pass" else f"{outcome}: synthetic detail for {check}",
                "lines": [f"> POST /chat/completions {{\"model\": \"{model}\"}}", "< 200 application/json"]
                if outcome not in ("pass", "not-recorded", "unsupported") else [],
                "declared": declared, "observations": [], "evidence": [],
            }
            if outcome not in ("not-recorded", "unsupported"):
                sse = area == "streaming"
                ctype, body = _body(rng, model, sse)
                ev: dict[str, Any] = {
                    "level": level,
                    "request": "POST /v1/chat/completions " + json.dumps({"model": model, "stream": sse}),
                    "status": 200, "content_type": ctype, "body_head": body, "failure": None,
                }
                if level != "live":
                    ev["recorded_at"] = "2026-10-01T12:00:00Z"
                    ev["cassette"] = f"fixtures/cassettes/{name}/test_{area}/test_x.yaml"
                if level == "third-party":
                    ev.update(source_repo="github.com/example/llm-recordings", source_path=f"cassettes/{name}.yaml",
                              source_commit="0123456789abcdef0123456789abcdef01234567", license="MIT")
                rec["evidence"] = [ev]
                if sse and outcome in ("pass", "expected-quirk"):
                    ttft = round(rng.uniform(0.05, 0.9), 4)
                    rec["timing"] = {"ttft": ttft, "total": round(ttft + rng.uniform(0.5, 4), 4),
                                     "completion_tokens": rng.randint(20, 200), "gap_p50": 0.02, "gap_p95": 0.05,
                                     "level": level}
            records.append(rec)
    return {"oaicompat_results": 1, "oaicompat_version": "0.1.0", "mode": "replay", "started_at": started_at,
            "finished_at": FINISHED, "providers": providers, "records": records}
