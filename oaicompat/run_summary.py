"""What a pytest run leaves behind: results.json, the terminal summary, and pytest-html extras.

The plugin (oaicompat.plugin) collects one results record per evaluated check into a `ResultsLog` and calls
these at the end of the session; nothing here decides an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Protocol

from .budget import BIG_PROBE_TOKENS, Budget, Estimate, Meter
from .config import Provider
from .latency import annotate_latency
from .results import ResultsLog
from .scrub import Scrubber


class _Chosen(Protocol):
    @property
    def provider(self) -> Provider: ...

    @property
    def model(self) -> str: ...


class _Writer(Protocol):
    def section(self, title: str) -> Any: ...
    def write_line(self, line: str) -> Any: ...


def write_results(log: ResultsLog, path: Path, chosen: Iterable[_Chosen], cassette_root: Path,
                  scrubber: Scrubber | None = None) -> None:
    """Note every chosen provider (whether it has recordings), add latency figures, write and validate; every
    string is scrubbed as it is written (the environment's keys, plus `scrubber`'s)."""
    for t in chosen:
        log.note_provider(t.provider, t.model, recorded=(cassette_root / t.provider.name).is_dir())
    annotate_latency(log.providers, log.records)
    log.write(path, scrubber)


NOTHING_RAN = ("not-recorded", "not-configured", "unsupported")   # outcomes of a check that sent and read nothing


def empty_providers(records: Iterable[dict[str, Any]], names: Iterable[str],
                    refused: Mapping[str, int] | None = None) -> list[str]:
    """The providers among `names` whose every check was skipped before anything was sent or replayed
    (not-recorded, not-configured, unsupported, or refused by --budget). A provider without any check in the
    run (deselected) is not empty."""
    outcomes: dict[str, list[str]] = {}
    for r in records:
        outcomes.setdefault(r["provider"], []).append(r["outcome"])
    refused = refused or {}
    return [name for name in dict.fromkeys(names)
            if (outcomes.get(name) or refused.get(name))
            and all(o in NOTHING_RAN for o in outcomes.get(name, []))]


def _why_lines(records: Sequence[dict[str, Any]], record_command: str | None, refused: int) -> list[str]:
    """Why checks of one provider did not run: the variables to set, the one command that records the
    provider, the checks --budget refused."""
    lines = []
    configure = sorted({r["message"] for r in records if r["outcome"] == "not-configured" and r["message"]})
    lines += [f"    not-configured: {m.removeprefix('not configured: ')}" for m in configure]
    unrecorded = sum(1 for r in records if r["outcome"] == "not-recorded")
    if unrecorded:
        how = f": {record_command}" if record_command else ""
        lines.append(f"    not-recorded: {unrecorded} check(s) have no cassette; record the provider{how}")
    if refused:
        lines.append(f"    budget exhausted: {refused} check(s) skipped before sending (raise --budget)")
    return lines


def _usage_line(meter: Meter, name: str) -> str | None:
    used = meter.used.get(name)
    if used is None:
        return None
    line = (f"    live tokens: {used.prompt:,} prompt + {used.completion:,} completion = {used.total:,} "
            f"over {used.replies} repl{'y' if used.replies == 1 else 'ies'}")
    if used.without_usage:
        line += f" ({used.without_usage} without usage)"
    price = meter.pricing.get(name)
    if price is not None:
        line += f"; cost {price.cost(used.prompt, used.completion):.4f} {price.currency}"
    return line


def terminal_summary(writer: _Writer, records: Iterable[dict[str, Any]], *,
                     record_commands: Mapping[str, str] | None = None, meter: Meter | None = None,
                     empty: Sequence[str] = (), allow_empty: bool = False) -> None:
    """One line of outcome counts per provider, the quirks it showed, why checks did not run (one line per
    cause), the tokens and cost of its live replies; then a line naming the providers for which nothing ran."""
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_provider.setdefault(r["provider"], []).append(r)
    refused = dict(meter.refused) if meter is not None else {}
    for name in refused:
        by_provider.setdefault(name, [])
    writer.section("oaicompat")
    for name, rs in sorted(by_provider.items()):
        counts: dict[str, int] = {}
        quirks: set[str] = set()
        for r in rs:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
            if r["quirks"] and r["outcome"] in ("expected-quirk", "unexpected-quirk"):
                quirks.update(r["quirks"])
        if refused.get(name):
            counts["budget-exhausted"] = refused[name]
        writer.write_line(f"{name}: {', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}")
        if quirks:
            writer.write_line(f"    quirks: {', '.join(sorted(quirks))}")
        for line in _why_lines(rs, (record_commands or {}).get(name), refused.get(name, 0)):
            writer.write_line(line)
        usage = _usage_line(meter, name) if meter is not None else None
        if usage:
            writer.write_line(usage)
    if meter is not None and meter.budget is not None:
        writer.write_line(f"budget: {meter.budget.describe(meter.spent_so_far())} used of {meter.budget.describe()}")
    if empty:
        names = ", ".join(empty)
        if allow_empty:
            writer.write_line(f"oaicompat: nothing ran for {names} (accepted: --allow-empty)")
        else:
            writer.write_line(f"oaicompat: nothing ran for {names}: exit status 1 "
                              "(pass --allow-empty to accept an empty run)")


def estimate_summary(writer: _Writer, estimates: Mapping[str, Sequence[tuple[str, Estimate]]],
                     budget: Budget | None = None) -> None:
    """Before a live run (--dry-run / --collect-only): what each provider would be sent, in estimated tokens
    (each distinct probe once, as the run sends it), and every probe of BIG_PROBE_TOKENS or more by name."""
    writer.section("oaicompat: estimated tokens (nothing sent)")
    grand = 0
    for name, probes in sorted(estimates.items()):
        prompt = sum(e.prompt for _, e in probes)
        completion = sum(e.completion for _, e in probes)
        grand += prompt + completion
        writer.write_line(f"{name}: {len(probes)} request(s), ~{prompt:,} prompt + at most {completion:,} "
                          f"completion = ~{prompt + completion:,} tokens")
        big: dict[str, tuple[int, int]] = {}
        for probe, e in probes:
            if e.prompt >= BIG_PROBE_TOKENS:
                big[probe] = (e.prompt, big.get(probe, (0, 0))[1] + 1)
        for probe, (tokens, times) in big.items():
            writer.write_line(f"    {probe}: ~{tokens:,} prompt tokens" + (f", sent {times}×" if times > 1 else ""))
    if budget is not None and not budget.money:
        verdict = "within" if grand <= budget.limit else "over"
        writer.write_line(f"all providers: ~{grand:,} tokens, {verdict} --budget {budget.describe()}")


def html_extra(record: dict[str, Any]) -> str:
    """The pytest-html extra for one check's record: check, rule, outcome, quirks, message and evidence."""
    lines = "\n".join(record.get("lines") or [e.get("body_head", "") for e in record["evidence"]][:1])
    return (f"<p><b>{escape(record['check'])}</b> — rule {escape(record['rule'])} — outcome "
            f"{escape(record['outcome'])} {escape(' '.join(record['quirks']))}</p>"
            f"<pre>{escape(record['message'])}\n{escape(lines)}</pre>")


__all__ = ["NOTHING_RAN", "empty_providers", "estimate_summary", "html_extra", "terminal_summary", "write_results"]
