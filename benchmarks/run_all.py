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
                          cwd=HERE.parent, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"name": name, "error": tail[0][:200], "seconds": seconds}
    return {**json.loads(line[len("@@RESULT@@"):]), "seconds": seconds, "module": name}


def row(name: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [name, "—", "—", "error", r["error"]]
    if name == "bench_sse":        # throughput ratio, higher is better
        return [name, f"{r['ratio']:.2f}×", f"≥ {r['goal']:g}×", "met" if r["ratio"] >= r["goal"] else "MISSED",
                f"oaicompat {r['oaicompat_mb_s']:.1f} MB/s vs openai-python {r['openai_mb_s']:.1f} MB/s"]
    if name == "bench_report":     # absolute goals: render < 2 s, traced peak < 200 MB, index.html < 2 MB
        ratio = r["render_s"] / 2.0
        return [name, f"{ratio:.2f}× of 2 s", "≤ 1×", "met" if ratio <= 1 else "MISSED",
                f"render {r['render_s']:.2f} s, peak {r['peak_mb']:.0f} MB traced, index.html {r['index_mb']:.2f} MB"]
    if r.get("skipped"):
        return [name, "—", _goal(r), "skipped", r["skipped"]]
    met = "—" if r.get("met") is None else ("met" if r["met"] else "MISSED")
    return [name, f"{r['ratio']:.2f}×", _goal(r), met, r.get("summary", "")]


def _goal(r: dict[str, Any]) -> str:
    if r.get("goal") is None:
        return "—"
    return f"{'≤' if r.get('lower_is_better', True) else '≥'} {r['goal']:g}×"


def main(argv: list[str]) -> int:
    names = [n for n in ORDER if not argv or any(w in n for w in argv)]
    print(f"machine: {machine()}\n")
    rows = [["benchmark", "ratio", "goal", "", "measured"], ["---", "---", "---", "---", "---"]]
    for name in names:
        r = run_one(name)
        rows.append(row(name, r))
        print(f"  {name}: done in {r['seconds']:.0f} s", file=sys.stderr)
    for cells in rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    print(f"\nload average after the run: {machine().rsplit('load average ', 1)[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
