"""openai-python acceptance: replay a recorded Exchange through the official client, offline.

`replay_through_openai(ex)` hands the Exchange's status, headers and body bytes (in the chunks they
arrived in, then the recorded transport failure, if any) to `openai.OpenAI` through an
`httpx.MockTransport`, runs `client.chat.completions.create(**request)` (streamed or not, as the
request was) and reports what the SDK made of the bytes. With `helper=True` it runs the
`client.chat.completions.stream(...)` helper instead, whose `accumulate_delta` concatenates repeated
string fields (a `role` sent on every chunk becomes "assistantassistant…").

So "breaks openai-python" is measured, not guessed. Nothing is sent anywhere: the transport never
opens a socket. `openai` is imported lazily; without it `SDKUnavailable` is raised (it is a main
dependency of oaicompat: pip install -e . installs it). This module imports only `oaicompat.exchange` (and httpx).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from .exchange import Exchange

__all__ = ["INSTALL_HINT", "SDKResult", "SDKUnavailable", "ErrorKind", "load_openai", "replay_through_openai",
           "warm_openai"]

INSTALL_HINT = "pip install -e . (openai is one of oaicompat's dependencies)"
BASE_URL = "http://sdk.invalid/v1"
MAX_MESSAGE = 300

# "request": the SDK refused the call before any byte was replayed (e.g. a parameter the helper rejects)
# "status": an HTTP error status (APIStatusError); "transport": the recorded connection failure
# "stream-error": an `{"error": …}` event in the stream (APIError); "parse": anything else the SDK raised
ErrorKind = Literal["request", "status", "transport", "stream-error", "parse"]

# create()/stream() parameters that are client options, not body fields: never taken from a request body
_CLIENT_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout", "stream"})
# hop-by-hop framing the real transport already resolved; the replayed body is the bytes as received
_DROP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class SDKUnavailable(RuntimeError):
    """openai-python is not installed."""

    def __init__(self, cause: BaseException | None = None) -> None:
        super().__init__(f"openai-python is not installed ({cause}); install it with: {INSTALL_HINT}")


@dataclass(frozen=True)
class SDKResult:
    """What openai-python made of one recorded response."""
    ok: bool                          # no exception from the call or the iteration
    stream: bool                      # the request asked for a stream
    helper: bool                      # the chat.completions.stream() helper was used
    error_type: str | None = None     # exception class, e.g. "JSONDecodeError", "APIError"
    error_message: str | None = None
    error_kind: ErrorKind | None = None
    # of choices[0], as a caller reads it: joined delta.content / message.content / the helper's accumulation
    text: str | None = None
    finish_reason: str | None = None  # the last non-null one in a stream
    role: str | None = None           # the first delta role / message role / the helper's accumulated role
    chunks: int = 0                   # chunks the SDK yielded (before an exception, if any)
    result_type: str | None = None    # class of what create() returned without stream, e.g. "ChatCompletion"

    @property
    def error(self) -> str | None:
        return f"{self.error_type}: {self.error_message}" if self.error_type else None


class _ReplayStream(httpx.SyncByteStream):
    """The recorded chunks, as they arrived; then the recorded transport failure, if any."""

    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._ex.chunks:
            if chunk.data:
                yield chunk.data
        failure = self._ex.failure
        if failure is not None:
            message = f"recorded failure: {failure.kind}: {failure.message}"
            if failure.kind in ("timeout", "read-timeout"):
                raise httpx.ReadTimeout(message)
            if failure.kind == "protocol":
                raise httpx.RemoteProtocolError(message)
            raise httpx.ReadError(message)


def _handler(ex: Exchange, sent: list[bool]):
    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(True)
        if ex.status is None:
            failure = ex.failure
            why = f"{failure.kind}: {failure.message}" if failure else "?"
            raise httpx.ConnectError(f"recorded: no response ({why})", request=request)
        headers = [(k, v) for k, v in ex.headers if k.lower() not in _DROP_HEADERS]
        return httpx.Response(ex.status, headers=headers, stream=_ReplayStream(ex), request=request)
    return handle


def _kwargs(method: Any, body: Any) -> dict[str, Any]:
    """Request body → keyword arguments: known parameters by name, the rest through extra_body."""
    body = dict(body) if isinstance(body, dict) else {}
    params = set(inspect.signature(method).parameters) - _CLIENT_OPTIONS
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in params:
            kwargs[key] = value
        elif key != "stream":
            extra[key] = value
    kwargs.setdefault("model", "")
    kwargs.setdefault("messages", [])
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"


def _classify(exc: BaseException, sent: bool, openai: Any) -> ErrorKind:
    if not sent:
        return "request"
    if isinstance(exc, openai.APIStatusError):
        return "status"
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
        return "transport"
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIResponseValidationError):
        return "stream-error"
    return "parse"


def _choice0(choices: Any) -> Any:
    """choices[0], as a typical caller reads it (`chunk.choices[0].delta.content`), or None."""
    return choices[0] if isinstance(choices, list) and choices else None


def load_openai() -> Any:
    """The openai module, imported on the first SDK check and never before (the import costs seconds, so only
    the SDK checks pay it, never the replay of other checks; later calls find it in sys.modules);
    SDKUnavailable when it is not installed."""
    try:
        import openai
    except ImportError as exc:
        raise SDKUnavailable(exc) from None
    return openai


def warm_openai() -> bool:
    """Import openai and the chat-completion modules its client loads on first use (their pydantic models are
    built at import), so that cost is paid once before the checks run rather than inside the first SDK check.
    False when openai is not installed (the SDK checks then say so themselves); nothing is sent."""
    try:
        client_module = load_openai()
        import openai.lib.streaming.chat  # noqa: F401  (the stream() helper's accumulator)
        import openai.resources.chat.completions  # noqa: F401
        import openai.types.chat  # noqa: F401
    except (SDKUnavailable, ImportError):
        return False
    client_module.OpenAI(api_key="x", base_url=BASE_URL, max_retries=0).close()
    return True


def replay_through_openai(ex: Exchange, *, helper: bool = False) -> SDKResult:
    """Feed the recorded response to openai-python; never raises except SDKUnavailable."""
    openai = load_openai()
    stream = ex.request.stream
    sent: list[bool] = []
    state: dict[str, Any] = {"text": None, "finish": None, "role": None, "chunks": 0, "type": None}
    client = openai.OpenAI(api_key="x", base_url=BASE_URL, max_retries=0,
                           http_client=httpx.Client(transport=httpx.MockTransport(_handler(ex, sent))))
    try:
        with warnings.catch_warnings():     # pydantic complaints about vendor values are not the measurement
            warnings.simplefilter("ignore")
            if helper:
                _run_helper(client, ex.request.json, state)
            elif stream:
                _run_stream(client, ex.request.json, state)
            else:
                _run_plain(client, ex.request.json, state)
    except Exception as exc:  # whatever the SDK raises on vendor bytes is the measurement
        return SDKResult(False, stream, helper, type(exc).__name__, _clip(str(exc) or repr(exc)),
                         _classify(exc, bool(sent), openai), state["text"], state["finish"], state["role"],
                         state["chunks"], state["type"])
    finally:
        client.close()
    return SDKResult(True, stream, helper, None, None, None, state["text"], state["finish"], state["role"],
                     state["chunks"], state["type"])


def _run_plain(client: Any, body: Any, state: dict[str, Any]) -> None:
    kwargs = _kwargs(client.chat.completions.create, body)
    result = client.chat.completions.create(**kwargs, stream=False)
    state["type"] = type(result).__name__
    choice = _choice0(getattr(result, "choices", None))
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    state["text"] = content if isinstance(content, str) else None
    state["role"] = getattr(message, "role", None)
    state["finish"] = getattr(choice, "finish_reason", None)


def _run_stream(client: Any, body: Any, state: dict[str, Any]) -> None:
    kwargs = _kwargs(client.chat.completions.create, body)
    response = client.chat.completions.create(**kwargs, stream=True)
    state["type"] = type(response).__name__
    parts: list[str] = []
    state["text"] = ""
    try:
        for chunk in response:
            state["chunks"] += 1
            choice = _choice0(getattr(chunk, "choices", None))
            if choice is None:
                continue
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if isinstance(content, str):
                parts.append(content)
                state["text"] = "".join(parts)
            role = getattr(delta, "role", None)
            if state["role"] is None and role is not None:
                state["role"] = role
            if getattr(choice, "finish_reason", None) is not None:
                state["finish"] = choice.finish_reason
    finally:
        response.close()


def _run_helper(client: Any, body: Any, state: dict[str, Any]) -> None:
    kwargs = _kwargs(client.chat.completions.stream, body)
    with client.chat.completions.stream(**kwargs) as events:
        try:
            for event in events:
                if getattr(event, "type", None) == "chunk":
                    state["chunks"] += 1
        finally:
            _snapshot(events, state)


def _snapshot(events: Any, state: dict[str, Any]) -> None:
    """The helper's accumulated message (role and content as accumulate_delta merged them)."""
    try:
        snapshot = events.current_completion_snapshot
    except AssertionError:      # no chunk was accumulated
        return
    choice = _choice0(getattr(snapshot, "choices", None))
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    state["text"] = content if isinstance(content, str) else None
    state["role"] = getattr(message, "role", None)
    state["finish"] = getattr(choice, "finish_reason", None)
