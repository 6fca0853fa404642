"""Streamed chat completions: one wire rule per test (openai-wire.md §3, §4)."""

import pytest

from oaicompat.checks import stream

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_status(run_check):
    await run_check(stream.status_is_success)


async def test_content_type(run_check):
    await run_check(stream.content_type_is_event_stream)


async def test_body_is_sse(run_check):
    await run_check(stream.body_is_event_stream)


async def test_truncated(run_check):
    await run_check(stream.stream_ends_cleanly)


async def test_data_json(run_check):
    await run_check(stream.data_events_are_json)


async def test_utf8(run_check):
    await run_check(stream.stream_is_utf8)


async def test_unterminated_event(run_check):
    await run_check(stream.last_event_terminated)


async def test_done(run_check):
    await run_check(stream.ends_with_done)


async def test_after_done(run_check):
    await run_check(stream.nothing_after_done)


async def test_midstream_error(run_check):
    await run_check(stream.no_error_event)


async def test_object(run_check):
    await run_check(stream.object_is_chunk)


async def test_chunk_fields(run_check):
    await run_check(stream.chunk_has_required_fields)


async def test_id_constant(run_check):
    await run_check(stream.id_is_constant)


async def test_created_constant(run_check):
    await run_check(stream.created_is_constant)


async def test_model_constant(run_check):
    await run_check(stream.model_is_constant)


async def test_choice_fields(run_check):
    await run_check(stream.choice_has_required_fields)


async def test_finish_reason_value(run_check):
    await run_check(stream.finish_reason_in_enum)


async def test_role_first(run_check):
    await run_check(stream.role_once_and_first)


async def test_finish_reason(run_check):
    await run_check(stream.one_finish_reason_last)


async def test_usage_unrequested(run_check):
    await run_check(stream.no_usage_unless_requested)


async def test_usage_included(run_check):
    await run_check(stream.usage_chunk_present)


async def test_usage_chunk(run_check):
    await run_check(stream.usage_chunk_last_and_consistent)


async def test_usage_others_null(run_check):
    await run_check(stream.usage_only_on_usage_chunk)


async def test_text_matches(run_check):
    await run_check(stream.streamed_equals_plain)


async def test_timing(run_check):
    await run_check(stream.stream_timing)


async def test_extension_fields(run_check):
    await run_check(stream.extension_fields)


async def test_framing(run_check):
    await run_check(stream.framing_variants)


async def test_usage_extensions(run_check):
    await run_check(stream.stream_usage_has_openai_keys_only)


async def test_openai_fields(run_check):
    await run_check(stream.stream_openai_optional_fields_present)


async def test_empty_deltas(run_check):
    await run_check(stream.no_empty_deltas)
