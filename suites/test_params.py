"""Request parameters: one wire rule per test (openai-wire.md §1.1, §1.3)."""

import pytest

from oaicompat.checks import params

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_max_tokens_cap(run_check):
    await run_check(params.max_tokens_caps_output)


async def test_max_tokens_length(run_check):
    await run_check(params.max_tokens_finish_length)


async def test_max_completion_tokens(run_check):
    await run_check(params.max_completion_tokens_honoured)


async def test_stop(run_check):
    await run_check(params.stop_honoured)


async def test_seed(run_check):
    await run_check(params.seed_accepted)


async def test_top_p(run_check):
    await run_check(params.top_p_accepted)


async def test_presence_penalty(run_check):
    await run_check(params.presence_penalty_accepted)


async def test_frequency_penalty(run_check):
    await run_check(params.frequency_penalty_accepted)


async def test_user(run_check):
    await run_check(params.user_accepted)


async def test_metadata(run_check):
    await run_check(params.metadata_accepted)


async def test_temperature_zero(run_check):
    await run_check(params.temperature_zero_greedy)


async def test_seed_deterministic(run_check):
    await run_check(params.seed_reproducible)


async def test_n(run_check):
    await run_check(params.n_honoured)


async def test_logprobs(run_check):
    await run_check(params.logprobs_returned)


async def test_logprobs_shape(run_check):
    await run_check(params.logprobs_shape)


async def test_top_logprobs(run_check):
    await run_check(params.top_logprobs_bounded)


async def test_unknown_field(run_check):
    await run_check(params.unknown_field_handling)
