"""Benchmark: a live run against the real local servers — wall time ÷ the generation time the servers report.
Goal: <= 1.3×.

Run ``eval "$(oaicompat servers up llama-server)"; python benchmarks/bench_live.py [--providers P,Q]``;
``run()`` returns the numbers as a dict. Without running servers (or without the key their ``servers up``
printed) it prints "skipped: servers not running".

The run is pytest over every suite (``suites/``; ``--suite PATH`` narrows it) for the providers (default:
llama-server), recording into a temporary cassette folder (``--record-mode=all``, so that every response body
is kept whole). The generation time is summed over the distinct exchanges of those cassettes (checks share
one memoised request): llama-server's own ``timings.prompt_ms + timings.predicted_ms`` from the body (the
last event that has them, for a stream); for a server that reports none, the measured time from sending to the
end of the body (TTFT + decode). The ratio is what the harness adds: pytest, probes, checks, cassette writes.
pytest's start and collection (a ``--collect-only`` run of the same command) is printed beside it: a fixed
cost that a short run cannot amortise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, print_result, result

GOAL = 1.3
SUITES = ("suites",)   # the whole live run, every area


def reachable(provider: Any, key: str | None) -> bool:
    if not provider.base_url or (provider.api_key_env and not key):
        return False
    request = urllib.request.Request(provider.base_url.rstrip("/") + "/models",
                                     headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def server_seconds(body: bytes, elapsed: float | None) -> tuple[float, bool]:
    """(generation seconds, whether the server reported them) for one response body."""
    candidates: list[Any] = []
    text = body.decode("utf-8", errors="replace")
    try:
        candidates.append(json.loads(text))
    except ValueError:
        for line in text.splitlines():
            if line.startswith("data:") and "timings" in line:
                try:
                    candidates.append(json.loads(line[5:].strip()))
                except ValueError:
                    pass
    for obj in reversed(candidates):
        timings = obj.get("timings") if isinstance(obj, dict) else None
        if isinstance(timings, dict) and isinstance(timings.get("predicted_ms"), (int, float)):
            return (float(timings.get("prompt_ms") or 0) + float(timings["predicted_ms"])) / 1e3, True
    return float(elapsed or 0.0), False


def generation_time(cassettes: Path) -> tuple[float, int, int]:
    """(seconds, distinct exchanges, how many of them had server-reported timings)."""
    from oaicompat.cassette import Cassette, request_key

    seen: set[tuple[Any, ...]] = set()
    total, reported = 0.0, 0
    for path in sorted(cassettes.rglob("*.yaml")):
        for ex in Cassette.load(path).exchanges():
            key = (request_key(ex.request.method, ex.request.path, ex.request.body), hashlib.sha256(ex.body).digest())
            if key in seen or ex.status is None:
                continue
            seen.add(key)
            seconds, by_server = server_seconds(ex.body, ex.elapsed)
            total += seconds
            reported += by_server
    return total, len(seen), reported


def run(providers: str = "llama-server", providers_file: str | None = None,
        suites: tuple[str, ...] = SUITES) -> dict[str, Any]:
    from oaicompat.config import load_providers, runtime_environment
    from oaicompat.paths import PROVIDERS_FILE

    env = runtime_environment()
    cfg = load_providers(Path(providers_file or PROVIDERS_FILE), env)
    chosen = cfg.select([providers])
    down = [p.name for p in chosen if not reachable(p, p.api_key(env))]
    if down:
        return result("live-overhead", None, GOAL, skipped=f"servers not running ({', '.join(down)}: no answer "
                                                         f"or no key; eval \"$(oaicompat servers up)\" first)")
    with tempfile.TemporaryDirectory(prefix="bench-live-") as name:
        tmp = Path(name)
        cmd = [sys.executable, "-m", "pytest", *[str(ROOT / s) for s in suites], "-q", "-p", "no:cacheprovider",
               f"--provider={providers}", "--record-mode=all", "--cassette-dir", str(tmp / "cassettes"),
               "--results", str(tmp / "results.json")]
        if providers_file:
            cmd += ["--providers-file", providers_file]
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--collect-only"], check=False, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        startup = time.perf_counter() - t0     # interpreter, imports, collection: paid once per run
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, check=False, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 1) or not (tmp / "cassettes").is_dir():
            raise RuntimeError(f"the live run did not complete (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
        generation, exchanges, reported = generation_time(tmp / "cassettes")
    if generation <= 0:
        return result("live-overhead", None, GOAL, skipped="no exchange took measurable time")
    return result("live-overhead", wall / generation, GOAL,
                  summary=(f"{providers}, {', '.join(Path(s).name for s in suites)}: wall {wall:.1f} s vs "
                           f"generation {generation:.1f} s over {exchanges} distinct exchanges ({reported} with "
                           f"server-reported timings, the rest measured); of the wall, {startup:.1f} s is pytest's "
                           f"start and collection ({(wall - startup) / generation:.2f}× without it)"),
                  wall_s=wall, generation_s=generation, startup_s=startup, machine=machine())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--providers", default="llama-server")
    parser.add_argument("--providers-file", default=None)
    parser.add_argument("--suite", action="append", default=None, help="test path (repeatable)")
    args = parser.parse_args()
    print_result(run(args.providers, args.providers_file, tuple(args.suite) if args.suite else SUITES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
