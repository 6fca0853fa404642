"""`oaicompat run`: the main job. Replay every recorded provider offline, run the checks over imported
third-party recordings, and render the published report from both.

    oaicompat run                      # offline: cassettes + imported evidence → results → reports/
    oaicompat run --provider llama-server --live -- -x   # anything after -- goes to pytest
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from .paths import IMPORTED, PROJECT_ROOT, REPORTS
from .servers.paths import cache_root


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oaicompat run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", action="append", default=[], help="as pytest --provider (default: all recorded)")
    p.add_argument("--live", action="store_true", help="talk to the providers instead of replaying")
    p.add_argument("--record-mode", default=None, help="as pytest --record-mode")
    p.add_argument("--results", default=str(REPORTS / "data" / "results.json"))
    p.add_argument("--evidence-results", default=str(REPORTS / "data" / "results-imported.json"))
    p.add_argument("--output", "-o", default=str(REPORTS), help="report folder")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    return p


def child_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for the pytest and oaicompat children: ours, except that they may write bytecode, so each
    does not compile the package and rewrite the suites' asserts again. Where PYTHONDONTWRITEBYTECODE was set
    (to keep __pycache__ out of the checkout), the bytecode goes under the cache root instead."""
    env = dict(environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        env.setdefault("PYTHONPYCACHEPREFIX", str(cache_root() / "pycache"))
    return env


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    cmd = [sys.executable, "-m", "pytest", str(PROJECT_ROOT / "suites"), "-p", "no:cacheprovider",
           "--results", args.results, *[f"--provider={p}" for p in args.provider]]
    if args.live:
        cmd.append("--live")
    if args.record_mode:
        cmd.append(f"--record-mode={args.record_mode}")
    cmd += args.pytest_args
    print("+", " ".join(cmd), file=sys.stderr)
    env = child_env()
    rc = subprocess.call(cmd, cwd=PROJECT_ROOT, env=env)
    if rc == 5:
        print("oaicompat run: pytest ran no test", file=sys.stderr)
    results = [args.results]
    if any(IMPORTED.glob("*/*/PROVENANCE.yaml")):
        erc = subprocess.call([sys.executable, "-m", "oaicompat.cli", "evidence", "-o", args.evidence_results],
                              cwd=PROJECT_ROOT, env=env)
        if erc == 0:
            results.append(args.evidence_results)
        rc = rc or erc
    if not args.no_report and Path(args.results).exists():
        rrc = subprocess.call([sys.executable, "-m", "oaicompat.cli", "report", *results,
                               "--providers", str(PROJECT_ROOT / "providers.yaml"), "-o", args.output],
                              cwd=PROJECT_ROOT, env=env)
        rc = rc or rrc
    disagreements = disagreement_lines([Path(r) for r in results if Path(r).exists()])
    for line in disagreements:
        print(f"oaicompat run: {line}", file=sys.stderr)
    if disagreements:
        print("oaicompat run: the results disagree with providers.yaml: declare the quirks (`oaicompat propose "
              "RESULTS… --write`, then review) or remove the stale expectations", file=sys.stderr)
    return rc or (1 if disagreements else 0)


DISAGREEING = ("unexpected-quirk", "stale-expectation")


def disagreement_lines(paths: Sequence[Path]) -> list[str]:
    """One line per provider whose records hold unexpected quirks or stale expectations, with counts and the
    quirk ids: what makes the published matrix disagree with providers.yaml."""
    from .results import load_results

    counts: dict[str, Counter[str]] = defaultdict(Counter)
    quirks: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        for r in load_results(path)["records"]:
            if r["outcome"] in DISAGREEING:
                counts[r["provider"]][r["outcome"]] += 1
                quirks[r["provider"]].update(r["quirks"])
    return [f"{name}: " + ", ".join(f"{counts[name][o]} {o}" for o in DISAGREEING if counts[name][o])
            + f" ({', '.join(sorted(quirks[name]))})" for name in sorted(counts)]
