"""Benchmark: replay overhead — the time pytest reports per replayed check ÷ the time per bare pytest test.

Run ``python benchmarks/bench_replay.py``; ``run()`` returns the numbers as a dict. Goal: <= 3×.

Both sides are pytest child processes with the same in-process plugin (benchmarks/_durations.py) that sums
report.duration (setup + call + teardown) per test, so pytest start-up and collection are outside both:
  - replay: the suites over every provider that has cassettes; the checks that replayed a cassette are counted
    (those skipped as not-recorded / unsupported open no cassette and are left out),
  - bare: a generated file of as many trivial tests (``def test_N(): pass``); an ``async def`` variant under
    pytest-asyncio is measured too, to show how much of the overhead is the event loop per test.
Each side is run ``repeat`` times and its best total kept (the machine may be busy).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    machine,
    print_result,
    pytest_durations,
    recorded_providers,
    result,
)

GOAL = 3.0


def _replay(providers: list[str], results: Path) -> tuple[float, int, int, float, str, float]:
    """(total seconds of the replayed checks, their number, tests collected, median seconds, slowest test,
    its seconds)."""
    durations, _, _ = pytest_durations([str(ROOT / "suites"), f"--provider={','.join(providers)}",
                                        "--results", str(results), "-p", "no:randomly"])
    doc = json.loads(results.read_text())
    replayed = {r["test"] for r in doc["records"] if any(ev.get("level") == "recorded" for ev in r["evidence"])}
    times = {k: v["seconds"] for k, v in durations.items() if k in replayed}
    slowest = max(times, key=times.__getitem__)
    return sum(times.values()), len(times), len(durations), median(times.values()), slowest, times[slowest]


def _bare(n: int, tmp: Path, asynchronous: bool) -> float:
    folder = tmp / ("bare_async" if asynchronous else "bare_sync")
    folder.mkdir(exist_ok=True)
    kw = "async def" if asynchronous else "def"
    (folder / "test_bare.py").write_text("".join(f"{kw} test_{i}():\n    pass\n\n\n" for i in range(n)))
    (folder / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    durations, _, _ = pytest_durations([str(folder / "test_bare.py")], cwd=folder)
    assert len(durations) == n, f"expected {n} bare tests, ran {len(durations)}"
    return sum(v["seconds"] for v in durations.values())


def run(repeat: int = 3) -> dict[str, Any]:
    providers = recorded_providers()
    if not providers:
        return result("replay-overhead", None, GOAL, skipped="no provider has cassettes")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as name:
        tmp = Path(name)
        replay = [_replay(providers, tmp / f"results-{i}.json") for i in range(repeat)]
        replay_s, checks, collected, median_s, slowest, slowest_s = min(replay)
        bare_s = min(_bare(checks, tmp, False) for _ in range(repeat))
        bare_async_s = min(_bare(checks, tmp, True) for _ in range(repeat))
    per_check, per_bare, per_async = replay_s / checks, bare_s / checks, bare_async_s / checks
    ratio = per_check / per_bare
    return result("replay-overhead", ratio, GOAL,
                  summary=(f"{checks} replayed checks of {collected} collected ({', '.join(providers)}): "
                           f"{per_check * 1e3:.2f} ms per check (median {median_s * 1e3:.2f} ms: "
                           f"{median_s / per_bare:.0f}×; slowest {slowest.split('::')[-1]} {slowest_s:.2f} s) vs "
                           f"{per_bare * 1e3:.3f} ms per bare test ({per_async * 1e3:.3f} ms per bare async "
                           f"test: {per_check / per_async:.1f}×)"),
                  per_check_ms=per_check * 1e3, median_check_ms=median_s * 1e3, per_bare_ms=per_bare * 1e3,
                  per_bare_async_ms=per_async * 1e3, checks=checks, machine=machine())


def main() -> int:
    print_result(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
