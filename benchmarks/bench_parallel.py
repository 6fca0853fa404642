"""Benchmark: N providers in parallel ÷ the slowest single provider, over replay. Goal: <= 1.2×.

Run ``python benchmarks/bench_parallel.py [N]``; ``run()`` returns the numbers as a dict.

Both sides are the wall time of ``oaicompat nightly --no-report`` (shards, merge; no diff, no report):
  - single: each provider alone (``--jobs 1``), the slowest one kept,
  - parallel: all N at once (``--jobs N``), N = the number of CPUs by default.
The providers are the recorded ones; when fewer than N have cassettes, copies of the one with the most
cassettes stand in (a temporary providers file and cassette folder of symlinks: same entry, same recordings,
so every shard does the same work and the ideal ratio is 1.0).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, print_result, recorded_providers, result

GOAL = 1.2


def _nightly(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "oaicompat.cli", "nightly", "--no-report", *args], check=False,
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"oaicompat nightly exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    return wall


def _stand_ins(tmp: Path, n: int) -> tuple[list[str], list[str]]:
    """(provider names, extra nightly args): the recorded providers, or n copies of the biggest one."""
    from oaicompat.paths import CASSETTES, PROVIDERS_FILE

    names = recorded_providers()
    if len(names) >= n:
        return names[:n], []
    base = max(names, key=lambda p: sum(1 for _ in (CASSETTES / p).rglob("*.yaml")))
    data = yaml.safe_load(PROVIDERS_FILE.read_text(encoding="utf-8"))
    entry = data["providers"][base]
    copies = [f"{base}-copy{i}" for i in range(n)]
    data["providers"] = {name: entry for name in copies}
    (tmp / "providers.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp / "cassettes").mkdir()
    for name in copies:
        (tmp / "cassettes" / name).symlink_to(CASSETTES / base, target_is_directory=True)
    return copies, ["--providers-file", str(tmp / "providers.yaml"), "--cassette-dir", str(tmp / "cassettes")]


def run(n: int | None = None) -> dict[str, Any]:
    n = n or os.cpu_count() or 2
    if not recorded_providers():
        return result("parallel-shards", None, GOAL, skipped="no provider has cassettes")
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as name:
        tmp = Path(name)
        providers, extra = _stand_ins(tmp, n)
        _nightly(["--providers", providers[0], "--jobs", "1", "-o", str(tmp / "warm"), *extra])   # warm caches
        singles = {p: _nightly(["--providers", p, "--jobs", "1", "-o", str(tmp / f"one-{p}"), *extra])
                   for p in providers}
        parallel = _nightly(["--providers", ",".join(providers), "--jobs", str(n), "-o", str(tmp / "all"), *extra])
    slowest = max(singles.values())
    return result("parallel-shards", parallel / slowest, GOAL,
                  summary=(f"{n} providers ({', '.join(providers)}) with --jobs {n}: {parallel:.1f} s vs the "
                           f"slowest alone {slowest:.1f} s (sum of singles {sum(singles.values()):.1f} s)"),
                  parallel_s=parallel, slowest_s=slowest, machine=machine())


def main() -> int:
    print_result(run(int(sys.argv[1]) if len(sys.argv) > 1 else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
