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


def pytest_durations(args: list[str], *, python: str = sys.executable, cwd: Path = ROOT,
                     env: dict[str, str] | None = None) -> tuple[dict[str, dict[str, Any]], float, int]:
    """Run ``python -m pytest ARGS -p _durations`` in a child; (per-test durations, wall seconds, exit code)."""
    with tempfile.TemporaryDirectory(prefix="oaicompat-bench-") as tmp:
        out = Path(tmp) / "durations.json"
        path = os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        child_env = {**os.environ, **(env or {}), "OAICOMPAT_BENCH_DURATIONS": str(out), "PYTHONPATH": path}
        t0 = time.perf_counter()
        proc = subprocess.run([python, "-m", "pytest", *args, "-p", "_durations", "-p", "no:cacheprovider", "-q"],
                              check=False, cwd=cwd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        wall = time.perf_counter() - t0
        if not out.exists():
            raise RuntimeError(f"pytest wrote no durations (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
        return json.loads(out.read_text()), wall, proc.returncode


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
