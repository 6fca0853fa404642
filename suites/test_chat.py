"""Non-streaming chat completions: one wire rule per test (openai-wire.md §2)."""

import pytest

from oaicompat.checks import chat

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_status(run_check):
    await run_check(chat.status_is_success)


async def test_content_type(run_check):
    await run_check(chat.content_type_is_json)


async def test_object(run_check):
    await run_check(chat.object_is_chat_completion)


async def test_id(run_check):
    await run_check(chat.id_is_nonempty_string)


async def test_created(run_check):
    await run_check(chat.created_is_unix_seconds)


async def test_model(run_check):
    await run_check(chat.model_is_string)


async def test_choices(run_check):
    await run_check(chat.one_choice_with_index_zero)


async def test_choice_logprobs_key(run_check):
    await run_check(chat.choice_has_logprobs_key)


async def test_role(run_check):
    await run_check(chat.message_role_is_assistant)


async def test_refusal_key(run_check):
    await run_check(chat.message_has_refusal_key)


async def test_content(run_check):
    await run_check(chat.message_content_is_string)


async def test_finish_reason(run_check):
    await run_check(chat.finish_reason_in_enum)


async def test_usage(run_check):
    await run_check(chat.usage_present)


async def test_usage_arithmetic(run_check):
    await run_check(chat.usage_integers_add_up)


async def test_body_json(run_check):
    await run_check(chat.body_is_json_object)


async def test_usage_details(run_check):
    await run_check(chat.usage_details_are_counts)


async def test_system_fingerprint(run_check):
    await run_check(chat.system_fingerprint_is_string_or_null)


async def test_service_tier(run_check):
    await run_check(chat.service_tier_in_enum)


async def test_tool_calls_absent(run_check):
    await run_check(chat.no_tool_calls_without_tools)


async def test_logprobs_null(run_check):
    await run_check(chat.logprobs_null_when_not_requested)


async def test_model_echo(run_check):
    await run_check(chat.model_names_requested_model)


async def test_extension_fields(run_check):
    await run_check(chat.extension_fields)


async def test_system_role(run_check):
    await run_check(chat.system_role_accepted)


async def test_developer_role(run_check):
    await run_check(chat.developer_role_accepted)


async def test_multi_turn(run_check):
    await run_check(chat.multi_turn_accepted)


async def test_message_name(run_check):
    await run_check(chat.message_name_accepted)


async def test_content_parts(run_check):
    await run_check(chat.content_parts_accepted)


async def test_content_parts_seen(run_check):
    await run_check(chat.content_parts_read_as_text)


async def test_usage_extensions(run_check):
    await run_check(chat.usage_has_openai_keys_only)


async def test_openai_fields(run_check):
    await run_check(chat.openai_optional_fields_present)
