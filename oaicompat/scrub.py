"""Remove secrets before anything is stored or shown.

Two rules: credential headers are replaced whatever their value, and the value of every variable that
providers.yaml names as a key (api_key_env) is replaced wherever it appears: header, URL, body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from .exchange import Chunk, Exchange, Request

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie",
     "x-goog-api-key", "openai-organization", "openai-project"}
)
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6   # shorter values would redact ordinary text


@dataclass(frozen=True)
class Scrubber:
    """Replaces secret values (bytes and text) with a label naming the variable they came from."""
    secrets: tuple[tuple[str, str], ...] = ()   # (variable name, value)

    @classmethod
    def from_env(cls, variables: Iterable[str], env: Mapping[str, str]) -> "Scrubber":
        pairs = []
        for name in sorted(set(variables)):
            value = env.get(name)
            if value and len(value) >= MIN_SECRET_LENGTH:
                pairs.append((name, value))
        # longest first, so a key that contains another is replaced whole
        pairs.sort(key=lambda p: -len(p[1]))
        return cls(tuple(pairs))

    def with_secret(self, name: str, value: str) -> "Scrubber":
        if not value or len(value) < MIN_SECRET_LENGTH:
            return self
        pairs = sorted({*self.secrets, (name, value)}, key=lambda p: -len(p[1]))
        return Scrubber(tuple(pairs))

    def text(self, value: str) -> str:
        for name, secret in self.secrets:
            if secret in value:
                value = value.replace(secret, f"[REDACTED:{name}]")
        return value

    def bytes_(self, value: bytes) -> bytes:
        for name, secret in self.secrets:
            raw = secret.encode("utf-8")
            if raw in value:
                value = value.replace(raw, f"[REDACTED:{name}]".encode())
        return value

    def headers(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (k, REDACTED if k.lower() in SECRET_HEADERS else self.text(v)) for k, v in headers
        )

    def request(self, req: Request) -> Request:
        return replace(req, url=self.text(req.url), path=self.text(req.path), headers=self.headers(req.headers),
                       body=self.bytes_(req.body))

    def exchange(self, ex: Exchange) -> Exchange:
        chunks = ex.chunks
        if self.secrets:
            # a secret may straddle a chunk boundary: scrub the joined body and re-split at the same lengths
            joined = b"".join(c.data for c in chunks)
            clean = self.bytes_(joined)
            if clean != joined:
                chunks = _resplit(chunks, clean)
        failure = ex.failure
        if failure is not None:
            failure = replace(failure, message=self.text(failure.message))
        return replace(ex, request=self.request(ex.request), headers=self.headers(ex.headers),
                       chunks=chunks, failure=failure)

    def contains_secret(self, blob: str) -> bool:
        return any(secret in blob for _, secret in self.secrets)


def _resplit(chunks: tuple[Chunk, ...], clean: bytes) -> tuple[Chunk, ...]:
    """Keep the original boundaries where possible; put any length change into the last chunk."""
    out: list[Chunk] = []
    pos = 0
    for i, c in enumerate(chunks):
        if i == len(chunks) - 1:
            out.append(Chunk(c.t, clean[pos:]))
        else:
            out.append(Chunk(c.t, clean[pos:pos + len(c.data)]))
            pos += len(c.data)
    return tuple(out)


_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._\-]{8,}")
_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{16,}|gsk_[A-Za-z0-9]{20,}|xai-[A-Za-z0-9]{20,}|AIza[0-9A-Za-z_\-]{30,})")


def redact_keylike(text: str) -> str:
    """Replace strings that look like API keys (for third-party recordings whose keys we cannot know)."""
    return _KEYLIKE.sub(REDACTED, _BEARER.sub(lambda m: m.group(1) + REDACTED, text))
