"""Run every benchmark, each in its own interpreter, and print one table (markdown).

    python benchmarks/run_all.py              # all of them
    python benchmarks/run_all.py replay vcr   # the ones whose file name contains one of the words

Each benchmark module has ``run() -> dict``; a child process runs it and hands the dict back as JSON, so one
benchmark's imports, caches and memory never reach the next one. No benchmark asserts on time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine

ORDER = ["bench_sse", "bench_replay", "bench_vcr", "bench_parallel", "bench_memory", "bench_live", "bench_report"]
CHILD = ("import json, sys; sys.path.insert(0, {here!r}); import {name} as m; r = m.run(); "
         "print('@@RESULT@@' + json.dumps(r, default=str))")


def run_one(name: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD.format(here=str(HERE), name=name)], check=False,
                          cwd=HERE.parent, stdout=subprocess.PIPE, text=True)     # its stderr (inputs) shows
    seconds = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")), None)
    if proc.returncode != 0 or line is None:
        tail = proc.stdout.strip().splitlines()[-1:] or ["no result; its error is printed above"]
        return {"name": name, "error": tail[0][:200], "seconds": seconds}
    return {**json.loads(line[len("@@RESULT@@"):]), "seconds": seconds, "module": name}


def row(name: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [name, "—", "—", "error", r["error"]]
    if name == "bench_sse":        # throughput ratio, higher is better
        return [name, f"{r['ratio']:.2f}×", f"≥ {r['goal']:g}×", "met" if r["ratio"] >= r["goal"] else "MISSED",
                f"oaicompat {r['oaicompat_mb_s']:.1f} MB/s vs openai-python {r['openai_mb_s']:.1f} MB/s"]
    if name == "bench_report":     # absolute goals: the command under 1 s and 200 MB peak RSS
        met = "met" if r["met"] and r["rss_met"] else "MISSED"
        return [name, f"{r['ratio']:.2f}× of 1 s", "≤ 1× (and < 200 MB)", met, r.get("summary", "")]
    if r.get("skipped"):
        return [name, "—", _goal(r), "skipped", r["skipped"]]
    met = "—" if r.get("met") is None else ("met" if r["met"] else "MISSED")
    return [name, f"{r['ratio']:.2f}×", _goal(r), met, r.get("summary", "")]


def wall_row(r: dict[str, Any]) -> list[str]:
    """bench_replay's second goal: one provider's whole offline replay under 3 s of wall time."""
    from statistics import median

    walls, starts, cpus = r["wall_s"], r["fixed_start_s"], r["cpu_s"]
    spread = " / ".join(f"{v:.2f}" for v in (min(walls), median(walls), max(walls)))
    return ["bench_replay (wall)", f"{median(walls) / r['wall_goal']:.2f}× of {r['wall_goal']:g} s",
            "≤ 1×", "met" if r["wall_met"] else "MISSED",
            f"`pytest suites --provider={r['provider']}` ({r['tests']} tests): wall {spread} s; CPU "
            f"{median(cpus):.2f} s; fixed start {median(starts):.2f} s, fixed end {median(r['fixed_end_s']):.2f} s "
            f"(medians)"]


def _goal(r: dict[str, Any]) -> str:
    if r.get("goal") is None:
        return "—"
    return f"{'≤' if r.get('lower_is_better', True) else '≥'} {r['goal']:g}×"


def main(argv: list[str]) -> int:
    names = [n for n in ORDER if not argv or any(w in n for w in argv)]
    print(f"machine: {machine()}\n")
    print("every figure is from one run of this script; a/b/c = min / median / max of three measurements; the "
          "ratio column shows the median\n")
    rows = [["benchmark", "ratio", "goal", "", "measured"], ["---", "---", "---", "---", "---"]]
    results = []
    for name in names:
        r = run_one(name)
        results.append(r)
        rows.append(row(name, r))
        if name == "bench_replay" and "wall_s" in r:
            rows.append(wall_row(r))
        print(f"  {name}: done in {r['seconds']:.0f} s: {row(name, r)[1:4]}", file=sys.stderr)
    print()
    for cells in rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for name, r in zip(names, results):
        if r.get("inputs"):
            print(f"\n{name} inputs:\n" + "\n".join(r["inputs"]))
    print(f"\nload average after the run: {machine().rsplit('load average ', 1)[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
