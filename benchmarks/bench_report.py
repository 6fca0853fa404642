"""Benchmark: `oaicompat report` as the user runs it, on 20 providers × 300 checks of realistic records.

Run ``python benchmarks/bench_report.py``; ``run()`` returns the numbers as a dict. Goals: under 1 s of wall
time and under 200 MB of peak RSS for the whole command.

Input: a real results document produced by replay — reports/data/results.json (what `oaicompat run` writes)
when present, else one written here by ``pytest suites --results`` over every provider with cassettes — and
replicated into 20 providers × 300 checks: the first 20 providers of providers.yaml, each given the records of
a real provider (the real providers keep their own; the others cycle through them, with provider, model and
test id renamed), and every provider's checks extended to 300 with copies of its real records under
suffixed check ids (``<check>-2``). So the records keep their real sizes (evidence, lines, observations,
timings). Written to a temporary file, never stored.

Measured: ``python -m oaicompat.cli report RESULTS --providers providers.yaml -o OUT`` (what `oaicompat run`
runs) in a fresh interpreter, three times (min / median / max); wall time from spawn to exit, the child's CPU
time, and its peak RSS (os.wait4's ru_maxrss). One more cold child times the command's phases (the same calls
as report_main, CPU seconds each). ``--profile`` prints a cProfile of one run (in-process).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, bytecode_note, child_env, machine, recorded_providers, result, spread

PROVIDERS, CHECKS = 20, 300
GOAL_SECONDS, GOAL_MB = 1.0, 200.0
RUNS = 3


def real_results(tmp: Path) -> tuple[Path, dict[str, Any]]:
    """A results document produced by replay: reports/data/results.json, else a fresh offline run's."""
    path = ROOT / "reports" / "data" / "results.json"
    if not path.exists():
        path = tmp / "real-results.json"
        subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q", "-p", "no:cacheprovider",
                        f"--provider={','.join(recorded_providers())}", "--results", str(path)],
                       cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return path, json.loads(path.read_text(encoding="utf-8"))


def _rename(rec: dict[str, Any], src: str, src_model: str, name: str, model: str, copy_no: int) -> dict[str, Any]:
    r = copy.deepcopy(rec)
    r["provider"], r["model"] = name, model
    r["test"] = r["test"].replace(f"[{src}-{src_model}]", f"[{name}-{model}]")
    if copy_no > 1:
        r["check"] = f"{r['check']}-{copy_no}"
        r["test"] = r["test"].replace("[", f"_{copy_no}[", 1)
    return r


def replicate(doc: dict[str, Any], providers: int = PROVIDERS, checks: int = CHECKS) -> dict[str, Any]:
    """20 × 300 records built from the real ones (see the module docstring)."""
    from oaicompat.config import load_providers
    from oaicompat.paths import PROVIDERS_FILE

    config = load_providers(PROVIDERS_FILE, env={})
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for rec in doc["records"]:
        by_provider.setdefault(rec["provider"], []).append(rec)
    sources = sorted(by_provider)
    names = list(config.providers)[:providers]
    out_providers: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        src = name if name in by_provider else sources[i % len(sources)]
        real = by_provider[src]
        src_model, model = real[0]["model"], config.providers[name].model
        meta = copy.deepcopy(doc["providers"][src])
        meta["models"] = [model]
        out_providers[name] = meta
        seen: dict[str, int] = {}
        mine: list[dict[str, Any]] = []
        k = 0
        while len(mine) < checks:
            rec = real[k % len(real)]
            seen[rec["check"]] = seen.get(rec["check"], 0) + 1
            mine.append(_rename(rec, src, src_model, name, model, seen[rec["check"]] if k >= len(real) else 1))
            k += 1
        records += mine
    return {**{k: v for k, v in doc.items() if k not in ("providers", "records")},
            "providers": out_providers, "records": records}


def _run_report(results: Path, out: Path) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS MB, output) of one cold `python -m oaicompat.cli report`."""
    cmd = [sys.executable, "-m", "oaicompat.cli", "report", str(results), "--providers", str(ROOT / "providers.yaml"),
           "-o", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"oaicompat report failed (exit {proc.returncode}): {output[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output.strip()


PHASES = """
import json, sys, time
from pathlib import Path
t = time.perf_counter(); c = time.process_time(); marks = {}
def mark(name):
    global t, c
    marks[name] = round(time.process_time() - c, 3); t = time.perf_counter(); c = time.process_time()
from oaicompat.report.cli import report_main
from oaicompat.report.model import build_report
from oaicompat.report.render import render_site
from oaicompat.config import load_providers
from oaicompat.quirks import load_catalogue
from oaicompat.results import load_results
import oaicompat.results as results_module
mark("imports")
text = Path(sys.argv[1]).read_text(encoding="utf-8"); doc = json.loads(text)
mark("read + json.loads")
results_module.validate_results(doc, "bench")
mark("schema validation (jsonschema)")
catalogue = load_catalogue()
mark("quirk catalogue (YAML + schema)")
config = load_providers(Path(sys.argv[3]), env={})
mark("providers.yaml")
report = build_report([("results.json", doc)], catalogue, config)
mark("build_report (view model)")
render_site(report, Path(sys.argv[2]))
mark("render_site (jinja + writing)")
print(json.dumps(marks))
"""


def phases(results: Path, out: Path) -> dict[str, float]:
    """CPU seconds of each phase of the report command, in a fresh interpreter (the same calls as report_main)."""
    proc = subprocess.run([sys.executable, "-c", PHASES, str(results), str(out), str(ROOT / "providers.yaml")],
                          cwd=ROOT, env=child_env(), capture_output=True, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if proc.returncode == 0 and lines else {}


def profile(results: Path, out: Path, top: int = 30) -> None:
    import cProfile
    import pstats

    from oaicompat.report.cli import report_main

    prof = cProfile.Profile()
    prof.enable()
    report_main([str(results), "--providers", str(ROOT / "providers.yaml"), "-o", str(out)])
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def run(providers: int = PROVIDERS, checks: int = CHECKS, runs: int = RUNS, show_profile: bool = False
        ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-report-") as name:
        tmp = Path(name)
        real_path, real = real_results(tmp)
        doc = replicate(real, providers, checks)
        src = tmp / "results.json"
        src.write_text(json.dumps(doc), encoding="utf-8")
        real_size = real_path.stat().st_size / len(real["records"])
        inputs = (f"{real_path.relative_to(ROOT) if real_path.is_relative_to(ROOT) else 'a fresh offline run'}: "
                  f"{len(real['records'])} real records of {len({r['provider'] for r in real['records']})} providers "
                  f"({real_size / 1024:.1f} KB per record) → {len(doc['records'])} records "
                  f"({len(doc['providers'])} providers × {checks} checks), {src.stat().st_size / 1e6:.1f} MB of "
                  f"JSON; {bytecode_note()}")
        print(f"bench_report inputs: {inputs}", file=sys.stderr)
        measured = [_run_report(src, tmp / f"site{i}") for i in range(runs)]
        site = tmp / "site0"
        index_mb = (site / "index.html").stat().st_size / 1e6
        site_mb = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
        files = sum(1 for p in site.rglob("*") if p.is_file())
        split = phases(src, tmp / "site-phases")
        if show_profile:
            profile(src, tmp / "site-profile")
    walls, cpus, rss = [m[0] for m in measured], [m[1] for m in measured], [m[2] for m in measured]
    wall, mem = median(walls), median(rss)
    summary = (f"{inputs}. `python -m oaicompat.cli report` cold, {runs} runs (min / median / max): wall "
               f"{spread(walls)} s (goal < {GOAL_SECONDS:g} s: {'met' if wall < GOAL_SECONDS else 'MISSED'}), CPU "
               f"{spread(cpus)} s, peak RSS {spread(rss, '{:.0f}')} MB (goal < {GOAL_MB:g} MB: "
               f"{'met' if mem < GOAL_MB else 'MISSED'}); site {files} files, {site_mb:.1f} MB, index.html "
               f"{index_mb:.2f} MB. CPU by phase (one more cold run): "
               + ", ".join(f"{k} {v:.2f} s" for k, v in split.items()))
    return result("report", wall / GOAL_SECONDS, 1.0, summary=summary, wall_s=walls, cpu_s=cpus, maxrss_mb=rss,
                  rss_goal_mb=GOAL_MB, rss_met=mem < GOAL_MB, index_mb=index_mb, site_mb=site_mb,
                  records=len(doc["records"]), phases=split, machine=machine())


def main(argv: list[str]) -> int:
    from _common import print_result

    print_result(run(show_profile="--profile" in argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
