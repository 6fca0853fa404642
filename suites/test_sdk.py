"""openai-python acceptance: recorded bytes replayed through the official client, one rule per test."""

import pytest

from oaicompat.checks import sdk

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_stream_parses(run_check):
    await run_check(sdk.stream_parses)


async def test_stream_text(run_check):
    await run_check(sdk.stream_text_matches)


async def test_helper_parses(run_check):
    await run_check(sdk.helper_parses)


async def test_helper_role(run_check):
    await run_check(sdk.helper_role_is_assistant)


async def test_helper_text(run_check):
    await run_check(sdk.helper_text_matches)


async def test_completion_parses(run_check):
    await run_check(sdk.completion_parses)
