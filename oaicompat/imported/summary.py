"""How much imported evidence each vendor has, and how much of it the checks judged (`oaicompat evidence --table`).

An exchange counts as judged when at least one check gave it a verdict (pass, info, or a quirk, expected or
not, or a stale expectation); "not applicable", "unsupported" and "blocked" records are not verdicts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .store import StoredInteraction

JUDGED_OUTCOMES = frozenset({"pass", "info", "expected-quirk", "unexpected-quirk", "stale-expectation"})


@dataclass
class VendorEvidence:
    vendor: str
    sources: set[str] = field(default_factory=set)
    exchanges: int = 0            # every stored interaction
    chat: int = 0                 # of them, POST /chat/completions
    excluded: int = 0             # excluded or body edited: kept as provenance only
    body_only: int = 0            # no request recorded (prism-php/prism, vercel/ai bodies)
    judged: int = 0
    judged_chat: int = 0


def exchange_key(item: StoredInteraction) -> str:
    """The `<vendor>/<slug>/<file>#<index>` part of an imported record's test id."""
    return f"{item.vendor}/{item.file.parent.name}/{item.file.name}#{item.index}"


def _record_key(record: dict[str, Any]) -> str | None:
    parts = str(record.get("test", "")).split("::")
    return parts[1] if len(parts) == 3 and "#" in parts[1] else None


def summarise(items: list[StoredInteraction], records: list[dict[str, Any]]) -> list[VendorEvidence]:
    judged = {k for r in records if r.get("outcome") in JUDGED_OUTCOMES and (k := _record_key(r))}
    rows: dict[str, VendorEvidence] = defaultdict(lambda: VendorEvidence(""))
    for item in items:
        row = rows[item.vendor]
        row.vendor = item.vendor
        row.sources.add(str(item.exchange.meta.get("source_repo")) if item.exchange else item.file.parent.name)
        row.exchanges += 1
        is_chat = item.exchange is not None and item.exchange.request.path == "/chat/completions"
        row.chat += is_chat
        row.excluded += bool(item.excluded or item.body_edited)
        row.body_only += not item.request_known
        if exchange_key(item) in judged:
            row.judged += 1
            row.judged_chat += is_chat
    return [rows[v] for v in sorted(rows)]


def markdown_table(rows: list[VendorEvidence]) -> str:
    lines = ["| vendor | exchanges | chat | kept as provenance only | body only | judged (chat) | sources |",
             "|---|---:|---:|---:|---:|---:|---|"]
    total: Counter = Counter()
    for r in rows:
        lines.append(f"| `{r.vendor}` | {r.exchanges} | {r.chat} | {r.excluded} | {r.body_only} | "
                     f"{r.judged} ({r.judged_chat}) | {', '.join(sorted(r.sources))} |")
        total.update(exchanges=r.exchanges, chat=r.chat, excluded=r.excluded, body_only=r.body_only,
                     judged=r.judged, judged_chat=r.judged_chat)
    lines.append(f"| all | {total['exchanges']} | {total['chat']} | {total['excluded']} | {total['body_only']} | "
                 f"{total['judged']} ({total['judged_chat']}) | |")
    return "\n".join(lines)
