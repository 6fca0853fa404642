"""Replies within the harness's bounds: size, deadline, number of reads (oaicompat/checks/limits.py)."""

import pytest

from oaicompat.checks import limits

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_size(run_check):
    await run_check(limits.reply_fits_the_size_limit)


async def test_deadline(run_check):
    await run_check(limits.reply_completes_within_the_deadline)


async def test_reads(run_check):
    await run_check(limits.reply_arrives_in_a_bounded_number_of_reads)
