"""Record against a real socket server, replay with no socket, and prove no secret reaches disk."""

import socket

import pytest

from oaicompat.config import parse_providers
from oaicompat.errors import CassetteError, CassetteMiss
from oaicompat.run_mode import RunMode
from oaicompat.scrub import Scrubber
from oaicompat.session import LiveMemo, ProbeSession
from oaicompat.transport import RequestSpec

PLANTED = "sk-oaicompat-planted-key-9f8e7d6c5b4a"
BODY = {"model": "ref-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def provider(base_url):
    doc = {"version": 1, "providers": {"ref": {"kind": "local", "title": "ref", "base_url": base_url,
                                                "api_key_env": "REF_KEY", "model": "ref-model"}}}
    return parse_providers(doc, __import__("pathlib").Path("p.yaml"), {}).get("ref")


def session(p, path, mode, key=None, live_only=False):
    env = {"REF_KEY": PLANTED}
    return ProbeSession(provider=p, model="ref-model", path=path, mode=RunMode.parse(mode, live=live_only),
                        api_key=key, scrubber=Scrubber.from_env(["REF_KEY"], env), memo=LiveMemo(),
                        test_id="t", rerecord="pytest t --record-mode=rewrite")


async def record(p, path, specs, key=PLANTED):
    s = session(p, path, "once", key)
    s.prepare()
    async with s:
        return [await s.send(spec) for spec in specs]


async def test_record_then_replay_without_socket(wire_server, tmp_path, monkeypatch):
    p = provider(wire_server.base_url)
    path = tmp_path / "ref" / "test_x" / "test_y.yaml"
    live = await record(p, path, [RequestSpec(json=BODY), RequestSpec(json={**BODY, "stream": True})])
    assert path.exists() and live[1].sse.done_index is not None

    def no_socket(*a, **k):
        raise AssertionError("replay opened a socket")
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    wire_server.stop()
    s = session(p, path, "none")
    s.prepare()
    async with s:
        again = [await s.send(RequestSpec(json=BODY)), await s.send(RequestSpec(json={**BODY, "stream": True}))]
    assert [e.body for e in again] == [e.body for e in live]
    assert [c.data for c in again[1].chunks] == [c.data for c in live[1].chunks]
    assert [c.t for c in again[1].chunks] == [round(c.t, 6) for c in live[1].chunks]
    assert again[0].source == "cassette"


async def test_planted_key_never_reaches_disk(wire_server, tmp_path):
    async def echo(req, resp):   # a server that echoes the key back in body and headers
        await resp.json(200, {"echo": req.headers.get("authorization")},
                        headers=[("x-echo", req.headers.get("authorization", ""))])
    wire_server.handler = echo
    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    [ex] = await record(p, path, [RequestSpec(json=BODY, path=f"/chat/completions?key={PLANTED}")])
    assert PLANTED not in repr(ex)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert PLANTED not in f.read_text(errors="replace"), f


async def test_unmatched_request_names_cassette_and_command(wire_server, tmp_path):
    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    await record(p, path, [RequestSpec(json=BODY)])
    s = session(p, path, "none")
    s.prepare()
    with pytest.raises(CassetteMiss) as err:
        async with s:
            await s.send(RequestSpec(json={**BODY, "max_tokens": 99}))
    assert str(path) in str(err.value) and "--record-mode=rewrite" in str(err.value)


async def test_once_does_not_overwrite_and_corrupt_file_is_kept(wire_server, tmp_path):
    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    path.write_text("oaicompat_cassette: 1\ninteractions: [\n")
    s = session(p, path, "once", PLANTED)
    with pytest.raises(CassetteError, match="not valid YAML"):
        s.prepare()
    assert path.read_text() == "oaicompat_cassette: 1\ninteractions: [\n"


async def test_live_only_writes_nothing(wire_server, tmp_path):
    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    s = session(p, path, "none", PLANTED, live_only=True)
    s.prepare()
    async with s:
        ex = await s.send(RequestSpec(json=BODY))
    assert ex.status == 200 and not path.exists()


async def test_connection_refused_is_data_not_exception(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    p = provider(f"http://127.0.0.1:{port}/v1")
    s = session(p, tmp_path / "c.yaml", "none", PLANTED, live_only=True)
    s.prepare()
    async with s:
        ex = await s.send(RequestSpec(json=BODY, retries=0))
    assert ex.status is None and ex.failure.kind == "connect"


async def _never_answer(req, resp):
    import asyncio
    await asyncio.sleep(30)


async def test_replayed_no_response_keeps_what_was_recorded(wire_server, tmp_path):
    """A recorded timeout (no status at all) replays with the recorded failure, timing and provenance."""
    wire_server.handler = _never_answer
    p = provider(wire_server.base_url)
    path = tmp_path / "ref" / "test_x" / "test_timeout.yaml"
    [live] = await record(p, path, [RequestSpec(json=BODY, timeout=0.5, retries=0)])
    assert live.status is None and live.failure.kind in ("timeout", "read-timeout")
    wire_server.stop()
    s = session(p, path, "none")
    s.prepare()
    async with s:
        replayed = await s.send(RequestSpec(json=BODY, timeout=0.5, retries=0))
    assert replayed.status is None and replayed.failure == live.failure
    assert replayed.meta["recorded_at"] and replayed.meta["cassette"].endswith("test_timeout.yaml")
    assert replayed.elapsed == pytest.approx(live.elapsed, abs=1e-6)


def no_socket(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("replay opened a socket")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


async def test_replay_builds_one_mock_transport_per_session(wire_server, tmp_path, monkeypatch):
    """Replay hands a MockTransport serving the cassette to one httpx client for the whole session (nothing is
    patched per send), and the replayed exchange carries the recorded times, not replay's own clock."""
    import httpx

    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    live = await record(p, path, [RequestSpec(json=BODY), RequestSpec(json={**BODY, "stream": True})])
    wire_server.stop()
    no_socket(monkeypatch)
    built = []
    real = httpx.MockTransport

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, handler):
            built.append(handler)
            super().__init__(handler)
    monkeypatch.setattr(httpx, "MockTransport", Counting)
    s = session(p, path, "none")
    s.prepare()
    async with s:
        again = [await s.send(RequestSpec(json=BODY)) for _ in range(3)]
        again.append(await s.send(RequestSpec(json={**BODY, "stream": True})))
    assert len(built) == 1
    assert {e.source for e in again} == {"cassette"} and again[0].elapsed == round(live[0].elapsed, 6)
    assert [c.t for c in again[3].chunks] == [round(c.t, 6) for c in live[1].chunks]


async def test_new_episodes_replays_what_it_has_and_adds_the_rest(wire_server, tmp_path):
    p = provider(wire_server.base_url)
    path = tmp_path / "c.yaml"
    [first] = await record(p, path, [RequestSpec(json=BODY)])
    s = session(p, path, "new_episodes", PLANTED)
    s.prepare()
    async with s:
        old = await s.send(RequestSpec(json=BODY))
        new = await s.send(RequestSpec(json={**BODY, "max_tokens": 5}))
    assert (old.source, new.source) == ("cassette", "live")
    s = session(p, path, "none")
    s.prepare()
    async with s:
        both = [await s.send(RequestSpec(json=BODY)), await s.send(RequestSpec(json={**BODY, "max_tokens": 5}))]
    assert [e.source for e in both] == ["cassette", "cassette"] and both[0].body == first.body
