"""Memory that does not grow with the session (issue 19): the live memo keeps bodies within a byte budget, a
session lets go of what it recorded once it is written, and saving a cassette costs a small multiple of its
largest body instead of several copies of the whole text. Measured in bytes (the memo's count, tracemalloc's
peak), never in time; the whole recorder's peak RSS against a 40 MB reply is tests/test_hostile.py's."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from oaicompat import cassette as cassette_module
from oaicompat import fileio
from oaicompat.cassette import (
    Cassette,
    exchange_to_interaction,
    new_header,
    verify_written,
)
from oaicompat.config import parse_providers
from oaicompat.errors import CassetteError
from oaicompat.exchange import Chunk, Exchange, Request
from oaicompat.paths import CASSETTES
from oaicompat.run_mode import RunMode
from oaicompat.scrub import Scrubber
from oaicompat.session import (
    MEMO_BUDGET_BYTES,
    MEMO_MAX_EXCHANGE_BYTES,
    LiveMemo,
    MemoStore,
    ProbeSession,
    exchange_bytes,
)
from oaicompat.transport import RequestSpec

MiB = 1024 * 1024
KEY = "sk-oaicompat-memory-key-0123456789"


def exchange(body: bytes, *, pieces: int = 4, request: bytes = b"") -> Exchange:
    step = max(1, -(-len(body) // pieces))
    chunks = tuple(Chunk(i / 1000, body[i:i + step]) for i in range(0, len(body), step))
    return Exchange(request=Request("POST", "http://x/v1/chat/completions", "/chat/completions", (), request),
                    status=200, headers=(("content-type", "application/json"),), chunks=chunks, elapsed=0.5)


# -- the memo's budget ------------------------------------------------------------------------------------------

def test_the_defaults_are_the_documented_budget() -> None:
    assert (MEMO_BUDGET_BYTES, MEMO_MAX_EXCHANGE_BYTES) == (64 * MiB, 4 * MiB)
    store = LiveMemo().store
    assert (store.budget_bytes, store.max_exchange_bytes) == (MEMO_BUDGET_BYTES, MEMO_MAX_EXCHANGE_BYTES)


def test_the_memo_keeps_at_most_its_budget_least_recently_used_out() -> None:
    store = MemoStore(budget_bytes=8 * MiB, max_exchange_bytes=2 * MiB)
    for i in range(40):
        store[("k", i)] = exchange(b"x" * MiB)
        assert store.nbytes <= 8 * MiB
    assert list(store) == [("k", i) for i in range(32, 40)] and store.nbytes == 8 * MiB and store.evicted == 32
    store[("k", 32)]                                  # read: now the most recently used
    store[("k", 40)] = exchange(b"y" * MiB)
    assert ("k", 32) in store and ("k", 33) not in store and len(store) == 8


def test_an_exchange_over_the_limit_is_not_memoised_and_forgets_the_older_answer() -> None:
    store = MemoStore(budget_bytes=8 * MiB, max_exchange_bytes=2 * MiB)
    store[("k",)] = exchange(b"small")
    store[("k",)] = exchange(b"x" * (3 * MiB))
    assert ("k",) not in store and store.nbytes == 0 and store.refused == 1
    assert store.get(("k",)) is None


def test_the_memo_counts_request_and_response_bytes() -> None:
    ex = exchange(b"r" * 1000, request=b"q" * 24)
    assert exchange_bytes(ex) == 1024
    store = MemoStore()
    store[("a",)] = ex
    del store[("a",)]
    assert store.nbytes == 0 and len(store) == 0


def test_the_memo_hands_out_the_bytes_never_what_checks_computed() -> None:
    ex = exchange(b'{"a": 1}', pieces=2, request=b'{"q": 2}')
    assert ex.json == {"a": 1} and ex.request.json == {"q": 2} and ex.text      # a check read it
    store = MemoStore()
    store[("k",)] = ex
    got = store[("k",)]
    assert got == ex and got is not ex
    assert not {"json", "body", "text"} & set(vars(got)) and "json" not in vars(got.request)
    assert got.chunks[0].data is ex.chunks[0].data                             # shared, not copied
    assert got.json == {"a": 1}
    assert "json" not in vars(store[("k",)])           # what this reader computed stays with this reader


# -- the memo in a session: many big exchanges, bounded bytes ----------------------------------------------------

def provider(base_url: str) -> Any:
    doc = {"version": 1, "providers": {"ref": {"kind": "local", "title": "ref", "base_url": base_url,
                                                "api_key_env": "REF_KEY", "model": "ref-model"}}}
    return parse_providers(doc, Path("p.yaml"), {}).get("ref")


def probe_session(p: Any, memo: LiveMemo, path: Path, mode: str = "none", live: bool = True) -> ProbeSession:
    return ProbeSession(provider=p, model="ref-model", path=path, mode=RunMode.parse(mode, live=live),
                        api_key=KEY, scrubber=Scrubber.from_env(["REF_KEY"], {"REF_KEY": KEY}), memo=memo,
                        test_id="t", rerecord="-")


def big_reply_server(wire_server: Any, size: int) -> list[int]:
    """Every POST answered with a JSON body of about `size` bytes; returns the list of request numbers seen."""
    seen: list[int] = []

    async def handler(req: Any, resp: Any) -> None:
        seen.append(len(seen))
        await resp.json(200, {"n": len(seen), "pad": "x" * size})
    wire_server.handler = handler
    return seen


def spec(i: int) -> RequestSpec:
    return RequestSpec(json={"model": "ref-model", "messages": [{"role": "user", "content": f"#{i}"}]})


async def test_many_big_exchanges_in_one_session_stay_within_the_memo_budget(wire_server, tmp_path: Path) -> None:
    """Thirty tests, each its own ProbeSession sharing one memo, each sending a 1 MiB reply's request: the memo
    never holds more than its budget (4 MiB here), and a request evicted from it is sent again."""
    seen = big_reply_server(wire_server, MiB)
    memo = LiveMemo(MemoStore(budget_bytes=4 * MiB + 4096, max_exchange_bytes=2 * MiB))
    p = provider(wire_server.base_url)
    for i in range(30):
        async with probe_session(p, memo, tmp_path / "none.yaml") as s:
            ex = await s.send(spec(i))
            assert len(ex.body) > MiB
        assert memo.nbytes <= 4 * MiB + 4096 and len(memo.store) <= 4
    assert len(seen) == 30 and memo.store.evicted == 26
    async with probe_session(p, memo, tmp_path / "none.yaml") as s:
        await s.send(spec(29))                     # still in the memo: not sent
        await s.send(spec(0))                      # evicted long ago: sent again
    assert len(seen) == 31


async def test_identical_replies_over_the_limit_are_sent_again_and_never_kept(wire_server, tmp_path: Path) -> None:
    seen = big_reply_server(wire_server, 3 * MiB)
    memo = LiveMemo(MemoStore(budget_bytes=64 * MiB, max_exchange_bytes=2 * MiB))
    p = provider(wire_server.base_url)
    for _ in range(5):
        async with probe_session(p, memo, tmp_path / "none.yaml") as s:
            await s.send(spec(0))
        assert memo.nbytes == 0
    assert len(seen) == 5 and memo.store.refused == 5
    small = big_reply_server(wire_server, 10)
    for _ in range(5):
        async with probe_session(p, memo, tmp_path / "none.yaml") as s:
            await s.send(spec(1))
    assert len(small) == 1                         # a small reply is still sent once


async def test_a_session_releases_what_it_recorded_once_written(wire_server, tmp_path: Path) -> None:
    big_reply_server(wire_server, 1000)
    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    s = probe_session(p, LiveMemo(), path, mode="once", live=False)
    s.prepare()
    async with s:
        first = await s.send(spec(0))
        assert s.recorded == [first]
    assert path.exists() and s.recorded == []
    replay = probe_session(p, LiveMemo(), path, mode="none", live=False)
    replay.prepare()
    async with replay:
        again = await replay.send(spec(0))
    assert again.body == first.body
    assert replay.cassette is None and replay.replayer is None       # the cassette went with the test
    async with replay:                                               # entering again reads it again
        assert (await replay.send(spec(0))).body == first.body


# -- saving: streamed, verified, the same bytes -----------------------------------------------------------------

def big_cassette(path: Path, body: bytes, pieces: int) -> Cassette:
    ex = exchange(body, pieces=pieces, request=b'{"model":"m"}')
    header = new_header(provider="p", model="m", test="t", record_mode="once", server={"kind": "local"})
    return Cassette(path, header, [exchange_to_interaction(ex)])


@pytest.mark.parametrize("pieces", [128, 1], ids=["streamed-chunks", "one-chunk"])
def test_saving_costs_a_small_multiple_of_the_largest_chunk_not_of_the_file(tmp_path: Path, pieces: int) -> None:
    """An 8 MiB body (128 reads, or one decoded chunk): saving allocates at most the largest chunk three times
    over (one being emitted, one read back) plus a little, where dumping to a string, re-parsing and comparing
    cost about eight times the whole body. Python allocations, counted by tracemalloc."""
    size = 8 * MiB
    body = (b'{"pad": "' + b"x" * (size - 20) + b'"}').ljust(size)
    c = big_cassette(tmp_path / "c.yaml", body, pieces)
    largest = -(-size // pieces)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        c.save(Scrubber.from_env(["REF_KEY"], {"REF_KEY": KEY}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - before
    print(f"save of an {size:,}-byte body in {pieces} chunk(s): {extra:,} bytes allocated at the peak")
    assert extra <= 3 * largest + MiB, extra
    again = Cassette.load(c.path)
    assert b"".join(x.data for x in again.exchanges()[0].chunks) == body


def test_a_saved_cassette_is_scrubbed_field_by_field(tmp_path: Path) -> None:
    """Every string of the document (keys too) is scrubbed before it is dumped: a key in a header field stays
    out of the file and the field stays a string (a text-level scrub would turn `x: [REDACTED]` into a list)."""
    c = big_cassette(tmp_path / "c.yaml", b'{"echo": "' + KEY.encode() + b'"}', 1)
    c.header["model"] = KEY
    c.header["server"] = {KEY: "v"}
    c.save(Scrubber.from_env(["REF_KEY"], {"REF_KEY": KEY}))
    text = c.path.read_text()
    assert KEY not in text
    loaded = Cassette.load(c.path)
    assert loaded.header["model"] == "[REDACTED:REF_KEY]" and loaded.header["server"] == {"[REDACTED:REF_KEY]": "v"}


def test_a_round_trip_that_changes_the_data_is_refused_and_the_old_file_kept(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    c = big_cassette(tmp_path / "c.yaml", b"hello", 1)
    c.path.write_text("old\n")

    def lossy(doc: Any, stream: Any) -> None:
        fileio.dump_yaml_to({**doc, "elapsed_total": "0.5", "model": 5}, stream)
    monkeypatch.setattr(cassette_module, "dump_yaml_to", lossy)
    with pytest.raises(CassetteError, match="round trip changed the data"):
        c.save(Scrubber())
    assert c.path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


@pytest.mark.parametrize("text,problem", [
    ("a: 1\n", "a key of the document: wrote str, read back str with other content"),   # another document
    ("oaicompat_cassette: 1\nmodel: [5]\n", "model: expected ScalarEvent, read SequenceStartEvent"),
    ("oaicompat_cassette: 1\nmodel: '5'\n", "wrote"),  # a value of another type
    ("oaicompat_cassette: 1\nmodel: 5\n- x\n", "ParserError"),   # the same document, then not YAML
])
def test_verification_reads_back_event_by_event(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "f.yaml"
    doc = {"oaicompat_cassette": 1, "model": 5}
    path.write_text(fileio.dump_yaml(doc))
    verify_written(doc, path, "f.yaml")
    path.write_text(text)
    with pytest.raises(CassetteError, match=problem):
        verify_written(doc, path, "f.yaml")


def test_saving_reproduces_every_committed_cassette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The streamed save writes the committed bytes again: every cassette, loaded and saved through
    Cassette.save (scrubbing, the strict checks and the read-back included), is byte-identical."""
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: None)       # thousands of files: no flush to disk
    paths = sorted(CASSETTES.rglob("*.yaml"))
    assert len(paths) > 100
    scrubber = Scrubber.from_env(["REF_KEY"], {"REF_KEY": KEY})
    for path in paths:
        c = Cassette.load(path)
        out = tmp_path / path.relative_to(CASSETTES)
        Cassette(out, c.header, c.interactions).save(scrubber)
        assert out.read_bytes() == path.read_bytes(), path


# -- loading a large cassette: streamed, never cached --------------------------------------------------------------

def test_a_large_cassette_is_parsed_as_read_and_gives_what_the_text_gives(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAICOMPAT_CACHE", str(tmp_path / "cache"))
    c = big_cassette(tmp_path / "c.yaml", b'{"a": "' + "é".encode() * 1000 + b'"}\xff', 3)
    c.save(Scrubber())
    monkeypatch.setattr(cassette_module, "LOAD_STREAMED_BYTES", 100)
    streamed = Cassette.load(c.path)
    parsed = Cassette.parse(c.path.read_text(encoding="utf-8"), c.path)
    assert (streamed.header, streamed.interactions) == (parsed.header, parsed.interactions)
    assert not (tmp_path / "cache").exists()                 # a large cassette is not cached


@pytest.mark.parametrize("data,problem", [
    ("\ufeffoaicompat_cassette: 1\ninteractions: []\n".encode("utf-16"), "not UTF-8"),
    (b"oaicompat_cassette: 1\nmodel: '\xff\xfe'\ninteractions: []\n", "not UTF-8"),
    (b"oaicompat_cassette: 1\ninteractions: [\n", "not valid YAML"),
    (b"oaicompat_cassette: 1\ninteractions: [{request: 5}]\n", r"interactions\[0\]"),
])
def test_a_large_bad_cassette_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes,
                                                 problem: str) -> None:
    monkeypatch.setattr(cassette_module, "LOAD_STREAMED_BYTES", 10)
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    with pytest.raises(CassetteError, match=problem):
        Cassette.load(path)
