"""openai-python acceptance: the recorded bytes, replayed offline through the official client
(oaicompat.sdk), parse without exception and yield what our own parser reads from the same bytes.

This measures "breaks openai-python" instead of guessing it. The SDK's text is what a typical caller
reads: the joined `chunk.choices[0].delta.content` of `create(stream=True)`; the `.stream()` helper's is
its accumulated message (openai-python's `accumulate_delta`, which concatenates repeated strings).
Our own reading is `streamview.StreamView.content(0)`. Without openai installed the checks are Blocked
(install the test extra: pip install -e '.[test]').
"""

from __future__ import annotations

from ..exchange import Exchange
from ..sdk import SDKResult, SDKUnavailable, replay_through_openai
from .base import Blocked, QuirkFound, check, clip, evidence
from .common import show as _show
from .requires import OK, SOK
from .streamview import event_line, stream_view

STREAM_STATUS_OWNER = "stream.status"
CHAT_STATUS_OWNER = "chat.status"
STREAM_PARSE_OWNER = "sdk.stream-parses"
HELPER_OWNER = "sdk.helper-parses"
INSTALL_OWNER = "the import of openai"


def _is_stream(req) -> bool:
    return req.stream


def _replay(ex: Exchange, *, helper: bool = False) -> SDKResult:
    try:
        return replay_through_openai(ex, helper=helper)
    except SDKUnavailable as exc:
        raise Blocked(str(exc), INSTALL_OWNER, ex) from None      # the install hint once, in one line


def _sdk_line(result: SDKResult) -> str:
    what = "the .stream() helper" if result.helper else ("create(stream=True)" if result.stream else "create()")
    if result.ok:
        return clip(f"< openai-python {what}: ok, {result.chunks} chunks, text {_show(result.text)}, "
                    f"finish_reason {result.finish_reason!r}, role {result.role!r}")
    return clip(f"< openai-python {what}: raised {result.error} after {result.chunks} chunks")


def _stream_result(ex: Exchange, *, helper: bool, parse_quirk: str | None) -> SDKResult:
    """The SDK's reading of a 200 stream; Blocked for failures other checks name, the quirk for the rest."""
    if ex.status != 200:
        raise Blocked(f"the streamed request was answered {ex.summary()}", STREAM_STATUS_OWNER, ex)
    result = _replay(ex, helper=helper)
    if result.ok:
        return result
    if result.error_kind == "transport":
        raise Blocked(f"openai-python saw the recorded transport failure: {result.error}", "stream.truncated", ex)
    if result.error_kind == "stream-error":
        raise Blocked(f"openai-python raised the stream's error event: {result.error}", "stream.midstream-error", ex)
    if result.error_kind == "status":
        raise Blocked(f"openai-python raised a status error: {result.error}", STREAM_STATUS_OWNER, ex)
    if result.error_kind == "request":
        raise Blocked(f"openai-python refused the request itself: {result.error}", INSTALL_OWNER, ex)
    if parse_quirk is None:
        owner = HELPER_OWNER if helper else STREAM_PARSE_OWNER
        raise Blocked(f"openai-python raised {result.error}", owner, ex)
    lines = evidence(ex, *_near_failure(ex, result), _sdk_line(result))
    raise QuirkFound(parse_quirk, f"openai-python raised {result.error} after {result.chunks} chunks", ex, lines)


def _near_failure(ex: Exchange, result: SDKResult) -> list[str]:
    """The data event the SDK was reading when it raised (the one after the chunks it yielded)."""
    events = ex.sse.events
    if result.chunks < len(events):
        return [f"< event {result.chunks}: " + event_line(events[result.chunks])]
    return []


def _ours(ex: Exchange) -> tuple[str, str | None]:
    view = stream_view(ex)
    reasons = view.finish_reasons(0)
    return view.content(0), (reasons[-1][1] if reasons else None)


# -- create(stream=True) ----------------------------------------------------------------------------

@check("sdk.stream-parses", rule="SSE-9", probes=["stream.basic"], quirks=["sdk.stream-parse-error"],
       applies=_is_stream, requires=SOK)
def stream_parses(ex: Exchange) -> None:
    """openai-python's create(stream=True) iterates the recorded stream without an exception."""
    _stream_result(ex, helper=False, parse_quirk="sdk.stream-parse-error")


@check("sdk.stream-text", rule="STREAM-7", probes=["stream.basic"],
       quirks=["sdk.stream-text-differs", "sdk.stream-finish-reason-differs"], applies=_is_stream, requires=SOK)
def stream_text_matches(ex: Exchange) -> None:
    """openai-python's create(stream=True) yields the same text and finish_reason as the raw events."""
    result = _stream_result(ex, helper=False, parse_quirk=None)
    text, reason = _ours(ex)
    sdk_text = result.text or ""
    if sdk_text != text:
        raise QuirkFound("sdk.stream-text-differs",
                         f"openai-python yields {_show(sdk_text)}, the events hold {_show(text)}", ex,
                         evidence(ex, _sdk_line(result), f"< events: text {_show(text)}"))
    if result.finish_reason != reason:
        raise QuirkFound("sdk.stream-finish-reason-differs",
                         f"openai-python yields finish_reason {result.finish_reason!r}, the events hold {reason!r}",
                         ex, evidence(ex, _sdk_line(result), f"< events: finish_reason {reason!r}"))


# -- the .stream() helper ---------------------------------------------------------------------------

@check("sdk.helper-parses", rule="STREAM-13", probes=["stream.basic"], quirks=["sdk.helper-error"],
       applies=_is_stream, requires=SOK)
def helper_parses(ex: Exchange) -> None:
    """openai-python's chat.completions.stream() helper accumulates the recorded stream without an exception."""
    _stream_result(ex, helper=True, parse_quirk="sdk.helper-error")


@check("sdk.helper-role", rule="STREAM-6", probes=["stream.basic"], quirks=["sdk.helper-role-mangled"],
       applies=_is_stream, requires=SOK)
def helper_role_is_assistant(ex: Exchange) -> None:
    """The .stream() helper's accumulated message has role "assistant" (a repeated role delta concatenates)."""
    result = _stream_result(ex, helper=True, parse_quirk=None)
    entries = stream_view(ex).choice_entries(0)
    delta = entries[0][1].get("delta") if entries else None
    ours = delta.get("role") if isinstance(delta, dict) else None
    if result.role is None and ours is None:
        raise Blocked("no delta carries a role", "stream.role-first", ex)
    if result.role != "assistant":
        raise QuirkFound("sdk.helper-role-mangled",
                         f"the helper's accumulated role is {result.role!r}; the first delta's is {ours!r}", ex,
                         evidence(ex, _sdk_line(result)))


@check("sdk.helper-text", rule="STREAM-12", probes=["stream.basic"], quirks=["sdk.helper-text-differs"],
       applies=_is_stream, requires=SOK)
def helper_text_matches(ex: Exchange) -> None:
    """The .stream() helper's accumulated content equals the joined delta.content of the raw events."""
    result = _stream_result(ex, helper=True, parse_quirk=None)
    text, _ = _ours(ex)
    if (result.text or "") != text:
        raise QuirkFound("sdk.helper-text-differs",
                         f"the helper accumulates {_show(result.text)}, the events hold {_show(text)}", ex,
                         evidence(ex, _sdk_line(result), f"< events: text {_show(text)}"))


# -- create() without stream ------------------------------------------------------------------------

@check("sdk.completion-parses", rule="RESP-1", probes=["chat.basic"],
       quirks=["sdk.completion-parse-error", "sdk.completion-not-parsed"], applies=lambda req: not req.stream,
       requires=OK)
def completion_parses(ex: Exchange) -> None:
    """openai-python's create() parses the recorded non-streamed reply into a ChatCompletion."""
    if ex.status != 200 or ex.failure is not None:
        raise Blocked(f"the request was not answered with a whole 200 reply: {ex.summary()}", CHAT_STATUS_OWNER, ex)
    result = _replay(ex)
    if not result.ok:
        if result.error_kind == "request":
            raise Blocked(f"openai-python refused the request itself: {result.error}", INSTALL_OWNER, ex)
        raise QuirkFound("sdk.completion-parse-error", f"openai-python raised {result.error}", ex,
                         evidence(ex, _sdk_line(result)))
    if result.result_type != "ChatCompletion":
        raise QuirkFound("sdk.completion-not-parsed",
                         f"create() returned a {result.result_type}, not a ChatCompletion "
                         f"(content-type {ex.header('content-type')!r})", ex, evidence(ex, _sdk_line(result)))
