"""Function tools: one wire rule per test (openai-wire.md §1.4, RESP-MSG-2..5, §4.4)."""

import pytest

from oaicompat.checks import tools

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_accepted(run_check):
    await run_check(tools.accepted)


async def test_choice_none(run_check):
    await run_check(tools.choice_none_honoured)


async def test_choice_auto_accepted(run_check):
    await run_check(tools.choice_auto_accepted)


async def test_choice_required_accepted(run_check):
    await run_check(tools.choice_required_accepted)


async def test_choice_required_called(run_check):
    await run_check(tools.choice_required_called)


async def test_choice_named_accepted(run_check):
    await run_check(tools.choice_named_accepted)


async def test_choice_named_called(run_check):
    await run_check(tools.choice_named_called)


async def test_call_not_in_content(run_check):
    await run_check(tools.call_not_in_content)


async def test_no_call_shape(run_check):
    await run_check(tools.no_call_shape)


async def test_call_id(run_check):
    await run_check(tools.call_id)


async def test_call_type(run_check):
    await run_check(tools.call_type)


async def test_call_name(run_check):
    await run_check(tools.call_name)


async def test_arguments_string(run_check):
    await run_check(tools.arguments_string)


async def test_arguments_valid(run_check):
    await run_check(tools.arguments_valid)


async def test_finish_reason(run_check):
    await run_check(tools.finish_reason)


async def test_legacy_function_call(run_check):
    await run_check(tools.legacy_function_call)


async def test_arguments_unescaped(run_check):
    await run_check(tools.arguments_unescaped)


async def test_strict_accepted(run_check):
    await run_check(tools.strict_accepted)


async def test_strict_enforced(run_check):
    await run_check(tools.strict_enforced)


async def test_parallel_called(run_check):
    await run_check(tools.parallel_called)


async def test_parallel_ids_distinct(run_check):
    await run_check(tools.parallel_ids_distinct)


async def test_parallel_off(run_check):
    await run_check(tools.parallel_off)


async def test_round_trip(run_check):
    await run_check(tools.round_trip_answered)


async def test_tool_content_parts(run_check):
    await run_check(tools.tool_content_parts)


async def test_stream_accepted(run_check):
    await run_check(tools.stream_accepted)


async def test_stream_called(run_check):
    await run_check(tools.stream_called)


async def test_delta_index(run_check):
    await run_check(tools.delta_index)


async def test_delta_index_sequence(run_check):
    await run_check(tools.delta_index_sequence)


async def test_delta_first_complete(run_check):
    await run_check(tools.delta_first_complete)


async def test_delta_no_repeat(run_check):
    await run_check(tools.delta_no_repeat)


async def test_delta_arguments_string(run_check):
    await run_check(tools.delta_arguments_string)


async def test_delta_arguments_json(run_check):
    await run_check(tools.delta_arguments_json)


async def test_stream_matches(run_check):
    await run_check(tools.stream_matches)


async def test_delta_order(run_check):
    await run_check(tools.delta_order)
