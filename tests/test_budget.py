"""oaicompat.budget: the token estimate of a request, the usage a reply reports, pricing and --budget."""

import json

import pytest

from oaicompat.budget import (
    BIG_PROBE_TOKENS,
    DEFAULT_COMPLETION_CAP,
    IMAGE_TOKENS,
    Budget,
    BudgetError,
    BudgetExhausted,
    Estimate,
    Meter,
    Pricing,
    estimate,
    usage_of,
)
from oaicompat.checks.base import PROBES, ProbeContext
from oaicompat.config import parse_providers
from oaicompat.exchange import Chunk, Exchange
from oaicompat.transport import RequestSpec
from tests.exchanges import completion, json_exchange


def chat(content, **extra):
    return RequestSpec(json={"model": "m", "messages": [{"role": "user", "content": content}], **extra})


def test_prompt_is_characters_over_four_and_completion_is_max_tokens():
    assert estimate(chat("x" * 400, max_tokens=16)) == Estimate(prompt=101, completion=16)   # "user" counts too
    assert estimate(chat("x" * 400, max_completion_tokens=7, max_tokens=99)).completion == 7
    assert estimate(chat("hi", max_tokens=10, n=3)).completion == 30


def test_a_request_without_max_tokens_counts_the_default_cap():
    assert estimate(chat("hi")).completion == DEFAULT_COMPLETION_CAP
    assert estimate(chat("hi", max_tokens=0)).completion == DEFAULT_COMPLETION_CAP
    assert estimate(chat("hi"), completion_cap=3).completion == 3


def test_an_inline_image_counts_as_an_image_not_its_bytes():
    parts = [{"type": "text", "text": "what"}, {"type": "image_url",
                                                "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}]
    e = estimate(chat(parts, max_tokens=1))
    assert IMAGE_TOKENS <= e.prompt < IMAGE_TOKENS + 20


def test_requests_without_a_chat_body():
    assert estimate(RequestSpec(method="GET", path="/models")) == Estimate(0, 0)
    assert estimate(RequestSpec(raw_body=b"{not json" * 4)) == Estimate(9, 0)


def test_the_context_probes_are_the_big_ones():
    cfg = parse_providers({"version": 1, "providers": {"p": {
        "kind": "local", "title": "P", "base_url": "http://x/v1", "model": "m",
        "limits": {"context_tokens": 8192}}}}, __import__("pathlib").Path("p.yaml"), {})
    ctx = ProbeContext(cfg.get("p"), "m")
    overflow = estimate(PROBES["context.overflow"].build(ctx))
    assert overflow.prompt >= 8192 > BIG_PROBE_TOKENS          # 1.5 × the window, in words
    assert estimate(PROBES["context.after-overflow"].build(ctx)).total < 100


def test_usage_of_a_json_reply_and_of_a_stream():
    assert usage_of(json_exchange(completion())) is not None
    body = completion()
    body["usage"] = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert usage_of(json_exchange(body)) == (12, 3)
    del body["usage"]
    assert usage_of(json_exchange(body)) is None
    base = json_exchange(body)
    events = [{"choices": [{"delta": {"content": "hi"}}]},
              {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}]
    data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    stream = Exchange(request=base.request, status=200, headers=(("content-type", "text/event-stream"),),
                      chunks=(Chunk(0.0, data),))
    assert usage_of(stream) == (5, 2)


@pytest.mark.parametrize("text, limit, currency", [
    ("50000", 50000, None), ("50k", 50000, None), ("1_000", 1000, None), ("2M", 2_000_000, None),
    ("$2", 2.0, "USD"), ("$0.25", 0.25, "USD"), ("3 EUR", 3.0, "EUR"), ("1.5usd", 1.5, "USD"),
])
def test_budget_parses_tokens_and_money(text, limit, currency):
    assert Budget.parse(text) == Budget(limit, currency)


@pytest.mark.parametrize("text", ["", "lots", "-5", "$", "5 dollars", "1e6"])
def test_a_bad_budget_says_what_to_give(text):
    with pytest.raises(BudgetError, match="give tokens"):
        Budget.parse(text)


def test_meter_refuses_a_send_that_would_go_over_a_token_budget():
    meter = Meter(Budget(100.0))
    small = chat("x" * 40, max_tokens=10)                   # ~ 12 + 10 tokens
    meter.admit("p", small)
    body = completion()
    body["usage"] = {"prompt_tokens": 60, "completion_tokens": 10}
    meter.spent("p", json_exchange(body))
    assert meter.spent_so_far() == 70
    with pytest.raises(BudgetExhausted, match="70 tokens used of 100 tokens"):
        meter.admit("p", chat("x" * 400, max_tokens=10))
    assert meter.refused == {"p": 1}
    meter.admit("q", chat("x", max_tokens=5))                # still fits: the budget is the run's, not per send
    assert meter.used["p"].replies == 1


def test_replies_without_usage_are_counted_as_such():
    meter = Meter()
    body = completion()
    del body["usage"]
    meter.spent("p", json_exchange(body))
    assert (meter.used["p"].replies, meter.used["p"].without_usage, meter.used["p"].total) == (1, 1, 0)


def test_money_budget_uses_the_providers_prices():
    price = Pricing(input_per_mtok=1_000_000, output_per_mtok=2_000_000)    # $1 a token in, $2 out
    assert price.cost(3, 2) == 7
    meter = Meter(Budget(10.0, "USD"), pricing={"p": price})
    body = completion()
    body["usage"] = {"prompt_tokens": 4, "completion_tokens": 1}
    meter.spent("p", json_exchange(body))
    assert meter.spent_so_far() == 6
    with pytest.raises(BudgetExhausted, match="6.0000 USD used of 10.0000 USD"):
        meter.admit("p", chat("x" * 40, max_tokens=1))
    assert Pricing.from_mapping({}) is None
    assert Pricing.from_mapping({"input_per_mtok": 1, "output_per_mtok": 2}) == Pricing(1.0, 2.0, "USD")


def test_a_big_probe_is_announced_before_it_is_sent():
    said = []
    meter = Meter(announce=said.append)
    meter.admit("p", chat("y" * 4 * BIG_PROBE_TOKENS, max_tokens=1), "suite::test")
    meter.admit("p", chat("small", max_tokens=1))
    assert len(said) == 1 and said[0].startswith("oaicompat: p: sending ~2,00") and "suite::test" in said[0]


def test_providers_yaml_pricing_is_validated_and_parsed():
    from pathlib import Path

    from oaicompat.errors import ConfigError
    entry = {"kind": "hosted", "title": "P", "base_url": "https://x/v1", "model": "m",
             "pricing": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "currency": "USD"}}
    cfg = parse_providers({"version": 1, "providers": {"p": entry}}, Path("p.yaml"), {})
    assert Pricing.from_mapping(cfg.get("p").pricing) == Pricing(0.15, 0.6, "USD")
    entry["pricing"] = {"input_per_mtok": -1, "output_per_mtok": 0.6}
    with pytest.raises(ConfigError, match="pricing"):
        parse_providers({"version": 1, "providers": {"p": entry}}, Path("p.yaml"), {})
