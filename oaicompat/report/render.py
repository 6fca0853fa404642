"""The report's view model → a static site (HTML with autoescaping on, plus QUIRKS.md). No scripts, no network."""

from __future__ import annotations

import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from ..scrub import Scrubber
from .basics import CELL_STYLE, safe_url
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
    """Escaped text with line-break opportunities after dots, hyphens, slashes and underscores (ids in narrow cells)."""
    return Markup(re.sub(r"([.\-/_])", r"\1<wbr>", str(escape(str(value)))))


def dates(value: object) -> Markup:
    """Escaped text whose YYYY-MM-DD dates never break across lines."""
    return Markup(re.sub(r"(\d{4}-\d{2}-\d{2})", r'<span class="nw">\1</span>', str(escape(str(value)))))


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


def mdurl(value: object) -> str:
    url = safe_url(value)
    if url is None:
        raise ValueError(f"not a safe URL for markdown: {value!r}")
    return url


@lru_cache(maxsize=1)
def html_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ticks=ticks, wbr=wbr, dates=dates)
    return env


@lru_cache(maxsize=1)
def md_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md, mdcode=mdcode, mdtrusted=mdtrusted, mdurl=mdurl)
    return env


def legend() -> list[Cell]:
    return [Cell(outcome=o, css=CELL_STYLE[o][0], symbol=CELL_STYLE[o][1], label=CELL_STYLE[o][2]) for o in LEGEND]


def render_pages(report: Report) -> dict[str, str]:
    """Every page of the site: relative path → text."""
    env = html_environment()
    has_config = any(p.declared for p in report.providers)
    pages: dict[str, str] = {}
    pages["index.html"] = env.get_template("index.html.j2").render(report=report, root="", legend=legend())
    provider_t = env.get_template("provider.html.j2")
    for page in report.providers:
        pages[f"providers/{page.slug}.html"] = provider_t.render(report=report, page=page, root="../",
                                                                 has_config=has_config)
    quirk_t = env.get_template("quirk.html.j2")
    for q in report.quirks:
        pages[f"quirks/{q.ref.slug}.html"] = quirk_t.render(report=report, q=q, root="../")
    pages["quirks/index.html"] = env.get_template("quirks_index.html.j2").render(report=report, root="../")
    pages["QUIRKS.md"] = md_environment().get_template("quirks.md.j2").render(report=report)
    return pages


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write(path: Path, content: str, mode: int) -> None:
    content = Scrubber.from_environment().text(content)   # no key reaches a page, whatever a check quoted
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(content)
        os.chmod(tmp, mode)          # mkstemp makes 0600; a published site is readable like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_site(pages: dict[str, str], out_dir: Path) -> list[Path]:
    """Write the pages; in a directory an earlier report made, drop its provider and quirk pages that are gone."""
    if (out_dir / MARKER).exists():
        for sub in ("providers", "quirks"):
            for old in (out_dir / sub).glob("*.html"):
                if f"{sub}/{old.name}" not in pages:
                    old.unlink()
    written = []
    mode = 0o666 & ~_umask()
    for rel, content in pages.items():
        _write(out_dir / rel, content, mode)
        written.append(out_dir / rel)
    (out_dir / MARKER).write_text("written by `oaicompat report`; its pages here are replaced on each run\n",
                                  encoding="utf-8")
    return written


def render_site(report: Report, out_dir: Path) -> list[Path]:
    return write_site(render_pages(report), out_dir)
