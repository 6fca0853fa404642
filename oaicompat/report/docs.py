"""The project's reference pages (docs/wire-rules.md, docs/vendor-notes.md) as part of the published site.

The report cites rule ids and vendor notes; so that every such link resolves wherever the site is published
(the repository checkout, GitHub, or GitHub Pages alone), the site carries its own copy of these pages under
docs/: the markdown as written (QUIRKS.md links to it) and an HTML rendering (the HTML pages link to it). The
rendering understands the small markdown subset these pages use: headings, paragraphs, `- ` lists, `code`,
**bold**, [links](target) and <https://autolinks>. Anchors are GitHub's heading anchors (`### RESP-2` →
`#resp-2`), so the same fragment works on GitHub and in the site.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from ..paths import PROJECT_ROOT
from .basics import safe_url

DOCS_DIR = PROJECT_ROOT / "docs"
SITE_DOCS = ("wire-rules.md", "vendor-notes.md")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_AUTOLINK = re.compile(r"&lt;(https?://[^\s&]+)&gt;")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
# a reference to one of these pages inside catalogue text: docs/<name>.md#anchor
DOC_REF = re.compile(r"\bdocs/([a-z0-9-]+)\.md(#[a-z0-9_.-]+)?")


def heading_anchor(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped, spaces as `-`."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@dataclass(frozen=True)
class DocPage:
    name: str                   # wire-rules.md
    title: str
    markdown: str
    html: Markup
    anchors: frozenset[str]

    @property
    def html_name(self) -> str:
        return self.name[:-3] + ".html"


def _target(url: str) -> str | None:
    """Where a link in a docs page goes in the HTML rendering: public URLs as they are, sibling pages as .html."""
    if safe_url(url):
        return url
    m = re.fullmatch(r"([a-z0-9-]+)\.md(#[\w.-]+)?|(#[\w.-]+)", url)
    if not m:
        return None
    return m.group(3) or f"{m.group(1)}.html{m.group(2) or ''}"


def _inline(text: str) -> str:
    parts = text.split("`")
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 and i < len(parts) - 1:
            out.append(f"<code>{escape(part)}</code>")
            continue
        s = str(escape(part if i % 2 == 0 else "`" + part))
        s = _AUTOLINK.sub(lambda m: f'<a href="{m.group(1)}">{m.group(1)}</a>', s)

        def link(m: re.Match[str]) -> str:
            href = _target(m.group(2).replace("&amp;", "&"))
            return f'<a href="{escape(href)}">{m.group(1)}</a>' if href else m.group(1)
        s = _LINK.sub(link, s)
        out.append(_BOLD.sub(r"<b>\1</b>", s))
    return "".join(out)


def to_html(markdown: str) -> tuple[str, Markup, frozenset[str]]:
    """(title, body, anchors) of a page in the markdown subset above."""
    html: list[str] = []
    anchors: set[str] = set()
    title = ""
    para: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if para:
            html.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            html.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, text = len(heading.group(1)), heading.group(2)
            anchor = heading_anchor(text)
            anchors.add(anchor)
            title = title or text
            html.append(f'<h{level} id="{escape(anchor)}">{_inline(text)}</h{level}>')
        elif not line.strip():
            flush()
        elif line.startswith("- "):
            if para:
                flush()
            items.append(line[2:].strip())
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            para.append(line.strip())
    flush()
    return title, Markup("\n".join(html)), frozenset(anchors)


def load_docs(directory: Path = DOCS_DIR) -> dict[str, DocPage]:
    """The site's docs pages that exist in `directory` (none when the package runs outside a checkout)."""
    pages: dict[str, DocPage] = {}
    for name in SITE_DOCS:
        path = directory / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        title, body, anchors = to_html(text)
        pages[name] = DocPage(name=name, title=title or name, markdown=text, html=body, anchors=anchors)
    return pages


def rule_hrefs(docs: Mapping[str, DocPage]) -> dict[str, str]:
    """Rule id → its anchor in wire-rules (relative to the docs page), for every rule the page explains."""
    page = docs.get("wire-rules.md")
    if page is None:
        return {}
    return {a.upper(): f"#{a}" for a in page.anchors if re.fullmatch(r"[a-z]+(-[a-z0-9]+)*-\d+", a)}


def doc_ref(name: str, fragment: str | None, docs: Mapping[str, DocPage]) -> bool:
    """Whether `docs/<name>.md<fragment>` names a page (and anchor) the site carries."""
    page = docs.get(f"{name}.md")
    return page is not None and (not fragment or fragment[1:] in page.anchors)
