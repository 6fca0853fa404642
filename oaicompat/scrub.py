"""Remove secrets before anything is stored or shown.

Two rules: credential headers are replaced whatever their value, and the value of every variable that
providers.yaml names as a key (api_key_env) is replaced wherever it appears: header, URL, body, results,
reports, terminal. A hostile server may echo a key in disguise, so each secret is matched in its common
encodings: raw, JSON string escapes (`\\u0073`, `\\/`, in any mix with plain characters), percent-encoding
(upper or lower hex, `+` for a space), hex (either case), base64 and base64url (alone, or inside a longer
base64 string at any of its three alignments, as in `Basic base64(user:key)`), and reversed.

A compressed body hides a secret from all of that: `decode_body` undoes a content-encoding (gzip, deflate,
br when the brotli module is installed) so the recorder stores the decoded bytes, and `Scrubber.exchange`
does so for every exchange, renaming the header to `x-oaicompat-decoded-content-encoding` as the note.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .config import KEY_VARIABLE, LOCAL_KEY_ENV
from .exchange import Chunk, Exchange, Request, TransportFailure

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie",
     "x-goog-api-key", "openai-organization", "openai-project"}
)
REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6   # shorter values would redact ordinary text
MIN_ENCODED_LENGTH = 8  # an encoded fragment shorter than this would match ordinary base64/hex by chance
DECODED_ENCODING_HEADER = "x-oaicompat-decoded-content-encoding"
MAX_DECODED_BYTES = 12 * 1024 * 1024   # a decompression bomb stops here (as the transport stops reading)


# -- encodings of one secret ---------------------------------------------------------------------------------

def _char_forms(ch: str) -> list[str]:
    """Regex alternatives for one character: itself, its JSON escape(s), its percent-encoding."""
    forms = [re.escape(ch)]
    code = ord(ch)
    if code < 0x10000:
        forms.append(rf"\\u(?i:{code:04x})")
    else:   # a JSON surrogate pair
        hi, lo = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(rf"\\u(?i:{hi:04x})\\u(?i:{lo:04x})")
    if ch == "/":
        forms.append(r"\\/")
    if ch == " ":
        forms.append(r"\+")
    forms.append("".join(f"%(?i:{b:02x})" for b in ch.encode("utf-8")))
    return forms


def _mixed_pattern(secret: str) -> str:
    """Every character may appear plain, JSON-escaped or percent-encoded, independently of the others."""
    return "".join("(?:" + "|".join(_char_forms(ch)) + ")" for ch in secret)


def _base64_cores(raw: bytes) -> list[str]:
    """The base64 text that encodes `raw` wherever it starts in a longer byte string (three alignments),
    without the characters that also depend on neighbouring bytes."""
    cores = []
    for lead in range(3):
        encoded = base64.b64encode(b"\0" * lead + raw).decode("ascii").rstrip("=")
        start = -(-8 * lead // 6)               # first character made of the secret's bits only
        end = (8 * (lead + len(raw))) // 6      # last such character, exclusive
        core = encoded[start:end]
        if len(core) >= MIN_ENCODED_LENGTH:
            cores.append(core)
    return cores


def secret_pattern(secret: str) -> str:
    """One regex (for str) matching `secret` in any of the encodings this module knows."""
    raw = secret.encode("utf-8")
    parts = [_mixed_pattern(secret), _mixed_pattern(secret[::-1])]
    hex_form = raw.hex()
    if len(hex_form) >= MIN_ENCODED_LENGTH:
        parts.append("(?i:" + hex_form + ")")
    for core in _base64_cores(raw):
        parts.append(re.escape(core))
        url = core.replace("+", "-").replace("/", "_")
        if url != core:
            parts.append(re.escape(url))
    # longest alternatives first: the regex engine takes the first that matches
    return "|".join(sorted(set(parts), key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _compiled(secrets: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], re.Pattern[bytes]] | None:
    """One regex for all secrets (one pass over a body however many keys are set); group i is secret i."""
    if not secrets:
        return None
    pattern = "|".join(f"(?P<s{i}>{secret_pattern(value)})" for i, (_, value) in enumerate(secrets))
    return re.compile(pattern), re.compile(pattern.encode("utf-8"))


# -- compressed bodies ---------------------------------------------------------------------------------------

def _brotli():  # type: ignore[no-untyped-def]
    try:
        import brotli  # type: ignore[import-not-found]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    return brotli


def decode_body(data: bytes, content_encoding: str | None,
                cap: int = MAX_DECODED_BYTES) -> tuple[bytes, str | None, str | None]:
    """Undo a response's Content-Encoding so what is stored (and scrubbed) is what the server meant.

    Returns (bytes, encoding that was undone or None, problem or None). Never holds more than `cap` decoded
    bytes; a corrupt or truncated stream keeps what decoded before the damage (the problem says so). An
    encoding this machine cannot undo (br without brotli, zstd, …) returns the bytes unchanged."""
    names = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
    names = [n for n in names if n != "identity"]
    if not names or not data:
        return data, None, None
    problem: str | None = None
    for name in reversed(names):           # the last encoding applied is undone first
        if name in ("gzip", "x-gzip", "deflate"):
            data, problem = _inflate(data, name, cap)
        elif name == "br" and _brotli() is not None:
            data, problem = _unbrotli(data, cap)
        else:
            return data, None, f"content-encoding {name!r} cannot be decoded here; the body is kept as sent"
    return data, ", ".join(names), problem


def _inflate(data: bytes, name: str, cap: int) -> tuple[bytes, str | None]:
    if name == "deflate":   # RFC 9110 says zlib-wrapped; some servers send raw deflate
        wbits = zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        wbits = 16 + zlib.MAX_WBITS
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(wbits)
        pos = 0
        while pos < len(rest):
            piece = rest[pos:pos + 65536]
            pos += len(piece)
            try:
                out += d.decompress(piece, cap + 1 - len(out))
            except zlib.error as exc:
                return bytes(out[:cap]), f"{name} body is corrupt after {len(out):,} decoded bytes ({exc})"
            if len(out) > cap or d.unconsumed_tail:
                return bytes(out[:cap]), f"{name} body decodes to more than {cap:,} bytes; kept the first {cap:,}"
            if d.eof:
                break
        if not d.eof:
            return bytes(out), f"{name} body is truncated"
        rest = d.unused_data.lstrip(b"\x00") if wbits > 16 else b""
    return bytes(out), None


def _unbrotli(data: bytes, cap: int) -> tuple[bytes, str | None]:
    brotli = _brotli()
    try:
        d = brotli.Decompressor()
        out = bytearray()
        for pos in range(0, len(data), 65536):
            out += d.process(data[pos:pos + 65536])
            if len(out) > cap:
                return bytes(out[:cap]), f"br body decodes to more than {cap:,} bytes; kept the first {cap:,}"
        return bytes(out), None
    except Exception as exc:  # noqa: BLE001 - brotli raises its own error type
        return b"", f"br body is corrupt ({exc})"


def decoded_exchange(ex: Exchange) -> Exchange:
    """The exchange with a compressed body decoded: one chunk at the time the last piece arrived, and the
    Content-Encoding header renamed to x-oaicompat-decoded-content-encoding (a stale Content-Length dropped)."""
    encoding = ex.header("content-encoding")
    if not encoding or not ex.chunks:
        return ex
    body, undone, problem = decode_body(ex.body, encoding)
    if undone is None:
        return ex
    headers: list[tuple[str, str]] = []
    for k, v in ex.headers:
        if k.lower() == "content-encoding":
            headers.append((DECODED_ENCODING_HEADER, v))
        elif k.lower() != "content-length":
            headers.append((k, v))
    failure = ex.failure
    if problem and failure is None:
        kind = "too-large" if "more than" in problem else "protocol"
        failure = TransportFailure(kind, problem, len(body))  # type: ignore[arg-type]
    return replace(ex, headers=tuple(headers), chunks=(Chunk(ex.chunks[-1].t, body),), failure=failure)


# -- the scrubber ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scrubber:
    """Replaces secret values (bytes and text, in any known encoding) with a label naming their variable."""
    secrets: tuple[tuple[str, str], ...] = ()   # (variable name, value)
    _patterns: tuple[re.Pattern[str], re.Pattern[bytes]] | None = field(
        init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", _compiled(tuple(self.secrets)))

    def _label(self, match: re.Match) -> str:  # type: ignore[type-arg]
        return f"[REDACTED:{self.secrets[int(match.lastgroup[1:])][0]}]"  # type: ignore[index]

    @classmethod
    def from_env(cls, variables: Iterable[str], env: Mapping[str, str]) -> Scrubber:
        pairs = []
        for name in sorted(set(variables)):
            value = env.get(name)
            if value and len(value) >= MIN_SECRET_LENGTH:
                pairs.append((name, value))
        # longest first, so a key that contains another is replaced whole
        pairs.sort(key=lambda p: -len(p[1]))
        return cls(tuple(pairs))

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> Scrubber:
        """Every variable of `env` (default os.environ) whose name says it holds a key (KEY_VARIABLE), plus
        OAICOMPAT_LOCAL_KEY and `extra`: the writers of results and reports use it whoever calls them."""
        env = os.environ if env is None else env
        names = {n for n in env if KEY_VARIABLE.match(n)} | {LOCAL_KEY_ENV, *extra}
        return cls.from_env(names, env)

    def merged(self, other: Scrubber | None) -> Scrubber:
        if other is None or not other.secrets:
            return self
        pairs = sorted(set(self.secrets) | set(other.secrets), key=lambda p: (-len(p[1]), p[0]))
        return Scrubber(tuple(pairs))

    def with_secret(self, name: str, value: str) -> Scrubber:
        if not value or len(value) < MIN_SECRET_LENGTH:
            return self
        pairs = sorted({*self.secrets, (name, value)}, key=lambda p: -len(p[1]))
        return Scrubber(tuple(pairs))

    def text(self, value: str) -> str:
        if self._patterns is None:
            return value
        return self._patterns[0].sub(self._label, value)

    def bytes_(self, value: bytes) -> bytes:
        if self._patterns is None:
            return value
        return self._patterns[1].sub(lambda m: self._label(m).encode(), value)

    def value(self, obj: object) -> object:
        """Every string inside a JSON-like value (dict keys too), scrubbed; other values unchanged."""
        if self._patterns is None:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.value(v) for v in obj)
        return obj

    def headers(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (self.text(k), REDACTED if k.lower() in SECRET_HEADERS else self.text(v)) for k, v in headers
        )

    def request(self, req: Request) -> Request:
        return replace(req, url=self.text(req.url), path=self.text(req.path), headers=self.headers(req.headers),
                       body=self.bytes_(req.body))

    def exchange(self, ex: Exchange) -> Exchange:
        ex = decoded_exchange(ex)
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
        attempts = tuple(replace(a, failure=self.text(a.failure) if a.failure else a.failure,
                                 retry_after=self.text(a.retry_after) if a.retry_after else a.retry_after)
                         for a in ex.attempts)
        return replace(ex, request=self.request(ex.request), headers=self.headers(ex.headers),
                       chunks=chunks, failure=failure, attempts=attempts)

    def contains_secret(self, blob: str) -> bool:
        return self._patterns is not None and self._patterns[0].search(blob) is not None


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
