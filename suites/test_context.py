"""Context-window limits: over-long prompts streamed and not, max_tokens beyond the window, one wire rule per
test (openai-wire.md ERR-400-2, STREAM-ERR-1, REQ-MAXTOK-1). The window is providers.yaml
limits.context_tokens (8192 assumed when undeclared)."""

import pytest

from oaicompat.checks import context

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_overflow_status(run_check):
    await run_check(context.overflow_is_400)


async def test_overflow_envelope(run_check):
    await run_check(context.overflow_error_has_envelope)


async def test_overflow_code(run_check):
    await run_check(context.overflow_code_is_context_length_exceeded)


async def test_stream_overflow(run_check):
    await run_check(context.stream_overflow_is_http_error)


async def test_connection_reuse(run_check):
    await run_check(context.connection_usable_after_overflow)


async def test_max_tokens_over_remaining(run_check):
    await run_check(context.max_tokens_beyond_window_refused)


async def test_limit(run_check):
    await run_check(context.context_limit_sources)
