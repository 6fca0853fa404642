"""Tests for oaicompat.sse: WHATWG SSE rules (openai-wire.md SSE-*, STREAM-DONE-*)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.sse import (
    MAX_OBSERVATIONS_PER_KIND,
    OBS_BOM,
    OBS_COMMENT,
    OBS_CR_LINE_ENDINGS,
    OBS_CRLF_LINE_ENDINGS,
    OBS_DATA_AFTER_DONE,
    OBS_EMPTY_EVENT,
    OBS_INVALID_RETRY,
    OBS_INVALID_UTF8,
    OBS_MULTILINE_DATA,
    OBS_NO_SPACE_AFTER_COLON,
    OBS_NUL_IN_ID,
    OBS_PARTIAL_LINE_AT_EOF,
    OBS_UNKNOWN_FIELD,
    OBS_UNTERMINATED_EVENT,
    SSEEvent,
    SSEObservation,
    SSEParser,
    SSEParseResult,
    parse_sse,
)

BOM = b"\xef\xbb\xbf"


# ----- helpers ----------------------------------------------------------------


def datas(result: SSEParseResult) -> list[str]:
    return [e.data for e in result.events]


def kinds(result: SSEParseResult) -> list[str]:
    return [o.kind for o in result.observations]


def obs(result: SSEParseResult, kind: str) -> list[SSEObservation]:
    return [o for o in result.observations if o.kind == kind]


def one_byte_chunks(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def split_at(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(stream)]
    return [stream[a:b] for a, b in zip(bounds, bounds[1:])]


def sans_chunk(result: SSEParseResult) -> list[tuple[object, ...]]:
    """Events without chunk_index (which legitimately depends on the split)."""
    return [(e.data, e.event, e.id, e.retry, e.offset, e.end) for e in result.events]


_TERM = re.compile(rb"\r\n|\r|\n")


def reference(stream: bytes) -> list[tuple[object, ...]]:
    """A direct, whole-stream transcription of WHATWG (no chunking, no fast paths)."""
    pos = 3 if stream.startswith(BOM) else 0
    events: list[tuple[object, ...]] = []
    data: list[str] = []
    event, retry, last_id, start = "", None, None, -1
    for match in _TERM.finditer(stream, pos):
        line = stream[pos : match.start()].decode("utf-8", "replace")
        line_at, pos = pos, match.end()
        if not line:
            if data:
                events.append(("\n".join(data), event, last_id, retry, start, pos))
            data, event, retry, start = [], "", None, -1
            continue
        if line.startswith(":"):
            continue
        start = line_at if start < 0 else start
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            retry = int(value)
    return events


# ----- line endings (SSE-3) -----------------------------------------------------


def test_lf_line_endings() -> None:
    r = parse_sse([b"data: a\n\ndata: b\n\n"])
    assert datas(r) == ["a", "b"]
    assert r.observations == ()


def test_crlf_line_endings_observed_once_with_count() -> None:
    r = parse_sse([b"data: a\r\n\r\ndata: b\r\n\r\n"])
    assert datas(r) == ["a", "b"]
    (o,) = obs(r, OBS_CRLF_LINE_ENDINGS)
    assert o.offset == 7 and o.detail.startswith("4 CRLF")
    assert not obs(r, OBS_CR_LINE_ENDINGS)


def test_cr_line_endings_observed() -> None:
    r = parse_sse([b"data: a\r\rdata: b\r\r"])
    assert datas(r) == ["a", "b"]
    (o,) = obs(r, OBS_CR_LINE_ENDINGS)
    assert o.offset == 7 and o.detail.startswith("4 bare CR")


def test_cr_then_lf_in_next_chunk_is_one_line_end() -> None:
    stream = b"data: a\r\n\r\ndata: b\r\n\r\n"
    whole = parse_sse([stream])
    split = parse_sse([b"data: a\r", b"\n\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert datas(split) == ["a", "b"]
    assert sans_chunk(split) == sans_chunk(whole)
    assert split.observations == whole.observations  # CRLF only, no bare CR
    assert [e.chunk_index for e in split.events] == [2, 4]


def test_cr_at_chunk_end_followed_by_other_byte_is_bare_cr() -> None:
    r = parse_sse([b"data: a\r", b"\r", b"data: b\r", b"\r"])
    assert datas(r) == ["a", "b"]
    assert obs(r, OBS_CR_LINE_ENDINGS)[0].detail.startswith("4 bare CR")
    assert [(e.offset, e.end, e.chunk_index) for e in r.events] == [(0, 9, 1), (9, 18, 3)]


def test_cr_held_at_chunk_end_dispatches_with_next_chunk_or_finish() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == []  # the last CR might still be half of a CRLF
    (event,) = parser.feed(b"x")
    assert (event.data, event.end, event.chunk_index) == ("a", 9, 0)
    parser = SSEParser()
    parser.feed(b"data: a\r\r")
    assert datas(parser.finish()) == ["a"]


def test_one_event_per_chunk() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\n") == [SSEEvent("a", "", None, None, 0, 9, 0)]
    assert [e.end for e in parser.feed(b"data: b\r\n\n")] == [19]  # CRLF ends the line, LF is the blank line
    assert parser.feed(b"\n") == []
    assert [e.data for e in parser.feed(b"data: c\rx\n\n")] == ["c"]  # CR ends "data: c"
    assert [e.data for e in parser.feed(b"data: [DONE]\n\n")] == ["[DONE]"]
    assert [e.data for e in parser.feed(b"data: d\n\n")] == ["d"]
    r = parser.finish()
    assert r.done_index == 3 and obs(r, OBS_DATA_AFTER_DONE)[0].offset == 45
    assert obs(r, OBS_UNKNOWN_FIELD)[0].offset == 28


def test_mixed_line_endings() -> None:
    r = parse_sse([b"data: a\r\ndata: b\rdata: c\n\r\n"])
    assert datas(r) == ["a\nb\nc"]


# ----- BOM (SSE-2) --------------------------------------------------------------------


def test_bom_stripped_at_start() -> None:
    r = parse_sse([BOM + b"data: a\n\n"])
    assert datas(r) == ["a"]
    assert r.observations == (SSEObservation(OBS_BOM, 0, "leading UTF-8 BOM stripped"),)
    assert (r.events[0].offset, r.events[0].end) == (3, 12)


def test_bom_split_across_chunks() -> None:
    r = parse_sse(one_byte_chunks(BOM + b"data: a\n\n"))
    assert datas(r) == ["a"] and kinds(r) == [OBS_BOM]
    other = parse_sse([b"", b"\xef", b"", b"\xbb\xbfdata: a\n\n"])
    assert sans_chunk(other) == sans_chunk(r) and other.events[0].chunk_index == 3


def test_only_one_bom_stripped_and_only_at_start() -> None:
    r = parse_sse([BOM + BOM + b"data: a\n\n"])
    assert datas(r) == []  # second BOM is part of the field name
    assert kinds(r) == [OBS_BOM, OBS_UNKNOWN_FIELD]
    r = parse_sse([b"data: a\n\n" + BOM + b"data: b\n\n"])
    assert datas(r) == ["a"] and kinds(r) == [OBS_UNKNOWN_FIELD]


def test_bom_prefix_alone_is_not_a_bom() -> None:
    r = parse_sse([b"\xef\xbb", b"data: a\n\n"])
    assert datas(r) == []
    assert OBS_BOM not in kinds(r) and OBS_INVALID_UTF8 in kinds(r)


# ----- comments and fields (SSE-5, SSE-6, SSE-8) ------------------------------------


def test_comments_ignored_and_tallied() -> None:
    r = parse_sse([b": ping\n\ndata: a\n: mid-event\n\n:\n\n"])
    assert datas(r) == ["a"]
    (o,) = obs(r, OBS_COMMENT)
    assert o.offset == 0 and o.detail == "3 comment lines, first ': ping'"
    assert r.events[0].offset == 8  # a comment does not start an event


def test_space_after_colon_optional_exactly_one_removed() -> None:
    r = parse_sse([b"data:x\n\ndata: x\n\ndata:  x\n\nevent:e\ndata\n\n"])
    assert datas(r) == ["x", "x", " x", ""]
    assert r.events[3].event == "e"
    (o,) = obs(r, OBS_NO_SPACE_AFTER_COLON)
    assert o.offset == 0 and o.detail.startswith("2 field lines") and "'data:x'" in o.detail


def test_line_without_colon() -> None:
    r = parse_sse([b"data\n\n"])
    assert datas(r) == [""]  # a data field with empty value still dispatches
    r = parse_sse([b"foo\ndata: a\n\n"])
    assert datas(r) == ["a"]
    (o,) = obs(r, OBS_UNKNOWN_FIELD)
    assert o.offset == 0 and "without ':'" in o.detail and "'foo'" in o.detail


def test_unknown_field_ignored() -> None:
    r = parse_sse([b"data: a\nfoo: bar\n\n"])
    assert datas(r) == ["a"]
    assert obs(r, OBS_UNKNOWN_FIELD)[0].offset == 8


def test_multiline_data_joined_with_lf() -> None:
    r = parse_sse([b'data: {"a":\ndata: 1}\n\n'])
    assert datas(r) == ['{"a":\n1}']
    (o,) = obs(r, OBS_MULTILINE_DATA)
    assert o.offset == 0 and o.detail.startswith("2 data lines")


def test_event_id_retry_fields() -> None:
    r = parse_sse([b"event: delta\nid: 7\nretry: 1500\ndata: a\n\ndata: b\n\n"])
    a, b = r.events
    assert (a.event, a.id, a.retry) == ("delta", "7", 1500)
    assert (b.event, b.id, b.retry) == ("", "7", None)  # id persists, event/retry do not
    r = parse_sse([b"id: 7\ndata: a\n\nid\ndata: b\n\n"])
    assert [e.id for e in r.events] == ["7", ""]  # an empty id resets it to ""
    assert parse_sse([b"data: a\n\n"]).events[0].id is None


@pytest.mark.parametrize("value", [b"1x", b"-1", b"+5", b"  5", b"5 ", b"1.5", b"", "\u0661\u0662".encode()])
def test_retry_not_all_ascii_digits_ignored(value: bytes) -> None:
    r = parse_sse([b"retry: 1000\nretry:" + value + b"\ndata: a\n\n"])
    assert r.events[0].retry == 1000
    (o,) = obs(r, OBS_INVALID_RETRY)
    assert o.offset == 12


def test_retry_with_huge_number_does_not_raise() -> None:
    r = parse_sse([b"retry: " + b"9" * 10_000 + b"\ndata: a\n\n"])
    assert datas(r) == ["a"] and r.events[0].retry is None
    assert OBS_INVALID_RETRY in kinds(r)
    assert len(r.observations[0].detail) <= 200


def test_id_with_nul_ignored() -> None:
    r = parse_sse([b"id: 1\n\ndata: a\n\nid: 2\x003\ndata: b\n\n"])
    assert [e.id for e in r.events] == ["1", "1"]
    (o,) = obs(r, OBS_NUL_IN_ID)
    assert o.offset == 16


# ----- dispatch (SSE-4, SSE-9, SSE-10) -----------------------------------------------


def test_dispatch_only_on_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"data: b\n") == []
    (event,) = parser.feed(b"\n")
    assert event.data == "a\nb"
    assert parser.feed(b"data: c\n\ndata: d\n\nda") == [
        SSEEvent("c", "", None, None, 17, 26, 3),
        SSEEvent("d", "", None, None, 26, 35, 3),
    ]
    assert [e.data for e in parser.finish().events] == ["a\nb", "c", "d"]


def test_unterminated_last_event_discarded_and_observed() -> None:
    r = parse_sse([b"data: a\n\ndata: b\n"])
    assert datas(r) == ["a"]
    (o,) = obs(r, OBS_UNTERMINATED_EVENT)
    assert o.offset == 9 and "'b'" in o.detail
    assert not obs(r, OBS_PARTIAL_LINE_AT_EOF)


def test_partial_line_at_eof() -> None:
    r = parse_sse([b"data: a\n\ndata: b"])
    assert datas(r) == ["a"]
    assert [(o.kind, o.offset) for o in r.observations] == [(OBS_PARTIAL_LINE_AT_EOF, 9), (OBS_UNTERMINATED_EVENT, 9)]
    r = parse_sse([b"data: a\n\n: bye"])
    assert kinds(r) == [OBS_PARTIAL_LINE_AT_EOF]  # a partial comment loses no event


@pytest.mark.parametrize("tail", [b"data: [DONE]", b"data: [DONE]\n"])
def test_done_without_blank_line_is_lost(tail: bytes) -> None:
    r = parse_sse([b"data: a\n\n" + tail])
    assert datas(r) == ["a"] and r.done_index is None
    assert "[DONE]" in obs(r, OBS_UNTERMINATED_EVENT)[0].detail


def test_empty_data_event_not_dispatched() -> None:
    r = parse_sse([b"event: ping\n\ndata: a\n\n"])
    assert datas(r) == ["a"]
    (o,) = obs(r, OBS_EMPTY_EVENT)
    assert o.offset == 0 and "json.loads" in o.detail


def test_blank_lines_without_fields_are_harmless() -> None:
    r = parse_sse([b"\n\n\ndata: a\n\n\n\n"])
    assert datas(r) == ["a"] and r.observations == ()
    assert r.events[0].offset == 3


def test_extra_blank_line_after_id_observed() -> None:
    r = parse_sse([b"id: 1\ndata: a\n\n\ndata: b\n\n"])
    assert datas(r) == ["a", "b"]
    (o,) = obs(r, OBS_EMPTY_EVENT)
    assert o.offset == 15 and "openai-python" in o.detail


# ----- [DONE] (STREAM-DONE-*) ----------------------------------------------------


def test_done_index_and_data_events() -> None:
    r = parse_sse([b"data: a\n\ndata: [DONE]\n\n\n \n"])
    assert r.done_index == 1
    assert [e.data for e in r.data_events] == ["a"]
    assert OBS_DATA_AFTER_DONE not in kinds(r)  # whitespace only (" " is an unknown field, though)


def test_done_is_exact_string() -> None:
    for data in (b"[DONE] ", b"[done]", b'"[DONE]"', b" [DONE]"):
        r = parse_sse([b"data: " + data + b"\n\n"])
        assert r.done_index is None and r.data_events == r.events


def test_data_after_done_observed() -> None:
    r = parse_sse([b"data: [DONE]\n\n\n  data: x\n\ndata: [DONE]\n\n"])
    assert r.done_index == 0
    assert datas(r) == ["[DONE]", "[DONE]"]  # parsing goes on
    (o,) = obs(r, OBS_DATA_AFTER_DONE)
    assert o.offset == 17  # first non-whitespace byte
    r = parse_sse([b"data: [DONE]\n\n", b": ping"])
    assert obs(r, OBS_DATA_AFTER_DONE)[0].offset == 14


# ----- UTF-8 (SSE-2) ----------------------------------------------------------


def test_invalid_utf8_observed_and_parsing_continues() -> None:
    r = parse_sse([b"data: a\n\ndata: b\xffc\n\ndata: d\n\n"])
    assert datas(r) == ["a", "b\ufffdc", "d"]
    (o,) = obs(r, OBS_INVALID_UTF8)
    assert o.offset == 16  # the bad byte itself
    assert "line at byte 9" in o.detail


def test_invalid_utf8_in_comment_and_field_name() -> None:
    r = parse_sse([b": \xc3\n\xfedata: a\ndata: b\n\n"])
    assert datas(r) == ["b"]
    assert [(o.kind, o.offset) for o in obs(r, OBS_INVALID_UTF8)] == [(OBS_INVALID_UTF8, 2), (OBS_INVALID_UTF8, 4)]


def test_multibyte_char_split_across_chunks() -> None:
    text = "héllo 日本 🙂"
    stream = f"data: {text}\n\n".encode()
    for chunks in (one_byte_chunks(stream), split_at(stream, [8]), split_at(stream, [14, 15, 19])):
        r = parse_sse(chunks)
        assert datas(r) == [text] and r.observations == ()


# ----- offsets, chunk indices, API -------------------------------------------------


def test_offsets_and_chunk_index() -> None:
    r = parse_sse([b"data: a\n", b"\n: c\ndata: b", b"b\n\n", b"", b"data: c\n\n"])
    assert [(e.data, e.offset, e.end, e.chunk_index) for e in r.events] == [
        ("a", 0, 9, 1),
        ("bb", 13, 23, 2),
        ("c", 23, 32, 4),
    ]


def test_event_span_covers_its_bytes() -> None:
    stream = b": hi\nevent: x\r\ndata: 1\r\n\r\nid: 9\rdata: 2\r\r"
    r = parse_sse([stream])
    spans = [stream[e.offset : e.end] for e in r.events]
    assert spans == [b"event: x\r\ndata: 1\r\n\r\n", b"id: 9\rdata: 2\r\r"]


def test_repeated_observations_are_bounded() -> None:
    stream = b": ping\ndata:{}\nfoo\n\n" * 5000
    r = parse_sse([stream])
    assert len(r.events) == 5000
    assert len(r.observations) == 2 + MAX_OBSERVATIONS_PER_KIND + 1
    assert obs(r, OBS_COMMENT)[0].detail.startswith("5000 comment lines")
    assert obs(r, OBS_NO_SPACE_AFTER_COLON)[0].detail.startswith("5000 field lines")
    unknown = obs(r, OBS_UNKNOWN_FIELD)
    assert len(unknown) == MAX_OBSERVATIONS_PER_KIND + 1
    assert unknown[-1].detail == f"{5000 - MAX_OBSERVATIONS_PER_KIND} more unknown-field not listed (5000 in total)"
    assert unknown[-1].offset == 15 + 20 * MAX_OBSERVATIONS_PER_KIND
    assert [o.offset for o in r.observations] == sorted(o.offset for o in r.observations)


def test_observation_details_are_capped_reprs() -> None:
    r = parse_sse([b"x" * 1000 + b"\x1b[31m\ndata: a\n\n"])
    (o,) = obs(r, OBS_UNKNOWN_FIELD)
    assert len(o.detail) <= 200 and "\x1b" not in o.detail


def test_finish_is_idempotent_and_feed_after_finish_raises() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n\n")
    first = parser.finish()
    assert parser.finish() is first
    with pytest.raises(RuntimeError):
        parser.feed(b"data: b\n\n")


def test_parse_sse_accepts_bytes_and_bytearray_chunks() -> None:
    assert datas(parse_sse(b"data: a\n\n")) == ["a"]
    assert datas(parse_sse([bytearray(b"data: a\n"), memoryview(b"\n")])) == ["a"]  # type: ignore[list-item]


def test_events_are_frozen_and_comparable() -> None:
    (event,) = parse_sse([b"data: a\n\n"]).events
    assert type(event) is SSEEvent
    assert event == SSEEvent("a", "", None, None, 0, 9, 0)
    assert hash(event) == hash(SSEEvent("a", "", None, None, 0, 9, 0))
    with pytest.raises(AttributeError):
        event.data = "b"  # type: ignore[misc]


def test_openai_shaped_stream() -> None:
    chunk = b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}'
    stream = b"data: " + chunk + b"\n\n: keep-alive\n\n" + (b"data: " + chunk + b"\n\n") * 3 + b"data: [DONE]\n\n"
    r = parse_sse(split_at(stream, range(7, len(stream), 13)))
    assert len(r.data_events) == 4 and r.done_index == 4
    assert kinds(r) == [OBS_COMMENT]


# ----- properties -------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12)
_ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r"])
_LINE = st.one_of(
    st.tuples(st.sampled_from(["data: ", "data:", "data:  "]), _TEXT),
    st.tuples(st.sampled_from(["event: ", "id: ", "retry: ", ": ", "foo: ", ""]), _TEXT),
    st.tuples(st.just("retry: "), st.integers(0, 10**6).map(str)),
    st.tuples(st.just("data: "), st.just("[DONE]")),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """Streams built from random events with random endings, comments, BOM and multibyte text."""
    out = [BOM] if draw(st.booleans()) else []
    for fields in draw(st.lists(st.lists(_LINE, max_size=4), max_size=6)):
        for prefix, value in fields:
            out.append((prefix + value).encode() + draw(_ENDINGS))
        out.append(draw(_ENDINGS))
    out.append(draw(st.sampled_from([b"", b"data: tail", b"\xff", b"\r", b"data: [DONE]"])))
    return b"".join(out)


@st.composite
def splits(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    """1-byte chunks, one chunk per blank-line-ended block (the usual network shape), or random cuts."""
    how = draw(st.sampled_from(["bytes", "blocks", "random"]))
    if how == "bytes" and len(stream) < 400:
        return one_byte_chunks(stream)
    if how == "blocks":
        return split_at(stream, [m.end() for m in re.finditer(rb"\n\n", stream)])
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=12))
    return split_at(stream, cuts)  # duplicate cuts at 0/len give empty chunks


def check_split_invariance(stream: bytes, chunks: list[bytes]) -> SSEParseResult:
    assert b"".join(chunks) == stream
    whole = parse_sse([stream])
    split = parse_sse(chunks)
    assert sans_chunk(split) == sans_chunk(whole)
    assert split.observations == whole.observations
    assert split.done_index == whole.done_index
    ends = [0] + [e.end for e in split.events]
    assert all(a <= e.offset < e.end <= len(stream) for a, e in zip(ends, split.events))
    assert [e.chunk_index for e in split.events] == sorted(e.chunk_index for e in split.events)
    return whole


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=sse_streams())
def test_property_any_split_same_result(data: st.DataObject, stream: bytes) -> None:
    whole = check_split_invariance(stream, data.draw(splits(stream)))
    assert sans_chunk(whole) == reference(stream)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), stream=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_raise(data: st.DataObject, stream: bytes) -> None:
    whole = check_split_invariance(stream, data.draw(splits(stream)))
    assert sans_chunk(whole) == reference(stream)


_SSE_ALPHABET = st.sampled_from(
    [b"\n", b"\r", b"\r\n", b":", b" ", b"data", b"id", b"event", b"retry", b"1", b"\x00", b"\xff", b"\xc3", b"\xa9"]
    + [BOM, b"[DONE]"]
)


@pytest.mark.fuzz
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=st.one_of(st.binary(max_size=2000), st.lists(_SSE_ALPHABET, max_size=200).map(b"".join)))
def test_fuzz_heavy(data: st.DataObject, stream: bytes) -> None:
    whole = check_split_invariance(stream, data.draw(splits(stream)))
    assert sans_chunk(whole) == reference(stream)


@pytest.mark.fuzz
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=sse_streams())
def test_property_heavy(data: st.DataObject, stream: bytes) -> None:
    whole = check_split_invariance(stream, data.draw(splits(stream)))
    assert sans_chunk(whole) == reference(stream)
