"""What a pytest run leaves behind: results.json, the terminal summary, and pytest-html extras.

The plugin (oaicompat.plugin) collects one results record per evaluated check into a `ResultsLog` and calls
these at the end of the session; nothing here decides an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any, Protocol

from .config import Provider
from .latency import annotate_latency
from .results import ResultsLog


class _Chosen(Protocol):
    provider: Provider
    model: str


class _Writer(Protocol):
    def section(self, title: str) -> Any: ...
    def write_line(self, line: str) -> Any: ...


def write_results(log: ResultsLog, path: Path, chosen: Iterable[_Chosen], cassette_root: Path) -> None:
    """Note every chosen provider (whether it has recordings), add latency figures, write and validate."""
    for t in chosen:
        log.note_provider(t.provider, t.model, recorded=(cassette_root / t.provider.name).is_dir())
    annotate_latency(log.providers, log.records)
    log.write(path)


def terminal_summary(writer: _Writer, records: Iterable[dict[str, Any]]) -> None:
    """One line of outcome counts per provider, and the quirks it showed."""
    by_provider: dict[str, dict[str, int]] = {}
    quirks: dict[str, set[str]] = {}
    for r in records:
        counts = by_provider.setdefault(r["provider"], {})
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        if r["quirks"] and r["outcome"] in ("expected-quirk", "unexpected-quirk"):
            quirks.setdefault(r["provider"], set()).update(r["quirks"])
    writer.section("oaicompat")
    for name, counts in sorted(by_provider.items()):
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        writer.write_line(f"{name}: {summary}")
        if quirks.get(name):
            writer.write_line(f"    quirks: {', '.join(sorted(quirks[name]))}")


def html_extra(record: dict[str, Any]) -> str:
    """The pytest-html extra for one check's record: check, rule, outcome, quirks, message and evidence."""
    lines = "\n".join(record.get("lines") or [e.get("body_head", "") for e in record["evidence"]][:1])
    return (f"<p><b>{escape(record['check'])}</b> — rule {escape(record['rule'])} — outcome "
            f"{escape(record['outcome'])} {escape(' '.join(record['quirks']))}</p>"
            f"<pre>{escape(record['message'])}\n{escape(lines)}</pre>")


__all__ = ["html_extra", "terminal_summary", "write_results"]
