import json
import os

import pytest

from oaicompat.cassette import Cassette, canonical_body, exchange_to_interaction, interaction_to_exchange
from oaicompat.errors import CassetteError
from oaicompat.exchange import Chunk, Exchange, Request, TransportFailure
from oaicompat.scrub import Scrubber


@pytest.fixture(autouse=True)
def _own_cassette_cache(tmp_path, monkeypatch):
    """These tests' cassettes are cached in their own folder, not the user's cache."""
    monkeypatch.setenv("OAICOMPAT_CACHE", str(tmp_path / "cache"))


def make(chunks, failure=None, status=200):
    req = Request("POST", "http://h/v1/chat/completions", "/chat/completions",
                  (("Authorization", "[REDACTED]"),), b'{"model":"m","stream":true}')
    return Exchange(req, status, (("content-type", "text/event-stream"),),
                    tuple(Chunk(0.1 * i, c) for i, c in enumerate(chunks)), failure=failure, elapsed=0.5)


@pytest.mark.parametrize("chunks", [
    [b"data: {\"a\":1}\n\n", b"data: [DONE]\n\n"],
    [b"data: {\"a\":1}\r\n\r\n", b"data: [DONE]\r\r"],                # CRLF and CR survive
    [b"  leading spaces\n", b"tab\there\n", b"trailing space \n\n"],
    [b"\xef\xbb\xbfdata: bom\n\n"],
    [b"\xff\xfe not utf-8 \x80"],                                         # base64 fallback
    [b"unicode \xe2\x80\xa8 line separator \xc2\x85 next line\n"],
    [b"no newline at all"],
    [b""],
])
def test_round_trip_is_byte_exact(tmp_path, chunks):
    ex = make(chunks)
    path = tmp_path / "c.yaml"
    Cassette(path, {"provider": "p"}, [exchange_to_interaction(ex)]).save(Scrubber())
    back = Cassette.load(path).exchanges()[0]
    assert [c.data for c in back.chunks] == chunks
    assert back.request.body == ex.request.body
    assert [round(c.t, 6) for c in back.chunks] == [round(c.t, 6) for c in ex.chunks]


def test_failure_and_attempts_round_trip(tmp_path):
    ex = make([b"data: x\n\n"], failure=TransportFailure("protocol", "peer closed", 9))
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(ex)]).save(Scrubber())
    back = Cassette.load(path).exchanges()[0]
    assert back.failure == ex.failure


def test_sse_bodies_are_readable_literal_blocks(tmp_path):
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(make([b'data: {"a":1}\n\n']))]).save(Scrubber())
    assert "text: |" in path.read_text()


def test_canonical_body_ignores_key_order():
    assert canonical_body(b'{"a":1,"b":[1,2]}') == canonical_body(b'{ "b": [1, 2], "a": 1 }')
    assert canonical_body(b'{"a":') != canonical_body(b'{"a":1}')


@pytest.mark.parametrize("text, message", [
    ("oaicompat_cassette: 1\ninteractions:\n- request: {method: POST\n", "not valid YAML"),
    ("just: a mapping\n", "not an oaicompat cassette"),
    ("oaicompat_cassette: 1\ninteractions:\n- {request: {}, response: {}}\n", r"interactions\[0\]\.request\.method"),
    ("", "not an oaicompat cassette"),
])
def test_corrupt_cassettes_give_one_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CassetteError, match=message):
        Cassette.load(path)


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("old content")
    Cassette(path, {}, [exchange_to_interaction(make([b"x"]))]).save(Scrubber())
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]
    assert interaction_to_exchange(Cassette.load(path).interactions[0]).body == b"x"


def test_scrubber_applies_to_written_text(tmp_path):
    ex = make([b'data: {"echo":"sk-planted-secret-123456"}\n\n'])
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(ex)]).save(
        Scrubber.from_env(["K"], {"K": "sk-planted-secret-123456"}))
    assert "sk-planted-secret-123456" not in path.read_text()
    assert "[REDACTED:K]" in path.read_text()


def test_evidence_names_a_committed_cassette_relative_to_the_checkout():
    """Published pages quote the cassette path: it must read the same in every clone."""
    from oaicompat.paths import CASSETTES, PROJECT_ROOT, shown_path

    committed = next(CASSETTES.rglob("*.yaml"))
    meta = Cassette.load(committed).exchanges()[0].meta
    assert meta["cassette"] == committed.relative_to(PROJECT_ROOT).as_posix()
    assert not meta["cassette"].startswith("/")
    assert shown_path("/elsewhere/c.yaml") == "/elsewhere/c.yaml"


# -- the parsed-cassette cache ---------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OAICOMPAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OAICOMPAT_CASSETTE_CACHE", raising=False)
    return tmp_path / "cache" / "cassette-cache"


def _no_yaml(monkeypatch):
    """From here on, constructing YAML fails the test: a load must come from the cache."""
    import oaicompat.cassette as module

    def refuse(*args, **kwargs):
        raise AssertionError("the cassette was parsed again")
    monkeypatch.setattr(module.yaml, "load", refuse)


def test_cache_hit_returns_the_same_cassette_without_parsing_yaml(tmp_path, cache, monkeypatch):
    path = tmp_path / "c.yaml"
    Cassette(path, {"provider": "p"}, [exchange_to_interaction(make([b"data: x\n\n", b"\xff"]))]).save(Scrubber())
    first = Cassette.load(path)
    assert len(list(cache.glob("*.json"))) == 1
    _no_yaml(monkeypatch)
    again = Cassette.load(path)
    assert (again.header, again.interactions) == (first.header, first.interactions)
    assert [c.data for c in again.exchanges()[0].chunks] == [b"data: x\n\n", b"\xff"]
    assert path.read_text().startswith("oaicompat_cassette: 1\n")      # the cassette itself stays YAML


def test_a_changed_cassette_is_read_again(tmp_path, cache):
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(make([b"one"]))]).save(Scrubber())
    assert Cassette.load(path).exchanges()[0].body == b"one"
    stat = path.stat()
    Cassette(path, {}, [exchange_to_interaction(make([b"two"]))]).save(Scrubber())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))       # same size and mtime: the content decides
    assert Cassette.load(path).exchanges()[0].body == b"two"


def _entry_holding(raw, document):
    import hashlib

    body = json.dumps(document).encode()
    head = {**json.loads(raw.split(b"\n", 1)[0]), "document_sha256": hashlib.sha256(body).hexdigest()}
    return json.dumps(head).encode() + b"\n" + body


@pytest.mark.parametrize("damage", [
    lambda raw: b"",                                                   # truncated to nothing
    lambda raw: raw[: len(raw) // 2],                                  # truncated mid-document
    lambda raw: b"\x00\xff not json at all",
    lambda raw: raw.replace(b"data: x", b"data: y"),                   # a changed byte in the document
    lambda raw: _entry_holding(raw, {"oaicompat_cassette": 1,                 # a well-formed entry, bad status
                                     "interactions": [{"request": {}, "response": {"status": "abc"}}]}),
])
def test_a_damaged_cache_entry_is_ignored_and_rebuilt(tmp_path, cache, damage):
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(make([b"data: x\n\n"]))]).save(Scrubber())
    Cassette.load(path)
    (entry,) = cache.glob("*.json")
    entry.write_bytes(damage(entry.read_bytes()))
    assert Cassette.load(path).exchanges()[0].body == b"data: x\n\n"
    head, _, body = entry.read_bytes().partition(b"\n")
    assert json.loads(head)["sha256"] and json.loads(body)["interactions"]    # rebuilt


def test_a_corrupt_cassette_is_not_rescued_by_its_cache(tmp_path, cache):
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(make([b"x"]))]).save(Scrubber())
    Cassette.load(path)
    path.write_text(path.read_text().replace("status: 200", "status: 'abc'"))
    with pytest.raises(CassetteError, match=r"interactions\[0\]\.response\.status: 'abc' is not an HTTP status"):
        Cassette.load(path)


def test_the_cache_can_be_turned_off_and_an_unwritable_cache_is_no_error(tmp_path, cache, monkeypatch):
    path = tmp_path / "c.yaml"
    Cassette(path, {}, [exchange_to_interaction(make([b"x"]))]).save(Scrubber())
    monkeypatch.setenv("OAICOMPAT_CASSETTE_CACHE", "0")
    Cassette.load(path)
    assert not cache.exists()
    monkeypatch.delenv("OAICOMPAT_CASSETTE_CACHE")
    cache.parent.mkdir(parents=True)
    cache.write_text("a file where the cache directory should be")
    assert Cassette.load(path).exchanges()[0].body == b"x"


def test_the_cache_is_pruned_to_its_limit(tmp_path, cache):
    from oaicompat import cassette as module

    cache.mkdir(parents=True)
    for i in range(8):
        entry = cache / f"{i:064x}.json"
        entry.write_text("{}")
        os.utime(entry, ns=(i * 10**9, i * 10**9))
    module._prune(cache, limit=4)
    assert sorted(p.name for p in cache.iterdir()) == [f"{i:064x}.json" for i in (5, 6, 7)]
