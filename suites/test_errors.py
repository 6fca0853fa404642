"""Error replies and the mistakes that must produce them: one wire rule per test (openai-wire.md §5)."""

import pytest

from oaicompat.checks import errors

# one event loop for the whole session: a loop per test costs more than replaying a check
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_wrong_key_status(run_check):
    await run_check(errors.wrong_key_is_401)


async def test_missing_key_status(run_check):
    await run_check(errors.missing_key_is_401)


async def test_unknown_model_status(run_check):
    await run_check(errors.unknown_model_is_404)


async def test_unknown_model_code(run_check):
    await run_check(errors.unknown_model_code)


async def test_malformed_json(run_check):
    await run_check(errors.malformed_json_refused)


async def test_messages_missing(run_check):
    await run_check(errors.messages_missing_refused)


async def test_messages_empty(run_check):
    await run_check(errors.messages_empty_refused)


async def test_messages_type(run_check):
    await run_check(errors.messages_type_refused)


async def test_invalid_role(run_check):
    await run_check(errors.invalid_role_refused)


async def test_temperature_range(run_check):
    await run_check(errors.temperature_range_refused)


async def test_bad_request_no_5xx(run_check):
    await run_check(errors.bad_requests_not_5xx)


async def test_bad_request_400(run_check):
    await run_check(errors.bad_requests_are_400)


async def test_envelope(run_check):
    await run_check(errors.error_envelope)


async def test_code_type(run_check):
    await run_check(errors.error_code_is_string)


async def test_error_content_type(run_check):
    await run_check(errors.error_content_type_is_json)


async def test_replies(run_check):
    await run_check(errors.error_replies)


async def test_unknown_path_status(run_check):
    await run_check(errors.unknown_path_is_404)


async def test_request_id(run_check):
    await run_check(errors.request_id_headers)


async def test_rate_limit_headers(run_check):
    await run_check(errors.rate_limit_headers)


async def test_rate_limit_values(run_check):
    await run_check(errors.rate_limit_values)
