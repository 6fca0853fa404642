"""Helpers shared by the benchmarks: run a pytest child with the durations plugin, find recorded providers,
describe the machine. Not a benchmark itself."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(ROOT))


def recorded_providers() -> list[str]:
    """providers.yaml order, those that have at least one cassette."""
    from oaicompat.config import load_providers
    from oaicompat.paths import CASSETTES, PROVIDERS_FILE

    cfg = load_providers(PROVIDERS_FILE, env={})
    return [n for n in cfg.providers if any((CASSETTES / n).rglob("*.yaml"))]


@dataclass(frozen=True)
class PytestRun:
    """One measured pytest child: per-test durations, the wall time split at the test loop, the child's CPU."""
    tests: dict[str, dict[str, Any]]
    wall: float               # spawn to exit, seconds
    fixed_start: float        # spawn to the first test's setup (interpreter, plugins, collection, session start)
    loop: float               # first test's setup to last test's teardown
    fixed_end: float          # last test's teardown to exit (session finish, results, terminal summary)
    cpu: float                # user + system CPU seconds of the child
    loop_cpu: float           # CPU seconds of the test loop (time.process_time in the child)
    maxrss_mb: float          # its peak RSS
    returncode: int
    output: str


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a pytest child gets: ours (as `oaicompat run` gives its children: bytecode may be written,
    under the cache root when PYTHONDONTWRITEBYTECODE was set), with the benchmarks folder on PYTHONPATH."""
    from oaicompat.run import child_env as run_child_env

    path = os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**run_child_env(), **(extra or {}), "PYTHONPATH": path}


def bytecode_note() -> str:
    env = child_env()
    where = env.get("PYTHONPYCACHEPREFIX")
    return (f"children write bytecode (under {where}: this shell sets PYTHONDONTWRITEBYTECODE)" if where
            else "children write bytecode (__pycache__)")


def run_pytest(args: list[str], *, python: str = sys.executable, cwd: Path = ROOT,
               env: dict[str, str] | None = None, durations: bool = True) -> PytestRun:
    """Run ``python -m pytest ARGS -p no:cacheprovider -q [-p _durations]`` in a child and measure it."""
    with tempfile.TemporaryDirectory(prefix="oaicompat-bench-") as tmp:
        out = Path(tmp) / "durations.json"
        plugin = ["-p", "_durations"] if durations else []
        cmd = [python, "-m", "pytest", *args, *plugin, "-p", "no:cacheprovider", "-q"]
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_env({**(env or {}), "OAICOMPAT_BENCH_DURATIONS": str(out)}),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)     # reaped here, so its own rusage (CPU, peak RSS) is read
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        wall = time.time() - t0
        if not durations:
            return PytestRun({}, wall, wall, 0.0, 0.0, usage.ru_utime + usage.ru_stime, 0.0, usage.ru_maxrss / 1024,
                             proc.returncode, output)
        if not out.exists():
            raise RuntimeError(f"pytest wrote no durations (exit {proc.returncode}):\n{output[-3000:]}")
        data = json.loads(out.read_text())
        start, end = data.get("loop_start", t0), data.get("loop_end", t0 + wall)
        return PytestRun(data["tests"], wall, start - t0, end - start, t0 + wall - end,
                         usage.ru_utime + usage.ru_stime, data.get("loop_cpu", 0.0), usage.ru_maxrss / 1024,
                         proc.returncode, output)


def pytest_durations(args: list[str], *, python: str = sys.executable, cwd: Path = ROOT,
                     env: dict[str, str] | None = None) -> tuple[dict[str, dict[str, Any]], float, int]:
    """Run ``python -m pytest ARGS -p _durations`` in a child; (per-test durations, wall seconds, exit code)."""
    r = run_pytest(args, python=python, cwd=cwd, env=env)
    return r.tests, r.wall, r.returncode


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """min / median / max, for the three runs of a figure."""
    from statistics import median
    return " / ".join(fmt.format(v) for v in (min(values), median(values), max(values)))


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU ({cpu}), "
            f"Python {platform.python_version()}, load average {load}")


def result(name: str, ratio: float | None, goal: float | None, *, lower_is_better: bool = True,
           summary: str = "", skipped: str | None = None, **extra: Any) -> dict[str, Any]:
    met = None if ratio is None or goal is None else (ratio <= goal if lower_is_better else ratio >= goal)
    return {"name": name, "ratio": ratio, "goal": goal, "lower_is_better": lower_is_better, "met": met,
            "summary": summary, "skipped": skipped, "loadavg": os.getloadavg()[0], **extra}


def print_result(r: dict[str, Any]) -> None:
    if r.get("skipped"):
        print(f"{r['name']}: skipped: {r['skipped']}")
        return
    goal = ""
    if r.get("goal") is not None:
        goal = f" (goal {'<=' if r['lower_is_better'] else '>='} {r['goal']:g}×: {'met' if r['met'] else 'MISSED'})"
    print(f"{r['name']}: ratio {r['ratio']:.2f}×{goal} — {r['summary']}")
