"""The report's view model → a static site (HTML with autoescaping on, plus QUIRKS.md). No scripts, no network."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from ..fileio import atomic_write_text
from ..scrub import Scrubber
from .basics import CELL_STYLE, safe_url
from .docs import DOC_REF, DocPage, doc_ref, load_docs, rule_hrefs
from .views import Cell, Report

TEMPLATES = Path(__file__).resolve().parent / "templates"
MARKER = ".oaicompat-report"
_TICKS = re.compile(r"`([^`\n]+)`")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_AUTOLINK = re.compile(r"(?i)(://|\bwww\.)")
LEGEND = ("pass", "info", "expected-quirk", "unexpected-quirk", "stale-expectation", "violation", "error",
          "unsupported", "not-recorded", "missing", "documented")


def ticks(value: object) -> Markup:
    """Catalogue prose: escape everything, then show `backticked` spans as code."""
    return Markup(_TICKS.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(str(value)))))


def wbr(value: object) -> Markup:
    """Escaped text with line-break opportunities after dots, hyphens and slashes (ids and paths in narrow cells):
    long ids wrap there, never inside a word."""
    return Markup(re.sub(r"([.\-/])", r"\1<wbr>", str(escape(str(value)))))


def dates(value: object) -> Markup:
    """Escaped text whose YYYY-MM-DD dates never break across lines."""
    return Markup(re.sub(r"(\d{4}-\d{2}-\d{2})", r'<span class="nw">\1</span>', str(escape(str(value)))))


_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'`()\\]+")


def _segments(value: object) -> list[tuple[str, str | None]]:
    """Catalogue text as (text, link) pieces: public URLs, and references to the site's docs pages."""
    s = str(value)
    found: list[tuple[int, int, str]] = []
    for m in _URL_IN_TEXT.finditer(s):
        url = m.group(0).rstrip(".,;:")
        if safe_url(url):
            found.append((m.start(), m.start() + len(url), url))
    for m in DOC_REF.finditer(s):
        if not any(a <= m.start() < b for a, b, _ in found):
            found.append((m.start(), m.end(), "docs:" + m.group(0)))
    out: list[tuple[str, str | None]] = []
    at = 0
    for start, end, target in sorted(found):
        if start > at:
            out.append((s[at:start], None))
        out.append((s[start:end], target))
        at = end
    if at < len(s):
        out.append((s[at:], None))
    return out


def _doc_target(target: str, docs: dict[str, DocPage], html: bool) -> str | None:
    m = DOC_REF.fullmatch(target.removeprefix("docs:"))
    if m is None or not doc_ref(m.group(1), m.group(2), docs):
        return None
    return f"docs/{m.group(1)}.{'html' if html else 'md'}{m.group(2) or ''}"


def source_links(value: object, root: str, docs: dict[str, DocPage]) -> Markup:
    """Catalogue text, escaped, with its public URLs and docs references as links."""
    out = []
    for piece, target in _segments(value):
        href = None
        if target and target.startswith("docs:"):
            doc = _doc_target(target, docs, html=True)
            href = root + doc if doc else None
        elif target:
            href = target
        out.append(f'<a href="{escape(href)}" rel="noopener noreferrer nofollow">{wbr(piece)}</a>' if href
                   else str(escape(piece)))
    return Markup("".join(out))


def rule_link(rule: object, root: str, rules: dict[str, str]) -> Markup:
    """A rule id, linked to its explanation in the site's wire-rules page when that page explains it."""
    href = rules.get(str(rule))
    if href is None:
        return Markup(f'<span class="nw">{escape(str(rule))}</span>')
    return Markup(f'<a class="nw" href="{escape(root)}docs/wire-rules.html{escape(href)}">{escape(str(rule))}</a>')


_RULE_ID = re.compile(r"\b[A-Z]+(?:-[A-Z0-9]+)*-[0-9]+\b")


def rule_refs(value: object, root: str, rules: dict[str, str]) -> Markup:
    """Free text (an expectation's reason, escaped) whose rule ids link to their explanation."""
    def link(m: re.Match[str]) -> str:
        href = rules.get(m.group(0))
        return f'<a class="nw" href="{escape(root)}docs/wire-rules.html{escape(href)}">{m.group(0)}</a>' if href \
            else m.group(0)
    return Markup(_RULE_ID.sub(link, str(escape(str(value)))))


def md(value: object) -> str:
    """Untrusted text for markdown: one line, markdown punctuation backslash-escaped, HTML characters as entities."""
    s = " ".join(str(value).split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    # no GitHub autolinks from vendor text: `http\://x` and `www\.x` stay plain text
    return _AUTOLINK.sub(lambda m: "\\://" if m.group(1) == "://" else m.group(1)[:-1] + "\\.", s)


def mdcode(value: object) -> str:
    """An identifier as a code span when that is safe (no backticks, pipes, angle brackets), else escaped text."""
    s = " ".join(str(value).split())
    if s and not any(c in s for c in "`|<>&\\"):
        return f"`{s}`"
    return md(s)


def mdtrusted(value: object) -> str:
    """The project's own catalogue prose: keeps `code` spans, neutralises HTML and pipes."""
    s = " ".join(str(value).split())
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def mdsource(value: object, docs: dict[str, DocPage]) -> str:
    """Catalogue text for markdown: escaped, public URLs as autolinks, docs references as links."""
    out = []
    for piece, target in _segments(value):
        if target and target.startswith("docs:"):
            doc = _doc_target(target, docs, html=False)
            out.append(f"[{md(piece)}]({doc})" if doc else md(piece))
        elif target:
            out.append(f"<{mdurl(target)}>")
        else:
            out.append(md(piece) if piece.strip() else piece)
    return "".join(out).strip()


def mdrule(rule: object, rules: dict[str, str]) -> str:
    href = rules.get(str(rule))
    return f"[{md(rule)}](docs/wire-rules.md{href})" if href else md(rule)


def mdrules(value: object, rules: dict[str, str]) -> str:
    """Free text for markdown whose rule ids link to docs/wire-rules.md."""
    return _RULE_ID.sub(lambda m: f"[{m.group(0)}](docs/wire-rules.md{rules[m.group(0)]})" if m.group(0) in rules
                        else m.group(0), md(value))


def mdurl(value: object) -> str:
    url = safe_url(value)
    if url is None:
        raise ValueError(f"not a safe URL for markdown: {value!r}")
    return url


@lru_cache(maxsize=1)
def html_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ticks=ticks, wbr=wbr, dates=dates, source_links=source_links, rule_link=rule_link,
                       rule_refs=rule_refs)
    return env


@lru_cache(maxsize=1)
def md_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md, mdcode=mdcode, mdtrusted=mdtrusted, mdurl=mdurl, mdsource=mdsource, mdrule=mdrule,
                       mdrules=mdrules)
    return env


def legend() -> list[Cell]:
    return [Cell(outcome=o, css=CELL_STYLE[o][0], symbol=CELL_STYLE[o][1], label=CELL_STYLE[o][2]) for o in LEGEND]


def render_pages(report: Report, docs: dict[str, DocPage] | None = None) -> dict[str, str]:
    """Every page of the site: relative path → text. `docs`: the reference pages the site carries (default: the
    checkout's docs/wire-rules.md and docs/vendor-notes.md)."""
    env = html_environment()
    docs = load_docs() if docs is None else docs
    rules = rule_hrefs(docs)
    common = {"report": report, "docs": docs, "rules": rules}
    has_config = any(p.declared for p in report.providers)
    pages: dict[str, str] = {}
    pages["index.html"] = env.get_template("index.html.j2").render(**common, root="")
    pages["checks.html"] = env.get_template("checks.html.j2").render(**common, root="", legend=legend())
    provider_t = env.get_template("provider.html.j2")
    for page in report.providers:
        pages[f"providers/{page.slug}.html"] = provider_t.render(**common, page=page, root="../",
                                                                 has_config=has_config)
    quirk_t = env.get_template("quirk.html.j2")
    for q in report.quirks:
        pages[f"quirks/{q.ref.slug}.html"] = quirk_t.render(**common, q=q, root="../")
    pages["quirks/index.html"] = env.get_template("quirks_index.html.j2").render(**common, root="../")
    doc_t = env.get_template("doc.html.j2")
    for doc in docs.values():
        pages[f"docs/{doc.name}"] = doc.markdown
        pages[f"docs/{doc.html_name}"] = doc_t.render(**common, doc=doc, root="../")
    pages["QUIRKS.md"] = md_environment().get_template("quirks.md.j2").render(**common)
    return pages


def write_site(pages: dict[str, str], out_dir: Path) -> list[Path]:
    """Write the pages; in a directory an earlier report made, drop its provider and quirk pages that are gone."""
    scrubber = Scrubber.from_environment()
    if (out_dir / MARKER).exists():
        for sub in ("providers", "quirks", "docs"):
            for old in [*(out_dir / sub).glob("*.html"), *(out_dir / sub).glob("*.md")]:
                if f"{sub}/{old.name}" not in pages:
                    old.unlink()
    written = []
    for rel, content in pages.items():
        content = scrubber.text(content)   # no key reaches a page, whatever a check quoted
        atomic_write_text(out_dir / rel, content, fsync=False)   # the site is rebuilt from results
        written.append(out_dir / rel)
    (out_dir / MARKER).write_text("written by `oaicompat report`; its pages here are replaced on each run\n",
                                  encoding="utf-8")
    return written


def render_site(report: Report, out_dir: Path) -> list[Path]:
    return write_site(render_pages(report), out_dir)
