"""`oaicompat nightly`: merge (pure), the workflow's matrix, and whole runs — against the reference test server
(a fully controlled run, then a deviating one that the diff must catch), over the recorded cassettes, and (marked
`servers`, with OAICOMPAT_SERVERS_LIVE=1) live against the real local servers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from oaicompat.config import load_providers, parse_providers
from oaicompat.errors import ResultsError
from oaicompat.nightly import (
    hosted_matrix,
    is_remote,
    main,
    merge_documents,
    servers_cache_key,
)
from oaicompat.paths import CASSETTES, PROVIDERS_FILE
from oaicompat.results import load_results
from tests.support.wire_server import completion_body, conformant

SUITE = """
from oaicompat.checks import chat, stream

async def test_object(run_check):
    await run_check(chat.object_is_chat_completion)

async def test_usage(run_check):
    await run_check(chat.usage_present)

async def test_stream_status(run_check):
    await run_check(stream.status_is_success)
"""
KEY = "sk-nightly-test-key-0123456789"


# -- merge ----------------------------------------------------------------------------------------------

def doc(mode, records, providers=None, started="2026-01-01T00:00:00Z", finished="2026-01-01T00:01:00Z"):
    provs = providers or {r["provider"]: {"title": r["provider"].upper(), "kind": "hosted", "models": [r["model"]]}
                          for r in records}
    return {"oaicompat_results": 1, "oaicompat_version": "0.1.0", "mode": mode, "started_at": started,
            "finished_at": finished, "providers": provs, "records": records}


def record(provider, check, outcome="pass", model="m", test=None, timing=None):
    r = {"test": test or f"suites/test_x.py::{check}[{provider}-{model}]", "check": check, "area": "chat",
         "rule": "RESP-1", "kind": "protocol", "title": check, "provider": provider, "model": model,
         "outcome": outcome, "quirks": [], "message": "", "evidence": []}
    if timing:
        r["timing"] = timing
    return r


def test_merge_later_wins_per_provider_model_and_check():
    a = doc("replay", [record("p", "chat.a"), record("p", "chat.b", "violation"), record("q", "chat.a")],
            started="2026-01-01T00:00:00Z", finished="2026-01-01T00:05:00Z")
    b = doc("live", [record("p", "chat.b", "pass"), record("p", "chat.b", "pass", test="second"),
                     record("p", "chat.a", "pass", model="m2")],
            providers={"p": {"title": "P2", "kind": "hosted", "models": ["m2"], "recorded": False}},
            started="2025-12-31T00:00:00Z", finished="2026-01-01T00:03:00Z")
    merged = merge_documents([a, b])
    table = {(r["provider"], r["model"], r["check"]): r["outcome"] for r in merged["records"]}
    assert table == {("p", "m", "chat.a"): "pass", ("p", "m", "chat.b"): "pass", ("q", "m", "chat.a"): "pass",
                     ("p", "m2", "chat.a"): "pass"}
    assert len(merged["records"]) == 5             # both records of the later document's key are kept
    assert merged["mode"] == "replay+live"
    assert merged["started_at"] == "2025-12-31T00:00:00Z" and merged["finished_at"] == "2026-01-01T00:05:00Z"
    assert merged["providers"]["p"]["title"] == "P2" and merged["providers"]["p"]["models"] == ["m", "m2"]
    assert merged["providers"]["q"]["title"] == "Q"
    assert merge_documents([b, a])["mode"] == "live+replay"
    assert {r["outcome"] for r in merge_documents([b, a])["records"] if r["check"] == "chat.b"} == {"violation"}


def test_merge_joins_modes_once_and_recomputes_latency():
    t = {"ttft": 0.5, "total": 1.5, "completion_tokens": 10, "gap_p50": 0.1, "gap_p95": 0.2, "level": "live"}
    a = doc("replay+imported", [record("p", "chat.a", timing=dict(t, total=9.0))],
            providers={"p": {"title": "P", "kind": "local", "models": ["m"], "recorded": True,
                             "latency": {"stale": True}}})
    b = doc("replay", [record("p", "chat.a", timing=t)])
    merged = merge_documents([a, b])
    assert merged["mode"] == "replay+imported"
    assert merged["providers"]["p"]["recorded"] is True
    assert merged["providers"]["p"]["latency"]["total_p50"] == 1.5     # from the surviving record only
    assert "stale" not in merged["providers"]["p"]["latency"]


def test_merge_validates_and_refuses_nothing():
    with pytest.raises(ResultsError, match="nothing to merge"):
        merge_documents([])
    bad = doc("live", [record("p", "chat.a", outcome="great")])
    with pytest.raises(ResultsError, match="results.schema.json"):
        merge_documents([bad])


# -- what the workflow reads -------------------------------------------------------------------------------

def test_matrix_lists_hosted_providers_with_their_key_names(capfd):
    cfg = load_providers(PROVIDERS_FILE, env={})
    matrix = {e["provider"]: e["key_env"] for e in hosted_matrix(cfg)}
    assert matrix["openai"] == "OPENAI_API_KEY" and matrix["qwen"] == "DASHSCOPE_API_KEY"
    assert matrix["openrouter"] == "OPENROUTER_API_KEY"                # a gateway on the internet
    for local in ("llama-server", "vllm", "litellm", "ollama", "lm-studio"):
        assert local not in matrix                                      # litellm: a gateway on loopback
    assert main(["--matrix"]) == 0
    assert json.loads(capfd.readouterr().out) == hosted_matrix(cfg)


def test_loopback_gateway_is_not_remote():
    cfg = parse_providers({"version": 1, "providers": {
        "gw": {"kind": "gateway", "title": "GW", "base_url": "${GW_URL:-http://localhost:4000/v1}", "model": "x"},
        "far": {"kind": "gateway", "title": "Far", "base_url": "https://gw.example/v1", "model": "x"}}},
        Path("p.yaml"), env={})
    assert not is_remote(cfg.get("gw")) and is_remote(cfg.get("far"))


def test_servers_cache_key_names_every_server_version():
    from oaicompat.servers.specs import SPECS
    key = servers_cache_key()
    for name, spec in SPECS.items():
        assert f"{name}-{spec.version}" in key
    assert key == servers_cache_key()


# -- whole runs against the reference server ---------------------------------------------------------------

@pytest.fixture
def controlled(tmp_path, wire_server, monkeypatch):
    """Two providers served by the reference server, a three-check suite, its own cassette dir."""
    monkeypatch.setenv("REF_KEY", KEY)
    entry = {"kind": "local", "title": "Ref", "base_url": wire_server.base_url, "api_key_env": "REF_KEY",
             "model": "ref-model", "retries": {"max_retries": 0, "max_delay": 0.01}}
    providers = tmp_path / "providers.yaml"
    providers.write_text(yaml.safe_dump({"version": 1, "providers": {"ref-a": entry, "ref-b": entry}}))
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_suite.py").write_text(SUITE)
    (suite / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")

    def run(*args: str, providers_: str = "ref-a,ref-b") -> int:
        return main(["--providers-file", str(providers), "--suites", str(suite / "test_suite.py"),
                     "--cassette-dir", str(tmp_path / "cassettes"), "--provider", providers_, *args])

    run.tmp = tmp_path
    return run


async def _wrong_object(req, resp):
    if (req.json() or {}).get("stream"):
        await conformant(req, resp)
    else:
        await resp.json(200, completion_body() | {"object": "text_completion"})


def test_two_runs_merge_and_the_diff_catches_a_deviation(controlled, wire_server, capfd):
    first = controlled.tmp / "first"
    assert controlled("--live", "--jobs", "2", "--no-report", "-o", str(first)) == 0
    out = capfd.readouterr().out
    assert "ref-a: ok" in out and "ref-b: ok" in out and "merged 2 results file(s)" in out
    merged = load_results(first / "results.json")
    assert merged["mode"] == "live"
    assert sorted(merged["providers"]) == ["ref-a", "ref-b"]
    outcomes = {(r["provider"], r["check"]): r["outcome"] for r in merged["records"]}
    assert outcomes == {(p, c): "pass" for p in ("ref-a", "ref-b")
                        for c in ("chat.object", "chat.usage", "stream.status")}
    for name in ("ref-a", "ref-b"):
        assert (first / f"results-{name}.json").is_file() and (first / "logs" / f"{name}.log").is_file()
        latency = merged["providers"][name]["latency"]
        assert latency["level"] == "live" and latency["samples"] >= 2 and latency["ttft_p50"] is not None
        assert latency["gap_p50"] is not None          # the streamed probe has inter-chunk gaps

    wire_server.handler = _wrong_object
    second = controlled.tmp / "second"
    rc = controlled("--live", "--jobs", "2", "--previous", str(first / "results.json"), "-o", str(second))
    captured = capfd.readouterr()
    assert rc == 1, captured.out + captured.err
    assert "chat.object-wrong" in captured.out and "REGRESSED" in captured.out
    diff = (second / "diff.md").read_text()
    assert "chat.object-wrong" in diff and "started failing" in diff
    assert (second / "diff.html").is_file()
    site = second / "report"
    assert (site / "index.html").is_file()
    published = load_results(site / "data" / "results.json")       # what the next night diffs against
    assert published == load_results(second / "results.json")
    assert {r["outcome"] for r in published["records"] if r["check"] == "chat.object"} == {"unexpected-quirk"}

    # the same run diffed against itself: nothing regressed
    assert main(["--from-results", str(second / "results.json"), "--previous", str(second / "results.json"),
                 "--no-report", "-o", str(controlled.tmp / "same")]) == 0


def test_record_then_unconfigured_provider_replays_its_cassettes(controlled, monkeypatch, capfd):
    assert controlled("--record-mode=once", "--no-report", "-o", str(controlled.tmp / "rec")) == 0
    assert sorted(p.name for p in (controlled.tmp / "cassettes").iterdir()) == ["ref-a", "ref-b"]
    monkeypatch.delenv("REF_KEY")
    capfd.readouterr()

    # ref-a has cassettes, ref-b (its folder removed) has none
    for path in sorted((controlled.tmp / "cassettes" / "ref-b").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (controlled.tmp / "cassettes" / "ref-b").rmdir()
    assert controlled("--record-mode=all", "--replay-unconfigured", "--no-report",
                      "-o", str(controlled.tmp / "fallback")) == 0
    err = capfd.readouterr().err
    assert "ref-a is not configured (set REF_KEY): replaying its cassettes instead" in err
    assert "ref-b is not configured (set REF_KEY): checks that need the network report not-configured" in err
    merged = load_results(controlled.tmp / "fallback" / "results.json")
    assert merged["mode"] == "replay+record:all"          # ref-a replayed, ref-b ran as asked
    assert {r["outcome"] for r in merged["records"] if r["provider"] == "ref-b"} == {"not-configured"}
    merged["records"] = [r for r in merged["records"] if r["provider"] == "ref-a"]
    assert {r["outcome"] for r in merged["records"]} == {"pass"}
    assert {ev["level"] for r in merged["records"] for ev in r["evidence"]} == {"recorded"}
    latency = merged["providers"]["ref-a"]["latency"]
    assert latency["level"] == "recorded" and latency["recorded_at"]["newest"].startswith("20")


def test_failing_checks_pass_the_nightly_but_a_crashed_shard_does_not(controlled, wire_server, capfd):
    wire_server.handler = _wrong_object
    assert controlled("--live", "--no-report", "-o", str(controlled.tmp / "quirky"), providers_="ref-a") == 0
    assert "ref-a: checks failed" in capfd.readouterr().out
    assert controlled("--live", "--no-report", "--strict", "-o", str(controlled.tmp / "strict"),
                      providers_="ref-b") == 1
    # a pytest usage error is a shard that did not run: exit 2
    assert controlled("--live", "--no-report", "-o", str(controlled.tmp / "broken"), "--", "--no-such-option") == 2
    assert "shard(s) that did not complete: ref-a, ref-b" in capfd.readouterr().err


def test_usage_errors(controlled, tmp_path, capfd):
    assert main(["--provider", "nosuch", "-o", str(tmp_path / "x")]) == 2
    assert "unknown provider 'nosuch'" in capfd.readouterr().err
    assert main(["--previous", str(tmp_path / "absent.json"), "-o", str(tmp_path / "x")]) == 2
    assert main(["--providers", "ref-a"]) == 2                     # no -o (the old spelling still parses)
    assert main(["--live", "--record-mode", "all", "-o", str(tmp_path / "x")]) == 2


# -- the recorded cassettes ----------------------------------------------------------------------------------

REPLAYED_SUITE = "test_chat"      # the suite every recording session starts with; the others would add time only


def recorded_providers() -> list[str]:
    cfg = load_providers(PROVIDERS_FILE, env={})
    return [name for name in cfg.providers if any((CASSETTES / name / REPLAYED_SUITE).glob("*.yaml"))]


def test_replay_of_the_recorded_providers(tmp_path, capfd):
    names = recorded_providers()
    if not names:
        pytest.skip(f"no provider has cassettes under fixtures/cassettes/*/{REPLAYED_SUITE}")
    suite = Path(__file__).resolve().parents[1] / "suites" / f"{REPLAYED_SUITE}.py"
    rc = main(["--provider", ",".join(names), "--jobs", "2", "--no-report", "-o", str(tmp_path),
               "--suites", str(suite)])
    out = capfd.readouterr().out
    assert rc == 0, out                    # failing checks (quirks) never fail the nightly
    merged = load_results(tmp_path / "results.json")
    assert merged["mode"] == "replay" and sorted(merged["providers"]) == sorted(names)
    for name in names:
        shard = load_results(tmp_path / f"results-{name}.json")
        assert [r for r in merged["records"] if r["provider"] == name] == shard["records"]
        replayed = [r for r in shard["records"] if r["evidence"]]
        assert replayed and {ev["level"] for r in replayed for ev in r["evidence"]} == {"recorded"}
        latency = merged["providers"][name].get("latency")
        if any(r.get("timing") for r in replayed):
            assert latency["level"] == "recorded" and latency["recorded_at"] is not None


# -- live against the real local servers ---------------------------------------------------------------------

@pytest.mark.servers
@pytest.mark.skipif(os.environ.get("OAICOMPAT_SERVERS_LIVE") != "1",
                    reason="set OAICOMPAT_SERVERS_LIVE=1 with the servers up (scripts/test.sh does)")
def test_live_against_the_real_servers(tmp_path, capfd):
    servers = os.environ.get("OAICOMPAT_SERVERS_LIST", "llama-server,llama-cpp-python,vllm,litellm,transformers-serve")
    rc = main(["--provider", servers, "--live", "--jobs", "2", "--no-report", "-o", str(tmp_path),
               "--suites", str(Path(__file__).resolve().parents[1] / "suites" / "test_chat.py"),
               "--", "-k", "test_object or test_usage or test_content"])
    out = capfd.readouterr().out
    assert rc == 0, out
    merged = load_results(tmp_path / "results.json")
    for name in servers.split(","):
        assert name in merged["providers"], out
        records = [r for r in merged["records"] if r["provider"] == name]
        assert records and not {r["outcome"] for r in records} & {"unavailable", "error", "not-configured"}, out
        assert merged["providers"][name]["latency"]["level"] == "live"
