"""The `oaicompat` console script: providers, validate, servers, report, diff, import, evidence, nightly.

Global options (--providers-file, --version) go before or after the subcommand."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from . import __version__
from .config import Provider, ProvidersConfig, load_providers, runtime_environment
from .errors import OaicompatError
from .paths import CASSETTES, IMPORTED, PROVIDERS_FILE

# delegated subcommands that read a providers file: `oaicompat --providers-file X run` passes it on
READS_PROVIDERS_FILE = frozenset({"run", "report", "evidence", "nightly"})
PROVIDERS_WIDTH = 100           # `oaicompat providers` prints no longer line
_DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")

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


def _unset_url_vars(p: Provider, env: Mapping[str, str]) -> list[str]:
    """The variables of `p`'s base_url that are unset here, so that their `:-default` stands in for them."""
    return [m.group(1) for m in _DEFAULTED.finditer(p.base_url_template) if not env.get(m.group(1))]


def _startable() -> frozenset[str]:
    """The local servers `oaicompat servers up` can install and start on this machine."""
    from .servers.specs import SPECS
    return frozenset(SPECS)


def provider_status(p: Provider, env: Mapping[str, str], startable: frozenset[str]) -> tuple[str, str, str]:
    """(evidence, to run live, URL as shown) for one provider. A local server's default URL with its variable
    unset is only a guess unless oaicompat can start that server: such a provider is not called ready."""
    has_cassettes = (CASSETTES / p.name).is_dir()
    has_imported = (IMPORTED / p.name).is_dir()
    evidence = "recorded" if has_cassettes else ("third-party" if has_imported else "documented only")
    missing = list(p.missing_vars)
    if p.api_key_env and not env.get(p.api_key_env):
        missing.append(p.api_key_env)
    unset = _unset_url_vars(p, env)
    url = p.base_url or p.base_url_template
    if p.name in startable:
        todo = "ready" if not missing and not unset else f'eval "$(oaicompat servers up {p.name})"'
    elif p.kind == "local" and unset:
        todo = f"no server here: start one, then set {unset[0]}"
        url = f"${unset[0]} unset (the server's default: {p.base_url})"
    elif missing:
        todo = f"set {' and '.join(missing)}"
    else:
        todo = "ready"
    return evidence, todo, url


def cmd_providers(args: argparse.Namespace) -> int:
    cfg = _providers(args)
    env = runtime_environment()
    startable = _startable()
    rows = [(p, *provider_status(p, env, startable)) for p in cfg.providers.values()]
    users: dict[str | None, list[str]] = {}
    for p in cfg.providers.values():
        users.setdefault(p.base_url, []).append(p.name)
    name_w = max(len("provider"), *(len(p.name) for p, *_ in rows))
    print(f"{'provider'.ljust(name_w)}  {'kind':8} {'evidence':16} to run live")
    for p, evidence, todo, url in rows:
        print(f"{p.name.ljust(name_w)}  {p.kind:8} {evidence:16} {todo}"[:PROVIDERS_WIDTH])
        detail = f"models: {', '.join([p.model, *p.models])}; url: {url}"
        others = [n for n in users.get(p.base_url, []) if n != p.name and p.base_url]
        if others:
            detail += f" (also {', '.join(others)}'s)"
        for line in textwrap.wrap(detail, PROVIDERS_WIDTH, initial_indent="    ", subsequent_indent="      ",
                                  break_on_hyphens=False):
            print(line)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    import oaicompat.checks  # noqa: F401

    from .checks.base import CHECKS
    from .quirks import load_catalogue

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
        from .imported.cli import validate_evidence
        from .imported.evidence import imported_records
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
        import yaml

        from .config import parse_providers
        parse_providers(yaml.safe_load(edited), cfg.path, runtime_environment())
        atomic_write_text(cfg.path, edited)
        for d in proposal.drafts:
            print(f"{d.action} {d.provider}.{d.quirk}: {d.note}")
    counts = {a: sum(d.action == a for d in proposal.drafts) for a in ("add", "update", "remove")}
    where = f"written to {cfg.path}" if args.write and proposal.drafts else "drafted"
    print(f"# {counts['add']} new, {counts['update']} re-scoped, {counts['remove']} removed expectation(s) {where}; "
          f"{len(proposal.notes)} note(s)", file=sys.stderr)
    return 0


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--providers-file on the top parser and on every subcommand's; a subcommand's copy only overrides the
    top one when given (default SUPPRESS), so it works before or after the subcommand."""
    parser.add_argument("--providers-file", default=str(PROVIDERS_FILE) if top else argparse.SUPPRESS,
                        metavar="providers.yaml", help="the providers file to read (default: the repository's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oaicompat", description=__doc__)
    parser.add_argument("--version", action="version", version=f"oaicompat {__version__}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("providers", help="list providers, their models, and what each needs to run")
    p.set_defaults(func=cmd_providers)
    v = sub.add_parser("validate", help="check providers.yaml and the quirk catalogue")
    v.add_argument("--evidence", action="store_true",
                   help="also compare declared quirks with what imported third-party recordings show")
    v.set_defaults(func=cmd_validate)
    c = sub.add_parser("compare", help="fail when two runs (recorded vs live) disagree on any outcome")
    c.add_argument("recorded", metavar="RECORDED.json", help="results of the replayed run")
    c.add_argument("live", metavar="LIVE.json", help="results of the live run")
    c.set_defaults(func=cmd_compare)
    pr = sub.add_parser("propose", help="draft providers.yaml expectations from results (recorded and imported): "
                                         "new quirks, intermittent or model-scoped ones, removals")
    pr.add_argument("results", nargs="+", metavar="RESULTS.json",
                    help="results files (results.json of a run, results-imported.json of the evidence)")
    pr.add_argument("--provider", action="append", default=[],
                    help="only this provider (repeatable; default every provider the results name)")
    pr.add_argument("--write", action="store_true",
                    help="write the drafts into providers.yaml (lines inserted or replaced; comments and order kept)")
    pr.set_defaults(func=cmd_propose)
    for sp in (p, v, c, pr):
        _global_options(sp, top=False)
    for name, (_, _, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _delegate(name: str, argv: Sequence[str]) -> int:
    module, func, _ = DELEGATED[name]
    fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    return int(fn(list(argv)) or 0)


def _split_delegated(argv: list[str]) -> tuple[list[str], str, list[str]] | None:
    """(global options, subcommand, its arguments) when argv names a delegated subcommand, else None."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in DELEGATED:
            return argv[:i], arg, argv[i + 1:]
        if arg == "--providers-file":
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = _split_delegated(argv)
    if split is not None and "--version" not in split[0] and not {"-h", "--help"} & set(split[0]):
        before, name, rest = split
        if before:
            if name not in READS_PROVIDERS_FILE or before[0] != "--providers-file" or len(before) != 2:
                print(f"oaicompat: error: {' '.join(before)} before '{name}': oaicompat {name} takes its options "
                      f"after its name (oaicompat {name} --help)", file=sys.stderr)
                return 2
            rest = [*before, *rest]         # the delegated parser owns --providers-file too
        try:
            return _delegate(name, rest)
        except OaicompatError as exc:
            print(f"oaicompat {name}: {exc}", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except OaicompatError as exc:
        print(f"oaicompat: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
