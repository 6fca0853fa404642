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
        problems.extend(validate_evidence(cfg, imported_records(cfg)))
    for line in problems:
        print(line)
    print(f"{len(cfg.providers)} providers, {len(catalogue.quirks)} quirks, {len(CHECKS)} checks: "
          + ("OK" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .results import compare_outcomes, load_results

    diffs = compare_outcomes(load_results(Path(args.recorded)), load_results(Path(args.live)))
    for line in diffs:
        print(line)
    print(f"{len(diffs)} difference(s) between {args.recorded} and {args.live}")
    return 1 if diffs else 0


def _cassette_of(test_id: str, provider: str) -> str:
    """suites/test_chat.py::test_x[p-m] → fixtures/cassettes/<p>/test_chat/test_x.yaml (the default model's)."""
    path, _, name = test_id.partition("::")
    return f"fixtures/cassettes/{provider}/{Path(path).stem}/{name.split('[')[0]}.yaml"


def propose_expectations(doc: dict, provider: str) -> dict[str, dict[str, str]]:
    """Expectations for the quirks a run found but providers.yaml does not declare: reason from the
    finding, source the cassette (or third-party file) that shows it, origin `model` for capability checks."""
    out: dict[str, dict[str, str]] = {}
    for r in doc["records"]:
        if r["provider"] != provider or r["outcome"] != "unexpected-quirk":
            continue
        for quirk in r["quirks"]:
            detail = r["message"].split("] ", 1)[-1].split(" — not declared", 1)[0]
            ev = next((e for e in r["evidence"] if e.get("cassette") or e.get("imported_file")), {})
            source = ev.get("cassette") or ev.get("imported_file") or _cassette_of(r["test"], provider)
            entry = {"reason": f"observed: {detail}"[:300], "source": source}
            if r["kind"] == "capability":
                entry["origin"] = "model"
            out.setdefault(quirk, entry)
    return out


def cmd_propose(args: argparse.Namespace) -> int:
    import yaml
    from .results import load_results

    doc = load_results(Path(args.results))
    proposed = propose_expectations(doc, args.provider)
    if proposed:
        print(yaml.safe_dump({"expectations": proposed}, sort_keys=True, allow_unicode=True, width=200), end="")
    print(f"# {len(proposed)} undeclared quirk(s) for {args.provider}", file=sys.stderr)
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
    for command in (p, v):   # `oaicompat validate --providers-file X` works as well as before the subcommand
        command.add_argument("--providers-file", default=argparse.SUPPRESS, help="providers.yaml to read")
    c = sub.add_parser("compare", help="fail when two runs (recorded vs live) disagree on any outcome")
    c.add_argument("recorded")
    c.add_argument("live")
    c.set_defaults(func=cmd_compare)
    pr = sub.add_parser("propose", help="print providers.yaml expectations for the undeclared quirks a run found")
    pr.add_argument("results")
    pr.add_argument("--provider", required=True)
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
