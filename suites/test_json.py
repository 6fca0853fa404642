"""JSON output (response_format json_object / json_schema): one rule per test (openai-wire.md §1.5, §8)."""

import pytest

from oaicompat.checks import json_output

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_object_accepted(run_check):
    await run_check(json_output.object_accepted)


async def test_object_valid(run_check):
    await run_check(json_output.object_valid)


async def test_object_no_word(run_check):
    await run_check(json_output.object_without_word)


async def test_object_cut_length(run_check):
    await run_check(json_output.object_cut_length)


async def test_schema_accepted(run_check):
    await run_check(json_output.schema_accepted)


async def test_schema_valid(run_check):
    await run_check(json_output.schema_valid)


async def test_schema_cut_length(run_check):
    await run_check(json_output.schema_cut_length)


async def test_schema_strict_checked(run_check):
    await run_check(json_output.schema_strict_checked)
