"""The models endpoints: one wire rule per test (openai-wire.md §7)."""

import pytest

from oaicompat.checks import models

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_list_status(run_check):
    await run_check(models.list_status)


async def test_list_shape(run_check):
    await run_check(models.list_shape)


async def test_entry_id(run_check):
    await run_check(models.entry_id)


async def test_entry_object(run_check):
    await run_check(models.entry_object)


async def test_entry_created(run_check):
    await run_check(models.entry_created)


async def test_entry_owned_by(run_check):
    await run_check(models.entry_owned_by)


async def test_configured_listed(run_check):
    await run_check(models.configured_model_listed)


async def test_retrieve_status(run_check):
    await run_check(models.retrieve_status)


async def test_retrieve_object(run_check):
    await run_check(models.retrieve_object)


async def test_retrieve_unknown(run_check):
    await run_check(models.retrieve_unknown_is_404)
