"""checks/requires.py's pure readers: what a reply says about its own request."""

from __future__ import annotations

import json

import pytest

from oaicompat.checks.requires import request_fault
from oaicompat.exchange import Chunk, Exchange, Request


def reply(status: int, body: object) -> Exchange:
    req = Request(method="POST", url="https://x.test/v1/chat/completions", path="/chat/completions", headers=(),
                  body=b'{"model": "m", "messages": []}')
    return Exchange(request=req, status=status, headers=(("content-type", "application/json"),),
                    chunks=(Chunk(0.0, json.dumps(body).encode()),), source="imported")


@pytest.mark.parametrize("status,body", [
    (404, {"error": {"message": "The model `gpt-5.2-proo` does not exist or you do not have access to it.",
                     "type": "invalid_request_error", "code": "model_not_found"}}),
    (400, {"error": {"message": "Invalid value: 'input_audio'. Supported values are: 'text'.",
                     "type": "invalid_request_error", "param": "messages[2].content[0].type",
                     "code": "invalid_value"}}),
    (400, {"error": {"message": "Failed to download image from https://example.com/x.png.",
                     "type": "invalid_request_error", "code": "invalid_image_url"}}),
])
def test_a_reply_that_blames_its_own_request_names_the_fault(status: int, body: object) -> None:
    assert request_fault(reply(status, body))


@pytest.mark.parametrize("status,body", [
    (400, {"error": {"message": "tool_choice auto is not allowed", "type": "invalid_request_error"}}),
    (401, {"error": {"message": "Invalid value for the API key", "code": "invalid_value"}}),   # credentials
    (429, {"error": {"message": "model_not_found"}}),                                           # transient
    (500, {"error": {"message": "model_not_found"}}),                                           # the vendor's fault
    (200, {"object": "chat.completion"}),
])
def test_other_replies_name_no_fault_of_the_request(status: int, body: object) -> None:
    assert request_fault(reply(status, body)) is None
