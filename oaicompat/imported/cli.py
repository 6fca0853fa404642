"""`oaicompat import` (public recordings → fixtures/imported) and `oaicompat evidence` (checks over them).

    oaicompat import PATH… --source owner/repo@commit --license SPDX [--recorded-at DATE] [--vendor NAME]
    oaicompat evidence [-o results-imported.json] [--vendor NAME]… [--check ID]…

`import` reads the files from a checkout of the source repository: it verifies that each file is
byte-identical to the file at that commit, and that the repository's licence at that commit is the
permissive licence given, then writes the files, PROVENANCE.yaml and the licence notice.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ProvidersConfig, load_providers, runtime_environment
from ..errors import OaicompatError
from ..paths import IMPORTED, PROVIDERS_FILE
from ..results import ResultsLog
from .evidence import load_corpus, run_evidence
from .formats import RecordingError
from .profiles import RecorderTableError, load_table
from .store import (
    LICENSE_NAMES,
    NOTICE_NAMES,
    PERMISSIVE_LICENSES,
    Source,
    detect_spdx,
    import_file,
    parse_source,
)
from .summary import markdown_table, summarise
from .vendors import KNOWN_VENDORS

RECORDING_SUFFIXES = (".yaml", ".yml", ".yaml.gz", ".yml.gz", ".httprr", ".httprr.gz", ".json", ".sse", ".chunks.txt")


class UsageProblem(OaicompatError):
    pass


# -- import ---------------------------------------------------------------------------------------------------

def _git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)


def _find_root(paths: list[Path]) -> Path | None:
    start = paths[0] if paths[0].is_dir() else paths[0].parent
    for d in (start, *start.parents):
        if (d / ".git").exists():
            return d
    return None


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(RECORDING_SUFFIXES)))
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def _normalise_date(value: str | None) -> str | None:
    if value is None:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?Z", value):
        return value
    raise UsageProblem(f"--recorded-at {value!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")


def _licence(root: Path | None, commit: str | None, license_file: str | None,
             names: tuple[str, ...]) -> tuple[str | None, str]:
    """(text, where it came from) of the first licence/notice file found at the commit (or in root)."""
    if license_file:
        path = Path(license_file)
        try:
            return path.read_text(encoding="utf-8"), str(path.name)
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageProblem(f"cannot read --license-file {path}: {exc}") from None
    if root is None:
        return None, ""
    for name in names:
        if commit:
            got = _git(root, "cat-file", "blob", f"{commit}:{name}")
            if got.returncode == 0:
                return got.stdout.decode("utf-8", "replace"), f"{name}@{commit}"
        elif (root / name).is_file():
            return (root / name).read_text(encoding="utf-8", errors="replace"), name
    return None, ""


def build_import_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oaicompat import",
        description="Import public HTTP recordings (vcrpy YAML, Ruby VCR YAML, .yaml.gz, Go httprr) made "
                    "against hosted vendors as third-party evidence under fixtures/imported/.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="recording files (or folders) in a source checkout")
    p.add_argument("--source", required=True, metavar="OWNER/REPO@COMMIT",
                   help="the repository and commit the files come from")
    p.add_argument("--license", required=True, metavar="SPDX",
                   help=f"the repository's licence: one of {', '.join(PERMISSIVE_LICENSES)} (verified)")
    p.add_argument("--recorded-at", metavar="DATE",
                   help="recording date for interactions whose file does not say (YYYY-MM-DD)")
    p.add_argument("--vendor", help="file every interaction under this provider instead of the request host's")
    p.add_argument("--root", help="the checkout of the source repository (default: found from the paths)")
    p.add_argument("--license-file", help="the licence text (default: LICENSE… at the commit in --root)")
    p.add_argument("--out", default=str(IMPORTED), help="where imported files go (default: fixtures/imported)")
    p.add_argument("--selection", metavar="TEXT",
                   help="what of the source was left out and why (kept in PROVENANCE.yaml under selection)")
    return p


def import_main(argv: Sequence[str]) -> int:
    args = build_import_parser().parse_args(list(argv))
    try:
        return _import(args)
    except (UsageProblem, RecordingError, RecorderTableError) as exc:
        print(f"oaicompat import: {exc}", file=sys.stderr)
        return 2


def _import(args: argparse.Namespace) -> int:
    repo, commit = parse_source(args.source)
    if args.license not in PERMISSIVE_LICENSES:
        raise UsageProblem(f"--license {args.license!r}: only permissively licensed sources are imported "
                           f"({', '.join(PERMISSIVE_LICENSES)})")
    if args.vendor and args.vendor not in KNOWN_VENDORS:
        raise UsageProblem(f"--vendor {args.vendor!r} is not a hosted vendor oaicompat knows: "
                           f"{', '.join(sorted(KNOWN_VENDORS))}")
    recorded_at = _normalise_date(args.recorded_at)
    load_table()   # a malformed recorder table stops the import before anything is read
    paths = _expand([Path(p).resolve() for p in args.paths])
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise UsageProblem(f"no such file: {', '.join(missing[:5])}")
    if not paths:
        raise UsageProblem("no recording files found in the given folders")
    root = Path(args.root).resolve() if args.root else _find_root(paths)
    git = root is not None and (root / ".git").exists()
    full_commit: str | None = None
    if git:
        assert root is not None
        got = _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
        if got.returncode != 0:
            raise UsageProblem(f"commit {commit} is not in the checkout {root}: fetch it, or fix --source")
        full_commit = got.stdout.decode().strip()
    else:
        print(f"oaicompat import: warning: {root or 'the paths'} is not a git checkout; the files cannot be "
              f"verified against {commit}", file=sys.stderr)
    text, origin = _licence(root, full_commit, args.license_file, LICENSE_NAMES)
    if text is None:
        raise UsageProblem(f"no licence file ({', '.join(LICENSE_NAMES[:3])}…) at {commit} in {root}; "
                           f"pass --license-file")
    found = detect_spdx(text)
    if found != args.license:
        raise UsageProblem(f"the licence at {origin or commit} reads as {found or 'not a licence oaicompat accepts'}, "
                           f"not {args.license}: nothing imported")
    notice, _ = _licence(root, full_commit, None, NOTICE_NAMES)
    source = Source(repo=repo, commit=full_commit or commit, license=args.license, license_text=text,
                    notice_text=notice, license_origin=origin)
    out = Path(args.out)
    failures = twins = 0
    total = excluded = 0
    for path in paths:
        rel = path.relative_to(root).as_posix() if root and path.is_relative_to(root) else path.name
        data = None
        if git:
            assert root is not None
            blob = _git(root, "cat-file", "blob", f"{full_commit}:{rel}")
            if blob.returncode != 0:
                print(f"error {rel}: not in commit {commit[:12]} of {repo}; not imported", file=sys.stderr)
                failures += 1
                continue
            data = path.read_bytes()
            if data != blob.stdout:
                print(f"error {rel}: differs from {commit[:12]}:{rel} (edited, or another commit is checked "
                      f"out); not imported", file=sys.stderr)
                failures += 1
                continue
        result = import_file(path, source=source, source_path=rel, out_root=out, vendor_override=args.vendor,
                             recorded_at=recorded_at, data=data, selection=args.selection)
        for line in result.skipped:
            print(f"  skip {rel}: {line}", file=sys.stderr)
        if result.duplicate_of:
            print(f"same  {rel}: byte-identical to {result.duplicate_of}, already imported; not imported twice")
            twins += 1
            continue
        if result.error:
            print(f"error {rel}: {result.error}; not imported", file=sys.stderr)
            failures += 1
            continue
        total += result.interactions
        excluded += result.excluded
        where = ", ".join(str(_shown(p)) for p in result.written)
        print(f"ok    {rel} → {where} ({result.interactions} interaction(s)"
              f"{f', {result.excluded} excluded' if result.excluded else ''})")
    print(f"{len(paths) - failures - twins} of {len(paths)} file(s) imported from {repo}@{commit[:12]}"
          f"{f' ({twins} byte-identical duplicate(s) skipped)' if twins else ''}: "
          f"{total} interaction(s), {excluded} excluded from evidence")
    return 1 if failures else 0


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


# -- evidence ------------------------------------------------------------------------------------------------

def build_evidence_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oaicompat evidence",
                                description="Run every registered check over fixtures/imported and write a "
                                            "results file (evidence level third-party).")
    p.add_argument("-o", "--output", default="results-imported.json", help="results file to write")
    p.add_argument("--imported-dir", default=str(IMPORTED), help="root of the imported recordings")
    p.add_argument("--providers-file", default=str(PROVIDERS_FILE))
    p.add_argument("--vendor", action="append", default=[], help="only this vendor (repeatable)")
    p.add_argument("--check", action="append", default=[], help="only this check id (repeatable)")
    p.add_argument("--table", action="store_true",
                   help="also print, per vendor, how many exchanges are imported and how many were judged (Markdown)")
    return p


def evidence_main(argv: Sequence[str]) -> int:
    args = build_evidence_parser().parse_args(list(argv))
    cfg: ProvidersConfig | None
    try:
        cfg = load_providers(Path(args.providers_file), runtime_environment())
    except OaicompatError as exc:
        print(f"oaicompat evidence: {exc}", file=sys.stderr)
        return 2
    run = run_evidence(cfg, Path(args.imported_dir), vendors=args.vendor or None, checks=args.check or None)
    log = ResultsLog(mode="imported")
    for _vendor, (provider, models) in sorted(run.providers.items()):
        for model in sorted(models) or [provider.model]:
            log.note_provider(provider, model)
    log.records = run.records
    out = Path(args.output)
    log.write(out)
    for line in run.problems:
        print(f"problem: {line}", file=sys.stderr)
    by_vendor: dict[str, Counter] = defaultdict(Counter)
    quirks: dict[str, Counter] = defaultdict(Counter)
    for r in run.records:
        by_vendor[r["provider"]][r["outcome"]] += 1
        if r["outcome"] in ("unexpected-quirk", "expected-quirk"):
            for q in r["quirks"]:
                quirks[r["provider"]][q] += 1
    for vendor in sorted(by_vendor):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(by_vendor[vendor].items()))
        print(f"{vendor}: {run.exchanges[vendor]} exchange(s), {run.excluded[vendor]} excluded; {counts}")
        if quirks[vendor]:
            print("    quirks: " + ", ".join(f"{q} ×{n}" for q, n in sorted(quirks[vendor].items())))
    errors = sum(c["error"] for c in by_vendor.values())
    print(f"wrote {out}: {len(run.records)} record(s) from {sum(run.exchanges.values())} imported exchange(s)")
    if args.table:
        items = load_corpus(Path(args.imported_dir), args.vendor or None).items
        print(markdown_table(summarise(items, run.records)))
    return 1 if errors or run.problems else 0


# -- validate --evidence -------------------------------------------------------------------------------------

def _where(record: dict[str, Any]) -> str:
    for ev in record.get("evidence", []):
        if ev.get("imported_file"):
            return f"{ev.get('source_repo')}@{str(ev.get('source_commit', ''))[:12]} ({ev['imported_file']})"
    return record.get("test", "?")


def validate_evidence(providers_config: ProvidersConfig, records: list[dict[str, Any]]) -> list[str]:
    """Quirks imported traffic shows that a vendor does not declare, and declared quirks it contradicts.

    A declared quirk is contradicted when its check passed on an applicable imported exchange and no
    imported exchange of that vendor showed it (if both happen, the quirk depends on the model or the
    request: not a contradiction).
    """
    undeclared: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    shown: set[tuple[str, str]] = set()
    passed: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    unknown_vendors: set[str] = set()
    for r in records:
        if not any(ev.get("level") == "third-party" for ev in r.get("evidence", [])):
            continue
        provider = r.get("provider", "?")
        if provider not in providers_config.providers:
            unknown_vendors.add(provider)
        outcome = r.get("outcome")
        for q in r.get("quirks", []):
            if outcome == "unexpected-quirk":
                undeclared[(provider, q)].append(r)
                shown.add((provider, q))
            elif outcome == "expected-quirk":
                shown.add((provider, q))
            elif outcome == "stale-expectation":
                passed[(provider, q)].append(r)
    problems: list[str] = []
    path = providers_config.path
    for vendor in sorted(unknown_vendors):
        problems.append(f"{path}: imported recordings of {vendor!r} exist, but providers.yaml has no such provider")
    for (provider, quirk), rs in sorted(undeclared.items()):
        first = rs[0]
        detail = first.get("message", "").split(" — not declared")[0]
        models = ", ".join(sorted({str(r.get("model")) for r in rs}))
        problems.append(f"{path}: provider {provider!r} does not declare {quirk!r}, but imported traffic shows it "
                        f"in {len(rs)} exchange(s) (check {first['check']}; model(s) {models}); "
                        f"e.g. {_where(first)}: {detail}")
    for (provider, quirk), rs in sorted(passed.items()):
        if (provider, quirk) in shown:
            continue
        first = rs[0]
        problems.append(f"{path}: provider {provider!r} declares {quirk!r}, but imported traffic contradicts it: "
                        f"check {first['check']} passed on {len(rs)} applicable exchange(s) and none showed it; "
                        f"e.g. {_where(first)}")
    return problems
