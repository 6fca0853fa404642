"""Multimodal input: `image_url` content parts, one wire rule per test (openai-wire.md §1.2).

The first four run on every provider (how a server treats an image part or an unknown part, vision or
not); the rest need `vision` in providers.yaml `supports`, among them how a bad image is refused.
"""

import pytest

from oaicompat.checks import image

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_rejection_status(run_check):
    await run_check(image.image_refused_with_4xx)


async def test_rejection_envelope(run_check):
    await run_check(image.image_refusal_has_envelope)


async def test_not_dropped(run_check):
    await run_check(image.image_not_silently_dropped)


async def test_unknown_part_type(run_check):
    await run_check(image.unknown_part_type_rejected)


async def test_data_url(run_check):
    await run_check(image.data_url_accepted)


async def test_http_url(run_check):
    await run_check(image.http_url_accepted)


async def test_detail(run_check):
    await run_check(image.detail_accepted)


async def test_seen(run_check):
    await run_check(image.model_names_the_colour)


async def test_bad_image_status(run_check):
    await run_check(image.bad_image_refused_with_4xx)


async def test_bad_image_envelope(run_check):
    await run_check(image.bad_image_refusal_has_envelope)
