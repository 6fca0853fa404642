"""Replies over the transport's bounds (issue 19): too large, too slow, too many reads.

The transport never lets a hostile reply cost more than its bounds (oaicompat/transport.py): it stops
reading past MAX_BODY_BYTES (failure `too-large`), ends an exchange at the request's deadline (failure
`timeout` after the reply began), and keeps the first MAX_KEPT_CHUNKS reads one by one, merging the rest
into one tail chunk. These checks turn each cut into a finding against the vendor, on the plain and the
streamed request, so what the harness refused to keep is reported rather than silently lost.
"""

from __future__ import annotations

from ..exchange import Exchange
from ..transport import MAX_BODY_BYTES, MAX_KEPT_CHUNKS
from .base import QuirkFound, check, clip, evidence
from .requires import ANY_REPLY

PROBES = ["chat.basic", "stream.basic"]
DEADLINE_KIND = "timeout"   # the request's total deadline; a read-timeout (a stall) is the stream checks' finding


def _cut(ex: Exchange) -> str:
    f = ex.failure
    return f"< transport: {f.kind}: {clip(f.message, 200)}" if f is not None else "< (no transport failure)"


def _label(ex: Exchange) -> str:
    return "the streamed request" if ex.request.stream else "the plain request"


@check("transport.size", rule="LIMIT-1", probes=PROBES, quirks=["transport.too-large"], requires=ANY_REPLY)
def reply_fits_the_size_limit(*exchanges: Exchange) -> None:
    """A reply's body stays under the harness's size limit (the transport stops reading past it)."""
    for ex in exchanges:
        if ex.failure is not None and ex.failure.kind == "too-large":
            raise QuirkFound("transport.too-large",
                             f"{_label(ex)} was answered with more than {MAX_BODY_BYTES:,} bytes of body; the "
                             f"harness stopped reading there and closed the connection", ex,
                             evidence(ex, _cut(ex)))


@check("transport.deadline", rule="LIMIT-2", probes=PROBES, quirks=["transport.too-slow"], requires=ANY_REPLY)
def reply_completes_within_the_deadline(*exchanges: Exchange) -> None:
    """A reply that began completes within the request's deadline (providers.yaml timeouts.total)."""
    for ex in exchanges:
        f = ex.failure
        if f is not None and f.kind == DEADLINE_KIND and ex.status is not None:
            raise QuirkFound("transport.too-slow",
                             f"{_label(ex)}: HTTP {ex.status} began but the body was not complete at the "
                             f"deadline ({f.after_bytes:,} bytes had arrived); the harness closed the connection",
                             ex, evidence(ex, _cut(ex)))


@check("transport.reads", rule="LIMIT-3", probes=PROBES, quirks=["transport.too-many-chunks"], framing=True,
       requires=ANY_REPLY)
def reply_arrives_in_a_bounded_number_of_reads(*exchanges: Exchange) -> None:
    """A reply arrives in at most MAX_KEPT_CHUNKS reads (past that the harness merges reads into one chunk)."""
    for ex in exchanges:
        if len(ex.chunks) > MAX_KEPT_CHUNKS:
            tail = ex.chunks[-1]
            raise QuirkFound("transport.too-many-chunks",
                             f"{_label(ex)} arrived in more than {MAX_KEPT_CHUNKS:,} reads; the first "
                             f"{MAX_KEPT_CHUNKS:,} are kept with their times, the remaining {len(tail.data):,} "
                             f"bytes as one chunk", ex, evidence(ex, _cut(ex)))
