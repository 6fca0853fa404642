"""Unit tests of the multimodal (image) checks and probes on hand-built exchanges: a conformant exchange
passes, each deviation raises exactly its quirk id, and no body crashes a check."""

from __future__ import annotations

import base64
import importlib.util
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oaicompat.checks import image
from oaicompat.checks.base import (
    CHECKS,
    PROBES,
    Blocked,
    Finding,
    Observation,
    ProbeContext,
    QuirkFound,
    Violation,
    spec_of,
)
from oaicompat.config import parse_providers
from oaicompat.exchange import Chunk, Exchange, TransportFailure
from oaicompat.paths import FIXTURES
from tests.exchanges import completion, json_exchange, request

ENVELOPE_400 = {"error": {"message": "image input is not supported", "type": "invalid_request_error",
                          "param": "messages", "code": None}}


def provider(**entry: Any):
    base = {"kind": "hosted", "title": "P", "base_url": "https://p.invalid/v1", "model": "m", **entry}
    return parse_providers({"version": 1, "providers": {"p": base}}, Path("p.yaml"), {}).get("p")


def ctx(**entry: Any) -> ProbeContext:
    return ProbeContext(provider(**entry), "m")


def body_of(name: str, **entry: Any) -> dict[str, Any]:
    return PROBES[name].build(ctx(**entry)).json


def ex_for(probe: str, payload: Any = None, *, status: int = 200, content_type: str = "application/json") -> Exchange:
    """An exchange whose request is what `probe` really sends."""
    return json_exchange(completion("Red") if payload is None else payload, status=status, req=body_of(probe),
                         content_type=content_type)


def with_usage(prompt_tokens: int, content: str = "Red") -> dict[str, Any]:
    return completion(content, usage={"prompt_tokens": prompt_tokens, "completion_tokens": 1,
                                      "total_tokens": prompt_tokens + 1})


def no_response(probe: str, kind: str = "reset") -> Exchange:
    return Exchange(request=request(body_of(probe)), status=None,
                    failure=TransportFailure(kind, "connection reset by peer"))  # type: ignore[arg-type]


def run(fn, *exs: Exchange) -> list[Observation]:
    return spec_of(fn).run(*exs)


def quirk(fn, *exs: Exchange) -> str:
    with pytest.raises(QuirkFound) as info:
        run(fn, *exs)
    return info.value.quirk


# -- the test image and the probes ----------------------------------------------------------------

def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + chunk)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert (depth, colour) == (8, 2)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_test_image_is_a_64px_red_square():
    width, height, raw = _png_pixels(image.TEST_IMAGE.read_bytes())
    assert (width, height) == (64, 64)
    rows = [raw[i * (1 + 3 * width):(i + 1) * (1 + 3 * width)] for i in range(height)]
    assert all(row == b"\x00" + b"\xff\x00\x00" * width for row in rows)


def test_make_images_reproduces_the_committed_png():
    spec = importlib.util.spec_from_file_location("make_images", FIXTURES / "inputs" / "make_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.solid_png(64, 64, (255, 0, 0)) == image.TEST_IMAGE.read_bytes()


def test_data_url_probe_embeds_the_png():
    body = body_of("image.data-url")
    parts = body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": image.COLOUR_QUESTION}
    url = parts[1]["image_url"]["url"]
    assert parts[1]["type"] == "image_url" and url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image.TEST_IMAGE.read_bytes()
    assert body["max_tokens"] <= 32 and "detail" not in parts[1]["image_url"]


def test_baseline_probe_is_the_same_text_without_the_image():
    text_parts = body_of("image.text-only")["messages"][0]["content"]
    image_parts = body_of("image.data-url")["messages"][0]["content"]
    assert text_parts == image_parts[:1]


def test_other_probes():
    http = body_of("image.http-url")["messages"][0]["content"][1]["image_url"]
    assert http["url"].startswith("https://") and http["url"].endswith(".png")
    assert body_of("image.detail")["messages"][0]["content"][1]["image_url"]["detail"] == "low"
    unknown = body_of("image.unknown-part")["messages"][0]["content"][1]
    assert unknown["type"] == image.UNKNOWN_PART_TYPE
    assert body_of("image.data-url", params={"top_k": 1})["top_k"] == 1


def test_needs_and_kinds():
    no_needs = {"image.rejection-status", "image.rejection-envelope", "image.not-dropped", "image.unknown-part-type"}
    for cid, spec in CHECKS.items():
        if spec.area == "image":
            assert spec.needs == (() if cid in no_needs else ("vision",)), cid
    assert CHECKS["image.seen"].kind == "capability"


# -- how any server treats an image part ----------------------------------------------------------

def test_rejection_status():
    run(image.image_refused_with_4xx, ex_for("image.data-url"))
    run(image.image_refused_with_4xx, ex_for("image.data-url", ENVELOPE_400, status=400))
    server_error = {"error": {"code": 500, "message": "image input is not supported", "type": "server_error"}}
    assert quirk(image.image_refused_with_4xx,
                 ex_for("image.data-url", server_error, status=500)) == "image.unsupported-5xx"
    with pytest.raises(Violation):
        run(image.image_refused_with_4xx, no_response("image.data-url"))
    assert spec_of(image.image_refused_with_4xx).applicable_to(ex_for("image.data-url"))
    assert not spec_of(image.image_refused_with_4xx).applicable_to(ex_for("image.text-only"))


def test_rejection_envelope():
    run(image.image_refusal_has_envelope, ex_for("image.data-url", ENVELOPE_400, status=400))
    run(image.image_refusal_has_envelope, ex_for("image.data-url"))        # accepted: nothing refused
    llama = {"error": {"code": 500, "message": "image input is not supported", "type": "server_error"}}
    run(image.image_refusal_has_envelope, ex_for("image.data-url", llama, status=500))
    for bad in (b"Internal Server Error", {"error": "image not supported"}, {"detail": "bad part"},
                {"error": {"message": "no type"}}, {"error": {"message": "", "type": "x"}}, [ENVELOPE_400], b""):
        assert quirk(image.image_refusal_has_envelope,
                     ex_for("image.data-url", bad, status=400)) == "image.rejection-not-enveloped", bad
    with pytest.raises(Blocked) as info:
        run(image.image_refusal_has_envelope, no_response("image.data-url"))
    assert info.value.owner == "image.rejection-status"


def test_not_dropped():
    obs = run(image.image_not_silently_dropped, ex_for("image.text-only", with_usage(14)),
              ex_for("image.data-url", with_usage(14 + 85)))
    assert obs == [Observation("image.prompt-tokens", {"with_image": 99, "without_image": 14})]
    found = pytest.raises(QuirkFound, run, image.image_not_silently_dropped,
                          ex_for("image.text-only", with_usage(7)), ex_for("image.data-url", with_usage(7)))
    assert found.value.quirk == "image.silently-dropped"
    assert any("without the image: prompt_tokens 7" in line for line in found.value.lines)
    # refused images are not dropped (image.rejection-status judges the refusal)
    assert run(image.image_not_silently_dropped, ex_for("image.text-only", with_usage(7)),
               ex_for("image.data-url", ENVELOPE_400, status=400)) == []


def test_not_dropped_blocked():
    with pytest.raises(Blocked) as info:
        run(image.image_not_silently_dropped, ex_for("image.text-only", ENVELOPE_400, status=400),
            ex_for("image.data-url", with_usage(7)))
    assert info.value.owner == "chat.content-parts"
    no_usage = completion("Red")
    del no_usage["usage"]
    with pytest.raises(Blocked) as info:
        run(image.image_not_silently_dropped, ex_for("image.text-only", with_usage(7)),
            ex_for("image.data-url", no_usage))
    assert info.value.owner == "chat.usage"


def test_unknown_part_type():
    run(image.unknown_part_type_rejected, ex_for("image.unknown-part", ENVELOPE_400, status=400))
    run(image.unknown_part_type_rejected, ex_for("image.unknown-part", {"detail": []}, status=422))
    assert quirk(image.unknown_part_type_rejected, ex_for("image.unknown-part")) == "image.unknown-part-accepted"
    assert quirk(image.unknown_part_type_rejected,
                 ex_for("image.unknown-part", b"oops", status=500)) == "image.unknown-part-5xx"
    with pytest.raises(Violation):
        run(image.unknown_part_type_rejected, no_response("image.unknown-part"))


# -- what a vision server accepts ------------------------------------------------------------------

def test_data_url():
    ok, refused = ex_for("image.data-url"), ex_for("image.data-url", ENVELOPE_400, status=400)
    http_ok, http_refused = ex_for("image.http-url"), ex_for("image.http-url", ENVELOPE_400, status=400)
    run(image.data_url_accepted, ok, http_refused)
    assert quirk(image.data_url_accepted, refused, http_ok) == "image.data-url-rejected"
    assert quirk(image.data_url_accepted, refused, http_refused) == "image.unsupported"
    assert quirk(image.data_url_accepted, no_response("image.data-url"), http_refused) == "image.unsupported"


def test_http_url():
    data_ok, data_refused = ex_for("image.data-url"), ex_for("image.data-url", ENVELOPE_400, status=400)
    fetch_failed = ex_for("image.http-url", {"error": {"message": "failed to fetch image", "type": "x"}}, status=400)
    run(image.http_url_accepted, ex_for("image.http-url"), data_ok)
    assert quirk(image.http_url_accepted, fetch_failed, data_ok) == "image.http-url-rejected"
    with pytest.raises(Blocked) as info:
        run(image.http_url_accepted, fetch_failed, data_refused)
    assert info.value.owner == "image.data-url"


def test_detail():
    data_ok, data_refused = ex_for("image.data-url"), ex_for("image.data-url", ENVELOPE_400, status=400)
    run(image.detail_accepted, ex_for("image.detail"), data_ok)
    assert quirk(image.detail_accepted, ex_for("image.detail", ENVELOPE_400, status=400),
                 data_ok) == "image.detail-rejected"
    with pytest.raises(Blocked):
        run(image.detail_accepted, ex_for("image.detail", ENVELOPE_400, status=400), data_refused)


def test_seen():
    for answer in ("Red", "red.", "The square is RED!"):
        run(image.model_names_the_colour, ex_for("image.data-url", completion(answer)))
    for answer in ("Blue", "tired", "", "I cannot see images."):
        assert quirk(image.model_names_the_colour,
                     ex_for("image.data-url", completion(answer))) == "image.content-not-seen", answer
    with pytest.raises(Blocked):
        run(image.model_names_the_colour, ex_for("image.data-url", ENVELOPE_400, status=400))
    with pytest.raises(Blocked) as info:
        run(image.model_names_the_colour, ex_for("image.data-url", completion(None)))
    assert info.value.owner == "chat.content"


# -- how a vision server refuses a bad image ---------------------------------------------------------

VLLM_400 = {"error": {"message": "Non-base64 digit found", "type": "BadRequestError", "param": None, "code": 400}}


def bad(status: int = 400, payload: Any = None) -> list[Exchange]:
    """One exchange per bad-image probe, every one answered `status` (default: OpenAI's 400 envelope)."""
    if payload is None:
        payload = {"error": {"message": "You uploaded an unsupported image.", "type": "invalid_request_error",
                             "param": None, "code": "invalid_image_format"}} if status >= 300 else completion("x")
    return [ex_for(name, payload, status=status) for name in image.BAD_IMAGE_PROBES]


def image_part(url: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": url if not isinstance(url, str) or not url.startswith("@")
            else {"url": url[1:]}}


def test_bad_image_probes_send_what_they_say():
    parts = {name: body_of(name)["messages"][0]["content"][1] for name in image.BAD_IMAGE_PROBES}
    assert parts["image.bad-base64"]["image_url"]["url"] == "data:image/png;base64," + image.NOT_BASE64
    url = parts["image.not-an-image"]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1], validate=True) == image.NOT_AN_IMAGE
    assert parts["image.data-url-no-base64"]["image_url"]["url"].startswith("data:image/png,oaicompat:")
    assert parts["image.file-url"]["image_url"]["url"].startswith("file:///")
    assert parts["image.url-string"]["image_url"] == image.image_data_uri()
    for name in image.BAD_IMAGE_PROBES:
        spec = PROBES[name].build(ctx())
        assert spec.retries == 0 and spec.headers == {"Connection": "close"}, name
        assert image.bad_image_parts(request(spec.json)), name
        assert image.has_bad_image(ex_for(name).request), name
    # every body differs: live exchanges are shared by body
    assert len({str(body_of(n)) for n in image.BAD_IMAGE_PROBES}) == len(image.BAD_IMAGE_PROBES)


def test_bad_image_reason_is_conservative():
    good = [image.image_data_uri(), "https://example.com/a.png", "http://x/y.jpg?w=1", "data:image/svg+xml,<svg/>",
            "data:image/png;base64," + base64.b64encode(b"\xff\xd8\xff\xe0 jpeg bytes").decode(),
            "data:image/png;base64,iVBORw0KGgo",             # bad padding: some server might take it
            "data:image/png;base64," + base64.urlsafe_b64encode(b"\x89PNG\r\n\x1a\n\xff\xfe").decode(),
            "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00").decode()[:8] + "\n"
            + base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00").decode()[8:],       # line breaks
            "data:image/png,%89PNG%0D%0A%1A%0A%00%00"]        # percent-encoded binary: not judged
    for url in good:
        assert image.bad_image_reason(image_part("@" + url)) is None, url
    for part in ({"type": "text", "text": "data:image/png;base64,!!"}, {"type": "image_url"},
                 {"type": "image_url", "image_url": {"url": 5}}, "image_url", None):
        assert image.bad_image_reason(part) is None, part
    bad_parts = {"data:image/png;base64,iVBORw0KGgo!!": "alphabet", "data:image/png;base64,": "nothing",
                 "data:image/png;base64," + base64.b64encode(b"hello world").decode(): "text",
                 "data:image/png,hello": "without `;base64`", "FILE:///tmp/x.png": "`file:`"}
    for url, why in bad_parts.items():
        assert why in (image.bad_image_reason(image_part("@" + url)) or ""), url
    assert "string" in (image.bad_image_reason(image_part("https://example.com/a.png")) or "")


def test_bad_image_status():
    run(image.bad_image_refused_with_4xx, *bad())
    run(image.bad_image_refused_with_4xx, *bad(422, {"detail": "bad image"}))     # any 4xx
    vllm = bad(400, VLLM_400)
    vllm[2] = ex_for("image.data-url-no-base64", {"error": {"message": "Only base64 data URLs are supported for now.",
                                                           "type": "NotImplementedError", "code": 501}}, status=501)
    found = pytest.raises(QuirkFound, run, image.bad_image_refused_with_4xx, *vllm).value
    assert found.quirk == "image.bad-image-5xx" and "image.data-url-no-base64 → HTTP 501" in found.detail
    transformers = bad(500, b"Internal Server Error")
    transformers[4] = ex_for("image.url-string")
    found = pytest.raises(QuirkFound, run, image.bad_image_refused_with_4xx, *transformers).value
    assert found.quirks == ("image.bad-image-5xx", "image.url-string-accepted")   # type: ignore[attr-defined]
    assert "`image_url` given as a string" in found.detail and "HTTP 200" in found.detail
    all_taken = pytest.raises(QuirkFound, run, image.bad_image_refused_with_4xx, *bad(200)).value
    assert all_taken.quirks == ("image.bad-image-accepted", "image.url-string-accepted")  # type: ignore[attr-defined]
    assert "image.file-url → HTTP 200" in all_taken.detail and "image.url-string" not in all_taken.found[0].detail  # type: ignore[attr-defined]
    only_data = bad()
    only_data[1] = ex_for("image.not-an-image")
    assert quirk(image.bad_image_refused_with_4xx, *only_data) == "image.bad-image-accepted"
    with pytest.raises(Violation):
        run(image.bad_image_refused_with_4xx, *bad()[:4], no_response("image.url-string"))


def test_bad_image_envelope():
    run(image.bad_image_refusal_has_envelope, *bad())
    run(image.bad_image_refusal_has_envelope, *bad(500, {"error": {"message": "boom", "type": "server_error"}}))
    mixed = bad()
    mixed[4] = ex_for("image.url-string")                                        # accepted: not judged here
    run(image.bad_image_refusal_has_envelope, *mixed)
    for body in (b"Internal Server Error", {"error": "Unauthorized"}, {"detail": "bad image"}, b""):
        found = pytest.raises(QuirkFound, run, image.bad_image_refusal_has_envelope, *bad(500, body)).value
        assert found.quirk == "image.bad-image-not-enveloped" and found.detail.startswith("5 of 5"), body
    with pytest.raises(Blocked) as info:
        run(image.bad_image_refusal_has_envelope, *bad(200))
    assert info.value.owner == "image.bad-image-status"


def test_bad_image_checks_judge_one_imported_exchange():
    status, envelope = spec_of(image.bad_image_refused_with_4xx), spec_of(image.bad_image_refusal_has_envelope)
    assert status.accepts_one and envelope.accepts_one and status.requires and envelope.requires
    one = ex_for("image.bad-base64", b"Internal Server Error", status=500)
    found = pytest.raises(QuirkFound, run, image.bad_image_refused_with_4xx, one).value
    assert found.quirk == "image.bad-image-5xx" and "outside the base64 alphabet" in found.detail
    assert quirk(image.bad_image_refusal_has_envelope, one) == "image.bad-image-not-enveloped"
    mistral_style = ex_for("image.url-string")
    assert quirk(image.bad_image_refused_with_4xx, mistral_style) == "image.url-string-accepted"
    # a good image is not a bad one: the checks do not apply to it
    assert not status.applicable_to(ex_for("image.data-url")) and not envelope.applicable_to(ex_for("image.http-url"))


# -- no bytes crash a check -----------------------------------------------------------------------

IMAGE_CHECKS = [spec for spec in CHECKS.values() if spec.area == "image"]
statuses = st.one_of(st.none(), st.sampled_from([200, 201, 400, 404, 413, 422, 500, 503]))
bodies = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"null", b"[]", b"{}", b'{"error": null}', b'{"usage": {"prompt_tokens": "7"}}', b'{"choices": [null]}',
    b'{"choices": [{"message": {"content": 5}}]}', b"[" * 5000 + b"]" * 5000, b"\xff\xfe{", b'"text"']))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(statuses, bodies), min_size=2, max_size=2))
def test_no_body_crashes_a_check(replies):
    for spec in IMAGE_CHECKS:
        exs = []
        for name, (status, body) in zip(spec.probes, replies * 3):
            chunks = (Chunk(0.01, body),) if body else ()
            failure = TransportFailure("reset", "x") if status is None else None
            exs.append(Exchange(request=request(body_of(name)), status=status,
                                headers=(("content-type", "application/json"),), chunks=chunks, failure=failure))
        try:
            spec.run(*exs)
        except Finding:
            pass
