"""A pytest plugin for the benchmarks: sums report.duration (setup + call + teardown) per test, and notes when
the test loop began and ended.

Loaded into the measured pytest process with ``-p _durations`` (the benchmarks folder on PYTHONPATH); writes
``{"tests": {nodeid: {"seconds": s, "outcome": o}}, "loop_start": t0, "loop_end": t1}`` as JSON to
$OAICOMPAT_BENCH_DURATIONS at session end (t0, t1: time.time() just before the first test's setup and just after
the last test's teardown, so the parent can split its wall time into fixed start, tests and fixed end;
"loop_cpu": the process's CPU seconds over the same span).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from typing import Any

import pytest

_TESTS: dict[str, dict[str, Any]] = {}
_LOOP: dict[str, float] = {}


def pytest_runtest_logreport(report: Any) -> None:
    entry = _TESTS.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed"})
    entry["seconds"] += report.duration
    if report.when == "call" or report.outcome != "passed":
        entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else report.outcome


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtestloop(session: Any) -> Generator[None, None, None]:
    _LOOP["loop_start"], cpu = time.time(), time.process_time()
    yield
    _LOOP["loop_end"], _LOOP["loop_cpu"] = time.time(), time.process_time() - cpu


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    target = os.environ.get("OAICOMPAT_BENCH_DURATIONS")
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            json.dump({"tests": _TESTS, **_LOOP}, fh)
