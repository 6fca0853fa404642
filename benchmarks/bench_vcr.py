"""Benchmark: replaying the same recorded interactions — oaicompat ÷ pytest-recording (vcrpy). Goal: <= 0.5×.

Run ``python benchmarks/bench_vcr.py``; ``run()`` returns the numbers as a dict.

Input: cassettes sampled from fixtures/cassettes across providers and shapes — for every provider one
non-streamed answer, one stream, one tool call, one HTTP error (the median-sized cassette of each shape) and
its largest cassette — printed by name and size. Only cassettes whose every interaction got an HTTP answer with
text bodies are eligible (vcrpy cannot replay a recorded "no response" or a stream cut mid-way). They are
converted here into vcrpy cassettes in a temporary folder (benchmark input, never committed; bodies joined:
vcrpy keeps no chunk boundaries or arrival times).

Both sides are pytest children with the same durations plugin (benchmarks/_durations.py: setup + call +
teardown per test), the same pytest.ini (pytest-asyncio, one loop per test), the same pytest, pytest-asyncio,
httpx and PyYAML versions, plugin autoloading off (only pytest-asyncio, and pytest-recording on their side)
and one ``async def`` test per
cassette and repetition, each sending the cassette's requests and reading every response; each test checks
the SHA-256 of every body against the one computed here from the cassette, so both sides replay the same
interactions and the same bytes:
  - oaicompat: ``ProbeSession`` in replay mode (what oaicompat.runner.evaluate sends a check's probes through:
    the cassette (parsed-cassette cache warmed beforehand, as after any earlier run), an httpx client over a
    MockTransport serving it, built once per session, the recorded arrival times restored),
  - vcrpy: ``@pytest.mark.vcr`` (pytest-recording, record mode none, matching method, URL and body) around ONE
    httpx.AsyncClient shared by the whole module (one TLS context, built once: at least the client reuse
    oaicompat has, whose replay client opens no TLS context at all).
The two sides alternate, three times; the ratio of each pair is kept and min / median / max printed.
vcrpy and pytest-recording live in their own venv (``$OAICOMPAT_CACHE/bench/vcr-venv``, made on the first run
with pip from PyPI): pytest-recording registers a ``--record-mode`` option, which collides with oaicompat's.
"""

from __future__ import annotations

import hashlib
import http
import json
import os
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_result, pytest_durations, result

GOAL = 0.5
REPEAT = 10
RUNS = 3
SHAPES = ("non-stream", "stream", "tools", "error")
SHARED = ("pytest", "pytest-asyncio", "httpx", "pyyaml")     # pinned to the versions oaicompat runs with
VCR_REQUIREMENTS = ["vcrpy>=7", "pytest-recording>=0.13"]
PLUGINS = {"ours": ["-p", "pytest_asyncio.plugin"],
           "theirs": ["-p", "pytest_asyncio.plugin", "-p", "pytest_recording.plugin"]}
_DROP = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def venv_dir() -> Path:
    root = Path(os.environ.get("OAICOMPAT_CACHE") or Path.home() / ".cache" / "oaicompat")
    return root / "bench" / "vcr-venv"


def vcr_python() -> Path:
    """The venv's interpreter, made (and the requirements installed) when missing."""
    from importlib.metadata import version

    folder = venv_dir()
    python = folder / "bin" / "python"
    marker = folder / ".oaicompat-bench-ready"
    wanted = [*VCR_REQUIREMENTS, *(f"{name}=={version(name)}" for name in SHARED)]
    if not marker.exists() or marker.read_text().split() != wanted:
        if not python.exists():
            venv.create(folder, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        marker.write_text("\n".join(wanted) + "\n")
    return python


@dataclass(frozen=True)
class Sample:
    path: Path
    provider: str
    shape: str
    size: int
    data: dict[str, Any]

    @property
    def name(self) -> str:
        from oaicompat.paths import CASSETTES
        return str(self.path.relative_to(CASSETTES))


def _convertible(inters: list[dict[str, Any]]) -> bool:
    for i in inters:
        rq, rs = i["request"], i["response"]
        if rs.get("status") is None or rs.get("failure") or "body_base64" in rq \
                or any("base64" in c for c in rs.get("chunks", [])):
            return False
    return bool(inters)


def _shape(inters: list[dict[str, Any]]) -> str:
    if any(i["response"]["status"] >= 400 for i in inters):
        return "error"
    if any('"tools"' in i["request"].get("body", "") for i in inters):
        return "tools"
    if any(len(i["response"].get("chunks", [])) > 1 for i in inters):
        return "stream"
    return "non-stream"


EXCLUDED: list[tuple[int, Path]] = []      # (size, path) of the cassettes vcrpy cannot replay


def pick_cassettes() -> list[Sample]:
    """Per provider: the median-sized cassette of each shape, and the largest one (all eligible ones)."""
    from oaicompat.paths import CASSETTES

    by: dict[tuple[str, str], list[Sample]] = {}
    EXCLUDED.clear()
    for path in sorted(CASSETTES.rglob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        inters = data.get("interactions") or []
        if not _convertible(inters):
            EXCLUDED.append((path.stat().st_size, path))
            continue
        s = Sample(path, data["provider"], _shape(inters), path.stat().st_size, data)
        by.setdefault((s.provider, s.shape), []).append(s)
    picked: list[Sample] = []
    for provider in sorted({p for p, _ in by}):
        mine = []
        for shape in SHAPES:
            group = sorted(by.get((provider, shape), []), key=lambda s: s.size)
            if group:
                mine.append(group[len(group) // 2])
        everything = [s for (p, _), g in by.items() if p == provider for s in g]
        largest = max(everything, key=lambda s: s.size)
        if largest not in mine:
            mine.append(Sample(largest.path, provider, f"largest ({largest.shape})", largest.size, largest.data))
        picked += mine
    return picked


def _body(rs: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in rs.get("chunks", []))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_vcr(sample: Sample, out: Path) -> list[tuple[str, str, str, str]]:
    """Write the vcrpy version of one of our cassettes; its requests as (method, url, body, response sha256)."""
    interactions, requests = [], []
    for inter in sample.data["interactions"]:
        rq, rs = inter["request"], inter["response"]
        body = _body(rs)
        headers = {k: [v] for k, v in rs.get("headers", []) if k.lower() not in _DROP}
        try:
            phrase = http.HTTPStatus(rs["status"]).phrase
        except ValueError:
            phrase = ""
        interactions.append({
            "request": {"body": rq.get("body", ""), "headers": {"Content-Type": ["application/json"]},
                        "method": rq["method"], "uri": rq["url"]},
            "response": {"body": {"string": body}, "headers": headers,
                         "status": {"code": rs["status"], "message": phrase}},
        })
        requests.append((rq["method"], rq["url"], rq.get("body", ""), _digest(body)))
    out.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True))
    return requests


OURS = '''
import hashlib
from pathlib import Path
import pytest
from oaicompat.config import load_providers
from oaicompat.run_mode import REPLAY
from oaicompat.scrub import Scrubber
from oaicompat.session import LiveMemo, ProbeSession
from oaicompat.transport import RequestSpec

CASES = {cases!r}
CONFIG = load_providers(Path({providers!r}), env={{}})
SCRUBBER = Scrubber.from_env([], {{}})
MEMO = LiveMemo()


@pytest.mark.parametrize("rep", range({repeat}))
@pytest.mark.parametrize("case", range(len(CASES)))
async def test_replay(case, rep):
    name, path, requests = CASES[case]
    provider = CONFIG.get(name)
    session = ProbeSession(provider=provider, model=provider.model, path=Path(path), mode=REPLAY, api_key=None,
                           scrubber=SCRUBBER, memo=MEMO, test_id="bench", rerecord="-")
    session.prepare()
    async with session:
        for method, rel, body, digest in requests:
            ex = await session.send(RequestSpec(method=method, path=rel, raw_body=body.encode()))
            assert ex.status is not None and hashlib.sha256(ex.body).hexdigest() == digest
'''

THEIRS = '''
import hashlib
import ssl
import certifi
import httpx
import pytest

CASES = {cases!r}
CLIENT = httpx.AsyncClient(verify=ssl.create_default_context(cafile=certifi.where()))


@pytest.fixture(scope="module")
def vcr_config():
    return {{"match_on": ["method", "scheme", "host", "port", "path", "query", "body"]}}


@pytest.fixture(scope="module")
def vcr_cassette_dir():
    return {cassette_dir!r}


@pytest.fixture
def default_cassette_name(request):
    return CASES[request.node.callspec.params["case"]][0]


@pytest.mark.vcr
@pytest.mark.parametrize("rep", range({repeat}))
@pytest.mark.parametrize("case", range(len(CASES)))
async def test_replay(case, rep):
    for method, url, body, digest in CASES[case][1]:
        response = await CLIENT.request(method, url, content=body.encode(),
                                        headers={{"Content-Type": "application/json"}})
        assert response.status_code and hashlib.sha256(await response.aread()).hexdigest() == digest
'''

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def _check(side: str, durations: dict[str, dict[str, Any]], rc: int, expected: int) -> None:
    bad = {k: v["outcome"] for k, v in durations.items() if v["outcome"] != "passed"}
    if rc != 0 or bad or len(durations) != expected:
        raise RuntimeError(f"{side} replay did not pass (exit {rc}, {len(durations)} of {expected} tests): "
                           f"{json.dumps(bad)[:500]}")


def _versions(python: Path) -> str:
    code = ("import importlib.metadata as m; print(', '.join(f'{n} {m.version(n)}' for n in "
            "('vcrpy', 'pytest-recording', 'pytest', 'pytest-asyncio', 'httpx', 'pyyaml')))")
    return subprocess.run([str(python), "-c", code], check=False, capture_output=True, text=True).stdout.strip()


def describe(picked: list[Sample]) -> list[str]:
    lines = []
    for s in picked:
        inters = s.data["interactions"]
        chunks = sum(len(i["response"].get("chunks", [])) for i in inters)
        body = sum(len(_body(i["response"]).encode()) for i in inters)
        lines.append(f"  {s.name}: {s.shape}, {s.size / 1024:.1f} KB file, {len(inters)} interaction(s), "
                     f"{chunks} chunk(s), {body / 1024:.1f} KB of response body")
    from oaicompat.paths import CASSETTES
    biggest = sorted(EXCLUDED, reverse=True)[:3]
    lines.append(f"  not eligible: {len(EXCLUDED)} cassettes with a recorded 'no response', a stream cut mid-way "
                 f"or binary bodies, the largest " + ", ".join(f"{p.relative_to(CASSETTES)} ({n / 1024:.0f} KB)"
                                                             for n, p in biggest))
    return lines


def run(repeat: int = REPEAT, runs: int = RUNS) -> dict[str, Any]:
    import httpx as our_httpx

    from oaicompat.cassette import Cassette
    from oaicompat.paths import PROVIDERS_FILE

    picked = pick_cassettes()
    if not picked:
        return result("replay-vs-vcrpy", None, GOAL, skipped="no cassette to convert")
    try:
        python = vcr_python()
    except (subprocess.CalledProcessError, OSError) as exc:
        return result("replay-vs-vcrpy", None, GOAL, skipped=f"cannot install vcrpy + pytest-recording: {exc}")
    inputs = describe(picked)
    versions = _versions(python)
    print(f"bench_vcr inputs: {len(picked)} cassettes × {repeat} repetitions, {runs} runs per side; "
          f"plugins: only pytest-asyncio (+ pytest-recording on their side) and the durations plugin; "
          f"theirs: {versions}; ours: httpx {our_httpx.__version__}", file=sys.stderr)
    print("\n".join(inputs), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-vcr-") as name:
        tmp = Path(name)
        (tmp / "vcr").mkdir()
        env = {"OAICOMPAT_CACHE": str(tmp / "cache"), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        os.environ["OAICOMPAT_CACHE"] = env["OAICOMPAT_CACHE"]   # warm the parsed-cassette cache, as any run would
        ours_cases, vcr_cases, n_inter = [], [], 0
        for i, s in enumerate(picked):
            Cassette.load(s.path)
            vcr_requests = to_vcr(s, tmp / "vcr" / f"c{i}.yaml")
            rel = [(r["request"]["method"], r["request"]["path"], r["request"].get("body", ""), v[3])
                   for r, v in zip(s.data["interactions"], vcr_requests)]
            ours_cases.append((s.provider, str(s.path), rel))
            vcr_cases.append((f"c{i}.yaml", vcr_requests))
            n_inter += len(rel)
        for side, text in (("ours", OURS.format(cases=ours_cases, providers=str(PROVIDERS_FILE), repeat=repeat)),
                           ("theirs", THEIRS.format(cases=vcr_cases, cassette_dir=str(tmp / "vcr"),
                                                    repeat=repeat))):
            (tmp / side).mkdir()
            (tmp / side / "pytest.ini").write_text(INI)
            (tmp / side / "test_bench.py").write_text(text)
        tests = len(picked) * repeat
        ours_ms, theirs_ms, ratios = [], [], []
        for _ in range(runs):
            ours, _, rc1 = pytest_durations([str(tmp / "ours" / "test_bench.py"), *PLUGINS["ours"]],
                                            cwd=tmp / "ours", env=env)
            theirs, _, rc2 = pytest_durations([str(tmp / "theirs" / "test_bench.py"), *PLUGINS["theirs"],
                                               "--record-mode=none"], python=str(python), cwd=tmp / "theirs",
                                              env=env)
            _check("oaicompat", ours, rc1, tests)
            _check("vcrpy", theirs, rc2, tests)
            total = repeat * n_inter
            ours_ms.append(sum(v["seconds"] for v in ours.values()) / total * 1e3)
            theirs_ms.append(sum(v["seconds"] for v in theirs.values()) / total * 1e3)
            ratios.append(ours_ms[-1] / theirs_ms[-1])
    mid = median(ratios)
    shapes = ", ".join(f"{sum(1 for s in picked if s.shape.startswith(k))} {k}" for k in (*SHAPES, "largest"))
    return result("replay-vs-vcrpy", mid, GOAL,
                  summary=(f"{n_inter} interactions from {len(picked)} cassettes ({shapes}; "
                           f"{len({s.provider for s in picked})} providers) × {repeat}, {runs} runs: ratio "
                           f"min {min(ratios):.2f} / median {mid:.2f} / max {max(ratios):.2f}; per interaction "
                           f"oaicompat {median(ours_ms):.2f} ms vs {versions.split(',')[0]} "
                           f"{median(theirs_ms):.2f} ms (medians)"),
                  ratios=ratios, ours_ms=ours_ms, vcrpy_ms=theirs_ms, inputs=inputs, versions=versions,
                  machine=machine())


def main() -> int:
    print_result(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
