"""Benchmark: peak RSS of a full offline run, ÷ that of a bare pytest run.

Run ``python benchmarks/bench_memory.py``; ``run()`` returns the numbers as a dict. No goal is set: the figure
is tracked. The peak is ru_maxrss from ``os.wait4`` on the child, which for a process that waited for its own
children is the largest of them all (Linux: max of the process's and its waited-for descendants' peaks):
  - full: ``oaicompat run`` into a temporary folder — pytest replaying every recorded provider, the checks over
    the imported third-party recordings, and the report (the README's first command),
  - suite: the pytest replay alone (every recorded provider),
  - bare: ``pytest`` on one trivial test (interpreter + pytest + the plugins every run loads).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, print_result, result


def peak_rss_mb(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """(peak RSS in MB of the child and its waited-for descendants, exit status)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, proc.returncode


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as name:
        tmp = Path(name)
        bare_dir = tmp / "bare"
        bare_dir.mkdir()
        (bare_dir / "test_one.py").write_text("def test_one():\n    pass\n")
        bare, _ = peak_rss_mb([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"],
                              bare_dir)
        suite, rc_suite = peak_rss_mb([sys.executable, "-m", "pytest", str(ROOT / "suites"), "-q", "-p",
                                       "no:cacheprovider", "--results", str(tmp / "suite.json")], ROOT)
        full, rc_full = peak_rss_mb([sys.executable, "-m", "oaicompat.cli", "run", "--results",
                                     str(tmp / "results.json"), "--evidence-results", str(tmp / "imported.json"),
                                     "-o", str(tmp / "report")], ROOT)
    return result("peak-memory", full / bare, None,
                  summary=(f"full offline run (oaicompat run) {full:.0f} MB peak RSS (exit {rc_full}); pytest "
                           f"replay alone {suite:.0f} MB (exit {rc_suite}); bare pytest {bare:.0f} MB"),
                  full_mb=full, suite_mb=suite, bare_mb=bare, machine=machine())


def main() -> int:
    print_result(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
