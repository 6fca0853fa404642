"""Reasoning models: where reasoning text travels, how it is counted, whether it can be sent back
(openai-wire.md DEV-7, STREAM-10, RESP-4, MSG-3). Providers declaring `reasoning: false` are skipped."""

import pytest

from oaicompat.checks import reasoning

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_status(run_check):
    await run_check(reasoning.reasoning_request_answered)


async def test_message_field(run_check):
    await run_check(reasoning.message_reasoning_field)


async def test_delta_field(run_check):
    await run_check(reasoning.stream_reasoning_field_matches)


async def test_tokens(run_check):
    await run_check(reasoning.reasoning_tokens_reported)


async def test_replay(run_check):
    await run_check(reasoning.reasoning_replay_accepted)


async def test_stream_carrier(run_check):
    await run_check(reasoning.stream_reasoning_carrier)
