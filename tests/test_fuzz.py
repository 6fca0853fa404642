"""Fuzzing the SSE parser and every registered check with arbitrary Exchanges.

Vendor bytes are untrusted: whatever comes back (random bytes, random JSON, the reference server's own replies
with random parts replaced, random chunk splits, transport failures), a check may only pass, return
observations, or raise a Finding subclass (QuirkFound for an id it declares, Violation, Blocked,
NotApplicable). Anything else is a defect of the check.

The default run is small and derandomized (≈150 examples per test); `-m fuzz` runs thousands with fresh seeds.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks.base import CHECKS, PROBES, Finding
from oaicompat.exchange import Attempt, Chunk, Exchange, Request, TransportFailure
from oaicompat.sse import SSEParser, parse_sse
from tests.support.behaviours import BEHAVIOURS, provider, reference, wire_request
from tests.support.wire_server import render

QUICK = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=3000, deadline=None, database=None, suppress_health_check=list(HealthCheck))

PROVIDER = provider("http://reference.invalid/v1")
PROBE_NAMES = sorted(PROBES)
USERS: dict[str, list[str]] = {}
for _cid, _spec in CHECKS.items():
    for _name in _spec.probes:
        USERS.setdefault(_name, []).append(_cid)


# -- the reference's own replies, parsed back from the bytes it writes -----------------------------------------

def parse_http(raw: bytes) -> tuple[int | None, tuple[tuple[str, str], ...], bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = tuple((k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:]) if k)
    if any(k.lower() == "transfer-encoding" for k, _ in headers):
        body, pos = b"", 0
        while pos < len(rest):
            size_line, _, after = rest[pos:].partition(b"\r\n")
            try:
                size = int(size_line, 16)
            except ValueError:
                break
            if size == 0:
                break
            body += after[:size]
            pos += len(size_line) + 2 + size + 2
        rest = body
    return status, headers, rest


@cache
def conformant(name: str, behaviour: str | None = None) -> tuple[Request, int | None, tuple[tuple[str, str], ...],
                                                                 bytes]:
    """The reference's reply to probe `name` (with an emulated quirk's behaviour on, if named)."""
    wire = wire_request(PROVIDER, name)
    handler = reference(BEHAVIOURS[behaviour]) if behaviour else reference()
    rendered = asyncio.run(render(handler, wire))
    status, headers, body = parse_http(rendered.data)
    request = Request(method=wire.method, url="http://reference.invalid" + wire.path, path=name_path(name),
                      headers=tuple(wire.headers.items()), body=wire.body)
    return request, status, headers, body


def name_path(name: str) -> str:
    from oaicompat.checks.base import ProbeContext
    return PROBES[name].build(ProbeContext(PROVIDER, PROVIDER.model)).path


def exchange(request: Request, status: int | None, headers: tuple[tuple[str, str], ...], body: bytes,
             splits: list[int] = (), failure: TransportFailure | None = None,
             attempts: tuple[Attempt, ...] = ()) -> Exchange:
    cuts = sorted({s for s in splits if 0 < s < len(body)})
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])] if body else []
    chunks = tuple(Chunk(0.001 * (i + 1), p) for i, p in enumerate(pieces) if p)
    return Exchange(request=request, status=status, headers=headers, chunks=chunks, failure=failure,
                    attempts=attempts, elapsed=0.01 * (len(chunks) + 1))


# -- strategies ----------------------------------------------------------------------------------------------

ODD_TEXT = ["\ud800", "\x00", "\u2028", "\ufeff", "<think>x</think>", "[DONE]", "data: x", "\r\n\r\n", "é" * 300,
            "call_" + "x" * 500, "\\u00e9", "NaN"]
DEEP = "__deep__"          # replaced by JSON nested deeper than the parser's recursion limit
HUGE = "__huge__"          # replaced by an integer literal longer than Python's int-string limit
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20)
           | st.sampled_from(ODD_TEXT + [DEEP, HUGE]))
json_values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
    st.sampled_from(["id", "object", "choices", "delta", "content", "message", "usage", "error", "role", "index",
                     "finish_reason", "tool_calls", "function", "arguments", "name", "data", "logprobs", "type",
                     "x"]) | st.text(max_size=8), kids, max_size=5), max_leaves=12)
statuses = st.sampled_from([200, 200, 200, 200, 400, 401, 403, 404, 413, 422, 429, 500, 502, 503, None])
content_types = st.sampled_from(["application/json", "text/event-stream", "text/event-stream; charset=utf-8",
                                 "text/plain", "text/html", "", "application/x-ndjson"])
failures = st.none() | st.builds(TransportFailure, st.sampled_from(["connect", "timeout", "read-timeout", "reset",
                                                                    "protocol", "too-large", "other"]),
                                 st.text(max_size=30), st.integers(0, 10_000))
attempts = st.lists(st.builds(Attempt, st.sampled_from([None, 429, 500, 503]), st.none() | st.text(max_size=10),
                              st.none() | st.text(max_size=5), st.none(), st.none(), st.floats(0, 1),
                              st.text(max_size=10)), max_size=2).map(tuple)


def dumps(value: Any) -> bytes:
    """json.dumps (NaN and Infinity literals allowed, as some servers send), with the DEEP and HUGE markers
    expanded into bytes no dumps() could write."""
    raw = json.dumps(value).encode()
    return raw.replace(json.dumps(DEEP).encode(), b"[" * 3000 + b"]" * 3000).replace(
        json.dumps(HUGE).encode(), b"7" * 5000)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, prefix + (i,))
    return out


def mutate(data: st.DataObject, value: Any) -> Any:
    """Replace, delete or retype one node of a JSON value."""
    where = data.draw(st.sampled_from(paths(value)))
    op = data.draw(st.sampled_from(["replace", "delete", "null", "string", "list"]))
    if not where:
        return data.draw(json_values)
    parent = value
    for key in where[:-1]:
        parent = parent[key]
    last = where[-1]
    if op == "delete":
        del parent[last]
    elif op == "null":
        parent[last] = None
    elif op == "string":
        parent[last] = json.dumps(parent[last])
    elif op == "list":
        parent[last] = [parent[last]]
    else:
        parent[last] = data.draw(json_values)
    return value


def sse_bytes(events: list[bytes], data: st.DataObject) -> bytes:
    ending = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    out = b""
    for ev in events:
        out += ev.replace(b"\n", ending) if data.draw(st.booleans()) else ev
    if data.draw(st.booleans()):
        out += b"data: [DONE]" + ending * data.draw(st.integers(0, 2))
    return out


def fuzzed_body(data: st.DataObject, body: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["mutate", "mutate", "mutate", "bytes", "json", "sse", "truncate", "flip"]))
    if kind == "bytes":
        return data.draw(st.binary(max_size=300))
    if kind == "json":
        return dumps(data.draw(json_values))
    if kind == "truncate":
        return body[:data.draw(st.integers(0, max(0, len(body))))]
    if kind == "flip" and body:
        at = data.draw(st.integers(0, len(body) - 1))
        return body[:at] + bytes([data.draw(st.integers(0, 255))]) + body[at + 1:]
    if kind == "sse":
        events = [b"data: " + dumps(data.draw(json_values)) + b"\n\n" for _ in range(data.draw(st.integers(0, 4)))]
        return sse_bytes(events, data)
    # mutate: one JSON node of the body, or of one SSE event
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, (dict, list)):
        return dumps(mutate(data, value))
    events = [e for e in body.split(b"\n\n") if e]
    if not events:
        return data.draw(st.binary(max_size=100))
    i = data.draw(st.integers(0, len(events) - 1))
    try:
        obj = json.loads(events[i][len(b"data: "):])
        events[i] = b"data: " + dumps(mutate(data, obj))
    except ValueError:
        events[i] = data.draw(st.binary(max_size=60))
    return sse_bytes([e + b"\n\n" for e in events], data)


@cache
def changed_by(behaviour: str) -> tuple[str, ...]:
    """The probes whose reply the behaviour changes (so that a fuzz case starts from a deviating reply)."""
    return tuple(n for n in PROBE_NAMES if conformant(n, behaviour)[1:] != conformant(n)[1:]) or tuple(PROBE_NAMES)


def fuzzed_exchange(data: st.DataObject, name: str, behaviour: str | None = None) -> Exchange:
    """The reference's reply to `name` (with one emulated quirk on, if named), then changed at random."""
    request, status, headers, body = conformant(name, behaviour)
    if data.draw(st.integers(0, 9)) == 0:      # now and then, a request no probe sends
        request = Request(request.method, request.url, request.path, request.headers,
                          data.draw(st.binary(max_size=40) | json_values.map(dumps)))
    what = data.draw(st.sets(st.sampled_from(["body", "body", "status", "content-type", "failure"]), max_size=3))
    if "body" in what:
        body = fuzzed_body(data, body)
    if "status" in what:
        status = data.draw(statuses)
    if "content-type" in what:
        ctype = data.draw(content_types)
        headers = tuple((k, v) for k, v in headers if k.lower() != "content-type") + (("content-type", ctype),)
    failure = data.draw(failures) if "failure" in what else None
    splits = data.draw(st.lists(st.integers(0, max(1, len(body))), max_size=6))
    return exchange(request, status, headers, body, splits, failure, data.draw(attempts))


def run_checks(names_to_exchanges: dict[str, Exchange]) -> None:
    """Run every check that uses a fuzzed probe; the others get the conformant replies."""
    wanted = {cid for name in names_to_exchanges for cid in USERS.get(name, [])}
    for cid in sorted(wanted):
        spec = CHECKS[cid]
        exchanges = [names_to_exchanges.get(n) or exchange(*conformant(n)) for n in spec.probes]
        try:
            spec.run(*exchanges)
        except Finding:
            pass
        except Exception as exc:  # noqa: BLE001 - the defect under test
            raise AssertionError(f"check {cid} raised {type(exc).__name__}: {exc}") from exc


@pytest.fixture(autouse=True)
def _long_runs_only_when_selected(request):
    """The thousands-of-cases runs are opt-in: `pytest -m fuzz` (CI deselects them with -m "not fuzz")."""
    if request.node.get_closest_marker("fuzz") and "fuzz" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("long fuzz run: select it with -m fuzz")


# -- the SSE parser ------------------------------------------------------------------------------------------

sse_like = st.lists(st.sampled_from([b"data: ", b"data:", b"event: ", b"id: ", b"retry: ", b": ", b"\n", b"\r",
                                     b"\r\n", b"[DONE]", b"{}", b'{"a": 1}', b"\xef\xbb\xbf", b"\xff", b"\x00",
                                     b"x"]) | st.binary(max_size=8), max_size=40).map(b"".join)


def check_parser(raw: bytes, cuts: list[int]) -> None:
    whole = parse_sse(raw)
    parser = SSEParser()
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    for a, b in zip([0, *points], [*points, len(raw)]):
        parser.feed(raw[a:b])
    split = parser.finish()
    # everything but chunk_index (which chunk held the terminator) is independent of where the bytes were split
    assert [replace(e, chunk_index=0) for e in split.events] == [replace(e, chunk_index=0) for e in whole.events], \
        f"split-dependent events for {raw!r} cut at {points}"
    assert (split.observations, split.done_index) == (whole.observations, whole.done_index), \
        f"split-dependent observations for {raw!r} cut at {points}"
    for ev in whole.events:
        assert 0 <= ev.offset <= ev.end <= len(raw)


@QUICK
@given(raw=st.binary(max_size=400) | sse_like, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_sse_parser_never_raises_and_ignores_splits(raw, cuts):
    check_parser(raw, cuts)


def draw_case(data: st.DataObject, most: int) -> dict[str, Exchange]:
    """Probes to fuzz: at random, or those an emulated quirk changes (starting from that deviating reply)."""
    behaviour = data.draw(st.none() | st.sampled_from(sorted(BEHAVIOURS)))
    pool = changed_by(behaviour) if behaviour else PROBE_NAMES
    names = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=most, unique=True))
    return {n: fuzzed_exchange(data, n, behaviour) for n in names}


@QUICK
@given(data=st.data())
def test_every_check_survives_fuzzed_exchanges(data):
    run_checks(draw_case(data, 3))


def test_regression_chunk_with_numeric_choices():
    request, status, headers, body = conformant("stream.basic")
    events = body.split(b"\n\n")
    bad = json.loads(events[1][len(b"data: "):])
    bad["choices"] = 1.5
    events.insert(2, b"data: " + json.dumps(bad).encode())
    stream = exchange(request, status, headers, b"\n\n".join(events))
    run_checks({"stream.basic": stream, "stream.seeded": exchange(conformant("stream.seeded")[0], status, headers,
                                                                  stream.body),
                "reasoning.stream": exchange(conformant("reasoning.stream")[0], status, headers, stream.body)})


def test_every_probe_has_a_conformant_reply_to_fuzz():
    for name in PROBE_NAMES:
        request, status, headers, body = conformant(name)
        assert request.body == wire_request(PROVIDER, name).body
        assert name not in USERS or status is not None


@pytest.mark.fuzz
@LONG
@given(raw=st.binary(max_size=2000) | sse_like, cuts=st.lists(st.integers(0, 2000), max_size=20))
def test_sse_parser_fuzz_long(raw, cuts):
    check_parser(raw, cuts)


@pytest.mark.fuzz
@LONG
@given(data=st.data())
def test_every_check_fuzz_long(data):
    run_checks(draw_case(data, 5))
