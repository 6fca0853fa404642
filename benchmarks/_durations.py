"""A pytest plugin for the benchmarks: sums report.duration (setup + call + teardown) per test.

Loaded into the measured pytest process with ``-p _durations`` (the benchmarks folder on PYTHONPATH); writes
``{nodeid: {"seconds": s, "outcome": o}}`` as JSON to $OAICOMPAT_BENCH_DURATIONS at session end.
"""

from __future__ import annotations

import json
import os
from typing import Any

_TESTS: dict[str, dict[str, Any]] = {}


def pytest_runtest_logreport(report: Any) -> None:
    entry = _TESTS.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed"})
    entry["seconds"] += report.duration
    if report.when == "call" or report.outcome != "passed":
        entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else report.outcome


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    target = os.environ.get("OAICOMPAT_BENCH_DURATIONS")
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            json.dump(_TESTS, fh)
