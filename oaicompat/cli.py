"""The `oaicompat` console script: providers, validate, servers, report, diff, import, evidence, nightly."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Callable, Sequence

from .config import ProvidersConfig, load_providers, runtime_environment
from .errors import OaicompatError
from .paths import CASSETTES, IMPORTED, PROVIDERS_FILE

# subcommands implemented in their own modules: name → (module, function, help)
DELEGATED: dict[str, tuple[str, str, str]] = {
    "run": ("oaicompat.run", "main", "the main job: offline suite + imported evidence + report"),
    "servers": ("oaicompat.servers.cli", "main", "install, start and stop the real local servers"),
    "report": ("oaicompat.report.cli", "report_main", "render results.json files as the HTML matrix"),
    "diff": ("oaicompat.report.cli", "diff_main", "what changed between two results files"),
    "import": ("oaicompat.imported.cli", "import_main", "import public third-party recordings as evidence"),
    "evidence": ("oaicompat.imported.cli", "evidence_main", "run the checks over imported recordings"),
    "nightly": ("oaicompat.nightly", "main", "run the nightly matrix locally (shards, merge, diff, report)"),
}


def _providers(args: argparse.Namespace) -> ProvidersConfig:
    return load_providers(Path(args.providers_file), runtime_environment())


def cmd_providers(args: argparse.Namespace) -> int:
    cfg = _providers(args)
    env = runtime_environment()
    rows = []
    for p in cfg.providers.values():
        has_cassettes = (CASSETTES / p.name).is_dir()
        has_imported = (IMPORTED / p.name).is_dir()
        missing = list(p.missing_vars)
        if p.api_key_env and not env.get(p.api_key_env):
            missing.append(p.api_key_env)
        level = "live-ready" if not missing else ("recorded" if has_cassettes else
                                                  ("third-party" if has_imported else "documented"))
        models = ", ".join([p.model, *p.models])
        need = f"set {' and '.join(missing)}" if missing else "ready"
        rows.append((p.name, p.kind, models, "yes" if has_cassettes else "no",
                     "yes" if has_imported else "no", p.base_url or p.base_url_template, need, level))
    header = ("provider", "kind", "models", "cassettes", "imported", "base_url", "to run live", "level")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from .checks.base import CHECKS
    from .quirks import load_catalogue
    import oaicompat.checks  # noqa: F401

    problems: list[str] = []
    cfg = _providers(args)
    catalogue = load_catalogue()
    owners: dict[str, str] = {}
    for spec in CHECKS.values():
        for q in spec.quirks:
            if q not in catalogue:
                problems.append(f"check {spec.id} raises {q!r}, which fixtures/quirks/ does not catalogue")
            if q in owners:
                problems.append(f"quirk {q!r} is owned by two checks: {owners[q]} and {spec.id}")
            owners[q] = spec.id
    for q in catalogue.quirks:
        if q not in owners:
            problems.append(f"catalogued quirk {q!r} is raised by no check")
    for p in cfg.providers.values():
        for q in p.expectations:
            if q not in catalogue:
                problems.append(f"{cfg.path}: provider {p.name!r}, expectations: {q!r} is not a catalogued quirk id")
    if args.evidence:
        from .imported.evidence import imported_records
        from .imported.cli import validate_evidence
        records = imported_records(cfg)
        problems.extend(validate_evidence(cfg, records))
        problems.extend(partly_stale(cfg, records))
    for line in problems:
        print(line)
    print(f"{len(cfg.providers)} providers, {len(catalogue.quirks)} quirks, {len(CHECKS)} checks: "
          + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def partly_stale(cfg: ProvidersConfig, records: list[dict]) -> list[str]:
    """Declared quirks that some imported exchanges show and others pass without `intermittent` or a scope
    that leaves them out: each such pass is a failing "stale expectation" record in the published matrix.
    (Declared quirks no exchange shows are validate_evidence's "contradicted".)"""
    shown: dict[tuple[str, str], int] = {}
    stale: dict[tuple[str, str], int] = {}
    for r in records:
        if not any(ev.get("level") == "third-party" for ev in r.get("evidence", [])):
            continue
        for q in r.get("quirks", []):
            key = (str(r.get("provider")), q)
            if r.get("outcome") in ("expected-quirk", "unexpected-quirk"):
                shown[key] = shown.get(key, 0) + 1
            elif r.get("outcome") == "stale-expectation":
                stale[key] = stale.get(key, 0) + 1
    return [f"{cfg.path}: provider {p!r} declares {q!r}, which {shown[(p, q)]} imported exchange(s) show, but "
            f"{n} passed (each a stale-expectation record): mark it `intermittent: true` or scope it with "
            f"`models:`/`endpoints:` (oaicompat propose drafts which)"
            for (p, q), n in sorted(stale.items()) if (p, q) in shown]


def cmd_compare(args: argparse.Namespace) -> int:
    from .results import compare_outcomes, load_results

    diffs = compare_outcomes(load_results(Path(args.recorded)), load_results(Path(args.live)))
    for line in diffs:
        print(line)
    print(f"{len(diffs)} difference(s) between {args.recorded} and {args.live}")
    return 1 if diffs else 0


def cmd_propose(args: argparse.Namespace) -> int:
    from .fileio import atomic_write_text
    from .propose import apply_drafts, check_applied, draft_expectations, render
    from .quirks import load_catalogue
    from .results import load_results

    cfg = _providers(args)
    records = [r for path in args.results for r in load_results(Path(path))["records"]]
    proposal = draft_expectations(records, cfg, load_catalogue(), args.provider or None)
    for note in proposal.notes:
        print(f"# note: {note}", file=sys.stderr)
    if not args.write:
        print(render(proposal), end="")
    elif proposal.drafts:
        text = cfg.path.read_text(encoding="utf-8")
        edited = apply_drafts(text, proposal.drafts)
        check_applied(edited, proposal.drafts)
        from .config import parse_providers
        import yaml
        parse_providers(yaml.safe_load(edited), cfg.path, runtime_environment())
        atomic_write_text(cfg.path, edited)
        for d in proposal.drafts:
            print(f"{d.action} {d.provider}.{d.quirk}: {d.note}")
    counts = {a: sum(d.action == a for d in proposal.drafts) for a in ("add", "update", "remove")}
    where = f"written to {cfg.path}" if args.write and proposal.drafts else "drafted"
    print(f"# {counts['add']} new, {counts['update']} re-scoped, {counts['remove']} removed expectation(s) {where}; "
          f"{len(proposal.notes)} note(s)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oaicompat", description=__doc__)
    parser.add_argument("--providers-file", default=str(PROVIDERS_FILE), help="providers.yaml to read")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("providers", help="list providers, their models, and what each needs to run")
    p.set_defaults(func=cmd_providers)
    v = sub.add_parser("validate", help="check providers.yaml and the quirk catalogue")
    v.add_argument("--evidence", action="store_true",
                   help="also compare declared quirks with what imported third-party recordings show")
    v.set_defaults(func=cmd_validate)
    c = sub.add_parser("compare", help="fail when two runs (recorded vs live) disagree on any outcome")
    c.add_argument("recorded")
    c.add_argument("live")
    c.set_defaults(func=cmd_compare)
    pr = sub.add_parser("propose", help="draft providers.yaml expectations from results (recorded and imported): "
                                         "new quirks, intermittent or model-scoped ones, removals")
    pr.add_argument("results", nargs="+", help="results files (results.json, results-imported.json)")
    pr.add_argument("--provider", action="append", default=[],
                    help="only this provider (repeatable; default every provider the results name)")
    pr.add_argument("--write", action="store_true",
                    help="write the drafts into providers.yaml (lines inserted or replaced; comments and order kept)")
    pr.set_defaults(func=cmd_propose)
    for name, (_, _, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _delegate(name: str, argv: Sequence[str]) -> int:
    module, func, _ = DELEGATED[name]
    fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return int(fn(list(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # delegated subcommands own their arguments
    for i, arg in enumerate(argv):
        if arg in DELEGATED:
            try:
                return _delegate(arg, argv[i + 1:])
            except OaicompatError as exc:
                print(f"oaicompat {arg}: {exc}", file=sys.stderr)
                return 2
        if not arg.startswith("-"):
            break
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except OaicompatError as exc:
        print(f"oaicompat: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
