"""Benchmark: replay overhead — time per replayed check ÷ time per bare pytest test; one provider's full replay.

Run ``python benchmarks/bench_replay.py [PROVIDER]`` (default: vllm, else the first provider with cassettes);
``run()`` returns the numbers as a dict. Goals: per check <= 3× a bare ``async def`` test; the provider's whole
offline replay (``pytest suites --provider=X``) under 3 s of wall time on an idle 2-core machine.

Every side is the same pytest invocation — ``python -m pytest ARGS -q -p no:cacheprovider`` with the plugins
that load by default here (oaicompat's own included) and the durations plugin (benchmarks/_durations.py) —
in a child process that may write bytecode, as `oaicompat run`'s children do:
  - replay: ``suites --provider=X`` (the user's command; the checks skipped as not recorded count as tests),
  - bare sync: a generated file of as many ``def test_N(): pass``,
  - bare async: as many ``async def test_N(): pass`` under the project's pytest-asyncio settings (auto mode, one
    event loop per test: the default an ``async def`` test gets), and a variant whose tests share one session
    loop (what the suites' tests use), for reference.
The wall time of each child is split at its test loop (the durations plugin notes when the first test's setup
began and the last test's teardown ended): fixed start (interpreter, plugins, collection, session start),
the tests, fixed end (session finish, results, terminal summary). Per test = (wall − fixed start − fixed
end) ÷ tests; the same in CPU time of the test loop is printed beside it. The child's CPU time (user + system) is printed beside the wall time: on a loaded machine it is
the closer estimate of what an idle one would take. Each side runs three times; min / median / max are printed.
Printed beside them, to show where the fixed cost goes: the CPU of importing openai as the plugin does when
collection ends (a fresh interpreter), and the replay command again with ``-p no:hypothesispytest``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    PytestRun,
    bytecode_note,
    child_env,
    machine,
    print_result,
    recorded_providers,
    result,
    run_pytest,
    spread,
)

GOAL = 3.0
GOAL_WALL = 3.0
RUNS = 3
INI = ("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
       "asyncio_default_test_loop_scope = {scope}\n")


def _per_test(r: PytestRun) -> float:
    return r.loop / max(len(r.tests), 1)


def _replay(provider: str) -> PytestRun:
    r = run_pytest([str(ROOT / "suites"), f"--provider={provider}"])
    if r.returncode not in (0, 1) or not r.tests:
        raise RuntimeError(f"replay of {provider} did not run (exit {r.returncode}):\n{r.output[-2000:]}")
    return r


def _bare(n: int, tmp: Path, kind: str) -> PytestRun:
    folder = tmp / f"bare_{kind}"
    folder.mkdir(exist_ok=True)
    kw = "def" if kind == "sync" else "async def"
    (folder / "test_bare.py").write_text("".join(f"{kw} test_{i}():\n    pass\n\n\n" for i in range(n)))
    (folder / "pytest.ini").write_text(INI.format(scope="session" if kind == "async-session" else "function"))
    r = run_pytest([str(folder / "test_bare.py")], cwd=folder)
    if len(r.tests) != n or r.returncode != 0:
        raise RuntimeError(f"expected {n} bare {kind} tests to pass, ran {len(r.tests)} (exit {r.returncode})")
    return r


WARM = ("import time; c = time.process_time(); from oaicompat.sdk import warm_openai; warm_openai(); "
        "print(time.process_time() - c)")


def warm_cpu() -> float:
    """CPU seconds of the openai import the plugin makes when collection ends (part of the fixed start)."""
    proc = subprocess.run([sys.executable, "-c", WARM], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          check=False)
    try:
        return float(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float("nan")


def pick_provider(argv: list[str] | None = None) -> str | None:
    providers = recorded_providers()
    wanted = (argv or [])[:1] or ["vllm"]
    return wanted[0] if wanted[0] in providers else (providers[0] if providers else None)


def run(provider: str | None = None, runs: int = RUNS) -> dict[str, Any]:
    provider = provider or pick_provider()
    if provider is None:
        return result("replay-overhead", None, GOAL, skipped="no provider has cassettes")
    replay = [_replay(provider) for _ in range(runs)]
    no_hypo = [run_pytest([str(ROOT / "suites"), f"--provider={provider}", "-p", "no:hypothesispytest"])
               for _ in range(runs)]
    warm = [warm_cpu() for _ in range(runs)]
    tests = len(replay[0].tests)
    skipped = sum(1 for v in replay[0].tests.values() if v["outcome"] == "skipped")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as name:
        tmp = Path(name)
        bare = {kind: [_bare(tests, tmp, kind) for _ in range(runs)] for kind in ("sync", "async", "async-session")}
    per = {k: [_per_test(r) * 1e3 for r in v] for k, v in {"replay": replay, **bare}.items()}
    ratios = {k: [a / b for a, b in zip(per["replay"], per[k])] for k in bare}
    per_cpu = {k: [r.loop_cpu / max(len(r.tests), 1) * 1e3 for r in v] for k, v in {"replay": replay, **bare}.items()}
    cpu_ratios = {k: [a / b for a, b in zip(per_cpu["replay"], per_cpu[k])] for k in bare}
    ratio = median(ratios["async"])
    walls, cpus = [r.wall for r in replay], [r.cpu for r in replay]
    starts, ends = [r.fixed_start for r in replay], [r.fixed_end for r in replay]
    bare_starts = [r.fixed_start for r in bare["sync"]]
    bare_cpu = [r.cpu for r in bare["sync"]]
    nh_walls, nh_cpus = [r.wall for r in no_hypo], [r.cpu for r in no_hypo]
    slowest = max(replay[0].tests, key=lambda k: replay[0].tests[k]["seconds"])
    wall_met = "met" if median(walls) < GOAL_WALL else "MISSED"
    inputs = (f"`pytest suites --provider={provider}`: {tests} tests ({skipped} skipped: not recorded / "
              f"unsupported), {len(list((ROOT / 'fixtures' / 'cassettes' / provider).rglob('*.yaml')))} cassettes; "
              f"bare files of {tests} tests; {bytecode_note()}")
    print(f"bench_replay inputs: {inputs}", file=sys.stderr)
    summary = (f"{inputs}. Per test, ms (min / median / max of {runs}): replay {spread(per['replay'])}; bare async "
               f"{spread(per['async'], '{:.3f}')}; bare sync {spread(per['sync'], '{:.3f}')}; bare async, one "
               f"session loop {spread(per['async-session'], '{:.3f}')}. Ratio to bare async {spread(ratios['async'])}×, "
               f"to bare sync {spread(ratios['sync'])}×, to bare async with a session loop "
               f"{spread(ratios['async-session'])}×. In CPU time of the test loop (less sensitive to a loaded "
               f"machine), per test: replay {spread(per_cpu['replay'])} ms, bare async "
               f"{spread(per_cpu['async'], '{:.3f}')} ms, bare sync {spread(per_cpu['sync'], '{:.3f}')} ms: ratio "
               f"to bare async {spread(cpu_ratios['async'])}×, to bare sync {spread(cpu_ratios['sync'])}×, to bare "
               f"async with a session loop {spread(cpu_ratios['async-session'])}×. Slowest test {slowest.split('::')[-1]} "
               f"{replay[0].tests[slowest]['seconds'] * 1e3:.0f} ms. Whole command: wall {spread(walls)} s "
               f"(goal < {GOAL_WALL:g} s: {wall_met}), CPU {spread(cpus)} s; of the wall, fixed start "
               f"{spread(starts)} s and fixed end {spread(ends)} s (a bare pytest run's fixed start "
               f"{spread(bare_starts)} s, its whole CPU {spread(bare_cpu)} s). Of the fixed start, importing "
               f"openai (when collection ends, as an SDK check is selected) takes {spread(warm)} s of CPU. Without "
               f"hypothesis's pytest plugin (`-p no:hypothesispytest`, as `oaicompat nightly` runs; it imports "
               f"hypothesis at the terminal summary): wall {spread(nh_walls)} s, CPU {spread(nh_cpus)} s")
    return result("replay-overhead", ratio, GOAL, summary=summary, provider=provider, tests=tests,
                  per_test_ms=per, ratios=ratios, per_test_cpu_ms=per_cpu, cpu_ratios=cpu_ratios, wall_s=walls, cpu_s=cpus, fixed_start_s=starts, fixed_end_s=ends,
                  bare_fixed_start_s=bare_starts, bare_cpu_s=bare_cpu, warm_openai_cpu_s=warm,
                  no_hypothesis_wall_s=nh_walls, no_hypothesis_cpu_s=nh_cpus, wall_goal=GOAL_WALL, wall_met=median(walls) < GOAL_WALL,
                  machine=machine())


def main(argv: list[str]) -> int:
    print_result(run(pick_provider(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
