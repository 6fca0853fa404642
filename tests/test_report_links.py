"""No link in the published report dangles: every href of every HTML page, and every link of QUIRKS.md and the
docs pages, resolves inside the site (file and anchor) or is a public http(s) URL. Checked on a site rendered from
a small results fixture, and on the committed reports/ tree."""

from __future__ import annotations

import ipaddress
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from oaicompat.config import parse_providers
from oaicompat.paths import REPORTS
from oaicompat.quirks import load_catalogue
from oaicompat.report.docs import heading_anchor
from oaicompat.report.model import build_report
from oaicompat.report.render import render_site
from oaicompat.report.sample import synthetic_results
from tests.test_report import CATALOGUE_YAML

MD_LINK = re.compile(r"(?<![\\!])\[((?:[^\]\\]|\\.)*)\]\(([^)\s]+)\)")
MD_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
MD_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$", re.MULTILINE)
PRIVATE_HOSTS = {"localhost", "example", "invalid", "test"}


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"] or "")
        if tag in ("a", "link", "area") and a.get("href") is not None:
            self.hrefs.append(a["href"] or "")


def _markdown(text: str) -> tuple[list[str], set[str]]:
    ids = {heading_anchor(h) for h in MD_HEADING.findall(text)}
    ids |= set(re.findall(r'<a id="([^"]+)"', text))
    return [m.group(2) for m in MD_LINK.finditer(text)] + MD_AUTOLINK.findall(text), ids


def _public(url: str) -> str | None:
    """Why `url` is not a public http(s) URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r}"
    host = (parts.hostname or "").lower()
    if not host:
        return "no host"
    try:
        if not ipaddress.ip_address(host).is_global:
            return "a private address"
    except ValueError:
        if "." not in host or host in PRIVATE_HOSTS or host.rsplit(".", 1)[-1] in PRIVATE_HOSTS:
            return "not a public host name"
    return None


def dangling(site: Path) -> tuple[list[str], int]:
    """Every broken link of the site (page: link: why), and how many links were checked."""
    pages: dict[Path, tuple[list[str], set[str]]] = {}
    for path in site.rglob("*"):
        if path.suffix == ".html":
            parser = _Links()
            parser.feed(path.read_text(encoding="utf-8"))
            pages[path.resolve()] = (parser.hrefs, parser.ids)
        elif path.suffix == ".md":
            pages[path.resolve()] = _markdown(path.read_text(encoding="utf-8"))
    broken: list[str] = []
    checked = 0
    for path, (hrefs, _) in sorted(pages.items()):
        where = path.relative_to(site.resolve())
        for href in hrefs:
            checked += 1
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//"):
                why = _public(href)
                if why:
                    broken.append(f"{where}: {href}: {why}")
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.is_file():
                broken.append(f"{where}: {href}: no such file")
            elif parts.fragment and target in pages and unquote(parts.fragment) not in pages[target][1]:
                broken.append(f"{where}: {href}: no anchor #{parts.fragment} in {target.name}")
    for path in site.rglob("*"):
        if path.suffix in (".html", ".md") and "shared/reference" in path.read_text(encoding="utf-8"):
            broken.append(f"{path.relative_to(site)}: cites ../shared/reference, which is not published")
    return broken, checked


@pytest.fixture
def site(tmp_path: Path) -> Path:
    quirks = tmp_path / "quirks"
    quirks.mkdir()
    catalogue_yaml = {**CATALOGUE_YAML, "quirks": {**CATALOGUE_YAML["quirks"]}}
    catalogue_yaml["quirks"]["chat.object-wrong"] = {
        **catalogue_yaml["quirks"]["chat.object-wrong"],
        "vendors": [{"vendor": "acme", "level": "documented", "source": "https://docs.acme.com/compat"}]}
    catalogue_yaml["quirks"]["chat.usage-missing"] = {
        **catalogue_yaml["quirks"]["chat.usage-missing"],
        "vendors": [{"vendor": "vllm", "level": "reported", "source": "issue 1 (docs/vendor-notes.md#vllm)"},
                    {"vendor": "x", "level": "documented", "source": "https://x.example.com/doc, docs/wire-rules.md#resp-3"}]}
    (quirks / "chat.yaml").write_text(yaml.safe_dump(catalogue_yaml), encoding="utf-8")
    results = synthetic_results(6, 40, quirk_ids=["chat.object-wrong", "chat.usage-missing", "x.other"])
    config = parse_providers({"version": 1, "providers": {
        "documented-only": {"kind": "hosted", "title": "Documented", "base_url": "https://api.example.com/v1",
                            "model": "m", "expectations": {"chat.usage-missing": {
                                "reason": "observed: RESP-1 and NOT-A-RULE-1", "source": "https://docs.example.com/usage"}}}}},
        Path("providers.yaml"), {})
    out = tmp_path / "site"
    render_site(build_report([("r.json", results)], load_catalogue(quirks), config), out)
    return out


def test_the_rendered_site_has_no_dangling_link(site: Path) -> None:
    assert (site / "docs" / "wire-rules.html").is_file() and (site / "docs" / "wire-rules.md").is_file()
    assert (site / "checks.html").is_file() and (site / "QUIRKS.md").is_file()
    broken, checked = dangling(site)
    assert not broken, "\n".join(broken[:30])
    assert checked > 500
    # rule ids and the catalogue's docs references became links into the site's own docs pages
    quirk = (site / "quirks" / "chat.usage-missing.html").read_text(encoding="utf-8")
    assert 'href="../docs/wire-rules.html#resp-3"' in quirk and 'href="../docs/vendor-notes.html#vllm"' in quirk
    assert 'href="https://x.example.com/doc"' in quirk
    text = (site / "QUIRKS.md").read_text(encoding="utf-8")
    assert "[RESP-3](docs/wire-rules.md#resp-3)" in text and "(docs/vendor-notes.md#vllm)" in text
    # a rule id inside an expectation's reason links too
    assert "observed: [RESP-1](docs/wire-rules.md#resp-1) and NOT-A-RULE-1" in text
    page = (site / "providers" / "documented-only.html").read_text(encoding="utf-8")
    assert 'observed: <a class="nw" href="../docs/wire-rules.html#resp-1">RESP-1</a> and NOT-A-RULE-1' in page


def test_the_checker_finds_dangling_links(site: Path) -> None:
    """The checker can fail: a missing page, a missing anchor, a private URL and an unpublished citation."""
    index = site / "index.html"
    index.write_text(index.read_text(encoding="utf-8").replace(
        "</body>", '<a href="nowhere.html">x</a><a href="checks.html#no-such-id">y</a>'
                   '<a href="http://127.0.0.1:8081/v1">z</a><a href="javascript:alert(1)">j</a>'
                   '<p>../shared/reference/openai-wire.md</p></body>'), encoding="utf-8")
    (site / "QUIRKS.md").write_text("[a](docs/wire-rules.md#no-such-rule) [b](missing.md)\n", encoding="utf-8")
    broken, _ = dangling(site)
    joined = "\n".join(broken)
    for needle in ("nowhere.html: no such file", "no anchor #no-such-id", "http://127.0.0.1:8081/v1: a private address",
                   "javascript:alert(1): scheme 'javascript'", "index.html: cites ../shared/reference",
                   "no anchor #no-such-rule in wire-rules.md", "missing.md: no such file"):
        assert needle in joined, (needle, joined)


@pytest.mark.skipif(not (REPORTS / "index.html").exists(), reason="no published report committed yet")
def test_the_committed_report_has_no_dangling_link() -> None:
    broken, checked = dangling(REPORTS)
    assert not broken, (f"{len(broken)} dangling links in reports/ (run `oaicompat run` after fixing the renderer):\n"
                        + "\n".join(broken[:30]))
    assert checked > 1000


def test_every_rule_a_check_cites_is_explained_in_docs_with_the_checks_that_cite_it() -> None:
    from oaicompat.checks.base import CHECKS
    from oaicompat.report.docs import load_docs, rule_hrefs

    docs = load_docs()
    text = docs["wire-rules.md"].markdown
    rules = rule_hrefs(docs)
    cited: dict[str, set[str]] = {}
    for spec in CHECKS.values():
        cited.setdefault(spec.rule, set()).add(spec.id)
    missing = sorted(set(cited) - set(rules))
    assert not missing, f"docs/wire-rules.md does not explain {missing}: add a `### RULE-ID` section for each"
    for section in re.split(r"^### ", text, flags=re.MULTILINE)[1:]:
        rule = section.split("\n", 1)[0].strip()
        line = re.search(r"^Cited by: (.*)$", section, re.MULTILINE)
        listed = set(re.findall(r"`([a-z0-9_.-]+)`", line.group(1))) if line else set()
        assert listed == cited.get(rule, set()), (
            f"docs/wire-rules.md, {rule}: lists {sorted(listed)} but the checks citing it are "
            f"{sorted(cited.get(rule, set()))}")


def test_the_catalogue_cites_published_pages_only() -> None:
    from oaicompat.report.docs import DOC_REF, load_docs

    docs = load_docs()
    catalogue = load_catalogue()
    refs = 0
    for q in catalogue.quirks.values():
        for v in q.vendors:
            assert "shared/reference" not in v.source, (q.id, v.source)
            for m in DOC_REF.finditer(v.source):
                refs += 1
                page = docs.get(f"{m.group(1)}.md")
                assert page is not None, (q.id, v.source)
                assert not m.group(2) or m.group(2)[1:] in page.anchors, (q.id, v.source)
    assert refs > 50
