"""The strict cassette reader: each corrupted cassette gives one clean CassetteError naming the file and field.

The corrupted cassettes are test inputs made here in tmp_path from a cassette this test writes (never files in
fixtures/): a recorder-written cassette is loaded, one field is damaged, and the YAML written back.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from oaicompat.cassette import Cassette, Replayer, exchange_to_interaction
from oaicompat.errors import CassetteError
from oaicompat.exchange import Attempt, Chunk, Exchange, Request
from oaicompat.paths import CASSETTES
from oaicompat.results import ResultsLog
from oaicompat.scrub import Scrubber

Doc = dict[str, Any]


@pytest.fixture(autouse=True)
def _own_cassette_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAICOMPAT_CACHE", str(tmp_path / "cache"))


def _exchange() -> Exchange:
    req = Request("POST", "http://h/v1/chat/completions", "/chat/completions",
                  (("content-type", "application/json"),), b'{"model":"m","stream":true}')
    return Exchange(req, 200, (("content-type", "text/event-stream"),),
                    (Chunk(0.1, b'data: {"a":1}\n\n'), Chunk(0.2, b"data: [DONE]\n\n")), elapsed=0.5,
                    attempts=(Attempt(429, None, "1", None, None, 1.0, "429 Retry-After"),))


@pytest.fixture(scope="module")
def good_doc(tmp_path_factory: pytest.TempPathFactory) -> Doc:
    path = tmp_path_factory.mktemp("good") / "c.yaml"
    Cassette(path, {"provider": "p", "model": "m", "test": "t"}, [exchange_to_interaction(_exchange())]).save(
        Scrubber())
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _set(*keys: Any, value: Any) -> Callable[[Doc], None]:
    def damage(doc: Doc) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return damage


def _drop(*keys: Any) -> Callable[[Doc], None]:
    def damage(doc: Doc) -> None:
        target = doc
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return damage


I0, RQ, RS = ("interactions", 0), ("interactions", 0, "request"), ("interactions", 0, "response")

# (id, damage, field the message must name, words it must say)
CASES: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("response-is-a-string", _set(*RS, value="str"), "interactions[0].response", "is not a mapping"),
    ("request-is-a-list", _set(*RQ, value=[1]), "interactions[0].request", "is not a mapping"),
    ("interaction-is-a-number", _set(*I0, value=7), "interactions[0]", "is not a mapping"),
    ("no-response", _drop(*RS), "interactions[0]", "has no 'response'"),
    ("method-is-a-number", _set(*RQ, "method", value=123), "interactions[0].request.method", "not an HTTP method"),
    ("method-unknown", _set(*RQ, "method", value="BREW"), "interactions[0].request.method", "not an HTTP method"),
    ("path-is-a-number", _set(*RQ, "path", value=5), "interactions[0].request.path", "is not a string"),
    ("path-not-absolute", _set(*RQ, "path", value="chat"), "interactions[0].request.path", "starting with '/'"),
    ("url-is-a-list", _set(*RQ, "url", value=["x"]), "interactions[0].request.url", "is not a string"),
    ("request-body-is-a-number", _set(*RQ, "body", value=12), "interactions[0].request.body", "is not a string"),
    ("status-is-text", _set(*RS, "status", value="abc"), "interactions[0].response.status",
     "'abc' is not an HTTP status (100–599)"),
    ("status-too-large", _set(*RS, "status", value=99999), "interactions[0].response.status", "not an HTTP status"),
    ("status-negative", _set(*RS, "status", value=-5), "interactions[0].response.status", "not an HTTP status"),
    ("status-is-true", _set(*RS, "status", value=True), "interactions[0].response.status", "not an HTTP status"),
    ("status-is-a-float", _set(*RS, "status", value=200.5), "interactions[0].response.status", "not an HTTP status"),
    ("elapsed-is-text", _set(*I0, "elapsed", value="slow"), "interactions[0].elapsed", "not a number of seconds"),
    ("elapsed-negative", _set(*I0, "elapsed", value=-1.0), "interactions[0].elapsed", "non-negative"),
    ("elapsed-infinite", _set(*I0, "elapsed", value=math.inf), "interactions[0].elapsed", "finite"),
    ("chunk-time-nan", _set(*RS, "chunks", 0, "t", value=math.nan), "interactions[0].response.chunks[0].t",
     "finite"),
    ("chunk-time-missing", _drop(*RS, "chunks", 0, "t"), "interactions[0].response.chunks[0].t",
     "not a number of seconds"),
    ("chunk-time-is-true", _set(*RS, "chunks", 1, "t", value=True), "interactions[0].response.chunks[1].t",
     "not a number of seconds"),
    ("chunk-without-body", _drop(*RS, "chunks", 0, "text"), "interactions[0].response.chunks[0]",
     "neither 'text' nor 'base64'"),
    ("chunk-base64-malformed", _set(*RS, "chunks", 0, value={"t": 0.1, "base64": "not base64!!"}),
     "interactions[0].response.chunks[0].base64", "not well-formed base64"),
    ("chunk-text-is-a-number", _set(*RS, "chunks", 0, "text", value=3), "interactions[0].response.chunks[0].text",
     "is not a string"),
    ("chunks-is-a-mapping", _set(*RS, "chunks", value={"a": 1}), "interactions[0].response.chunks",
     "is not a list"),
    ("header-value-not-latin-1", _set(*RS, "headers", 0, 1, value="text/☃"),
     "interactions[0].response.headers[0].value", "not latin-1"),
    ("header-value-is-a-number", _set(*RS, "headers", 0, 1, value=5), "interactions[0].response.headers[0].value",
     "is not a string"),
    ("header-value-with-newline", _set(*RS, "headers", 0, 1, value="a\r\nSet-Cookie: x"),
     "interactions[0].response.headers[0].value", "line break"),
    ("header-not-a-pair", _set(*RS, "headers", 0, value=["only-a-name"]), "interactions[0].response.headers[0]",
     "not a [name, value] pair"),
    ("request-header-name-not-latin-1", _set(*RQ, "headers", 0, 0, value="ключ"),
     "interactions[0].request.headers[0].name", "not latin-1"),
    ("failure-kind-unknown", _set(*RS, "failure", value={"kind": "gremlins", "message": "x"}),
     "interactions[0].response.failure.kind", "is not one of"),
    ("failure-is-text", _set(*RS, "failure", value="boom"), "interactions[0].response.failure", "is not a mapping"),
    ("attempt-field-missing", _drop(*I0, "attempts", 0, "slept"), "interactions[0].attempts[0]",
     "missing field 'slept'"),
    ("attempt-status-is-text", _set(*I0, "attempts", 0, "status", value="x"), "interactions[0].attempts[0].status",
     "not an HTTP status"),
    ("http-version-is-a-number", _set(*RS, "http_version", value=1.1), "interactions[0].response.http_version",
     "is not a string"),
    ("recorded-at-is-a-list", _set("recorded_at", value=[1]), "recorded_at", "is not a string"),
]


@pytest.mark.parametrize("damage, field, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_corrupted_cassette_gives_one_clean_error_naming_file_and_field(tmp_path: Path, good_doc: Doc,
                                                                          damage, field: str, words: str) -> None:
    doc = json.loads(json.dumps(good_doc))        # a deep copy
    damage(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(CassetteError) as info:
        Cassette.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert words in message
    assert "\n" not in message and "Traceback" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__   # raised clean, not chained


def test_the_undamaged_cassette_loads_and_replays(tmp_path: Path, good_doc: Doc) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(good_doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    cassette = Cassette.load(path)
    assert cassette.exchanges()[0].body == b'data: {"a":1}\n\ndata: [DONE]\n\n'
    assert Replayer(cassette, "/v1", "rewrite").has("POST", "/chat/completions", b'{"model":"m","stream":true}')


def test_yaml_nan_spelled_in_the_file_is_refused(tmp_path: Path, good_doc: Doc) -> None:
    text = yaml.safe_dump(good_doc, sort_keys=False).replace("t: 0.1\n", "t: .nan\n", 1)
    assert ".nan" in text
    path = tmp_path / "nan.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CassetteError, match=r"interactions\[0\]\.response\.chunks\[0\]\.t: nan is not a finite"):
        Cassette.load(path)


def test_every_committed_cassette_passes_the_strict_reader() -> None:
    paths = sorted(CASSETTES.rglob("*.yaml"))
    assert paths
    for path in paths:
        Cassette.parse(path.read_text(encoding="utf-8"), path)


# -- what a killed recording leaves behind -------------------------------------------------------------

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_recordings_temp_files_are_removed_at_the_next_save(tmp_path: Path) -> None:
    folder = tmp_path / "p" / "test_chat"
    folder.mkdir(parents=True)
    legacy = folder / ".test_a.yaml.k2j4h5g6.tmp"        # kill -9 between create and write, before fileio
    legacy.write_bytes(b"")
    dead = folder / f".test_b.yaml.{_dead_pid()}-abcd1234.tmp"
    dead.write_bytes(b"oaicompat_cassette: 1\n")
    alive = folder / f".test_c.yaml.{os.getpid()}-abcd1234.tmp"   # a write still under way in this process
    alive.write_bytes(b"")
    Cassette(folder / "test_d.yaml", {}, [exchange_to_interaction(_exchange())]).save(Scrubber())
    assert sorted(p.name for p in folder.iterdir()) == sorted([alive.name, "test_d.yaml"])


def test_a_leftover_temp_file_is_never_read_as_a_cassette(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    (tmp_path / f".c.yaml.{_dead_pid()}-abcd1234.tmp").write_bytes(b"")
    with pytest.raises(CassetteError, match="cannot read cassette"):
        Cassette.load(path)


# -- results.json survives a bad record ---------------------------------------------------------------

def _record(check: str, status: Any = 200) -> dict[str, Any]:
    return {"test": f"suites/test_chat.py::test_x[p-{check}]", "check": check, "area": "chat", "rule": "r",
            "kind": "protocol", "title": "t", "provider": "p", "model": "m", "outcome": "pass", "quirks": [],
            "message": "fine", "lines": [], "declared": {}, "observations": [],
            "evidence": [{"level": "recorded", "status": status}]}


def test_results_are_written_when_one_record_is_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = ResultsLog(mode="replay")
    log.records += [_record("chat.one"), _record("chat.two", status=True), _record("chat.three")]
    path = tmp_path / "results.json"
    log.write(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    outcomes = {r["check"]: r["outcome"] for r in doc["records"]}
    assert outcomes == {"chat.one": "pass", "chat.two": "error", "chat.three": "pass"}
    bad = doc["records"][1]
    assert "evidence/0/status" in bad["message"] and bad["provider"] == "p" and bad["model"] == "m"
    assert "record 1 is not valid" in capsys.readouterr().err


def test_a_record_missing_everything_still_leaves_a_results_file(tmp_path: Path) -> None:
    log = ResultsLog(mode="replay")
    log.records += [{"check": "Not An Id", "outcome": "pass"}, _record("chat.one")]
    path = tmp_path / "results.json"
    log.write(path)
    records = json.loads(path.read_text(encoding="utf-8"))["records"]
    assert [r["outcome"] for r in records] == ["error", "pass"]
    assert records[0]["check"] == "results.unwritable-record"
