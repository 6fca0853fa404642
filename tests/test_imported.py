"""oaicompat.imported: readers, the import (scrubbing, provenance, licence, atomicity), and the evidence rules.

Recordings here are hand-built test inputs in the formats other projects commit (vcrpy, Ruby VCR, httprr);
the source repository is a throw-away git repository made in tmp_path.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from oaicompat.checks.base import PROBES, CheckSpec, Probe, QuirkFound
from oaicompat.checks.requires import Requires
from oaicompat.config import Expectation, ProvidersConfig
from oaicompat.exchange import Chunk, Exchange, Request
from oaicompat.imported import cli as icli
from oaicompat.imported import evidence as ev
from oaicompat.imported import store as store_mod
from oaicompat.imported.formats import (
    MAX_BODY_BYTES,
    RecordingError,
    load_yaml,
    read_recording,
)
from oaicompat.imported.profiles import RecorderTableError, load_table, parse_table
from oaicompat.imported.store import (
    PROFILES,
    StoredInteraction,
    body_bytes,
    detect_spdx,
    profile_for,
    redact_text,
)
from oaicompat.imported.vendors import NO_MODEL, model_of, relative_path, sniff_vendor, vendor_for_url
from oaicompat.paths import IMPORTED
from oaicompat.transport import RequestSpec

MIT = """MIT License

Copyright (c) 2025 Somebody

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation
the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software.
"""
APACHE = "                                 Apache License\n                           Version 2.0, January 2004\n"
GPL = "GNU GENERAL PUBLIC LICENSE\nVersion 3, 29 June 2007\nEveryone is permitted to copy and distribute verbatim"

CHAT_OK = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1_726_012_687, "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": None},
                        "logprobs": None, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


# -- building recordings ---------------------------------------------------------------------------------

def vcrpy_doc(*interactions: dict[str, Any]) -> str:
    return yaml.safe_dump({"interactions": list(interactions), "version": 1}, sort_keys=False)


def vcrpy_interaction(req: Any, resp: Any, *, uri: str = "https://api.groq.com/openai/v1/chat/completions",
                      status: int = 200, req_headers: dict[str, list[str]] | None = None,
                      resp_headers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body = resp if isinstance(resp, (str, bytes)) else json.dumps(resp)
    return {
        "request": {"body": req if isinstance(req, str) else json.dumps(req),
                    "headers": req_headers or {"Content-Type": ["application/json"]}, "method": "POST", "uri": uri},
        "response": {"body": {"string": body}, "headers": resp_headers or {"Content-Type": ["application/json"]},
                     "status": {"code": status, "message": "OK"}},
    }


def ruby_doc(body_bytes_: bytes, *, uri: str = "https://api.perplexity.ai/chat/completions", status: int = 200,
             req: str = '{"model":"sonar","messages":[{"role":"user","content":"Hi"}],"stream":true}',
             content_type: str = "text/event-stream") -> str:
    b64 = base64.b64encode(body_bytes_).decode()
    return (
        "---\nhttp_interactions:\n- request:\n    method: post\n    uri: " + uri + "\n"
        "    body:\n      encoding: UTF-8\n      string: '" + req.replace("'", "''") + "'\n"
        "    headers:\n      Authorization:\n      - Bearer <AUTH_TOKEN>\n"
        "  response:\n    status:\n      code: " + str(status) + "\n      message: OK\n"
        "    headers:\n      Content-Type:\n      - " + content_type + "\n      X-Ppl-Region:\n      - us-east-1\n"
        "    body:\n      encoding: ASCII-8BIT\n      string: !binary |-\n        " + b64 + "\n"
        "  recorded_at: Mon, 08 Jun 2026 18:46:08 GMT\nrecorded_with: VCR 6.4.0\n")


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                          *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def source_repo(tmp_path: Path):
    """A throw-away source repository: write files with add(), then commit() gives the sha."""
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q")

    class Repo:
        path = repo

        def add(self, rel: str, data: str | bytes) -> Path:
            p = repo / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data.encode() if isinstance(data, str) else data)
            return p

        def commit(self) -> str:
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "c")
            return git(repo, "rev-parse", "HEAD")

    r = Repo()
    r.add("LICENSE", MIT)
    return r


def run_import(paths: list[Path], sha: str, out: Path, *extra: str, repo: str = "someone/project",
               license: str = "MIT") -> int:
    return icli.import_main([*map(str, paths), "--source", f"{repo}@{sha}", "--license", license,
                             "--out", str(out), *extra])


def written(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


# -- readers ------------------------------------------------------------------------------------------------------

def test_vcrpy_string_gzip_and_parsed_bodies():
    gz = gzip.compress(json.dumps(CHAT_OK).encode())
    doc = {"interactions": [
        vcrpy_interaction({"model": "m", "messages": []}, json.dumps(CHAT_OK)),
        vcrpy_interaction({"model": "m"}, gz, resp_headers={"Content-Encoding": ["gzip"]}),
        {"request": {"method": "POST", "uri": "https://api.z.ai/api/paas/v4/chat/completions", "headers": {},
                     "parsed_body": {"model": "glm"}},
         "response": {"status": {"code": 200}, "headers": {"content-type": ["application/json"]},
                      "parsed_body": {"b": 1, "a": 2}}},
    ]}
    rec = read_recording("x.yaml", yaml.safe_dump(doc).encode())
    assert rec.format == "vcrpy"
    a, b, c = rec.interactions
    assert a.response_body.form == "string" and json.loads(a.response_body.data) == CHAT_OK
    assert b.response_body.form == "gzip" and json.loads(b.response_body.data) == CHAT_OK
    assert c.response_body.is_parsed and c.response_body.parsed == {"b": 1, "a": 2}


def test_ruby_binary_body_keeps_exact_bytes_including_crlf():
    raw = b'data: {"id":"x","choices":[]}\r\n\r\ndata: {"id":"x"}\r\n\r\n'
    rec = read_recording("c.yml", ruby_doc(raw).encode())
    (it,) = rec.interactions
    assert rec.format == "ruby-vcr" and it.response_body.form == "binary"
    assert it.response_body.data == raw
    assert it.recorded_at == "2026-06-08T18:46:08Z"


def test_yaml_gz_and_httprr(tmp_path: Path):
    doc = vcrpy_doc(vcrpy_interaction({"model": "m"}, CHAT_OK))
    rec = read_recording("c.yaml.gz", gzip.compress(doc.encode()))
    assert rec.compressed and rec.interactions[0].status == 200
    req = (b"POST https://openrouter.ai/api/v1/chat/completions HTTP/1.1\r\nHost: openrouter.ai\r\n"
           b"Content-Length: 2\r\n\r\n{}")
    body = b"data: {}\n\n"
    resp = (b"HTTP/2.0 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    trace = b"httprr trace v1\n" + f"{len(req)} {len(resp)}\n".encode() + req + resp
    (it,) = read_recording("t.httprr", trace).interactions
    assert it.url == "https://openrouter.ai/api/v1/chat/completions" and it.response_body.data == body
    with pytest.raises(RecordingError, match="truncated"):
        read_recording("t.httprr", trace[:-10])


@pytest.mark.parametrize("text, message", [
    (("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"), "YAML bomb"),
    ("a: &a [1, *a]\n", "cyclic"),
    ("interactions:\n- request: {method: POST, uri: 'https://api.groq.com/x', body: 'abc\n", "not valid YAML"),
])
def test_yaml_guard(text: str, message: str):
    with pytest.raises(RecordingError, match=message):
        load_yaml(text)


def test_malformed_non_utf8_and_oversize_recordings():
    with pytest.raises(RecordingError, match="not UTF-8"):
        read_recording("x.yaml", b"interactions: []\n\xff\xfe")
    with pytest.raises(RecordingError, match="needs a 'request' and a 'response'"):
        read_recording("x.yaml", b"interactions:\n- request: {method: POST, uri: 'https://api.x.ai/v1'}\n")
    with pytest.raises(RecordingError, match="not a recording"):
        read_recording("x.yaml", b"just: a mapping\n")
    huge = ("interactions:\n- request: {method: POST, uri: 'https://api.groq.com/openai/v1/chat/completions'}\n"
            "  response:\n    status: {code: 200}\n    body: {string: '" + "x" * (MAX_BODY_BYTES + 1) + "'}\n")
    with pytest.raises(RecordingError, match="over the 8,388,608-byte cap"):
        read_recording("x.yaml", huge.encode())
    bomb = gzip.compress(b"\0" * (MAX_BODY_BYTES + 10))
    with pytest.raises(RecordingError, match="more than"):
        read_recording("x.yaml", vcrpy_doc(vcrpy_interaction({"model": "m"}, bomb,
                                                             resp_headers={"Content-Encoding": ["gzip"]})).encode())


# -- vendors, licences, scrubbing ----------------------------------------------------------------------------

def test_vendor_hosts_and_paths():
    assert vendor_for_url("https://api.groq.com/openai/v1/chat/completions") == "groq"
    assert vendor_for_url("https://api.z.ai/api/paas/v4/chat/completions") == "zai"
    assert vendor_for_url("https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions") == "qwen-cn"
    assert vendor_for_url("http://localhost:11434/v1/chat/completions") is None
    assert relative_path("https://api.groq.com/openai/v1/chat/completions") == "/chat/completions"
    assert relative_path("https://api.deepseek.com/beta/chat/completions") == "/chat/completions"
    assert relative_path("https://api.perplexity.ai/chat/completions") == "/chat/completions"
    body = '{"id":"gen-1754667632-NNYO7FUAFP6cwNW8jL7x","provider":"Novita"}'
    assert sniff_vendor("openai", body)[0] == "openrouter"
    assert sniff_vendor("openai", '{"id":"chatcmpl-1"}') == ("openai", None)


def test_detect_spdx():
    assert detect_spdx(MIT) == "MIT"
    assert detect_spdx(APACHE) == "Apache-2.0"
    assert detect_spdx("Redistribution and use in source and binary forms ... Neither the name of") == "BSD-3-Clause"
    assert detect_spdx("Redistribution and use in source and binary forms, with or without") == "BSD-2-Clause"
    assert detect_spdx(GPL) is None


def test_redact_text_more_key_shapes():
    for key in ("sk-proj-abcdefghijklmnopqrstuvwx", "pplx-abcdefghijklmnopqrstuvwx", "csk-abcdefghijklmnopqrstuvwxyz",
                "user_2w02ZGxKw2KeeHUGGzosck1DmmN", "AIzaSyA-abcdefghijklmnopqrstuvwxyz12"):
        assert key not in redact_text(f"x {key} y")
    assert redact_text("https://h/v1?key=abc123&x=1") == "https://h/v1?key=[REDACTED]&x=1"
    assert redact_text("user_message and a normal sentence") == "user_message and a normal sentence"


# -- the import ---------------------------------------------------------------------------------------------------

PLANTED = ("sk-proj-PLANTEDkey0123456789abcdefXYZ", "gsk_PLANTED0123456789abcdefghij",
           "xai-PLANTED0123456789abcdefghijkl", "pplx-PLANTED0123456789abcdefghij")


def test_planted_keys_never_reach_a_written_file(source_repo, tmp_path: Path):
    k1, k2, k3, k4 = PLANTED
    gz = gzip.compress(json.dumps({**CHAT_OK, "echo": f"your key {k3}"}).encode())
    doc = vcrpy_doc(
        vcrpy_interaction({"model": "m", "messages": [{"role": "user", "content": f"my key is {k1}"}]},
                          {**CHAT_OK, "note": k2},
                          uri=f"https://api.groq.com/openai/v1/chat/completions?key={k4}",
                          req_headers={"Authorization": [f"Bearer {k1}"], "X-Api-Key": [k2],
                                       "X-Custom": [f"token {k3}"], "Cookie": ["session=abcdef123456"]},
                          resp_headers={"Content-Type": ["application/json"], "Set-Cookie": ["__cf_bm=secret123"],
                                        "openai-organization": ["org-PLANTEDorg0123456789abc"]}),
        vcrpy_interaction({"model": "m"}, gz, resp_headers={"Content-Encoding": ["gzip"]}),
    )
    p1 = source_repo.add("cassettes/keys.yaml", doc)
    p2 = source_repo.add("cassettes/binary.yml", ruby_doc(f'data: {{"k":"{k4}"}}\r\n\r\n'.encode()))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p1, p2], sha, out) == 0
    files = written(out)
    assert files
    for f in files:
        raw = f.read_bytes()
        texts = [raw.decode("utf-8", "replace")]
        texts += [base64.b64decode(m).decode("latin-1") for m in re.findall(rb"body_base64: (\S+)", raw)]
        for text in texts:
            for key in (*PLANTED, "secret123", "abcdef123456", "org-PLANTEDorg"):
                assert key not in text, f"{key} found in {f}"
    prov = yaml.safe_load((out / "groq" / "someone-project" / "PROVENANCE.yaml").read_text())
    scrubbed = " ".join(prov["files"][0]["scrubbed"])
    assert "Authorization" in scrubbed and "key-like string in request body" in scrubbed


def test_import_writes_data_provenance_and_licence(source_repo, tmp_path: Path):
    raw = b'data: {"id":"a","object":"chat.completion.chunk","choices":[]}\r\n\r\n'
    p = source_repo.add("spec/c.yml", ruby_doc(raw))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out, "--recorded-at", "2026-06-01") == 0
    folder = out / "perplexity" / "someone-project"
    assert sorted(f.name for f in folder.iterdir()) == ["LICENSE.someone-project", "PROVENANCE.yaml", "c.yaml"]
    assert (folder / "LICENSE.someone-project").read_text() == MIT
    prov = yaml.safe_load((folder / "PROVENANCE.yaml").read_text())
    assert prov["repository"] == "someone/project" and prov["license"] == "MIT"
    entry = prov["files"][0]
    assert entry["commit"] == sha and entry["path"] == "spec/c.yml" and entry["recorded_at"] == "2026-06-08T18:46:08Z"
    data = yaml.safe_load((folder / "c.yaml").read_text())
    stored = data["interactions"][0]
    assert stored["framing"] == "joined" and body_bytes(stored["response"]) == raw   # bytes exactly
    assert not [f for f in folder.iterdir() if f.name.endswith(".tmp")]
    assert oct(folder.joinpath("c.yaml").stat().st_mode & 0o777) == "0o644"


def test_bad_file_reported_others_imported_nothing_half_written(source_repo, tmp_path: Path, capsys):
    good = source_repo.add("a/good.yaml", vcrpy_doc(vcrpy_interaction({"model": "m"}, CHAT_OK)))
    bad = source_repo.add("a/bad.yaml", "interactions:\n- request: {method: POST, uri: 'https://api.groq.com/x'\n")
    bomb = source_repo.add("a/bomb.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([good, bad, bomb], sha, out) == 1
    err = capsys.readouterr().err
    assert "error a/bad.yaml: not valid YAML" in err and "error a/bomb.yaml" in err and "YAML bomb" in err
    names = [f.name for f in written(out)]
    assert "good.yaml" in names and "bad.yaml" not in names and "bomb.yaml" not in names
    assert not [n for n in names if n.endswith(".tmp")]


def test_licence_is_verified_at_the_commit(source_repo, tmp_path: Path, capsys):
    p = source_repo.add("c.yaml", vcrpy_doc(vcrpy_interaction({"model": "m"}, CHAT_OK)))
    source_repo.add("LICENSE", GPL)
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 2
    assert "nothing imported" in capsys.readouterr().err
    assert run_import([p], sha, out, license="GPL-3.0") == 2
    assert not out.exists()


def test_licence_mismatch_and_edited_file(source_repo, tmp_path: Path, capsys):
    p = source_repo.add("c.yaml", vcrpy_doc(vcrpy_interaction({"model": "m"}, CHAT_OK)))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out, license="Apache-2.0") == 2
    assert "reads as MIT, not Apache-2.0" in capsys.readouterr().err
    p.write_text(vcrpy_doc(vcrpy_interaction({"model": "m"}, {**CHAT_OK, "id": "edited"})))
    assert run_import([p], sha, out) == 1
    assert "differs from" in capsys.readouterr().err
    assert not out.exists()


def test_duplicate_source_files_are_imported_once(source_repo, tmp_path: Path, capsys):
    doc = vcrpy_doc(vcrpy_interaction({"model": "m"}, CHAT_OK))
    a, b = source_repo.add("x/a.yaml", doc), source_repo.add("x/b.yaml", doc)
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([a, b], sha, out) == 0
    assert "byte-identical" in capsys.readouterr().out
    assert [f.name for f in written(out) if f.name.endswith(".yaml") and f.name != "PROVENANCE.yaml"] == ["a.yaml"]


def test_placeholder_bodies_are_excluded_and_parsed_bodies_marked_reserialised(source_repo, tmp_path: Path):
    parsed = {"interactions": [{
        "request": {"method": "POST", "uri": "https://api.cerebras.ai/v1/chat/completions", "headers": {},
                    "parsed_body": {"model": "llama", "messages": [{"role": "user", "content": "hi"}]}},
        "response": {"status": {"code": 200}, "headers": {"content-type": ["application/json"]},
                     "parsed_body": CHAT_OK}}]}
    p1 = source_repo.add("tests/cassettes/p.yaml", yaml.safe_dump(parsed))
    p2 = source_repo.add("spec/massive.yml", ruby_doc(b'{"error":{"message":"too long"}}', status=400,
                                                      req='{"model":"sonar","messages":[{"role":"user",'
                                                          '"content":"<MASSIVE_TEXT>"}]}',
                                                      content_type="application/json"))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p1], sha, out, repo="pydantic/pydantic-ai") == 0
    assert run_import([p2], sha, out, repo="crmne/ruby_llm") == 0
    corpus = ev.load_corpus(out)
    assert not corpus.problems
    by_vendor = {i.vendor: i for i in corpus.items}
    parsed_item, massive = by_vendor["cerebras"], by_vendor["perplexity"]
    # a parsed body keeps its JSON meaning: not excluded, but marked re-serialised (no byte-level check reads it)
    assert parsed_item.excluded is None and "parsed_body" in (parsed_item.body_reserialised or "")
    assert parsed_item.exchange is not None and parsed_item.exchange.json == CHAT_OK
    assert parsed_item.exchange.meta["body_view"].startswith("compact JSON")
    assert massive.excluded and "<MASSIVE_TEXT>" in massive.excluded
    run = ev.run_evidence(None, out, vendors=["perplexity"], checks=["chat.object", "chat.status"])
    assert {r["outcome"] for r in run.records} == {"not-applicable"}
    assert all("excluded" in r["message"] for r in run.records)


# -- evidence: applicability ------------------------------------------------------------------------------------

def _item(body: Any, req: dict[str, Any], *, status: int = 200, ctype: str = "application/json",
          profile: str = "crmne/ruby_llm", headers: tuple[tuple[str, str], ...] = (), vendor: str = "groq") -> StoredInteraction:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ex = Exchange(request=Request("POST", "https://h/v1/chat/completions", "/chat/completions", (),
                                  json.dumps(req).encode()),
                  status=status, headers=(("content-type", ctype), *headers), chunks=(Chunk(0.0, raw),),
                  source="imported", framing="joined",
                  meta={"source_repo": profile, "source_commit": "abc", "source_path": "p", "license": "MIT",
                        "provenance": "p", "imported_file": "f#0", "recorded_at": None})
    return StoredInteraction(vendor, Path("fixtures/imported/x/y/f.yaml"), 0, ex, None, profile_for(profile),
                             req.get("model", "m"))


BASIC = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
STREAM = {**BASIC, "stream": True}


@pytest.fixture
def probes(monkeypatch):
    """Test probes: a basic chat, a stream, a tools request, a stop request, a wrong-key request."""
    def add(name: str, build) -> None:
        monkeypatch.setitem(PROBES, name, Probe(name, build))
    add("chat.basic", lambda ctx: RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}],
                                                            max_tokens=16, temperature=0)))
    add("t.stream", lambda ctx: RequestSpec(json=ctx.chat([{"role": "user", "content": "Say hello."}], stream=True)))
    add("t.usage", lambda ctx: RequestSpec(json=ctx.chat([{"role": "user", "content": "x"}], stream=True,
                                                         stream_options={"include_usage": True})))
    add("t.tools", lambda ctx: RequestSpec(json=ctx.chat([{"role": "user", "content": "x"}],
                                                         tools=[{"type": "function", "function": {"name": "f"}}])))
    add("t.stop", lambda ctx: RequestSpec(json=ctx.chat([{"role": "user", "content": "x"}], subject=("stop",),
                                                        stop=["e"])))
    add("t.wrong-key", lambda ctx: RequestSpec(json=ctx.chat([{"role": "user", "content": "x"}]), auth="wrong"))
    return PROBES


def spy_check(probes_: tuple[str, ...] = ("chat.basic",), *, applies=None, framing: bool = False,
              kind: str = "protocol", quirk: str | None = None, reads: str | None = None,
              declares: tuple[str, ...] = ()):
    calls: list[Exchange] = []

    def fn(*exs: Exchange) -> None:
        calls.extend(exs)
        if reads:
            exs[0].header(reads)
        if quirk:
            raise QuirkFound(quirk, "found", exs[0])

    quirks = ((quirk,) if quirk else ()) + declares
    spec = CheckSpec(id="t.spy", area="t", rule="R-1", title="spy", probes=probes_, quirks=quirks,
                     kind=kind, needs=(), applies=applies, framing=framing, func=fn)  # type: ignore[arg-type]
    return spec, calls


def outcome(spec: CheckSpec, item: StoredInteraction, provider=None):
    provider = provider or ev.stub_provider(item.vendor, "m")
    return ev.evaluate(spec, item, provider, ev.probe_shape(spec, provider, provider.model))


CHAT_CALL = {**CHAT_OK, "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
    "role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                          "function": {"name": "f", "arguments": "{}"}}]}}]}
TOOLS = [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize("probes_, req, status, why", [
    (("chat.basic", "t.stream"), BASIC, 200, "declares no requires="),
    (("t.stream",), BASIC, 200, "stream: needs True, the exchange has False"),
    (("chat.basic",), STREAM, 200, "stream: needs False, the exchange has True"),
    (("t.usage",), STREAM, 200, "include_usage: needs True, the exchange has False"),
    (("t.tools",), BASIC, 200, "tools: needs True, the exchange has False"),
    (("t.tools",), {**BASIC, "tools": TOOLS, "tool_choice": "required"}, 200,
     "tool_choice: needs 'auto', the exchange has 'required'"),
    (("chat.basic",), {**BASIC, "n": 2}, 200, "n: needs 1, the exchange has 2"),
    (("chat.basic",), {**BASIC, "logprobs": True}, 200, "logprobs: needs False"),
    (("t.stop",), BASIC, 200, 'stop: needs ["e"], the exchange sends null'),
    (("chat.basic",), {**BASIC, "reasoning_effort": "high"}, 200, "also sends reasoning_effort"),
    (("chat.basic",), BASIC, 401, "credentials"),
    (("t.wrong-key",), BASIC, 200, "credentials"),
    (("chat.basic",), BASIC, 429, "transient HTTP 429"),
])
def test_a_check_never_runs_on_a_request_that_does_not_meet_its_preconditions(probes, probes_, req, status, why):
    spec, calls = spy_check(probes_, quirk="t.q")
    result = outcome(spec, _item(CHAT_OK, req, status=status))
    assert result.name == "not-applicable" and why in result.message
    assert calls == []


def test_a_pair_check_never_runs_on_one_exchange_and_reply_features_count(probes):
    def pair(a: Exchange, b: Exchange) -> None:
        raise AssertionError("never called")
    spec = CheckSpec(id="t.pair", area="t", rule="R-1", title="pair", probes=("chat.basic", "t.stream"), quirks=(),
                     kind="protocol", needs=(), applies=None, framing=False, func=pair)
    assert "compares 2 exchanges" in outcome(spec, _item(CHAT_OK, BASIC)).message
    spy, calls = spy_check()
    result = outcome(spy, _item(CHAT_CALL, {**BASIC, "tools": TOOLS}))
    assert result.name == "not-applicable" and "tool_calls: needs False, the exchange has True" in result.message
    assert outcome(spy, _item(CHAT_OK, {**BASIC, "tools": TOOLS})).name == "pass" and calls


def test_declared_requires_are_the_authority(probes):
    """A check that declares what it needs runs on any exchange that has it, whatever its probe sent."""
    spec, calls = spy_check(("t.tools",), quirk="t.q")
    spec = replace(spec, requires=Requires(stream=False, tool_calls=True, status="2xx"))
    forced = {**BASIC, "tools": TOOLS, "tool_choice": "required", "reasoning_effort": "high", "n": 1}
    assert outcome(spec, _item(CHAT_CALL, forced)).name == "unexpected-quirk" and calls
    result = outcome(spec, _item(CHAT_OK, {**BASIC, "tools": TOOLS}))
    assert result.name == "not-applicable" and "(its requires=)" in result.message
    assert "tool_calls: needs True, the exchange has False" in result.message


def test_matching_requests_run_and_outcomes_follow_providers_yaml(probes):
    spec, calls = spy_check(quirk="t.q")
    item = _item(CHAT_OK, {**BASIC, "temperature": 0.7, "max_tokens": 100, "stream": False})
    assert outcome(spec, item).name == "unexpected-quirk" and len(calls) == 1
    declared = replace(ev.stub_provider("groq", "m"),
                       expectations={"t.q": Expectation("t.q", "known", "https://example.invalid")})
    assert outcome(spec, item, declared).name == "expected-quirk"
    spec_ok, _ = spy_check(declares=("t.q",))
    assert outcome(spec_ok, item, declared).name == "stale-expectation"
    wrong, calls = spy_check(("t.wrong-key",))
    assert outcome(wrong, _item({"error": {"message": "bad key"}}, BASIC, status=401)).name == "pass"


def test_applies_predicate_and_framing(probes):
    spec, calls = spy_check(("t.stream",), applies=lambda r: r.stream, framing=True)
    result = outcome(spec, _item(b"data: {}\n\n", STREAM, ctype="text/event-stream"))
    assert result.name == "not-applicable" and "framing joined" in result.message and not calls
    spec, calls = spy_check(("chat.basic",), applies=lambda r: False)
    assert outcome(spec, _item(CHAT_OK, BASIC)).name == "not-applicable" and not calls
    # a check that declares applies() settles include_usage itself: a usage stream stands for a plain one
    spec, calls = spy_check(("t.stream",), applies=lambda r: r.stream)
    usage = {**STREAM, "stream_options": {"include_usage": True}}
    assert outcome(spec, _item(b"data: {}\n\n", usage, ctype="text/event-stream")).name == "pass" and calls


def test_capability_checks_need_the_probes_prompt(probes):
    spec, calls = spy_check(kind="capability")
    assert outcome(spec, _item(CHAT_OK, BASIC)).name == "not-applicable" and not calls
    same = {"model": "m", "messages": [{"role": "user", "content": "Say hello."}]}
    assert outcome(spec, _item(CHAT_OK, same)).name == "pass"


def test_headers_the_recorder_dropped_make_a_check_not_applicable(probes):
    spec, _ = spy_check(reads="x-ratelimit-limit-requests", quirk="t.q")
    assert outcome(spec, _item(CHAT_OK, BASIC, profile="pydantic/pydantic-ai")).name == "not-applicable"
    assert outcome(spec, _item(CHAT_OK, BASIC, profile="crmne/ruby_llm")).name == "unexpected-quirk"
    spec, _ = spy_check(reads="content-type", quirk="t.q")
    assert outcome(spec, _item(CHAT_OK, BASIC, profile="pydantic/pydantic-ai")).name == "unexpected-quirk"
    spec, _ = spy_check(reads="set-cookie")
    assert outcome(spec, _item(CHAT_OK, BASIC, profile="crmne/ruby_llm")).name == "not-applicable"


def test_records_are_third_party_with_provenance_and_aggregate_not_applicable(source_repo, tmp_path: Path):
    ok = vcrpy_interaction(BASIC, CHAT_OK)
    p = source_repo.add("c.yaml", vcrpy_doc(ok, vcrpy_interaction(BASIC, {**CHAT_OK, "object": "chat.thing"})))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 0
    run = ev.run_evidence(None, out, checks=["chat.object", "stream.done"])
    objects = [r for r in run.records if r["check"] == "chat.object"]
    assert sorted(r["outcome"] for r in objects) == ["pass", "unexpected-quirk"]
    e = objects[0]["evidence"][0]
    assert e["level"] == "third-party" and e["source_repo"] == "someone/project" and e["source_commit"] == sha
    assert e["license"] == "MIT" and e["imported_file"].endswith("c.yaml#0") and "provenance" in e
    assert all("timing" not in r for r in run.records)
    (done,) = [r for r in run.records if r["check"] == "stream.done"]
    assert done["outcome"] == "not-applicable" and "not applicable to 2 of 2 imported exchange(s)" in done["message"]
    assert sorted(done["lines"]) == [f"exchange groq/someone-project/c.yaml#{i}" for i in (0, 1)]


def test_evidence_main_writes_a_valid_results_file(source_repo, tmp_path: Path, capsys):
    p = source_repo.add("c.yaml", vcrpy_doc(vcrpy_interaction(BASIC, {**CHAT_OK, "object": "x"})))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 0
    results = tmp_path / "r.json"
    assert icli.evidence_main(["--imported-dir", str(out), "-o", str(results), "--check", "chat.object"]) == 0
    doc = json.loads(results.read_text())
    assert doc["mode"] == "imported" and doc["records"][0]["outcome"] == "unexpected-quirk"
    assert "groq: 1 exchange(s)" in capsys.readouterr().out


def test_a_data_file_without_licence_or_provenance_is_not_evidence(source_repo, tmp_path: Path):
    p = source_repo.add("c.yaml", vcrpy_doc(vcrpy_interaction(BASIC, CHAT_OK)))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 0
    (out / "groq" / "someone-project" / "LICENSE.someone-project").unlink()
    corpus = ev.load_corpus(out)
    assert not corpus.items and "licence notice" in corpus.problems[0]


def _cfg(tmp_path: Path, expectations: dict[str, Expectation]) -> ProvidersConfig:
    return ProvidersConfig(tmp_path / "providers.yaml", {
        "groq": replace(ev.stub_provider("groq", "m"), expectations=expectations)})


def _record(outcome_: str, quirk: str, provider: str = "groq") -> dict[str, Any]:
    return {"provider": provider, "check": "chat.object", "outcome": outcome_, "quirks": [quirk],
            "message": f"[{quirk}] detail — not declared", "test": "t",
            "evidence": [{"level": "third-party", "imported_file": "f.yaml#0", "source_repo": "a/b",
                          "source_commit": "0123456789abcdef"}]}


def test_validate_evidence(tmp_path: Path):
    cfg = _cfg(tmp_path, {"chat.object-wrong": Expectation("chat.object-wrong", "r", "s")})
    problems = icli.validate_evidence(cfg, [_record("unexpected-quirk", "chat.id-missing"),
                                            _record("stale-expectation", "chat.object-wrong"),
                                            _record("pass", "x", provider="mistral")])
    assert any("does not declare 'chat.id-missing'" in p for p in problems)
    assert any("declares 'chat.object-wrong', but imported traffic contradicts it" in p for p in problems)
    assert any("'mistral'" in p and "no such provider" in p for p in problems)
    # shown on one exchange, passed on another: model or request dependent, not a contradiction
    problems = icli.validate_evidence(cfg, [_record("expected-quirk", "chat.object-wrong"),
                                            _record("stale-expectation", "chat.object-wrong")])
    assert problems == []
    live = {**_record("unexpected-quirk", "chat.id-missing"), "evidence": [{"level": "live"}]}
    assert icli.validate_evidence(cfg, [live]) == []


# -- the committed data ---------------------------------------------------------------------------------------

KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_-]{20,}|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|pplx-[A-Za-z0-9]{20,}"
                     r"|AIza[0-9A-Za-z_-]{30,}|Bearer (?!<|test-api-key|\[)[A-Za-z0-9._-]{12,})")


@pytest.mark.skipif(not IMPORTED.is_dir(), reason="no fixtures/imported in this checkout")
def test_committed_imports_are_complete_licensed_and_scrubbed():
    corpus = ev.load_corpus(IMPORTED)
    assert not corpus.problems, corpus.problems[:3]
    usable = {i.vendor for i in corpus.items if not i.excluded}
    assert len(usable & {"openrouter", "mistral", "groq", "deepseek", "xai", "perplexity", "cerebras", "zai",
                         "together", "gemini", "anthropic"}) >= 8
    for prov_path in IMPORTED.glob("*/*/PROVENANCE.yaml"):
        prov = yaml.safe_load(prov_path.read_text())
        assert prov["license"] in ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause")
        assert (prov_path.parent / prov["license_file"]).is_file()
        assert prov["repository"].lower() in PROFILES, "every committed source has a known recorder profile"
        for f in prov["files"]:
            assert re.fullmatch(r"[0-9a-f]{40}", f["commit"]) and (prov_path.parent / f["stored_as"]).is_file()
    for path in IMPORTED.rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not KEYLIKE.search(text), f"{path}: {KEYLIKE.search(text).group(0)[:12]}…"


@pytest.mark.skipif(not IMPORTED.is_dir(), reason="no fixtures/imported in this checkout")
def test_committed_stored_bytes_round_trip():
    for path in sorted(IMPORTED.glob("*/*/*.yaml"))[:40]:
        if path.name == "PROVENANCE.yaml":
            continue
        doc = load_yaml(path.read_text(encoding="utf-8"))
        for inter in doc["interactions"]:
            for part in ("request", "response"):
                data = body_bytes(inter[part])
                assert data is not None or "body_parsed" in inter[part]


def test_exchange_view_drops_stale_encoding_headers_and_distrusts_placeholders(source_repo, tmp_path: Path):
    gz = gzip.compress(json.dumps(CHAT_OK).encode())
    p = source_repo.add("c.yaml", vcrpy_doc(vcrpy_interaction(
        BASIC, gz, resp_headers={"Content-Type": ["application/json"], "Content-Encoding": ["gzip"],
                                 "Content-Length": [str(len(gz))], "X-Region": ["<AWS_REGION>"]})))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out, repo="crmne/ruby_llm") == 0
    (item,) = ev.load_corpus(out).items
    assert item.exchange is not None and item.exchange.json == CHAT_OK
    assert item.exchange.header("content-encoding") is None and item.exchange.header("content-length") is None
    assert item.exchange.meta["untrusted_headers"] == ["content-encoding", "content-length", "x-region"]
    stored = yaml.safe_load(next(out.rglob("c.yaml")).read_text())["interactions"][0]["response"]["headers"]
    assert ["Content-Encoding", "gzip"] in stored          # the stored file keeps what the source holds


def test_every_exchange_gets_a_decision_from_every_check(source_repo, tmp_path: Path):
    """Issue 16: no silent drop. Each (exchange, check) pair is in a record of its own or named in the lines
    of a grouped "not-applicable" / "unsupported" record."""
    tools_req = {**BASIC, "stream": True, "tools": TOOLS, "tool_choice": "required"}
    stream_body = ('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
                   '"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":'
                   '"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}]}\n\n'
                   'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
                   '"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n')
    p = source_repo.add("c.yaml", vcrpy_doc(
        vcrpy_interaction(BASIC, CHAT_OK),
        vcrpy_interaction(tools_req, stream_body, resp_headers={"Content-Type": ["text/event-stream"]}),
        vcrpy_interaction(BASIC, {"code": 400, "message": "bad"}, status=400)))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 0
    run = ev.run_evidence(None, out)
    every = {f"groq/someone-project/c.yaml#{i}" for i in range(3)}
    covered: dict[str, set[str]] = {}
    for r in run.records:
        got = covered.setdefault(r["check"], set())
        got.update("/".join(e["imported_file"].split("/")[-3:]) for e in r["evidence"] if e.get("imported_file"))
        got.update("/".join(line.removeprefix("exchange ").split("/")[-3:]) for line in r["lines"]
                   if line.startswith("exchange "))
    assert set(covered) == set(ev._registered_checks())
    assert all(got >= every for got in covered.values()), {c: every - g for c, g in covered.items() if not g >= every}
    judged = {r["check"] for r in run.records if r["outcome"] not in ("not-applicable", "unsupported")
              and any(e.get("imported_file", "").endswith("#1") for e in r["evidence"])}
    # the streamed tool-call exchange is judged by the single-exchange forms of the tool-call rules
    assert {"tools.delta-index", "tools.finish-reason", "tools.delta-first-complete"} <= judged
    flat = [r for r in run.records if r["check"] == "errors.envelope" and r["outcome"] == "unexpected-quirk"]
    assert flat and flat[0]["quirks"] == ["errors.non-openai-shape"]


# -- recorder profiles as data (fixtures/imported/recorders.yaml) --------------------------------------------------

def test_recorder_table_loads_and_every_entry_cites_its_source():
    table = load_table()
    assert {"pydantic/pydantic-ai", "crmne/ruby_llm", "traceloop/openllmetry", "simonw/llm", "tmc/langchaingo",
            "mirascope/mirascope", "crewaiinc/crewai", "langchain-ai/langchain", "prism-php/prism",
            "vercel/ai"} <= set(table)
    for profile in table.values():
        assert profile.sources and profile.changes and profile.known


_GOOD_ENTRY = {"repo": "a/b", "recorder": "vcrpy", "config": "conftest.py", "sources": ["conftest.py@0123456789ab"],
               "format": "vcrpy", "changes": ["nothing"]}


@pytest.mark.parametrize("change, message", [
    ({"sources": []}, "'sources' must name at least one"),
    ({"sources": ["conftest.py"]}, "neither an https URL nor path@commit"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"format": "har"}, "'format' is 'har'"),
    ({"placeholder_pattern": "(("}, "placeholder_pattern is not a regex"),
    ({"drops_status_at_least": 1000}, "drops_status_at_least must be an HTTP status"),
    ({"paths": [{"pattern": "*.yaml"}]}, "says nothing"),
    ({"paths": [{"pattern": "*.txt", "framing": "lines"}]}, "'framing' is 'lines'"),
    ({"repo": "not a repo"}, "is not owner/name"),
])
def test_recorder_table_is_validated_on_load(change: dict[str, Any], message: str):
    entry = {**_GOOD_ENTRY, **change}
    with pytest.raises(RecorderTableError, match=re.escape(message)):
        parse_table(yaml.safe_dump({"version": 1, "recorders": [entry]}), "t.yaml")
    with pytest.raises(RecorderTableError, match="listed twice"):
        parse_table(yaml.safe_dump({"version": 1, "recorders": [_GOOD_ENTRY, _GOOD_ENTRY]}), "t.yaml")
    assert parse_table(yaml.safe_dump({"version": 1, "recorders": [_GOOD_ENTRY]}))["a/b"].sources


def test_a_malformed_recorder_table_stops_the_import(source_repo, tmp_path: Path, capsys, monkeypatch):
    p = source_repo.add("c.yaml", vcrpy_doc(vcrpy_interaction(BASIC, CHAT_OK)))
    sha = source_repo.commit()
    bad = tmp_path / "recorders.yaml"
    bad.write_text("version: 1\nrecorders:\n- repo: a/b\n")
    monkeypatch.setattr(icli, "load_table", lambda: load_table(bad))
    assert run_import([p], sha, tmp_path / "out") == 2
    assert "missing recorder, config, sources, format, changes" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("repo, header, trusted", [
    ("pydantic/pydantic-ai", "x-ratelimit-remaining-requests", False),
    ("pydantic/pydantic-ai", "content-type", True),
    ("crmne/ruby_llm", "set-cookie", False),
    ("crmne/ruby_llm", "x-ppl-region", True),
    ("traceloop/openllmetry", "x-ratelimit-remaining-requests", True),
    ("simonw/llm", "openai-processing-ms", True),
    ("tmc/langchaingo", "cf-ray", False),
    ("tmc/langchaingo", "openai-organization", False),
    ("Mirascope/mirascope", "x-ratelimit-requests", True),
    ("crewAIInc/crewAI", "content-type", False),
    ("langchain-ai/langchain", "content-type", False),
    ("prism-php/prism", "content-type", True),
    ("vercel/ai", "content-type", True),
    ("somebody/unknown", "content-type", True),
])
def test_each_recorder_profile_says_which_headers_survive(repo: str, header: str, trusted: bool):
    profile = profile_for(repo)
    assert profile.header_trustworthy(header) is trusted
    assert profile.known is (repo != "somebody/unknown")


@pytest.mark.parametrize("repo, path, kind, words", [
    ("prism-php/prism", "tests/Fixtures/groq/stream-with-tools-1.sse", "synthetic", "chatcmpl-987654321"),
    ("prism-php/prism", "tests/Fixtures/z/generate-text-with-multiple-tools-1.json", "body_edited", "z-model"),
    ("prism-php/prism", "tests/Fixtures/deepseek/stream-basic-text-1.sse", None, ""),
    ("vercel/ai", "packages/moonshotai/src/__fixtures__/moonshotai-text.json", "synthetic", "kimi-k3"),
    ("vercel/ai", "packages/alibaba/src/__fixtures__/alibaba-text.chunks.txt", "framing", "data-lines-only"),
    ("vercel/ai", "packages/alibaba/src/__fixtures__/alibaba-text.json", "body_reserialised", "pretty-printed"),
    ("simonw/llm", "tests/cassettes/test_tools_streaming/test_tools_streaming_variant_a.yaml", "host_rewritten",
     "OpenRouter"),
    ("traceloop/openllmetry", "packages/opentelemetry-instrumentation-groq/tests/x.yaml", "gzip", "kept"),
])
def test_profile_path_rules(repo: str, path: str, kind: str | None, words: str):
    rule = profile_for(repo).rule_for(path)
    if kind is None:
        assert rule is None
    else:
        assert rule is not None and words in str(getattr(rule, kind))


def test_crewai_profile_records_that_errors_were_never_recorded():
    assert profile_for("crewAIInc/crewAI").drops_status_at_least == 400
    assert profile_for("pydantic/pydantic-ai").bodies == "parsed-json"


# -- bodies the recorder edited: Content-Length, profile rules ------------------------------------------------------

MODELS_LIST = {"object": "list", "data": [{"id": "openai/gpt-4o", "object": "model", "owned_by": "openai"}]}


def test_a_body_shorter_than_its_content_length_is_kept_but_marked_edited(source_repo, tmp_path: Path):
    body = json.dumps(MODELS_LIST)
    inter = vcrpy_interaction("", body, uri="https://openrouter.ai/api/v1/models",
                              resp_headers={"Content-Type": ["application/json"], "Content-Length": ["417177"]})
    inter["request"]["method"] = "GET"
    p = source_repo.add("cassettes/models.yaml", vcrpy_doc(inter))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 0
    stored = yaml.safe_load(next(out.rglob("models.yaml")).read_text())["interactions"][0]
    assert stored["body_edited"] == f"content-length says 417177 bytes, stored body is {len(body)}"
    assert body_bytes(stored["response"]) == body.encode()        # kept as provenance, unedited
    (item,) = ev.load_corpus(out).items
    assert item.body_edited == stored["body_edited"] and item.excluded and "body edited" in item.excluded
    assert item.model == NO_MODEL                                 # a /models call names no model
    prov = yaml.safe_load(next(out.rglob("PROVENANCE.yaml")).read_text())
    assert "417177" in prov["files"][0]["body_edited"][0]
    run = ev.run_evidence(None, out, checks=["chat.object"])
    assert all("body edited by the recorder (content-length says 417177" in r["message"] for r in run.records)
    assert {r["model"] for r in run.records} <= {NO_MODEL, "(imported)"}


def test_content_length_is_compared_with_the_bytes_the_source_holds(source_repo, tmp_path: Path):
    raw = json.dumps(CHAT_OK).encode()
    gz = gzip.compress(raw)
    ok_gzip = vcrpy_interaction(BASIC, gz, resp_headers={"Content-Encoding": ["gzip"],
                                                         "Content-Length": [str(len(gz))]})
    # the recorder decoded the body but kept the gzip Content-Length: smaller than the body, not an edit
    decoded_kept_header = vcrpy_interaction(BASIC, raw.decode(), resp_headers={"Content-Encoding": ["gzip"],
                                                                               "Content-Length": [str(len(gz))]})
    # … but a decoded body far too short for the compressed length it claims is an edit
    trimmed = vcrpy_interaction(BASIC, raw.decode(), resp_headers={"Content-Encoding": ["gzip"],
                                                                   "Content-Length": ["400000"]})
    secret = "sk-" + "A" * 40
    scrubbed = vcrpy_interaction(BASIC, json.dumps({**CHAT_OK, "id": secret}),
                                 resp_headers={"Content-Length": [str(len(json.dumps({**CHAT_OK, "id": secret})))]})
    p = source_repo.add("c.yaml", vcrpy_doc(ok_gzip, decoded_kept_header, trimmed, scrubbed))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([p], sha, out) == 0
    stored = yaml.safe_load(next(out.rglob("c.yaml")).read_text())["interactions"]
    assert [bool(i["body_edited"]) for i in stored] == [False, False, True, False]
    assert "no gzip of it is that long" in stored[2]["body_edited"]
    assert secret not in next(out.rglob("c.yaml")).read_text()     # scrubbing never reads as an edit


def test_the_model_comes_from_the_request_or_the_response_never_the_provider_default():
    assert model_of(b'{"model":"asked"}', json.dumps({**CHAT_OK, "model": "answered"}).encode()) == "asked"
    assert model_of(b"", json.dumps({**CHAT_OK, "model": "answered"}).encode()) == "answered"
    assert model_of(b"", b'data: {"model":"streamed","choices":[]}\n\ndata: [DONE]\n\n') == "streamed"
    assert model_of(b"", b'{"model":"line","choices":[]}\n{"model":"line"}\n', "data-lines-only") == "line"
    assert model_of(b"", json.dumps(MODELS_LIST).encode()) == NO_MODEL
    assert model_of(b'{"messages":[]}', b"not json") == NO_MODEL


# -- body-only formats: prism-php/prism *.json / *.sse, vercel/ai *.chunks.txt / *.json ---------------------------

SSE_BODY = (b'data: {"id":"x1","object":"chat.completion.chunk","created":1752805596,"model":"deepseek-chat",'
            b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'
            b'data: {"id":"x1","object":"chat.completion.chunk","created":1752805596,"model":"deepseek-chat",'
            b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
CHUNK_LINES = (b'{"id":"q1","object":"chat.completion.chunk","created":1770764938,"model":"qwen3-max",'
               b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n'
               b'{"id":"q1","object":"chat.completion.chunk","created":1770764938,"model":"qwen3-max",'
               b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n')


def test_prism_json_and_sse_bodies_import_as_body_only_exchanges(source_repo, tmp_path: Path):
    j = source_repo.add("tests/Fixtures/deepseek/generate-text-1.json", json.dumps(CHAT_OK, indent=2))
    s = source_repo.add("tests/Fixtures/deepseek/stream-basic-text-1.sse", SSE_BODY)
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([j, s], sha, out, "--vendor", "deepseek", repo="prism-php/prism") == 0
    docs = {p.name: yaml.safe_load(p.read_text()) for p in out.rglob("*.yaml") if p.name != "PROVENANCE.yaml"}
    sse = docs["stream-basic-text-1.sse.yaml"]
    assert sse["source"]["format"] == "sse-body"
    inter = sse["interactions"][0]
    assert inter["lacks"] == ["request", "request-headers", "status", "response-headers"]
    assert inter["request"] == {"method": None, "url": None, "path": "/chat/completions", "headers": [],
                                "body_form": "unknown"}
    assert inter["response"]["status"] is None and inter["status_assumed"]["status"] == 200
    assert body_bytes(inter["response"]) == SSE_BODY                   # the file's bytes, unedited
    items = {i.file.name: i for i in ev.load_corpus(out).items}
    item = items["stream-basic-text-1.sse.yaml"]
    assert not item.request_known and not item.status_known and item.model == "deepseek-chat"
    assert item.exchange is not None and item.exchange.body == SSE_BODY and item.exchange.headers == ()
    assert "HTTP 200" in item.exchange.meta["status_assumed"]
    assert items["generate-text-1.yaml"].exchange.json == CHAT_OK


def test_vercel_chunk_lines_keep_their_bytes_and_show_an_sse_view(source_repo, tmp_path: Path):
    c = source_repo.add("packages/alibaba/src/__fixtures__/alibaba-text.chunks.txt", CHUNK_LINES)
    j = source_repo.add("packages/alibaba/src/__fixtures__/alibaba-text.json", json.dumps(CHAT_OK, indent=2))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([c, j], sha, out, "--vendor", "qwen", repo="vercel/ai") == 0
    stored = yaml.safe_load(next(out.rglob("alibaba-text.chunks.txt.yaml")).read_text())["interactions"][0]
    assert stored["framing"] == "data-lines-only" and "sse-envelope" in stored["lacks"]
    assert body_bytes(stored["response"]) == CHUNK_LINES
    items = {i.file.name: i for i in ev.load_corpus(out).items}
    chunks = items["alibaba-text.chunks.txt.yaml"]
    assert chunks.framing == "data-lines-only" and chunks.body_reserialised and "SSE view" in \
        chunks.exchange.meta["body_view"]
    events = [e for e in chunks.exchange.sse.events if e.data != "[DONE]"]
    assert [json.loads(e.data)["choices"][0]["finish_reason"] for e in events] == [None, "stop"]
    assert b"[DONE]" not in chunks.exchange.body                      # nothing the source lacks is invented
    assert "pretty-printed" in (items["alibaba-text.yaml"].body_reserialised or "")


def test_profile_rules_refuse_synthetic_files_and_mark_edited_ones(source_repo, tmp_path: Path, capsys):
    synthetic = source_repo.add("tests/Fixtures/groq/stream-with-tools-1.sse", SSE_BODY)
    edited = source_repo.add("tests/Fixtures/z/generate-text-with-multiple-tools-1.json", json.dumps(CHAT_OK))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([synthetic, edited], sha, out, "--vendor", "zai", repo="prism-php/prism") == 1
    err = capsys.readouterr().err
    assert "error tests/Fixtures/groq/stream-with-tools-1.sse: the recorder profile of prism-php/prism marks " \
           "this file synthetic" in err
    (item,) = ev.load_corpus(out).items
    assert "z-model" in (item.body_edited or "") and item.excluded


# -- bad input: one clear line naming the file, nothing half-written, the rest kept -------------------------------

def test_bad_body_files_are_named_and_the_rest_imported(source_repo, tmp_path: Path, capsys):
    good = source_repo.add("f/ok.chunks.txt", CHUNK_LINES)
    broken = source_repo.add("f/broken.chunks.txt", CHUNK_LINES + b'{"id": "cut\n')
    not_chat = source_repo.add("f/speech.json", b'{"text": "hello"}')
    not_json = source_repo.add("f/body.json", b"<html>502</html>")
    unknown = source_repo.add("f/other.yaml", "entries: [1, 2]\n")
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([good, broken, not_chat, not_json, unknown], sha, out, "--vendor", "qwen") == 1
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("error f/broken.chunks.txt: line 3 is not a JSON chunk") for line in err)
    assert any(line.startswith("error f/speech.json: a body-only file that is not a chat completion")
               for line in err)
    assert any(line.startswith("error f/body.json: JSON body file does not parse") for line in err)
    assert any(line.startswith("error f/other.yaml: unknown recorder") for line in err)
    assert [p.name for p in written(out) if p.name.endswith(".yaml") and p.name != "PROVENANCE.yaml"] == \
        ["ok.chunks.txt.yaml"]


def test_a_body_only_file_without_vendor_is_refused(source_repo, tmp_path: Path, capsys):
    p = source_repo.add("f/a.sse", SSE_BODY)
    sha = source_repo.commit()
    assert run_import([p], sha, tmp_path / "out") == 1
    assert "error f/a.sse: a body-only file records no host: pass --vendor" in capsys.readouterr().err
    assert not written(tmp_path / "out")


def test_a_source_imported_under_another_licence_is_refused_per_file(source_repo, tmp_path: Path, capsys):
    a = source_repo.add("c/a.yaml", vcrpy_doc(vcrpy_interaction(BASIC, CHAT_OK)))
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([a], sha, out) == 0
    prov = next(out.rglob("PROVENANCE.yaml"))
    before = {p: p.read_bytes() for p in written(out)}
    prov.write_text(prov.read_text().replace("license: MIT", "license: Apache-2.0"))
    before[prov] = prov.read_bytes()
    assert run_import([a], sha, out) == 1
    assert "error c/a.yaml: this source was imported under Apache-2.0, now MIT" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in written(out)} == before       # nothing changed


def test_a_failed_write_leaves_nothing_half_written(source_repo, tmp_path: Path, monkeypatch):
    p = source_repo.add("c/a.yaml", vcrpy_doc(vcrpy_interaction(BASIC, CHAT_OK)))
    sha = source_repo.commit()
    out = tmp_path / "out"
    calls: list[Path] = []
    real = store_mod.atomic_write_text

    def flaky(path: Path, data: str, **kwargs: object) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod, "atomic_write_text", flaky)
    assert run_import([p], sha, out) == 1
    assert written(out) == [] and len(calls) == 2                    # staged file removed, nothing renamed
    monkeypatch.setattr(store_mod, "atomic_write_text", real)
    assert run_import([p], sha, out) == 0 and len(written(out)) == 3


def test_evidence_table_counts_exchanges_and_judged_ones(source_repo, tmp_path: Path, capsys):
    chat = source_repo.add("c/a.yaml", vcrpy_doc(vcrpy_interaction(BASIC, CHAT_OK)))
    body = source_repo.add("c/b.chunks.txt", CHUNK_LINES)
    sha = source_repo.commit()
    out = tmp_path / "out"
    assert run_import([chat], sha, out) == 0
    assert run_import([body], sha, out, "--vendor", "groq") == 0
    assert icli.evidence_main(["-o", str(tmp_path / "r.json"), "--imported-dir", str(out), "--table",
                               "--check", "chat.object"]) == 0
    table = capsys.readouterr().out
    # two chat exchanges, one of them body-only; the recorded one is judged by chat.object
    row = next(line for line in table.splitlines() if line.startswith("| `groq` |"))
    assert row.startswith("| `groq` | 2 | 2 | 0 | 1 | ") and re.search(r"\| [12] \([12]\) \| someone/project \|$", row)
