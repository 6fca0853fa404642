"""Benchmark: replaying the same recorded interactions — oaicompat ÷ pytest-recording (vcrpy). Goal: <= 0.5×.

Run ``python benchmarks/bench_vcr.py``; ``run()`` returns the numbers as a dict.

Input: the interactions of a few of our cassettes (``CASSETTES`` of them, only interactions that got an HTTP
answer). They are converted here into vcrpy cassettes in a temporary folder — benchmark input, never
committed; bodies are joined (vcrpy keeps no chunk boundaries or arrival times). Both sides are pytest children
with the same durations plugin (benchmarks/_durations.py: setup + call + teardown per test), one ``async def``
test per cassette and repetition (``REPEAT`` repetitions), each sending the cassette's requests and reading
the whole response:
  - oaicompat: ``ProbeSession`` in replay mode (what oaicompat.runner.evaluate sends a check's probes through:
    load the cassette, replay through an httpx.MockTransport serving it, restore the recorded arrival times),
  - vcrpy: ``@pytest.mark.vcr`` (pytest-recording, record mode none, matching method, URL and body) around an
    httpx.AsyncClient.
vcrpy and pytest-recording live in their own venv (``$OAICOMPAT_CACHE/bench/vcr-venv``, made on the first run
with pip from PyPI): pytest-recording registers a ``--record-mode`` option, which collides with oaicompat's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_result, pytest_durations, result

GOAL = 0.5
CASSETTES = 8
REPEAT = 20
VCR_REQUIREMENTS = ["vcrpy>=7", "pytest-recording>=0.13", "httpx>=0.27,<1", "pytest>=8", "pytest-asyncio>=0.24",
                    "pyyaml>=6"]
_DROP = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}


def venv_dir() -> Path:
    root = Path(os.environ.get("OAICOMPAT_CACHE") or Path.home() / ".cache" / "oaicompat")
    return root / "bench" / "vcr-venv"


def vcr_python() -> Path:
    """The venv's interpreter, made (and the requirements installed) when missing."""
    folder = venv_dir()
    python = folder / "bin" / "python"
    marker = folder / ".oaicompat-bench-ready"
    if not marker.exists():
        venv.create(folder, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *VCR_REQUIREMENTS], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        marker.write_text("\n".join(VCR_REQUIREMENTS) + "\n")
    return python


def pick_cassettes(limit: int = CASSETTES) -> list[Path]:
    """A few of our cassettes whose interactions all got an HTTP answer (streamed ones first, then the rest)."""
    from oaicompat.paths import CASSETTES as ROOT_CASSETTES

    chosen: list[tuple[int, Path]] = []
    for path in sorted(ROOT_CASSETTES.rglob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        inters = data.get("interactions") or []
        if not inters or any(i["response"].get("status") is None or "body_base64" in i["request"]
                             or any("base64" in c for c in i["response"].get("chunks", [])) for i in inters):
            continue
        streamed = any(len(i["response"].get("chunks", [])) > 1 for i in inters)
        chosen.append((0 if streamed else 1, path))
    chosen.sort(key=lambda x: x[0])
    return [p for _, p in chosen[:limit]]


def to_vcr(path: Path, out: Path) -> list[tuple[str, str, str]]:
    """Write the vcrpy version of one of our cassettes; return its requests as (method, url, body)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    interactions, requests = [], []
    for inter in data["interactions"]:
        rq, rs = inter["request"], inter["response"]
        body = "".join(c.get("text", "") for c in rs.get("chunks", []))
        headers = {k: [v] for k, v in rs.get("headers", []) if k.lower() not in _DROP}
        interactions.append({
            "request": {"body": rq.get("body", ""), "headers": {"Content-Type": ["application/json"]},
                        "method": rq["method"], "uri": rq["url"]},
            "response": {"body": {"string": body}, "headers": headers,
                         "status": {"code": rs["status"], "message": "OK"}},
        })
        requests.append((rq["method"], rq["url"], rq.get("body", "")))
    out.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}, allow_unicode=True))
    return requests


OURS = '''
from pathlib import Path
import pytest
from oaicompat.config import load_providers
from oaicompat.run_mode import REPLAY
from oaicompat.scrub import Scrubber
from oaicompat.session import LiveMemo, ProbeSession
from oaicompat.transport import RequestSpec

CASES = {cases!r}
CONFIG = load_providers(Path({providers!r}), env={{}})


@pytest.mark.parametrize("rep", range({repeat}))
@pytest.mark.parametrize("case", range(len(CASES)))
async def test_replay(case, rep):
    name, path, requests = CASES[case]
    provider = CONFIG.get(name)
    session = ProbeSession(provider=provider, model=provider.model, path=Path(path), mode=REPLAY, api_key=None,
                           scrubber=Scrubber.from_env([], {{}}), memo=LiveMemo(), test_id="bench", rerecord="-")
    session.prepare()
    async with session:
        for method, rel, body in requests:
            ex = await session.send(RequestSpec(method=method, path=rel, raw_body=body.encode()))
            assert ex.status is not None and ex.body
'''

THEIRS = '''
import httpx
import pytest

CASES = {cases!r}


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
    async with httpx.AsyncClient() as client:
        for method, url, body in CASES[case][1]:
            response = await client.request(method, url, content=body.encode(),
                                            headers={{"Content-Type": "application/json"}})
            assert response.status_code and await response.aread()
'''

INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def run(cassettes: int = CASSETTES, repeat: int = REPEAT) -> dict[str, Any]:
    from oaicompat.paths import PROVIDERS_FILE

    picked = pick_cassettes(cassettes)
    if not picked:
        return result("replay-vs-vcrpy", None, GOAL, skipped="no cassette to convert")
    try:
        python = vcr_python()
    except (subprocess.CalledProcessError, OSError) as exc:
        return result("replay-vs-vcrpy", None, GOAL, skipped=f"cannot install vcrpy + pytest-recording: {exc}")
    with tempfile.TemporaryDirectory(prefix="bench-vcr-") as name:
        tmp = Path(name)
        (tmp / "vcr").mkdir()
        ours_cases, vcr_cases, n_inter = [], [], 0
        for i, path in enumerate(picked):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            rel = [(r["request"]["method"], r["request"]["path"], r["request"].get("body", ""))
                   for r in data["interactions"]]
            ours_cases.append((data["provider"], str(path), rel))
            vcr_cases.append((f"c{i}.yaml", to_vcr(path, tmp / "vcr" / f"c{i}.yaml")))
            n_inter += len(rel)
        for side, text in (("ours", OURS.format(cases=ours_cases, providers=str(PROVIDERS_FILE), repeat=repeat)),
                           ("theirs", THEIRS.format(cases=vcr_cases, cassette_dir=str(tmp / "vcr"),
                                                    repeat=repeat))):
            (tmp / side).mkdir()
            (tmp / side / "pytest.ini").write_text(INI)
            (tmp / side / "test_bench.py").write_text(text)
        ours, _, rc1 = pytest_durations([str(tmp / "ours" / "test_bench.py")], cwd=tmp / "ours")
        theirs, _, rc2 = pytest_durations([str(tmp / "theirs" / "test_bench.py"), "--record-mode=none"],
                                          python=str(python), cwd=tmp / "theirs")
    for side, d, rc in (("oaicompat", ours, rc1), ("vcrpy", theirs, rc2)):
        bad = {k: v["outcome"] for k, v in d.items() if v["outcome"] != "passed"}
        if rc != 0 or bad:
            raise RuntimeError(f"{side} replay did not pass (exit {rc}): {json.dumps(bad)[:500]}")
    total = repeat * n_inter
    ours_ms = sum(v["seconds"] for v in ours.values()) / total * 1e3
    theirs_ms = sum(v["seconds"] for v in theirs.values()) / total * 1e3
    version = subprocess.run([str(python), "-c", "import vcr; print(vcr.__version__)"], check=False,
                             capture_output=True, text=True).stdout.strip()
    return result("replay-vs-vcrpy", ours_ms / theirs_ms, GOAL,
                  summary=(f"{n_inter} interactions from {len(picked)} cassettes × {repeat}: oaicompat "
                           f"{ours_ms:.2f} ms vs vcrpy {version} {theirs_ms:.2f} ms per interaction"),
                  ours_ms=ours_ms, vcrpy_ms=theirs_ms, machine=machine())


def main() -> int:
    print_result(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
