"""`oaicompat run`: the main job. Replay every recorded provider offline, run the checks over imported
third-party recordings, and render the published report from both.

    oaicompat run                      # offline: cassettes + imported evidence → results → reports/
    oaicompat run --provider llama-server --live -- -x   # anything after -- goes to pytest
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import textwrap
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from .paths import IMPORTED, PROJECT_ROOT, PROVIDERS_FILE, REPORTS
from .servers.paths import cache_root

WIDTH = 120         # no printed line is longer: the children's long lists are wrapped, indented under their start


def wrap(line: str, width: int = WIDTH) -> list[str]:
    """`line` as lines of at most `width` characters, continuations indented four past its own indent."""
    if len(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip(" ")) + 4)
    return textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [line[:width]]


def _say(line: str, stream=None) -> None:
    for part in wrap(line):
        print(part, file=stream or sys.stdout, flush=True)


def _call(cmd: list[str]) -> int:
    """Run `cmd` in the project root, its output (stdout and stderr, merged) wrapped to WIDTH."""
    with subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, encoding="utf-8", errors="replace", bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            _say(line.rstrip("\n"))
        return proc.wait()


def _shown(arg: str) -> str:
    """A path argument as the user would type it from the project root; anything else unchanged."""
    if arg == sys.executable:
        return "python"
    if os.path.isabs(arg) and Path(arg).is_relative_to(PROJECT_ROOT):
        return os.path.relpath(arg, PROJECT_ROOT)
    return arg


def _sdk_warning() -> None:
    if importlib.util.find_spec("openai") is None:
        _say("oaicompat run: warning: openai-python is not installed, so the sdk.* checks will be blocked and "
             "reports/ will differ from the published one; install it with: pip install -e .", sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oaicompat run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--provider", action="append", default=[], help="as pytest --provider (default: all recorded)")
    p.add_argument("--live", action="store_true", help="talk to the providers instead of replaying")
    p.add_argument("--providers-file", default=str(PROVIDERS_FILE), metavar="providers.yaml",
                   help="the providers file the suite, the evidence and the report read (default: the repository's)")
    p.add_argument("--record-mode", default=None, help="as pytest --record-mode")
    p.add_argument("--results", default=str(REPORTS / "data" / "results.json"), metavar="RESULTS.json",
                   help="where the suite run writes its results (default: reports/data/results.json)")
    p.add_argument("--evidence-results", default=str(REPORTS / "data" / "results-imported.json"),
                   metavar="RESULTS.json", help="where the checks over imported third-party recordings write their "
                   "results (default: reports/data/results-imported.json)")
    p.add_argument("--output", "-o", default=str(REPORTS), help="report folder (default: reports)")
    p.add_argument("--no-report", action="store_true", help="write the results files, render no report")
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
    if Path(args.providers_file).resolve() != PROVIDERS_FILE.resolve():
        cmd.append(f"--providers-file={args.providers_file}")
    if args.live:
        cmd.append("--live")
    if args.record_mode:
        cmd.append(f"--record-mode={args.record_mode}")
    cmd += args.pytest_args
    _sdk_warning()
    _say("+ " + " ".join(_shown(a) for a in cmd), sys.stderr)
    rc = _call(cmd)
    if rc == 5:
        print("oaicompat run: pytest ran no test", file=sys.stderr)
    results = [args.results]
    if any(IMPORTED.glob("*/*/PROVENANCE.yaml")):
        erc = _call([sys.executable, "-m", "oaicompat.cli", "evidence", "-o", args.evidence_results,
                     "--providers-file", args.providers_file])
        if erc == 0:
            results.append(args.evidence_results)
        rc = rc or erc
    if not args.no_report and Path(args.results).exists():
        rrc = _call([sys.executable, "-m", "oaicompat.cli", "report", *results,
                     "--providers-file", args.providers_file, "-o", args.output])
        rc = rc or rrc
    disagreements = disagreement_lines([Path(r) for r in results if Path(r).exists()])
    for line in disagreements:
        _say(f"oaicompat run: {line}", sys.stderr)
    if disagreements:
        _say("oaicompat run: the results disagree with providers.yaml: declare the quirks (`oaicompat propose "
             "RESULTS… --write`, then review) or remove the stale expectations", sys.stderr)
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
