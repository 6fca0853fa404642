"""oaicompat.report: the view model (pure), the rendered site, QUIRKS.md, `oaicompat report` and `oaicompat diff`."""

from __future__ import annotations

import copy
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from oaicompat.config import ProvidersConfig, parse_providers
from oaicompat.quirks import Catalogue, load_catalogue
from oaicompat.report.cli import diff_main, report_main
from oaicompat.report.diff import diff_html, diff_markdown, diff_results, diff_text
from oaicompat.report.model import (
    aggregate,
    anchor,
    area_rank,
    build_report,
    evidence_view,
    merge_runs,
    safe_url,
    slug,
)
from oaicompat.report.render import md, mdcode, render_pages, render_site
from oaicompat.report.sample import synthetic_results
from oaicompat.results import validate_results

# -- builders -----------------------------------------------------------------------------------------

CATALOGUE_YAML = {
    "area": "chat",
    "quirks": {
        "chat.object-wrong": {
            "title": '`object` is not "chat.completion"', "rule": "RESP-2",
            "observable": "the reply's top-level `object` is absent or another string",
            "impact": "breaks-strict-clients", "workaround": "Do not dispatch on `object`.",
            "vendors": [{"vendor": "acme", "level": "documented", "source": "https://docs.acme.example/compat"},
                        {"vendor": "evil", "level": "reported", "source": "javascript:alert(1)"}],
        },
        "chat.usage-missing": {
            "title": "Non-streamed reply has no usage", "rule": "RESP-3",
            "observable": "no `usage` object", "impact": "informational", "workaround": "Count tokens locally.",
        },
    },
}


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    d = tmp_path / "quirks"
    d.mkdir()
    (d / "chat.yaml").write_text(yaml.safe_dump(CATALOGUE_YAML), encoding="utf-8")
    return load_catalogue(d)


def rec(provider: str, check: str, outcome: str = "pass", *, model: str = "m1", area: str | None = None,
        quirks: tuple[str, ...] = (), evidence: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "test": f"suites/test_x.py::test_{check}[{provider}-{model}]", "check": check,
        "area": area or check.split(".")[0], "rule": "RESP-2", "kind": "protocol", "title": f"title of {check}",
        "provider": provider, "model": model, "outcome": outcome, "quirks": list(quirks),
        "message": "" if outcome == "pass" else f"{outcome} in {check}", "lines": [], "declared": {},
        "observations": [],
        "evidence": evidence if evidence is not None else [
            {"level": "recorded", "request": "POST /chat/completions {}", "status": 200,
             "content_type": "application/json", "body_head": '{"object": "chat.completion"}', "failure": None,
             "recorded_at": "2026-09-01T10:00:00Z"}],
    }
    r.update(extra)
    return r


def doc(records: list[dict[str, Any]], providers: dict[str, Any] | None = None,
        started_at: str = "2026-10-30T02:00:00Z") -> dict[str, Any]:
    if providers is None:
        providers = {}
        for r in records:
            entry = providers.setdefault(r["provider"], {"title": r["provider"].title(), "kind": "hosted",
                                                         "models": [], "docs": None, "recorded": True})
            if r["model"] not in entry["models"]:
                entry["models"].append(r["model"])
    d = {"oaicompat_results": 1, "oaicompat_version": "0.1.0", "mode": "replay", "started_at": started_at,
         "finished_at": started_at, "providers": providers, "records": records}
    validate_results(d, "test doc")
    return d


def config(providers: dict[str, Any]) -> ProvidersConfig:
    raw = {"version": 1, "providers": {
        name: {"kind": "hosted", "title": name.title(), "base_url": "https://api.example.com/v1", "model": "m1", **p}
        for name, p in providers.items()}}
    return parse_providers(raw, Path("providers.yaml"), {})


def write(path: Path, d: Any) -> Path:
    path.write_text(json.dumps(d) if not isinstance(d, str) else d, encoding="utf-8")
    return path


XSS_SCRIPT = "<script>document.documentElement.setAttribute('data-xss','script')</script>"
XSS_IMG = "\"><img src=x onerror=\"document.documentElement.setAttribute('data-xss','img')\">"
XSS_SVG = "'><svg onload=document.documentElement.setAttribute('data-xss','svg')>"
XSS_JS = "javascript:document.documentElement.setAttribute('data-xss','js')"
XSS_ALL = f"{XSS_SCRIPT} {XSS_IMG} {XSS_SVG} {XSS_JS} | `tick` [link](javascript:x) http://evil.example/"


def xss_results() -> dict[str, Any]:
    """Vendor-controlled text everywhere a results file can carry it."""
    evil_model = f"gpt{XSS_IMG}{XSS_SCRIPT}"
    evidence: list[dict[str, Any]] = [
        {"level": "recorded", "request": f"POST /chat/completions {XSS_ALL}", "status": 200,
         "content_type": f"text/html{XSS_IMG}", "body_head": XSS_ALL, "failure": XSS_SCRIPT,
         "recorded_at": "2026-09-01T10:00:00Z", "cassette": XSS_IMG},
        {"level": "recorded", "request": "POST /chat/completions", "status": 200, "content_type": "text/event-stream",
         "body_head": f"data: {XSS_SCRIPT}\n\ndata: {XSS_IMG}\n\n: {XSS_JS}\n\n", "failure": None},
        {"level": "third-party", "request": XSS_SVG, "status": None, "content_type": None, "body_head": "",
         "failure": XSS_IMG, "source_repo": XSS_JS, "source_path": XSS_IMG, "source_commit": XSS_SCRIPT,
         "license": XSS_SVG},
    ]
    records = [
        rec("evil", "chat.object", "unexpected-quirk", model=evil_model, quirks=("chat.object-wrong",),
            evidence=evidence, message=XSS_ALL, lines=[XSS_ALL, XSS_JS], title=XSS_IMG, rule=XSS_SCRIPT,
            observations=[{"key": XSS_IMG, "value": XSS_SCRIPT}],
            timing={"ttft": 0.1, "total": 1.0, "completion_tokens": 10, "level": "recorded"}),
        rec("evil", "chat.usage", "expected-quirk", model=evil_model, quirks=(f"chat.{XSS_IMG}",), area=XSS_SCRIPT,
            evidence=evidence[:1], declared={f"chat.{XSS_IMG}": {"reason": XSS_ALL, "source": XSS_JS, "origin": XSS_SVG}}),
        rec("evil", "chat.content", "violation", model=evil_model, evidence=evidence[1:]),
        rec("good", "chat.object", "pass"),
    ]
    providers = {
        "evil": {"title": f"Evil {XSS_SCRIPT}", "kind": "hosted", "models": [evil_model], "docs": XSS_JS,
                 "software": {"name": XSS_IMG, "version": XSS_SCRIPT}, "recorded": True},
        f"evil{XSS_IMG}": {"title": XSS_SVG, "kind": "local", "models": [XSS_SCRIPT], "docs": None, "recorded": False},
        "good": {"title": "Good", "kind": "local", "models": ["m1"], "docs": "https://good.example/docs"},
    }
    d = doc(records, providers)
    d["mode"] = XSS_SCRIPT
    return d


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(a["id"] or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


# -- model: merging, ordering, cells ------------------------------------------------------------------

def test_merge_later_file_wins_for_the_same_provider_model_and_check() -> None:
    first = doc([rec("a", "chat.object", "violation"), rec("a", "chat.id"), rec("b", "chat.object")])
    second = doc([rec("a", "chat.object", "pass"), rec("a", "chat.object", model="m2")],
                 started_at="2026-10-31T02:00:00Z")
    merged = merge_runs([("one.json", first), ("two.json", second)])
    assert [r["outcome"] for r in merged.records[("a", "m1", "chat.object")]] == ["pass"]
    assert merged.runs[("a", "m1", "chat.object")].name == "two.json"
    assert [r["outcome"] for r in merged.records[("a", "m1", "chat.id")]] == ["pass"]
    assert merged.runs[("a", "m1", "chat.id")].name == "one.json"
    assert merged.providers["a"]["models"] == ["m1", "m2"]
    report = build_report([("one.json", first), ("two.json", second)])
    assert [(c.provider, c.models) for c in report.columns] == [("a", ("m1", "m2")), ("b", ("m1",))]
    assert report.columns[0].model_label == "2 models" and report.columns[1].model_label == "m1"
    cell = report.groups[0].rows[0].cells[0]          # chat.object for a: m1 now passes, m2 passes
    assert (cell.label, cell.count, cell.total) == ("pass", 2, 2)


def test_records_behind_one_cell_show_the_most_telling_outcome_and_keep_every_record() -> None:
    """Imported evidence has one record per exchange: a quirk seen in one of three is the provider's quirk."""
    d = doc([rec("imp", "chat.object", "pass"), rec("imp", "chat.object", "unexpected-quirk", quirks=("chat.q",)),
             rec("imp", "chat.object", "not-applicable"), rec("imp", "chat.id", "not-applicable"),
             rec("imp", "chat.id", "pass")])
    report = build_report([("r.json", d)])
    by_check = {r.check: r.cells[0] for g in report.groups for r in g.rows}
    cell = by_check["chat.object"]
    assert (cell.label, cell.quirks, cell.count, cell.total) == ("unexpected", ("chat.q",), 1, 3)
    assert cell.href == "providers/imp.html#" + anchor("m1", "chat.object", 1)
    assert (by_check["chat.id"].label, by_check["chat.id"].count) == ("pass", 1)
    page = report.providers[0]
    anchors = [r.anchor for r in page.detailed + page.brief]
    assert len(anchors) == 5 and len(set(anchors)) == 5
    assert ">1/3<" in render_pages(report)["checks.html"]
    assert aggregate(["pass", "not-applicable"]) == "pass" and aggregate(["pass", "error"]) == "error"
    assert aggregate(["info", "blocked"]) == "info" and aggregate(["strange"]) == "strange"
    # a later file replaces every record of a (provider, model, check) it has
    later = doc([rec("imp", "chat.object", "pass")])
    again = build_report([("r.json", d), ("later.json", later)])
    assert {r.check: r.cells[0].label for g in again.groups for r in g.rows} == {"chat.object": "pass", "chat.id": "pass"}


def test_rows_are_grouped_by_area_in_the_documented_order() -> None:
    areas = ["zeta", "errors", "chat", "endpoints", "stream", "custom", "tools", "image", "sdk", "json", "models",
             "params", "reasoning", "context", "streaming", "multimodal"]
    d = doc([rec("a", f"{a}.x", area=a) for a in areas])
    report = build_report([("r.json", d)])
    assert [g.area for g in report.groups] == [
        "chat", "stream", "streaming", "sdk", "tools", "json", "image", "multimodal", "context", "reasoning",
        "errors", "models", "params", "endpoints", "custom", "zeta"]
    assert area_rank("streaming") == area_rank("stream")


def test_each_cell_says_its_outcome_in_words_and_non_pass_cells_link_to_evidence() -> None:
    outcomes = ["pass", "expected-quirk", "unexpected-quirk", "violation", "unsupported", "not-recorded", "error",
                "stale-expectation", "blocked", "info", "unavailable", "not-applicable", "not-configured"]
    d = doc([rec("p", f"chat.c{i}", o, quirks=("chat.object-wrong",) if "quirk" in o or "stale" in o else ())
             for i, o in enumerate(outcomes)])
    cells = {c.outcome: c for g in build_report([("r.json", d)]).groups for r in g.rows for c in r.cells}
    assert cells["pass"].label == "pass" and cells["pass"].href is None
    assert cells["expected-quirk"].label == "expected" and cells["expected-quirk"].quirks == ("chat.object-wrong",)
    assert cells["unexpected-quirk"].label == "unexpected"
    assert cells["violation"].label == "fail"
    assert cells["unsupported"].label == "unsupported"
    assert cells["not-recorded"].label == "not recorded"
    assert cells["error"].label == "error"
    for name, cell in cells.items():
        assert cell.symbol and cell.label, name
        if name != "pass":
            i = outcomes.index(name)
            assert cell.href == f"providers/p.html#{anchor('m1', f'chat.c{i}')}", name


def test_a_partial_provider_renders_with_missing_cells_and_says_what_is_missing() -> None:
    checks = ["chat.a", "chat.b", "chat.c", "chat.d"]
    d = doc([rec("full", c) for c in checks] + [rec("crashed", c) for c in checks[:1]])
    report = build_report([("r.json", d)])
    crashed = next(c for c in report.columns if c.provider == "crashed")
    assert crashed.summary.missing == 3 and crashed.summary.passed == 1 and crashed.summary.total == 4
    row_cells = [r.cells[1] for g in report.groups for r in g.rows]
    assert [c.label for c in row_cells] == ["pass", "missing", "missing", "missing"]
    assert row_cells[1].href == "providers/crashed.html#missing"
    page = next(p for p in report.providers if p.name == "crashed")
    assert [m[0] for m in page.missing] == ["chat.b", "chat.c", "chat.d"]
    html = render_pages(report)["providers/crashed.html"]
    assert "results are partial" in html and 'id="missing"' in html


def test_configured_providers_without_recordings_get_not_recorded_columns() -> None:
    d = doc([rec("a", "chat.object", "expected-quirk", quirks=("chat.object-wrong",))],
            providers={"a": {"title": "A", "kind": "hosted", "models": ["m1"], "recorded": True},
                       "b": {"title": "B", "kind": "local", "models": ["bm"], "recorded": False}})
    cfg = config({"a": {}, "b": {"model": "bm"},
                  "c": {"expectations": {"chat.object-wrong": {"reason": "documented", "source": "https://c.example/x"}}},
                  "d": {}})
    report = build_report([("r.json", d)], config=cfg)
    cols = {c.provider: c for c in report.columns}
    assert list(cols) == ["a", "b", "c", "d"]
    assert cols["b"].state_label == "not recorded"
    assert cols["c"].state_label == "documented, not recorded"
    assert cols["d"].state_label == "configured, not recorded"
    cells = report.groups[0].rows[0].cells
    assert [c.label for c in cells] == ["expected", "not recorded", "documented, not recorded", "not recorded"]
    assert cells[2].quirks == ("chat.object-wrong",)
    page_c = next(p for p in report.providers if p.name == "c")
    assert [(d.quirk.id, d.status, d.source_url) for d in page_c.declared] == [
        ("chat.object-wrong", "not observed", "https://c.example/x")]


def test_summary_counts_and_timings_say_recorded_or_live_with_their_date() -> None:
    t = {"ttft": 0.2, "total": 1.2, "completion_tokens": 51, "gap_p50": 0.02, "level": "recorded"}
    recorded = [rec("r", "stream.a", timing=t), rec("r", "stream.b", "unexpected-quirk", quirks=("stream.q",),
                                                     timing={**t, "ttft": 0.4, "total": 2.4}),
                rec("r", "stream.c", "violation")]
    live_ev = [{"level": "live", "request": "POST", "status": 200, "body_head": "{}"}]
    live = [rec("l", "stream.a", evidence=live_ev, timing={**t, "level": "live"})]
    report = build_report([("r.json", doc(recorded + live, started_at="2026-10-30T02:00:00Z"))])
    s = {c.provider: c.summary for c in report.columns}
    assert (s["r"].passed, s["r"].total, s["r"].quirks, s["r"].unexpected, s["r"].failing) == (1, 3, ("stream.q",), 1, 2)
    assert s["r"].ttft_ms == 300.0           # median of 200 and 400 ms
    assert s["r"].tokens_per_s == 37.5       # median of 50/1.0 and 50/2.0 (tokens after the first)
    unstreamed = {"ttft": 1.19, "total": 1.2, "completion_tokens": 51, "level": "recorded"}
    only_body = build_report([("u.json", doc([rec("u", "chat.a", timing=unstreamed)]))])
    assert only_body.columns[0].summary.tokens_per_s is None   # no decode rate from a one-piece body
    assert s["r"].timing_label == "recorded 2026-09-01"
    assert s["l"].timing_label == "live 2026-10-30"
    assert {c.provider: c.date_label for c in report.columns} == {"r": "recorded 2026-09-01", "l": "live 2026-10-30"}
    html = render_pages(report)["checks.html"]
    assert "recorded 2026-09-01" in html and "300 ms" in html and "37.5 tokens/s" in html


def test_third_party_evidence_is_labelled_with_its_provenance_everywhere(catalogue: Catalogue) -> None:
    ev = [{"level": "third-party", "request": "POST /v1/chat/completions", "status": 200, "body_head": "{}",
           "source_repo": "github.com/someone/recordings", "source_path": "tests/cassettes/x.yaml",
           "source_commit": "abcdef0123456789", "license": "Apache-2.0"}]
    d = doc([rec("imp", "chat.object", "unexpected-quirk", quirks=("chat.object-wrong",), evidence=ev),
             rec("imp", "chat.usage", "pass", evidence=ev)])
    report = build_report([("r.json", d)], catalogue)
    col = report.columns[0]
    assert col.levels == ("third-party",)
    assert col.provenance[0].short() == "github.com/someone/recordings:tests/cassettes/x.yaml @ abcdef012345 (Apache-2.0)"
    assert all(c.third_party for g in report.groups for r in g.rows for c in r.cells)
    pages = render_pages(report)
    for name in ("index.html", "providers/imp.html", "quirks/chat.object-wrong.html", "QUIRKS.md"):
        assert "github.com/someone/recordings" in pages[name], name
        assert "Apache-2.0" in pages[name], name
        assert "third-party" in pages[name].lower(), name
    # a source repository is shown, never linked: it does not come from providers.yaml or the catalogue
    assert not any((a.get("href") or "").startswith("http") and "someone" in (a.get("href") or "")
                   for _, a in parse(pages["providers/imp.html"]).tags)


def test_provider_page_lists_declared_found_and_undeclared_quirks(catalogue: Catalogue) -> None:
    declared = {"chat.object-wrong": {"reason": "vendor says so", "source": "https://vendor.example/doc",
                                      "origin": "server"}}
    d = doc([rec("p", "chat.object", "expected-quirk", quirks=("chat.object-wrong",), declared=declared),
             rec("p", "chat.usage", "unexpected-quirk", quirks=("chat.usage-missing",)),
             rec("p", "chat.id", "stale-expectation", quirks=("chat.id-missing",),
                 declared={"chat.id-missing": {"reason": "old", "source": "cassette.yaml", "origin": "server"}})])
    cfg = config({"p": {"expectations": {**{k: {"reason": v["reason"], "source": v["source"]} for k, v in declared.items()},
                                         "chat.id-missing": {"reason": "old", "source": "cassette.yaml"},
                                         "chat.never-seen": {"reason": "docs", "source": "https://vendor.example/n"}}}})
    report = build_report([("r.json", d)], catalogue, cfg)
    page = report.providers[0]
    assert [q.quirk.id for q in page.quirks] == ["chat.object-wrong", "chat.usage-missing"]
    found = {q.quirk.id: q for q in page.quirks}
    assert found["chat.object-wrong"].definition is not None
    assert found["chat.object-wrong"].declared is not None and found["chat.usage-missing"].declared is None
    assert [q.quirk.id for q in page.undeclared] == ["chat.usage-missing"]
    assert {d.quirk.id: d.status for d in page.declared} == {
        "chat.object-wrong": "observed", "chat.id-missing": "stale", "chat.never-seen": "not observed"}
    assert {d.quirk.id: d.source_url for d in page.declared}["chat.id-missing"] is None   # a path, not a URL
    html = render_pages(report)["providers/p.html"]
    for needle in ("Do not dispatch on <code>object</code>.", "found but not declared", "vendor says so",
                   'href="https://vendor.example/doc"', "stale", "chat.never-seen", "breaks-strict-clients"):
        assert needle in html, needle


def test_quirk_pages_list_providers_and_documented_vendors(catalogue: Catalogue) -> None:
    d = doc([rec("a", "chat.object", "expected-quirk", quirks=("chat.object-wrong",)),
             rec("b", "chat.object", "unexpected-quirk", quirks=("chat.object-wrong",)),
             rec("c", "chat.object", "pass")])
    report = build_report([("r.json", d)], catalogue)
    q = next(q for q in report.quirks if q.ref.id == "chat.object-wrong")
    assert [(o.provider, o.expected) for o in q.occurrences] == [("a", True), ("b", False)]
    assert [(v.vendor, v.url) for v in q.vendors] == [("acme", "https://docs.acme.example/compat"), ("evil", None)]
    assert {q.ref.id for q in report.quirks} == {"chat.object-wrong", "chat.usage-missing"}
    html = render_pages(report)["quirks/chat.object-wrong.html"]
    assert 'href="../providers/a.html"' in html and 'href="../providers/b.html#ev-m1--chat.object"' in html
    assert 'href="https://docs.acme.example/compat"' in html and 'href="javascript' not in html


@pytest.mark.parametrize("value, expected", [
    ("https://docs.example.com/a?b=c#d", "https://docs.example.com/a?b=c#d"),
    ("http://127.0.0.1:8081/v1", "http://127.0.0.1:8081/v1"),
    ("  https://x.example/  ", "https://x.example/"),
    ("javascript:alert(1)", None), ("JAVASCRIPT:alert(1)", None), ("data:text/html,<b>", None),
    ("//evil.example/x", None), ("../shared/reference/x.md", None), ("https://", None),
    ("https://x.example/\"onmouseover=alert(1)", None), ("https://x.example/<script>", None),
    ("https://x.example/a b", None), ("https://x.example/\x00", None), (None, None), (42, None),
])
def test_safe_url_only_lets_plain_http_links_through(value: Any, expected: str | None) -> None:
    assert safe_url(value) == expected


def test_slugs_are_safe_stable_and_distinct() -> None:
    assert slug("llama-server") == "llama-server" and slug("chat.object-wrong") == "chat.object-wrong"
    names = ["A", "a", "a b", "a-b", "../../etc/passwd", "<script>", "", "é", "x" * 200]
    slugs = [slug(n) for n in names]
    assert len(set(slugs)) == len(slugs)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*", s) and len(s) <= 80 and ".." not in s for s in slugs)
    assert slug("<script>") == slug("<script>")


def test_sse_evidence_is_shown_as_its_lines() -> None:
    ev = evidence_view({"level": "recorded", "status": 200, "content_type": "text/event-stream; charset=utf-8",
                        "body_head": 'data: {"a":1}\n\ndata: [DONE]\n\n'})
    assert ev.is_sse and ev.body_lines == ('data: {"a":1}', "", "data: [DONE]", "")
    plain = evidence_view({"level": "live", "status": None, "body_head": "{}"})
    assert not plain.is_sse and plain.body_lines == ("{}",) and plain.status == "no response"


# -- rendering ----------------------------------------------------------------------------------------

def _site(tmp_path: Path, report: Any) -> Path:
    out = tmp_path / "site"
    render_site(report, out)
    return out


def test_every_relative_link_resolves_to_a_page_and_an_anchor(tmp_path: Path, catalogue: Catalogue) -> None:
    docs = [("r.json", synthetic_results(6, 40, quirk_ids=["chat.object-wrong", "chat.usage-missing", "x.other"]))]
    out = _site(tmp_path, build_report(docs, catalogue))
    pages = {p: parse(p.read_text(encoding="utf-8")) for p in out.rglob("*.html")}
    assert out / "index.html" in pages and (out / "QUIRKS.md").exists()
    assert len([p for p in pages if p.parent.name == "providers"]) == 6
    checked = 0
    for path, page in pages.items():
        for tag, attrs in page.tags:
            href = attrs.get("href") if tag == "a" else None
            if not href:
                continue
            parts = urlsplit(href)
            if parts.scheme:
                assert parts.scheme in ("http", "https"), (path, href)
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.exists(), (path, href)
            if parts.fragment and target.suffix == ".html":
                assert parts.fragment in pages[target].ids, (path, href)
            checked += 1
    assert checked > 300


def test_pages_carry_no_script_and_inline_css_only(tmp_path: Path) -> None:
    out = _site(tmp_path, build_report([("r.json", synthetic_results(3, 10))]))
    for path in out.rglob("*.html"):
        page = parse(path.read_text(encoding="utf-8"))
        tags = {t for t, _ in page.tags}
        assert "script" not in tags and "link" not in tags and "img" not in tags, path
        assert "style" in tags, path
        assert any(t == "meta" and a.get("http-equiv") == "Content-Security-Policy" for t, a in page.tags), path


def test_vendor_text_is_escaped_everywhere_and_never_becomes_a_link(tmp_path: Path, catalogue: Catalogue) -> None:
    report = build_report([("x.json", xss_results())], catalogue)
    pages = render_pages(report)
    assert len([p for p in pages if p.startswith("providers/")]) == 3
    for name, html in pages.items():
        if not name.endswith(".html"):
            continue
        page = parse(html)
        for tag, attrs in page.tags:
            assert tag not in ("script", "img", "svg", "iframe", "object", "embed"), (name, tag)
            for key, value in attrs.items():
                assert not key.startswith("on"), (name, tag, key)
                if key in ("href", "src"):
                    assert value is not None and not urlsplit(value).scheme or urlsplit(value).scheme in ("http", "https"), (name, value)
                    assert "evil.example" not in (value or ""), (name, value)
                    assert "javascript" not in (value or "").lower(), (name, value)
        assert "data-xss" not in "".join(f"{k}" for _, a in page.tags for k in a), name
    assert "<script>document" not in pages["providers/evil.html"]
    text = "".join(parse(pages["providers/evil.html"]).text)
    assert XSS_SCRIPT in text and XSS_IMG in text          # shown as text, escaped in the markup
    assert "&lt;script&gt;" in pages["index.html"]
    # provider and model names never reach file names or fragment ids unescaped
    assert all(re.fullmatch(r"(providers|quirks)/[a-z0-9._-]+\.html|(index|checks)\.html|QUIRKS\.md|docs/[a-z-]+\.(md|html)", p)
               for p in pages)


def test_quirks_md_escapes_vendor_text_for_markdown(tmp_path: Path, catalogue: Catalogue) -> None:
    text = render_pages(build_report([("x.json", xss_results())], catalogue))["QUIRKS.md"]
    assert "<script" not in text and "<img" not in text and "<svg" not in text
    assert not re.search(r"(?<!\\)\]\(javascript", text) and "http://evil.example" not in text
    assert "<https://docs.acme.example/compat>" in text       # catalogue sources do link
    cols = 0
    for line in text.splitlines():      # every table row has as many cells as its table's header
        if not line.startswith("| "):
            cols = 0
            continue
        if cols == 0:
            cols = line.count("|")
        assert len(re.findall(r"(?<!\\)\|", line)) == cols, line
    assert md("a|b`c<d>*e_[f](g) http://x www.y") == r"a\|b\`c&lt;d&gt;\*e\_\[f\](g) http\://x www\.y"
    assert mdcode("chat.object-wrong") == "`chat.object-wrong`" and mdcode("a`b") == r"a\`b"


def test_a_second_report_into_the_same_directory_drops_stale_pages(tmp_path: Path) -> None:
    out = tmp_path / "site"
    render_site(build_report([("a.json", doc([rec("old", "chat.a", "unexpected-quirk", quirks=("chat.gone",))]))]), out)
    assert (out / "providers" / "old.html").exists() and (out / "quirks" / "chat.gone.html").exists()
    (out / "keep.txt").write_text("mine")
    render_site(build_report([("b.json", doc([rec("new", "chat.a")]))]), out)
    assert not (out / "providers" / "old.html").exists() and not (out / "quirks" / "chat.gone.html").exists()
    assert (out / "providers" / "new.html").exists() and (out / "keep.txt").exists()
    mask = os.umask(0o022)
    os.umask(mask)
    assert (out / "index.html").stat().st_mode & 0o777 == 0o666 & ~mask      # readable like any file, not 0600


# -- oaicompat report ---------------------------------------------------------------------------------

def test_report_cli_merges_files_and_adds_configured_providers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               catalogue: Catalogue) -> None:
    a = write(tmp_path / "a.json", doc([rec("one", "chat.a", "violation"), rec("one", "chat.b")]))
    b = write(tmp_path / "b.json", doc([rec("one", "chat.a", "pass"), rec("two", "chat.a")]))
    providers = tmp_path / "providers.yaml"
    providers.write_text(yaml.safe_dump({"version": 1, "providers": {
        "one": {"kind": "hosted", "title": "One", "base_url": "${ONE_URL}", "model": "m1"},
        "three": {"kind": "hosted", "title": "Three", "base_url": "https://three.example/v1", "model": "t",
                  "expectations": {"chat.usage-missing": {"reason": "docs", "source": "https://three.example/d"}}},
    }}), encoding="utf-8")
    out = tmp_path / "reports"
    rc = report_main([str(a), str(b), "-o", str(out), "--providers", str(providers),
                      "--quirks-dir", str(tmp_path / "quirks")])
    assert rc == 0, capsys.readouterr().err
    assert "index.html" in capsys.readouterr().out
    index = (out / "checks.html").read_text(encoding="utf-8")
    assert "documented, not recorded" in index and '<td class="pass">✓ pass</td>' in index
    assert '<td class="fail">' not in index      # b.json's pass for (one, m1, chat.a) won
    assert (out / "providers" / "three.html").exists() and (out / "QUIRKS.md").exists()
    assert "https://three.example/d" in (out / "providers" / "three.html").read_text(encoding="utf-8")


def test_report_cli_warns_about_partial_results(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                catalogue: Catalogue) -> None:
    a = write(tmp_path / "a.json", doc([rec("full", "chat.a"), rec("full", "chat.b"), rec("crashed", "chat.a")]))
    assert report_main([str(a), "-o", str(tmp_path / "out"), "--quirks-dir", str(tmp_path / "quirks")]) == 0
    assert "crashed is partial: 1 of 2 checks have no record" in capsys.readouterr().err


@pytest.mark.parametrize("content, problem", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ("{not json", "is not JSON"),
    (json.dumps({"oaicompat_results": 2, "records": []}), "results format 2"),
    (json.dumps({"oaicompat_results": 1, "records": []}), "does not match"),
    (json.dumps([1, 2]), "does not match"),
    (None, "cannot read"),
])
def test_report_cli_names_the_file_and_the_problem_on_bad_input(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, problem: str) -> None:
    good = write(tmp_path / "good.json", doc([rec("a", "chat.a")]))
    bad = tmp_path / "bad-results.json"
    if content is not None:
        bad.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    assert report_main([str(good), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad-results.json" in err and problem in err and "Traceback" not in err
    assert not out.exists()
    assert diff_main([str(good), str(bad)]) == 2
    assert "bad-results.json" in capsys.readouterr().err


def test_report_cli_usage_errors_return_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main([]) == 2
    assert diff_main(["only-one.json"]) == 2
    assert report_main(["--help"]) == 0
    assert "RESULTS.json" in capsys.readouterr().out


# -- oaicompat diff -----------------------------------------------------------------------------------

def _pair() -> tuple[dict[str, Any], dict[str, Any]]:
    old = doc([rec("a", "chat.x"), rec("a", "chat.y", "violation"),
               rec("a", "chat.z", "expected-quirk", quirks=("chat.gone",)),
               rec("a", "chat.w"), rec("lost", "chat.x")])
    new = doc([rec("a", "chat.x", "unexpected-quirk", quirks=("chat.new",)), rec("a", "chat.y", "pass"),
               rec("a", "chat.z", "pass"), rec("added", "chat.x", "expected-quirk", quirks=("chat.known",))])
    return old, new


def test_diff_reports_quirks_checks_and_providers_that_changed() -> None:
    old, new = _pair()
    d = diff_results(merge_runs([("old.json", old)]), merge_runs([("new.json", new)]))
    assert d.added == ("added",) and d.lost == ("lost",)
    a = next(p for p in d.providers if p.provider == "a")
    assert [q.quirk for q in a.appeared] == ["chat.new"] and not a.appeared[0].expected
    assert [q.quirk for q in a.disappeared] == ["chat.gone"]
    assert [(c.check, c.old, c.new) for c in a.started_failing] == [("chat.x", "pass", "unexpected-quirk")]
    assert [(c.check, c.old, c.new) for c in a.stopped_failing] == [("chat.y", "violation", "pass")]
    assert [c.check for c in a.not_recorded_now] == ["chat.w"]
    assert a.new_unexpected == ("chat.new",) and d.regressed
    added = next(p for p in d.providers if p.provider == "added")
    assert added.status == "added" and not added.regressed
    text = diff_text(d)
    for needle in ("started failing: chat.x", "+ quirk chat.new (unexpected)", "− quirk chat.gone",
                   "stopped failing: chat.y", "providers added: added", "providers lost: lost", "REGRESSED"):
        assert needle in text, needle
    assert "chat.new" in diff_markdown(d) and "chat.new" in diff_html(d)


def test_diff_without_regressions_is_clean() -> None:
    old, _ = _pair()
    better = copy.deepcopy(old)
    better["records"][1]["outcome"] = "pass"
    d = diff_results(merge_runs([("o", old)]), merge_runs([("n", better)]))
    assert not d.regressed and diff_text(d).rstrip().endswith("no regressions")
    same = diff_results(merge_runs([("o", old)]), merge_runs([("o", old)]))
    assert same.providers == () and "no changes" in diff_text(same)


def test_diff_cli_exit_codes_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _pair()
    o, n = write(tmp_path / "old.json", old), write(tmp_path / "new.json", new)
    md_out, html_out = tmp_path / "d" / "diff.md", tmp_path / "d" / "diff.html"
    assert diff_main([str(o), str(n), "--markdown", str(md_out), "--html", str(html_out)]) == 1
    assert "REGRESSED" in capsys.readouterr().out
    assert "chat.new" in md_out.read_text(encoding="utf-8")
    assert "<script" not in html_out.read_text(encoding="utf-8") and "chat.new" in html_out.read_text(encoding="utf-8")
    assert diff_main([str(n), str(o)]) == 1     # going back: chat.y fails again
    better = copy.deepcopy(old)
    better["records"][1]["outcome"] = "pass"
    assert diff_main([str(o), str(write(tmp_path / "better.json", better))]) == 0
    assert diff_main([str(o), str(o)]) == 0


def test_diff_escapes_vendor_text() -> None:
    evil = xss_results()
    d = diff_results(merge_runs([("o", doc([rec("good", "chat.object")]))]), merge_runs([("n", evil)]))
    html = diff_html(d)
    page = parse(html)
    assert not any(t in ("script", "img", "svg") for t, _ in page.tags)
    assert "<script" not in diff_markdown(d) and "<img" not in diff_markdown(d)


# -- the front page: the quirk matrix -------------------------------------------------------------------

def _matrix_doc() -> dict[str, Any]:
    third = [{"level": "third-party", "request": "POST", "status": 200, "body_head": "{}",
              "source_repo": "someone/recordings", "source_commit": "abc", "license": "MIT"}]
    records = [
        rec("a", "chat.object", "expected-quirk", quirks=("chat.object-wrong",),
            declared={"chat.object-wrong": {"reason": "r", "source": "s", "origin": "server"}}),
        rec("a", "chat.usage", "pass"),
        rec("b", "chat.object", "unexpected-quirk", quirks=("chat.object-wrong",)),
        rec("b", "chat.usage", "unsupported"),
        rec("g", "chat.object", "unexpected-quirk", model="x/one", quirks=("chat.object-wrong",), evidence=third),
        rec("g", "chat.object", "pass", model="x/two", evidence=third),
    ]
    providers = {"a": {"title": "A", "kind": "local", "models": ["m1"], "recorded": True},
                 "b": {"title": "B", "kind": "hosted", "models": ["m1"], "recorded": True},
                 "g": {"title": "G", "kind": "gateway", "models": ["x/one", "x/two"], "recorded": True}}
    return doc(records, providers)


def test_quirk_matrix_cells_say_what_is_known_in_words_and_link_to_evidence(catalogue: Catalogue) -> None:
    cfg = config({"a": {"kind": "local", "expectations": {"chat.object-wrong": {"reason": "r", "source": "s"},
                                                          "chat.usage-missing": {"reason": "old", "source": "s"}}},
                  "b": {"expectations": {"chat.usage-missing": {"reason": "r", "source": "s", "models": ["other"]}}},
                  "g": {"kind": "gateway"},
                  "c": {"expectations": {"chat.usage-missing": {"reason": "docs", "source": "https://c.example.com/"}}},
                  "idle": {}})
    report = build_report([("r.json", _matrix_doc())], catalogue, cfg)
    m = report.matrix
    assert [t.caption for t in m.tables] == ["Local servers and gateways", "Hosted APIs"]
    local, hosted = m.tables
    # local before gateway; a provider with several models gets a column per model, labelled without its org
    assert [(c.provider, c.model, c.label) for c in local.columns] == [
        ("a", None, "a"), ("g", "x/one", "one"), ("g", "x/two", "two")]
    assert [(k.label, k.span) for k in local.kinds] == [("local", 1), ("gateway", 2)]
    assert [(p.label, p.span) for p in local.providers] == [("a", 1), ("g", 2)]
    assert [c.provider for c in hosted.columns] == ["b", "c"]
    assert m.idle == (("idle", "Idle", "providers/idle.html"),)

    def cells(table: Any) -> dict[str, list[tuple[str, str]]]:
        return {r.quirk.id: [(c.label, c.href) for c in r.cells] for a in table.areas for r in a.rows}

    assert cells(local) == {
        "chat.object-wrong": [("expected", "providers/a.html#ev-m1--chat.object"),
                              ("seen", "providers/g.html#" + anchor("x/one", "chat.object")),
                              ("not seen", "providers/g.html#" + anchor("x/two", "chat.object"))],
        # declared by a, and its check passed there: a stale expectation, shown as not seen
        "chat.usage-missing": [("not seen", "providers/a.html#ev-m1--chat.usage"),
                               ("no evidence", "quirks/chat.usage-missing.html"),
                               ("no evidence", "quirks/chat.usage-missing.html")],
    }
    assert cells(hosted) == {
        "chat.object-wrong": [("seen", "providers/b.html#ev-m1--chat.object"),
                              ("no evidence", "quirks/chat.object-wrong.html")],
        # b declares it for a model without results, and its check was unsupported; c declares it, no records
        "chat.usage-missing": [("documented", "providers/b.html#d-chat.usage-missing"),
                               ("documented", "providers/c.html#d-chat.usage-missing")],
    }
    assert "declared for other" in hosted.areas[0].rows[1].cells[0].note
    stale = local.areas[0].rows[1].cells[0]
    assert "stale" in stale.note
    g_one = local.areas[0].rows[0].cells[1]
    assert g_one.third_party and local.columns[1].third_party and not local.columns[0].third_party
    html = render_pages(report)["index.html"]
    for needle in ('title="g · x/one"', ">documented</a>", ">no evidence</a>", "3rd-party †",
                   'href="checks.html"', 'href="providers/c.html#d-chat.usage-missing"'):
        assert needle in html, needle
    page_c = render_pages(report)["providers/c.html"]
    assert 'id="d-chat.usage-missing"' in page_c


def test_quirk_matrix_splits_wide_groups_between_providers() -> None:
    from oaicompat.report.front import MAX_COLUMNS, _chunks
    items = ["a"] * 3 + ["b"] * 16 + ["c"] * 2 + ["d"] * 40
    parts = _chunks(items, lambda x: x, MAX_COLUMNS)
    assert [len(p) for p in parts] == [3, 18, 18, 18, 4]
    assert all(len(p) <= MAX_COLUMNS for p in parts)
    assert parts[1] == ["b"] * 16 + ["c"] * 2          # a provider is never split when it fits one table


def test_record_timings_carry_their_units() -> None:
    from oaicompat.report.pages import timing_view
    t = timing_view({"ttft": 0.2554, "total": 12.5, "completion_tokens": 51, "gap_p50": 0.0042, "gap_p95": 0.05,
                     "level": "recorded"})
    assert t == (("time to first token", "255 ms"), ("total time", "12.5 s"), ("completion", "51 tokens"),
                 ("gap between chunks, median", "4.2 ms"), ("gap between chunks, 95th percentile", "50 ms"),
                 ("evidence", "recorded"), ("decode rate", "4.1 tokens/s"))
    assert timing_view({"ttft": 0.5, "total": 0.5, "completion_tokens": 1}) == (
        ("time to first token", "500 ms"), ("total time", "500 ms"), ("completion", "1 token"))
