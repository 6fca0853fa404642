"""Multimodal input: `image_url` content parts (openai-wire.md §1.2, MSG-2, MSG-PART-1/2, ERR-400-1, ERR-1).

Three groups of checks:
- how *any* server treats an image part, vision or not (no `needs`): a server that cannot read images must
  refuse them with a 4xx and the error envelope; a 5xx is a named quirk, and a 200 that silently drops the
  image is proven by comparing `usage.prompt_tokens` with and without it, never guessed;
- what a vision server accepts (`needs=("vision",)`): a data-URI PNG, an http(s) URL, `detail`, and a
  capability result (does the reply name the image's colour);
- how a vision server refuses a bad image (`needs=("vision",)`): undecodable base64, base64 of bytes that are
  not an image, a data URL without `;base64`, a `file://` URL, and `image_url` given as a string instead of
  `{"url": …}` are client mistakes, refused with a 4xx (ERR-400-1) in the error envelope (ERR-1).

The test image is fixtures/inputs/red-64x64.png (written by fixtures/inputs/make_images.py): a 64×64 solid
red square, read and base64-encoded when the probe is built.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

from ..exchange import Exchange, Request
from ..paths import FIXTURES
from ..transport import RequestSpec
from .base import (
    Blocked,
    Observation,
    ProbeContext,
    QuirkFound,
    Violation,
    check,
    clip,
    compact,
    evidence,
    first_choice,
    probe,
    raise_all,
    require_success,
)
from .common import CHAT_CONTENT_PARTS, CHAT_STATUS, CHAT_USAGE, error_envelope_problem, error_message, outcome
from .requires import CHAT, Requires

TEST_IMAGE = FIXTURES / "inputs" / "red-64x64.png"
#: A stable public PNG (Wikimedia Commons' PNG transparency demonstration: two dice). It is only sent to
#: the provider; a server without network access fails to fetch it, which is a finding about the server.
HTTP_IMAGE_URL = "https://upload.wikimedia.org/wikipedia/commons/4/47/PNG_transparency_demonstration_1.png"

COLOUR_QUESTION = "What colour is this image? Answer with one word."
EXPECTED_COLOUR = re.compile(r"\bred\b", re.IGNORECASE)
UNKNOWN_PART_TYPE = "oaicompat_unknown_part"

DATA_URL_OWNER = "image.data-url"

#: What the bad-image probes send in place of a good image (small: none of them needs the network).
NOT_BASE64 = "iVBORw0KGgo!!not*base64**"                                  # a PNG's first base64 digits, then junk
NOT_AN_IMAGE = b"oaicompat: these bytes are text and no image.\n"          # no comma: a data URL splits at one
NO_SUCH_FILE = "file:///oaicompat-no-such-dir/red-64x64.png"              # a path that exists on no server
BAD_IMAGE_QUESTION = "Describe this image in three words."
#: Sent with every bad-image probe: a server may answer a bad image with a 500 and then close the connection
#: without saying so (uvicorn does after an unhandled exception), and the next request on that pooled
#: connection fails before the server sees it. Closing after each reply keeps every probe on its own connection,
#: so a failure is the server's answer to that very request. No retries either: a 5xx is the finding.
ONE_CONNECTION = {"Connection": "close"}


@lru_cache(maxsize=4)
def image_data_uri(path: str = str(TEST_IMAGE)) -> str:
    """`data:image/png;base64,…` of the committed test PNG (read when a probe is built)."""
    with open(path, "rb") as fh:
        return "data:image/png;base64," + base64.b64encode(fh.read()).decode("ascii")


def _image_message(url: str, *, detail: str | None = None, text: str = COLOUR_QUESTION) -> list[dict[str, Any]]:
    image: dict[str, Any] = {"url": url}
    if detail is not None:
        image["detail"] = detail
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": image}]}]


# -- probes ---------------------------------------------------------------------------------------

@probe("image.text-only")
def text_only(ctx: ProbeContext) -> RequestSpec:
    """The image probes' text part alone, as a one-part content array: the prompt_tokens baseline."""
    return RequestSpec(json=ctx.chat([{"role": "user", "content": [{"type": "text", "text": COLOUR_QUESTION}]}],
                                     max_tokens=8, temperature=0))


@probe("image.data-url")
def data_url(ctx: ProbeContext) -> RequestSpec:
    """The colour question plus the 64×64 red test PNG as a base64 data URI."""
    return RequestSpec(json=ctx.chat(_image_message(image_data_uri()), max_tokens=8, temperature=0))


@probe("image.http-url")
def http_url(ctx: ProbeContext) -> RequestSpec:
    """The same question with an https URL of a public PNG instead of a data URI."""
    return RequestSpec(json=ctx.chat(_image_message(HTTP_IMAGE_URL, text="Describe this image in three words."),
                                     max_tokens=8, temperature=0))


@probe("image.detail")
def detail_low(ctx: ProbeContext) -> RequestSpec:
    """The data-URI image with `image_url.detail: "low"`."""
    return RequestSpec(json=ctx.chat(_image_message(image_data_uri(), detail="low"), max_tokens=8, temperature=0))


@probe("image.unknown-part")
def unknown_part(ctx: ProbeContext) -> RequestSpec:
    """A text part plus a content part whose `type` no OpenAI schema defines."""
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Say hello."},
        {"type": UNKNOWN_PART_TYPE, UNKNOWN_PART_TYPE: {"data": "aGVsbG8="}},
    ]}]
    return RequestSpec(json=ctx.chat(messages, max_tokens=8, temperature=0))


@probe("image.bad-base64")
def bad_base64(ctx: ProbeContext) -> RequestSpec:
    """An image part whose `data:image/png;base64,` URL carries characters that are not base64."""
    return RequestSpec(json=ctx.chat(_image_message("data:image/png;base64," + NOT_BASE64, text=BAD_IMAGE_QUESTION),
                                     max_tokens=8, temperature=0), retries=0, headers=ONE_CONNECTION)


@probe("image.not-an-image")
def not_an_image(ctx: ProbeContext) -> RequestSpec:
    """An image part whose base64 data URL decodes to a line of text, not an image."""
    url = "data:image/png;base64," + base64.b64encode(NOT_AN_IMAGE).decode("ascii")
    return RequestSpec(json=ctx.chat(_image_message(url, text=BAD_IMAGE_QUESTION), max_tokens=8, temperature=0),
                       retries=0, headers=ONE_CONNECTION)


@probe("image.data-url-no-base64")
def data_url_no_base64(ctx: ProbeContext) -> RequestSpec:
    """An image part whose data URL lacks `;base64` (`data:image/png,…`) and whose payload is text."""
    url = "data:image/png," + NOT_AN_IMAGE.decode("ascii").strip().replace(" ", "%20")
    return RequestSpec(json=ctx.chat(_image_message(url, text=BAD_IMAGE_QUESTION), max_tokens=8, temperature=0),
                       retries=0, headers=ONE_CONNECTION)


@probe("image.file-url")
def file_url(ctx: ProbeContext) -> RequestSpec:
    """An image part whose URL is `file://` (a scheme the API does not take), naming a path no server has."""
    return RequestSpec(json=ctx.chat(_image_message(NO_SUCH_FILE, text=BAD_IMAGE_QUESTION), max_tokens=8,
                                     temperature=0), retries=0, headers=ONE_CONNECTION)


@probe("image.url-string")
def url_string(ctx: ProbeContext) -> RequestSpec:
    """An image part whose `image_url` is the data-URI string itself instead of `{"url": …}`."""
    messages = [{"role": "user", "content": [{"type": "text", "text": BAD_IMAGE_QUESTION},
                                             {"type": "image_url", "image_url": image_data_uri()}]}]
    return RequestSpec(json=ctx.chat(messages, max_tokens=8, temperature=0), retries=0, headers=ONE_CONNECTION)


BAD_IMAGE_PROBES = ("image.bad-base64", "image.not-an-image", "image.data-url-no-base64", "image.file-url",
                    "image.url-string")
BAD_IMAGE_STATUS_OWNER = "image.bad-image-status"


# -- helpers --------------------------------------------------------------------------------------

def has_image_part(req: Request) -> bool:
    messages = req.field("messages")
    if not isinstance(messages, list):
        return False
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            return True
    return False


URL_STRING = "`image_url` is a string, not an object with `url`"
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/=_-]*")
_TEXT_START = re.compile(rb"\s*<")      # SVG or HTML: text, but a format some servers might take as an image


def _text_not_image(data: bytes) -> bool:
    """Bytes that are certainly no image: empty, or printable UTF-8 text that is not markup (an SVG is text)."""
    if not data:
        return True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if _TEXT_START.match(data):
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def bad_image_reason(part: Any) -> str | None:
    """Why an `image_url` content part is certainly a client mistake, or None when it is not known to be one.

    Conservative, because imported recordings are judged by it too: only an `image_url` given as a string,
    a `file:` URL, a base64 data URL with characters no base64 alphabet has, or a data URL whose payload
    decodes to text (or nothing). A payload that merely fails to decode (padding, line breaks) or bytes of an
    unfamiliar format are not judged: some server might take them."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    if isinstance(image, str):
        return URL_STRING
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        return None
    scheme = url.split(":", 1)[0].strip().lower()
    if scheme == "file":
        return "a `file:` URL"
    if scheme != "data" or "," not in url:
        return None
    meta, payload = url.split(",", 1)
    if ";base64" not in meta.lower():
        return "a data URL without `;base64` whose payload is text" if _text_not_image(
            unquote_to_bytes(payload)) else None
    digits = re.sub(r"\s", "", unquote_to_bytes(payload).decode("latin-1"))
    if not _BASE64_CHARS.fullmatch(digits):
        return "base64 data with characters outside the base64 alphabet"
    try:
        data = base64.b64decode(digits.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return "base64 data that decodes to text (or to nothing), not an image" if _text_not_image(data) else None


def bad_image_parts(req: Request) -> list[str]:
    """The reasons the request's image parts are client mistakes (bad_image_reason), in message order."""
    messages = req.field("messages")
    if not isinstance(messages, list):
        return []
    return [reason for msg in messages if isinstance(msg, dict) and isinstance(msg.get("content"), list)
            for part in msg["content"] if (reason := bad_image_reason(part)) is not None]


def has_bad_image(req: Request) -> bool:
    return bool(bad_image_parts(req))


def _named_bad(exs: tuple[Exchange, ...]) -> list[tuple[str, Exchange]]:
    """(probe name, exchange) for the suite's own bad-image probes; an exchange from elsewhere is named by what
    is wrong with its image."""
    if len(exs) == len(BAD_IMAGE_PROBES):
        return list(zip(BAD_IMAGE_PROBES, exs))
    return [("; ".join(bad_image_parts(e.request)) or "an image part", e) for e in exs]


def _bad_lines(pairs: list[tuple[str, Exchange]], limit: int = 3) -> list[str]:
    out: list[str] = []
    for name, ex in pairs[:limit]:
        out += [f"[{name}]", *evidence(ex)]
    if len(pairs) > limit:
        out.append(f"… and {len(pairs) - limit} more")
    return out


def accepted(ex: Exchange) -> bool:
    return ex.status is not None and 200 <= ex.status < 300


def _prompt_tokens(ex: Exchange, body: dict[str, Any]) -> int:
    usage = body.get("usage")
    value = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Blocked(f"the reply has no integer usage.prompt_tokens (usage is {compact(usage)})", CHAT_USAGE, ex)
    return value


# -- how any server treats an image part ----------------------------------------------------------

@check("image.rejection-status", rule="MSG-PART-2", probes=["image.data-url"], quirks=["image.unsupported-5xx"],
       applies=has_image_part)
def image_refused_with_4xx(ex: Exchange) -> None:
    """An image part the server cannot handle is refused with a 4xx, not a 5xx."""
    if ex.status is None:
        raise Violation("MSG-PART-2", f"a request with an image part got {outcome(ex)}", ex, evidence(ex))
    if ex.status >= 500:
        raise QuirkFound("image.unsupported-5xx",
                         f"a request with an image part was answered HTTP {ex.status} (a server error) instead "
                         f"of a 4xx refusal or a 200", ex, evidence(ex))


@check("image.rejection-envelope", rule="ERR-1", probes=["image.data-url"],
       quirks=["image.rejection-not-enveloped"], applies=has_image_part)
def image_refusal_has_envelope(ex: Exchange) -> None:
    """A refused image part is answered with the OpenAI error envelope (passes when the image is accepted)."""
    if ex.status is None:
        raise Blocked(f"the image request got {outcome(ex)}", "image.rejection-status", ex)
    if accepted(ex):
        return
    problem = error_envelope_problem(ex)
    if problem is not None:
        raise QuirkFound("image.rejection-not-enveloped",
                         f"the HTTP {ex.status} refusal of an image part is not an error envelope: {problem}",
                         ex, evidence(ex))


@check("image.not-dropped", rule="MSG-PART-2", probes=["image.text-only", "image.data-url"],
       quirks=["image.silently-dropped"])
def image_not_silently_dropped(text_ex: Exchange, image_ex: Exchange) -> list[Observation]:
    """An accepted image part is read: prompt_tokens with the image exceed prompt_tokens without it."""
    if not accepted(image_ex):
        return []   # refused, so not silently dropped (image.rejection-status judges how it was refused)
    image_body = require_success(image_ex, CHAT_STATUS)
    text_body = require_success(text_ex, CHAT_CONTENT_PARTS)
    with_image, without = _prompt_tokens(image_ex, image_body), _prompt_tokens(text_ex, text_body)
    if with_image <= without:
        raise QuirkFound(
            "image.silently-dropped",
            f"the image request was answered 200 with prompt_tokens {with_image}, the same request without "
            f"the image with {without}: the image was not part of the prompt",
            image_ex,
            [*evidence(image_ex, f"< \"usage\": {compact(image_body.get('usage'))}"),
             f"  same text without the image: prompt_tokens {without} ({compact(text_body.get('usage'))})"],
        )
    return [Observation("image.prompt-tokens", {"with_image": with_image, "without_image": without})]


@check("image.unknown-part-type", rule="MSG-PART-1", probes=["image.unknown-part"],
       quirks=["image.unknown-part-accepted", "image.unknown-part-5xx"])
def unknown_part_type_rejected(ex: Exchange) -> None:
    """A content part with an unknown `type` is refused with a 4xx."""
    if ex.status is None:
        raise Violation("MSG-PART-1", f"a request with an unknown content part type got {outcome(ex)}", ex,
                        evidence(ex))
    if accepted(ex):
        raise QuirkFound("image.unknown-part-accepted",
                         f"a content part of type {UNKNOWN_PART_TYPE!r} was accepted with HTTP {ex.status}",
                         ex, evidence(ex))
    if ex.status >= 500:
        raise QuirkFound("image.unknown-part-5xx",
                         f"a content part of type {UNKNOWN_PART_TYPE!r} was answered HTTP {ex.status} "
                         f"(a server error) instead of a 4xx", ex, evidence(ex))


# -- what a vision server accepts ------------------------------------------------------------------

@check("image.data-url", rule="MSG-2", probes=["image.data-url", "image.http-url"],
       quirks=["image.unsupported", "image.data-url-rejected"], needs=("vision",))
def data_url_accepted(data_ex: Exchange, http_ex: Exchange) -> None:
    """A vision model accepts an image given as a base64 `data:` URI."""
    if accepted(data_ex):
        return
    if accepted(http_ex):
        raise QuirkFound("image.data-url-rejected",
                         f"the data-URI image got {outcome(data_ex)} while the https URL was accepted "
                         f"(HTTP {http_ex.status})", data_ex, evidence(data_ex))
    raise QuirkFound("image.unsupported",
                     f"a provider declared vision-capable refused both image forms: data URI {outcome(data_ex)}, "
                     f"https URL {outcome(http_ex)}", data_ex, evidence(data_ex))


@check("image.http-url", rule="MSG-2", probes=["image.http-url", "image.data-url"],
       quirks=["image.http-url-rejected"], needs=("vision",))
def http_url_accepted(http_ex: Exchange, data_ex: Exchange) -> None:
    """A vision model accepts an image given as an https URL (the server fetches it)."""
    if accepted(http_ex):
        return
    if not accepted(data_ex):
        raise Blocked(f"images are refused altogether (data URI: {outcome(data_ex)})", DATA_URL_OWNER, http_ex)
    raise QuirkFound("image.http-url-rejected",
                     f"the https image URL got {outcome(http_ex)} while the same request with a data URI was "
                     f"accepted (a server without network access cannot fetch it)", http_ex, evidence(http_ex))


@check("image.detail", rule="MSG-2", probes=["image.detail", "image.data-url"],
       quirks=["image.detail-rejected"], needs=("vision",))
def detail_accepted(detail_ex: Exchange, data_ex: Exchange) -> None:
    """`image_url.detail` ("low") is accepted wherever the same image without it is."""
    if accepted(detail_ex):
        return
    if not accepted(data_ex):
        raise Blocked(f"images are refused altogether (data URI: {outcome(data_ex)})", DATA_URL_OWNER, detail_ex)
    raise QuirkFound("image.detail-rejected",
                     f"the image with detail \"low\" got {outcome(detail_ex)}; without `detail` it was accepted",
                     detail_ex, evidence(detail_ex))


@check("image.seen", rule="MSG-2", probes=["image.data-url"], quirks=["image.content-not-seen"],
       kind="capability", needs=("vision",))
def model_names_the_colour(ex: Exchange) -> None:
    """The model sees the test image: asked its colour, the reply says red."""
    if not accepted(ex):
        raise Blocked(f"the image request got {outcome(ex)}", DATA_URL_OWNER, ex)
    message = first_choice(require_success(ex, DATA_URL_OWNER), CHAT_STATUS, ex).get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise Blocked(f"the reply's content is {compact(content)}, not a string", "chat.content", ex)
    if not EXPECTED_COLOUR.search(content):
        raise QuirkFound("image.content-not-seen",
                         f"asked the colour of a solid red square, the model answered {clip(content, 120)!r}",
                         ex, evidence(ex, f"< \"content\": {compact(content)}"))


# -- how a vision server refuses a bad image --------------------------------------------------------

BAD_IMAGE_NEEDS = Requires(method=CHAT.method, path=CHAT.path, body=CHAT.body, stream=False, images=True,
                           credentials="accepted")
BAD_IMAGE_REFUSED = Requires(method=CHAT.method, path=CHAT.path, body=CHAT.body, stream=False, images=True,
                             credentials="accepted", status="error")


def _shape_only(ex: Exchange) -> bool:
    """The request's only fault is `image_url` given as a string (Mistral's own API documents that form)."""
    reasons = bad_image_parts(ex.request)
    return bool(reasons) and all(r == URL_STRING for r in reasons)


@check("image.bad-image-status", rule="ERR-400-1", probes=list(BAD_IMAGE_PROBES),
       quirks=["image.bad-image-5xx", "image.bad-image-accepted", "image.url-string-accepted"], needs=("vision",),
       applies=has_bad_image, requires=BAD_IMAGE_NEEDS)
def bad_image_refused_with_4xx(*exs: Exchange) -> None:
    """A bad image (undecodable, not an image, a malformed data URL, a file: URL, a string image_url) is refused
    with a 4xx: never a 5xx, never answered 200 (a string image_url answered 200 is its own, milder quirk)."""
    pairs = _named_bad(exs)
    dropped = [(n, e) for n, e in pairs if e.status is None]
    if dropped:
        raise Violation("ERR-400-1", "a bad image got no response: " + "; ".join(
            f"{n} → {outcome(e)}" for n, e in dropped), dropped[0][1], _bad_lines(dropped))
    server = [(n, e) for n, e in pairs if e.status is not None and e.status >= 500]
    taken = [(n, e) for n, e in pairs if accepted(e)]
    found = []
    if server:
        found.append(QuirkFound("image.bad-image-5xx", "bad images answered as server errors: " + "; ".join(
            f"{n} → HTTP {e.status}{error_message(e, 100)}" for n, e in server), server[0][1], _bad_lines(server)))
    garbage = [(n, e) for n, e in taken if not _shape_only(e)]
    lenient = [(n, e) for n, e in taken if _shape_only(e)]
    if garbage:
        found.append(QuirkFound("image.bad-image-accepted", "bad images answered as if valid: " + "; ".join(
            f"{n} → HTTP {e.status}" for n, e in garbage), garbage[0][1], _bad_lines(garbage)))
    if lenient:
        found.append(QuirkFound("image.url-string-accepted", "`image_url` given as a string instead of "
                                f"{{\"url\": …}} was answered HTTP {lenient[0][1].status}", lenient[0][1],
                                _bad_lines(lenient)))
    raise_all(found)


@check("image.bad-image-envelope", rule="ERR-1", probes=list(BAD_IMAGE_PROBES),
       quirks=["image.bad-image-not-enveloped"], needs=("vision",), applies=has_bad_image,
       requires=BAD_IMAGE_REFUSED)
def bad_image_refusal_has_envelope(*exs: Exchange) -> None:
    """The refusal of a bad image (4xx or 5xx) is the OpenAI error envelope."""
    refused = [(n, e) for n, e in _named_bad(exs) if e.status is not None and e.status >= 300]
    if not refused:
        raise Blocked("no bad image was refused", BAD_IMAGE_STATUS_OWNER, exs[0] if exs else None)
    bad = [(n, e, p) for n, e in refused if (p := error_envelope_problem(e)) is not None]
    if bad:
        raise QuirkFound("image.bad-image-not-enveloped",
                         f"{len(bad)} of {len(refused)} bad-image refusals are not an error envelope: " + "; ".join(
                             f"{n} (HTTP {e.status}): {p}" for n, e, p in bad),
                         bad[0][1], _bad_lines([(n, e) for n, e, _ in bad]))
