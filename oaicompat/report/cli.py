"""`oaicompat report` and `oaicompat diff`. Exit codes: 0 ok, 1 diff found a regression (or, with
--fail-on-lost-coverage, lost coverage), 2 bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import ProvidersConfig, load_providers
from ..errors import OaicompatError
from ..paths import QUIRKS_DIR
from ..quirks import Catalogue, load_catalogue
from ..results import load_results
from .diff import diff_html, diff_markdown, diff_results, diff_text
from .model import build_report, merge_runs
from .render import render_site

DEFAULT_TITLE = "OpenAI-compatible API conformance"


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:          # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _load_all(paths: Sequence[Path]) -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, load_results(p)) for p in paths]


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oaicompat report",
        description="Render results.json files as a static site (index.html matrix, a page per provider and per "
                    "quirk, QUIRKS.md). Several files merge; later files win for the same provider, model and check.")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json")
    p.add_argument("-o", "--output", type=Path, default=Path("reports"), help="output directory (default: reports)")
    p.add_argument("--providers-file", type=Path, default=None, metavar="providers.yaml",
                   help="add a column for every configured provider that has no results, and list every "
                        "expectation it declares")
    p.add_argument("--providers", type=Path, dest="providers_file", help=argparse.SUPPRESS)  # old spelling
    p.add_argument("--quirks-dir", type=Path, default=QUIRKS_DIR, help="the quirk catalogue (fixtures/quirks)")
    p.add_argument("--title", default=DEFAULT_TITLE, help=f"the site's title (default: {DEFAULT_TITLE})")
    return p


def report_main(argv: list[str]) -> int:
    prog = "oaicompat report"
    args = _parse(report_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        docs = _load_all(args.results)
        catalogue: Catalogue = load_catalogue(args.quirks_dir)
        config: ProvidersConfig | None = load_providers(args.providers_file, env={}) if args.providers_file else None
    except OaicompatError as exc:
        return _fail(prog, str(exc))
    report = build_report(docs, catalogue, config, title=args.title)
    try:
        written = render_site(report, args.output)
    except OSError as exc:
        return _fail(prog, f"cannot write the report to {args.output}: {exc.strerror or exc}")
    if not report.columns:
        print(f"{prog}: warning: no providers and no records in {', '.join(n for n, _ in docs)}", file=sys.stderr)
    for c in report.columns:
        if c.summary.missing:
            print(f"{prog}: warning: {c.provider} is partial: {c.summary.missing} of "
                  f"{c.summary.total} checks have no record (shown as 'missing')", file=sys.stderr)
    print(f"wrote {args.output / 'index.html'} ({len(report.columns)} providers × {report.rows} checks), "
          f"{len(report.providers)} provider pages, "
          f"{len(report.quirks)} quirk pages and {args.output / 'QUIRKS.md'} ({len(written)} files)")
    return 0


def diff_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oaicompat diff",
        description="What changed between two results files, per provider. Coverage lost (a check judged before "
                    "and blocked, not recorded, not applicable, not configured, unsupported, an error or gone "
                    "now) is shown apart from regressions. Exit 1 when a check started failing or a new "
                    "unexpected quirk appeared (or, with --fail-on-lost-coverage, when coverage was lost), "
                    "0 otherwise, 2 on bad input.")
    p.add_argument("old", type=Path, metavar="OLD.json")
    p.add_argument("new", type=Path, metavar="NEW.json")
    p.add_argument("--markdown", type=Path, default=None, metavar="F", help="also write the diff as markdown")
    p.add_argument("--html", type=Path, default=None, metavar="F", help="also write the diff as an HTML page")
    p.add_argument("--fail-on-lost-coverage", action="store_true",
                   help="exit 1 when a check that was judged before is not judged now (default: shown, exit 0)")
    return p


def diff_main(argv: list[str]) -> int:
    prog = "oaicompat diff"
    args = _parse(diff_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        old = merge_runs(_load_all([args.old]))
        new = merge_runs(_load_all([args.new]))
    except OaicompatError as exc:
        return _fail(prog, str(exc))
    d = diff_results(old, new)
    outputs: list[tuple[Path | None, Callable[[Any], str]]] = [(args.markdown, diff_markdown), (args.html, diff_html)]
    for path, render in outputs:
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(d), encoding="utf-8")
        except OSError as exc:
            return _fail(prog, f"cannot write {path}: {exc.strerror or exc}")
    sys.stdout.write(diff_text(d))
    return 1 if d.regressed or (args.fail_on_lost_coverage and d.lost_coverage) else 0
