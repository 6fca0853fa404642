"""The cassette format, checked field by field when a cassette is read (format 1, see oaicompat.cassette).

A cassette is untrusted input: a truncated write, a hand edit or a hostile file must not reach the transport or
httpx as a wrong type. `check_document` walks the parsed YAML and raises one CassetteError naming the file and
the field, e.g. ``fixtures/cassettes/p/t.yaml: interactions[0].response.status: 'abc' is not an HTTP status
(100–599)``. Everything it lets through has the types the replayer and `interaction_to_exchange` rely on.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any, get_args

from .errors import CassetteError
from .exchange import FailureKind

FORMAT_VERSION = 1
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
FAILURE_KINDS = frozenset(get_args(FailureKind))
HEADER_FIELDS = ("provider", "model", "test", "oaicompat_version", "recorded_at", "updated_at", "record_mode")
ATTEMPT_TEXT_FIELDS = ("failure", "retry_after", "retry_after_ms", "should_retry_header")


class _Bad(Exception):
    """A field failed its check: where (a dotted path) and what is wrong with it."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(where, f"{_shown(value)} is not a mapping")
    for key in value:
        if not isinstance(key, str):
            raise _Bad(where, f"key {_shown(key)} is not a string")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Bad(where, f"{_shown(value)} is not a list")
    return value


def _text(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Bad(where, f"{_shown(value)} is not a string")
    return value


def _seconds(value: Any, where: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad(where, f"{_shown(value)} is not a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise _Bad(where, f"{_shown(value)} is not a finite, non-negative number of seconds")


def _status(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise _Bad(where, f"{_shown(value)} is not an HTTP status (100–599)")


def _headers(value: Any, where: str) -> None:
    for i, pair in enumerate(_list(value, where)):
        at = f"{where}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _Bad(at, f"{_shown(pair)} is not a [name, value] pair")
        for part, what in zip(pair, ("name", "value"), strict=True):
            _text(part, f"{at}.{what}")
            try:
                part.encode("latin-1")
            except UnicodeEncodeError:
                raise _Bad(f"{at}.{what}", f"{_shown(part)} is not latin-1 text, so no server sent it as a header") \
                    from None
        if not pair[0] or any(c in pair[0] for c in " \t\r\n:"):
            raise _Bad(f"{at}.name", f"{_shown(pair[0])} is not a header name")
        if any(c in pair[1] for c in "\r\n\x00"):
            raise _Bad(f"{at}.value", f"{_shown(pair[1])} holds a line break or NUL, which a header cannot")


def _body(d: Mapping[str, Any], text_key: str, b64_key: str, where: str, *, required: bool) -> None:
    if text_key in d and b64_key in d:
        raise _Bad(where, f"has both {text_key!r} and {b64_key!r}; a body is one or the other")
    if b64_key in d:
        encoded = _text(d[b64_key], f"{where}.{b64_key}")
        try:
            base64.b64decode(encoded or "", validate=True)
        except (binascii.Error, ValueError):
            raise _Bad(f"{where}.{b64_key}", "is not well-formed base64") from None
    elif text_key in d:
        _text(d[text_key], f"{where}.{text_key}")
    elif required:
        raise _Bad(where, f"has neither {text_key!r} nor {b64_key!r}")


def _request(value: Any, where: str) -> None:
    rq = _mapping(value, where)
    method = rq.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _Bad(f"{where}.method", f"{_shown(method)} is not an HTTP method ({', '.join(sorted(METHODS))})")
    path = _text(rq.get("path"), f"{where}.path")
    if not path or not path.startswith("/"):
        raise _Bad(f"{where}.path", f"{_shown(path)} is not a URL path starting with '/'")
    if "url" in rq:
        _text(rq["url"], f"{where}.url")
    if "headers" in rq:
        _headers(rq["headers"], f"{where}.headers")
    _body(rq, "body", "body_base64", where, required=False)


def _failure(value: Any, where: str) -> None:
    if value is None:
        return
    f = _mapping(value, where)
    unknown = set(f) - {"kind", "message", "after_bytes"}
    if unknown:
        raise _Bad(where, f"unknown field {sorted(unknown)[0]!r}")
    if f.get("kind") not in FAILURE_KINDS:
        raise _Bad(f"{where}.kind", f"{_shown(f.get('kind'))} is not one of {', '.join(sorted(FAILURE_KINDS))}")
    _text(f.get("message"), f"{where}.message")
    after = f.get("after_bytes", 0)
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise _Bad(f"{where}.after_bytes", f"{_shown(after)} is not a non-negative byte count")


def _response(value: Any, where: str) -> None:
    rs = _mapping(value, where)
    _status(rs.get("status"), f"{where}.status")
    _text(rs.get("http_version"), f"{where}.http_version", optional=True)
    if "headers" in rs:
        _headers(rs["headers"], f"{where}.headers")
    for i, chunk in enumerate(_list(rs.get("chunks", []), f"{where}.chunks")):
        at = f"{where}.chunks[{i}]"
        c = _mapping(chunk, at)
        _seconds(c.get("t"), f"{at}.t")
        _body(c, "text", "base64", at, required=True)
    _failure(rs.get("failure"), f"{where}.failure")


def _attempt(value: Any, where: str) -> None:
    a = _mapping(value, where)
    fields = {"status", "slept", "reason", *ATTEMPT_TEXT_FIELDS}
    if set(a) != fields:
        odd = sorted(set(a) - fields) or sorted(fields - set(a))
        raise _Bad(where, f"{'unknown' if set(a) - fields else 'missing'} field {odd[0]!r}")
    _status(a.get("status"), f"{where}.status")
    _seconds(a.get("slept"), f"{where}.slept")
    _text(a.get("reason"), f"{where}.reason")
    for key in ATTEMPT_TEXT_FIELDS:
        _text(a.get(key), f"{where}.{key}", optional=True)


def check_interaction(value: Any, where: str) -> None:
    """One interaction; raises _Bad."""
    inter = _mapping(value, where)
    for key in ("request", "response"):
        if key not in inter:
            raise _Bad(where, f"has no {key!r}")
    _request(inter["request"], f"{where}.request")
    _response(inter["response"], f"{where}.response")
    for i, attempt in enumerate(_list(inter.get("attempts", []), f"{where}.attempts")):
        _attempt(attempt, f"{where}.attempts[{i}]")
    _seconds(inter.get("elapsed"), f"{where}.elapsed", optional=True)


def check_document(data: Any, name: str) -> tuple[dict[str, Any], list[Any]]:
    """The parsed YAML of the cassette `name` → (header, interactions), or a CassetteError naming field and file."""
    if not isinstance(data, dict) or data.get("oaicompat_cassette") != FORMAT_VERSION:
        raise CassetteError(f"{name} is not an oaicompat cassette of format {FORMAT_VERSION}; re-record it")
    interactions = data.get("interactions")
    if not isinstance(interactions, list):
        raise CassetteError(f"cassette {name} has no 'interactions' list; re-record it")
    try:
        for key in HEADER_FIELDS:
            _text(data.get(key), key, optional=True)
        if data.get("server") is not None:
            _mapping(data["server"], "server")
        for i, inter in enumerate(interactions):
            check_interaction(inter, f"interactions[{i}]")
    except _Bad as exc:
        raise CassetteError(f"{name}: {exc}; re-record it with --record-mode=rewrite") from None
    return {k: v for k, v in data.items() if k != "interactions"}, interactions
