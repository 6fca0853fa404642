"""`oaicompat nightly`: the nightly matrix (.github/workflows/nightly.yml), run locally.

    oaicompat nightly --provider llama-server,vllm --live --jobs 2 --previous old/results.json -o out
    oaicompat nightly --provider deepseek --record-mode=all --replay-unconfigured --no-report -o out
    oaicompat nightly --from-results shards/*.json --previous prev.json --evidence -o out   # merge only
    oaicompat nightly --matrix            # the hosted providers and their key variables, as JSON
    oaicompat nightly --servers-cache-key # a cache key for ~/.cache/oaicompat from the servers' versions

Steps:
 1. shards: one pytest subprocess per provider (`--jobs N` at a time), each writing OUTDIR/results-<p>.json and
    its log to OUTDIR/logs/<p>.log (the command line is the log's first line). Recording shards share the
    cassette directory: a provider's cassettes live under <cassette-dir>/<provider>/ and every write is
    atomic, so two shards never write the same file.
 2. merge: `merge_documents` (later wins per provider, model and check) → OUTDIR/results.json, validated against
    fixtures/schemas/results.schema.json, with each provider's latency recomputed from the surviving records.
 3. diff against --previous (`oaicompat diff`: OUTDIR/diff.md and diff.html).
 4. report (`oaicompat report`) → OUTDIR/report/, with data/results.json beside it (what the next night
    diffs against).

Exit status: 0; 1 when the diff found a regression (or, with --strict, when a shard had failing checks);
2 when something did not run: a usage error, a shard that crashed (pytest exit other than 0 and 1, or no results
file), or a merge, diff or report that failed. Failing checks alone (an unexpected quirk, a stale expectation)
do not fail the nightly: the diff is the alert.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .config import Provider, ProvidersConfig, load_providers, runtime_environment
from .errors import OaicompatError, ResultsError
from .latency import annotate_latency
from .paths import CASSETTES, PROJECT_ROOT, PROVIDERS_FILE
from .results import RESULTS_FORMAT, load_results, validate_results, write_json_atomic
from .run import child_env
from .run_mode import RECORD_MODES, RunMode

SUITES = PROJECT_ROOT / "suites"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"}
FAILED_CHECKS = 1          # pytest: tests failed — quirks and violations, reported by the diff


# -- merge (pure) ---------------------------------------------------------------------------------------

def merge_documents(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several results documents as one (pure; the result is validated against the results schema).

    A later document's records for a (provider, model, check) replace every earlier record for that key; within
    one document all of a key's records are kept (imported evidence has one per exchange). Modes are joined with
    "+" (each once, in order), started_at is the earliest, finished_at the latest, the version the last one's.
    Provider entries merge key by key (later wins), their models are the union and `recorded` is true when any
    document says so; `latency` is recomputed from the merged records (oaicompat.latency)."""
    if not docs:
        raise ResultsError("nothing to merge: no results documents")
    providers: dict[str, dict[str, Any]] = {}
    records: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    modes: list[str] = []
    for doc in docs:
        for part in str(doc.get("mode") or "").split("+"):
            if part and part not in modes:
                modes.append(part)
        for name, info in (doc.get("providers") or {}).items():
            old = providers.get(name, {})
            models = list(old.get("models", []))
            models += [m for m in info.get("models", []) if m not in models]
            entry = {**old, **info, "models": models}
            if "recorded" in old or "recorded" in info:
                entry["recorded"] = bool(old.get("recorded")) or bool(info.get("recorded"))
            providers[name] = entry
        fresh: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for rec in doc.get("records") or []:
            fresh.setdefault((rec["provider"], rec["model"], rec["check"]), []).append(dict(rec))
        for key, recs in fresh.items():
            records.pop(key, None)          # re-inserted: the merged order follows the latest run
            records[key] = recs
    merged_records = [r for recs in records.values() for r in recs]
    for entry in providers.values():
        entry.pop("latency", None)
    annotate_latency(providers, merged_records)
    doc = {
        "oaicompat_results": RESULTS_FORMAT,
        "oaicompat_version": str(docs[-1].get("oaicompat_version") or __version__),
        "mode": "+".join(modes) or "merged",
        "started_at": min(str(d.get("started_at")) for d in docs),
        "finished_at": max(str(d.get("finished_at")) for d in docs),
        "providers": providers,
        "records": merged_records,
    }
    validate_results(doc, "the merged results")
    return doc


# -- what the workflow needs from providers.yaml ----------------------------------------------------------

def is_remote(provider: Provider) -> bool:
    """A provider reached over the internet (not a server on this machine): kind hosted or gateway, and neither
    its configured URL nor its template's default points at a loopback address."""
    if provider.kind == "local":
        return False
    for url in (provider.base_url, provider.base_url_template.split(":-", 1)[-1]):
        host = urlsplit(url or "").hostname
        if host and host in LOOPBACK_HOSTS:
            return False
    return True


def hosted_matrix(config: ProvidersConfig) -> list[dict[str, str]]:
    """The nightly workflow's matrix: every remote provider and the NAME of its key variable."""
    return [{"provider": p.name, "key_env": p.api_key_env or ""}
            for p in config.providers.values() if is_remote(p)]


def servers_cache_key() -> str:
    """A cache key for ~/.cache/oaicompat: every local server's name and version, the Python version, and a
    digest of the files that say how they are built (so a changed build recipe is a new cache)."""
    from .servers import model, specs

    digest = hashlib.sha256()
    for module in (specs, model):
        digest.update(Path(str(module.__file__)).read_bytes())
    versions = "_".join(f"{name}-{spec.version}" for name, spec in specs.SPECS.items())
    return f"{versions}_py{sys.version_info.major}.{sys.version_info.minor}_{digest.hexdigest()[:12]}"


def missing_configuration(provider: Provider, env: Mapping[str, str]) -> list[str]:
    missing = list(provider.missing_vars)
    if provider.api_key_env and not env.get(provider.api_key_env):
        missing.append(provider.api_key_env)
    return missing


# -- shards ---------------------------------------------------------------------------------------------

@dataclass
class Shard:
    provider: str
    results: Path
    log: Path
    mode_args: list[str]
    note: str = ""
    rc: int | None = None
    seconds: float = 0.0

    @property
    def crashed(self) -> bool:
        return self.rc not in (0, FAILED_CHECKS) or not self.results.is_file()

    def summary(self) -> str:
        counts = ""
        if self.results.is_file():
            try:
                doc = json.loads(self.results.read_text(encoding="utf-8"))
                c = Counter(str(r.get("outcome")) for r in doc.get("records", []))
                counts = ", ".join(f"{n} {k}" for k, n in sorted(c.items())) or "no records"
            except (OSError, ValueError):
                counts = "unreadable results"
        else:
            counts = "no results file"
        what = {0: "ok", FAILED_CHECKS: "checks failed", 5: "no test ran"}.get(self.rc or 0, f"pytest exit {self.rc}")
        if self.rc == 0 and not self.results.is_file():
            what = "no results file"
        return f"{self.provider}: {what} — {counts} ({self.seconds:.1f} s; log {self.log})"


def shard_command(shard: Shard, args: argparse.Namespace) -> list[str]:
    # the suites use no hypothesis: not loading its plugin saves seconds per shard
    cmd = [sys.executable, "-m", "pytest", *[str(s) for s in args.suites], "-p", "no:cacheprovider",
           "-p", "no:hypothesispytest", "-q",
           f"--provider={shard.provider}", "--results", str(shard.results),
           "--providers-file", str(args.providers_file), *shard.mode_args]
    if args.cassette_dir:
        cmd += ["--cassette-dir", str(args.cassette_dir)]
    return cmd + list(args.pytest_args)


def _run_shard(shard: Shard, args: argparse.Namespace) -> Shard:
    shard.log.parent.mkdir(parents=True, exist_ok=True)
    shard.results.unlink(missing_ok=True)
    cmd = shard_command(shard, args)
    started = time.monotonic()
    with open(shard.log, "w", encoding="utf-8") as log:
        log.write("+ " + " ".join(cmd) + "\n")
        log.flush()
        shard.rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=PROJECT_ROOT, env=child_env())
    shard.seconds = time.monotonic() - started
    return shard


def _mode_args(args: argparse.Namespace) -> list[str]:
    return RunMode.parse(args.record_mode, live=bool(args.live)).pytest_args()


def _notice(message: str) -> None:
    print(f"oaicompat nightly: {message}", file=sys.stderr)
    if os.environ.get("GITHUB_ACTIONS") == "true":   # an annotation on the run's summary page
        print(f"::notice title=oaicompat nightly::{message}")


def plan_shards(config: ProvidersConfig, names: list[str], args: argparse.Namespace,
                env: Mapping[str, str]) -> list[Shard]:
    out = Path(args.output)
    mode = _mode_args(args)
    cassettes = Path(args.cassette_dir) if args.cassette_dir else CASSETTES
    shards = []
    for provider in config.select(names):
        shard = Shard(provider.name, out / f"results-{provider.name}.json", out / "logs" / f"{provider.name}.log",
                      list(mode))
        missing = missing_configuration(provider, env)
        if mode and missing:
            shard.note = f"{provider.name} is not configured (set {' and '.join(missing)})"
            if args.replay_unconfigured and (cassettes / provider.name).is_dir():
                shard.mode_args = []
                shard.note += ": replaying its cassettes instead"
            else:     # a documented-only vendor without a key or cassettes: an empty shard is expected
                shard.note += ": checks that need the network report not-configured"
                shard.mode_args.append("--allow-empty")
        shards.append(shard)
    return shards


def run_shards(shards: list[Shard], args: argparse.Namespace) -> None:
    for shard in shards:
        if shard.note:
            _notice(shard.note)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for shard in pool.map(lambda s: _run_shard(s, args), shards):
            print(shard.summary())


# -- the steps after the shards --------------------------------------------------------------------------

def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "oaicompat.cli", *argv]


def _call(cmd: list[str]) -> int:
    print("+ " + " ".join(cmd), file=sys.stderr)
    sys.stdout.flush()
    return subprocess.call(cmd, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, env=child_env())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oaicompat nightly", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", action="append", default=[], metavar="A,B,C",
                   help="providers to run (comma list, repeatable, or 'all'), as pytest --provider; default: every "
                        "provider that has cassettes")
    p.add_argument("--providers", action="append", dest="provider", help=argparse.SUPPRESS)  # old spelling
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--live", action="store_true", help="talk to the providers, write no cassette")
    mode.add_argument("--record-mode", default=None,
                      choices=RECORD_MODES,
                      help="as pytest --record-mode (default none: replay the cassettes)")
    p.add_argument("--jobs", "-j", type=int, default=min(4, os.cpu_count() or 1),
                   help="shards run at once (default: min(4, CPUs))")
    p.add_argument("--previous", type=Path, default=None, metavar="OLD.json",
                   help="results to diff against (e.g. the last published data/results.json)")
    p.add_argument("-o", "--output", type=Path, required=False, default=None, metavar="OUTDIR",
                   help="where the shards' results and logs, the merge, the diff and the report go (required)")
    p.add_argument("--providers-file", type=Path, default=PROVIDERS_FILE, metavar="providers.yaml",
                   help="the providers file (default: the repository's providers.yaml)")
    p.add_argument("--cassette-dir", type=Path, default=None,
                   help="root of the cassettes (default: fixtures/cassettes)")
    p.add_argument("--suites", type=Path, action="append", default=None,
                   help="test paths the shards run (repeatable; default: suites/)")
    p.add_argument("--replay-unconfigured", action="store_true",
                   help="a provider whose key or URL variable is unset is replayed from its cassettes instead "
                        "of reporting every check not-configured (when it has cassettes)")
    p.add_argument("--from-results", type=Path, nargs="+", default=None, metavar="RESULTS.json",
                   help="run no shard: merge these results files (later wins), then diff and report")
    p.add_argument("--evidence", action="store_true",
                   help="also run the checks over the imported third-party recordings and put them in the report")
    p.add_argument("--no-report", action="store_true", help="stop after the merge and the diff")
    p.add_argument("--strict", action="store_true", help="exit 1 when any shard had failing checks")
    p.add_argument("--matrix", action="store_true",
                   help="print the hosted providers and their key variables as a JSON list, and exit")
    p.add_argument("--servers-cache-key", action="store_true",
                   help="print a cache key for ~/.cache/oaicompat from the local servers' versions, and exit")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments for every shard (after --)")
    return p


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    prog = "oaicompat nightly"
    env = runtime_environment()
    try:
        config = load_providers(Path(args.providers_file), env)
    except OaicompatError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.matrix:
        print(json.dumps(hosted_matrix(config)))
        return 0
    if args.servers_cache_key:
        print(servers_cache_key())
        return 0
    if args.output is None:
        print(f"{prog}: -o OUTDIR is required", file=sys.stderr)
        return 2
    if args.previous is not None and not args.previous.is_file():
        print(f"{prog}: --previous {args.previous}: no such file", file=sys.stderr)
        return 2
    args.suites = args.suites or [SUITES]
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    broken: list[str] = []
    failing: list[str] = []

    # 1. shards (or the results given)
    if args.from_results:
        paths = list(args.from_results)
    else:
        cassettes = Path(args.cassette_dir) if args.cassette_dir else CASSETTES
        names = args.provider or [p for p in config.providers if (cassettes / p).is_dir()]
        if not names:
            print(f"{prog}: no provider has cassettes under {cassettes}; name some with --provider", file=sys.stderr)
            return 2
        try:
            shards = plan_shards(config, names, args, env)
        except OaicompatError as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return 2
        run_shards(shards, args)
        broken += [s.provider for s in shards if s.crashed]
        failing += [s.provider for s in shards if s.rc == FAILED_CHECKS]
        paths = [s.results for s in shards if s.results.is_file()]
        if broken:
            print(f"{prog}: shard(s) that did not complete: {', '.join(broken)} (see their logs)", file=sys.stderr)
        if not paths:
            print(f"{prog}: no shard wrote results", file=sys.stderr)
            return 2

    # 2. merge
    merged_path = out / "results.json"
    try:
        docs = [load_results(p) for p in paths]
        merged = merge_documents(docs)
    except OaicompatError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    write_json_atomic(merged_path, merged)
    print(f"merged {len(docs)} results file(s) into {merged_path}: {len(merged['providers'])} provider(s), "
          f"{len(merged['records'])} record(s), mode {merged['mode']}")

    # 3. diff
    diff_rc = 0
    if args.previous is not None:
        diff_rc = _call(_cli("diff", str(args.previous), str(merged_path),
                             "--markdown", str(out / "diff.md"), "--html", str(out / "diff.html")))
        if diff_rc not in (0, 1):
            broken.append("diff")

    # 4. report
    if not args.no_report:
        inputs = []
        if args.evidence:
            imported = out / "results-imported.json"
            imported.unlink(missing_ok=True)
            erc = _call(_cli("evidence", "--providers-file", str(args.providers_file), "-o", str(imported)))
            if not imported.is_file():
                broken.append("evidence")
            else:        # exit 1: some imported exchanges gave harness errors; they show in the report as such
                if erc != 0:
                    print(f"{prog}: warning: oaicompat evidence exited {erc}; its results are used", file=sys.stderr)
                inputs.append(str(imported))
        site = out / "report"
        inputs.append(str(merged_path))
        if _call(_cli("report", *inputs, "--providers-file", str(args.providers_file), "-o", str(site))) != 0:
            broken.append("report")
        else:
            data = site / "data"
            data.mkdir(parents=True, exist_ok=True)
            for src in [*map(Path, inputs), out / "diff.md", out / "diff.html"]:
                if src.is_file():
                    shutil.copyfile(src, data / src.name)
            print(f"report: {site / 'index.html'} (data: {data})")

    if broken:
        print(f"{prog}: did not complete: {', '.join(broken)}", file=sys.stderr)
        return 2
    if diff_rc == 1:
        print(f"{prog}: the diff against {args.previous} found a regression", file=sys.stderr)
        return 1
    if args.strict and failing:
        print(f"{prog}: failing checks in {', '.join(failing)} (--strict)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
