"""Which OpenAI surfaces besides chat completions a provider offers (informational rows)."""

import pytest

from oaicompat.checks import endpoints

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_embeddings(run_check):
    await run_check(endpoints.embeddings)


async def test_responses(run_check):
    await run_check(endpoints.responses)


async def test_files(run_check):
    await run_check(endpoints.files)


async def test_batches(run_check):
    await run_check(endpoints.batches)


async def test_assistants(run_check):
    await run_check(endpoints.assistants)


async def test_fine_tuning_jobs(run_check):
    await run_check(endpoints.fine_tuning_jobs)


async def test_realtime(run_check):
    await run_check(endpoints.realtime)


async def test_moderations(run_check):
    await run_check(endpoints.moderations)


async def test_completions(run_check):
    await run_check(endpoints.legacy_completions)


async def test_trailing_slash(run_check):
    await run_check(endpoints.chat_trailing_slash)


async def test_other_prefix(run_check):
    await run_check(endpoints.chat_other_prefix)
