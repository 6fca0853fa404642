"""What a live run spends: estimate a probe's tokens before it is sent, count the tokens providers report in
`usage`, price them, and refuse a send that would go over ``--budget``.

    estimate(RequestSpec(json={"messages": [...], "max_tokens": 16}))   → Estimate(prompt=…, completion=16)
    meter = Meter(Budget.parse("50000"), pricing={"openai": Pricing(0.15, 0.6)})
    meter.admit("openai", spec)        # raises BudgetExhausted when the running total + estimate > budget
    meter.spent("openai", exchange)    # adds the reply's usage.prompt_tokens / completion_tokens

The estimate is deliberately rough and high: prompt characters / 4 (an image part counts IMAGE_TOKENS), plus
max_tokens (or max_completion_tokens, times n) or DEFAULT_COMPLETION_CAP when the request sets none.
Pure (no I/O); imports only the exchange and transport layers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exchange import Exchange
from .transport import RequestSpec

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1000                 # an image part, whatever its size (vendors bill tiles, not bytes)
DEFAULT_COMPLETION_CAP = 512        # a request without max_tokens: what a short answer may cost
BIG_PROBE_TOKENS = 2000             # a probe at least this large is announced before it is sent


class BudgetError(ValueError):
    """A --budget value that is neither a token count nor an amount of money."""


class BudgetExhausted(Exception):
    """Sending the next probe could take the run over --budget."""


@dataclass(frozen=True)
class Estimate:
    """Tokens a request may use: what it sends, and at most what it asks back."""
    prompt: int
    completion: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass
class Usage:
    """Tokens the providers reported for the live replies of a run."""
    prompt: int = 0
    completion: int = 0
    replies: int = 0            # live exchanges counted
    without_usage: int = 0      # of those, replies that reported no usage (an error, or a stream without it)

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True)
class Pricing:
    """providers.yaml `pricing`: list prices per million tokens."""
    input_per_mtok: float
    output_per_mtok: float
    currency: str = "USD"

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Pricing | None:
        if not raw:
            return None
        return cls(float(raw["input_per_mtok"]), float(raw["output_per_mtok"]), str(raw.get("currency", "USD")))

    def cost(self, prompt: int, completion: int) -> float:
        return (prompt * self.input_per_mtok + completion * self.output_per_mtok) / 1_000_000


@dataclass(frozen=True)
class Budget:
    """--budget: a number of tokens (`50000`, `50k`) or an amount of money (`$2`, `2USD`, `2 EUR`)."""
    limit: float
    currency: str | None = None     # None: tokens

    @classmethod
    def parse(cls, text: str) -> Budget:
        t = text.strip().replace("_", "").replace(",", "")
        money = re.fullmatch(r"\$\s*(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s*([A-Za-z]{3})", t)
        if money:
            amount = money.group(1) or money.group(2)
            return cls(float(amount), "USD" if money.group(1) else money.group(3).upper())
        tokens = re.fullmatch(r"(\d+)([kKmM]?)", t)
        if tokens:
            scale = {"": 1, "k": 1_000, "m": 1_000_000}[tokens.group(2).lower()]
            return cls(float(int(tokens.group(1)) * scale))
        raise BudgetError(f"--budget {text!r}: give tokens (50000, 50k) or money ($2, 2USD)")

    @property
    def money(self) -> bool:
        return self.currency is not None

    def describe(self, amount: float | None = None) -> str:
        value = self.limit if amount is None else amount
        return f"{value:.4f} {self.currency}" if self.money else f"{int(value):,} tokens"


# -- estimating -------------------------------------------------------------------------------------

def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    chars, images = 0, 0
    for key in ("messages", "tools", "functions", "prompt", "input", "response_format"):
        for s in _strings(body.get(key)):
            if s.startswith("data:"):      # an inline image (or file): billed as an image, not by its bytes
                images += 1
            else:
                chars += len(s)
    return math.ceil(chars / CHARS_PER_TOKEN) + images * IMAGE_TOKENS


def _completion_tokens(body: Mapping[str, Any], cap: int) -> int:
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    per_choice = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else cap
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= 128 else 1
    return per_choice * choices


def estimate(spec: RequestSpec, *, completion_cap: int = DEFAULT_COMPLETION_CAP) -> Estimate:
    """A high estimate of the tokens `spec` may use. A body that is not a JSON object (a malformed-request
    probe) counts its bytes / 4 and no completion; a request without a body (GET /models) counts nothing."""
    if spec.raw_body is not None or not isinstance(spec.json, Mapping):
        return Estimate(math.ceil(len(spec.body_bytes()) / CHARS_PER_TOKEN), 0)
    body = spec.json
    completion = _completion_tokens(body, completion_cap) if "messages" in body or "prompt" in body else 0
    return Estimate(_prompt_tokens(body), completion)


# -- what replies report ----------------------------------------------------------------------------

def _usage_pair(value: Any) -> tuple[int, int] | None:
    if not isinstance(value, Mapping):
        return None
    p, c = value.get("prompt_tokens"), value.get("completion_tokens")
    if not isinstance(p, int) or isinstance(p, bool) or p < 0:
        return None
    c = c if isinstance(c, int) and not isinstance(c, bool) and c >= 0 else 0
    return p, c


def usage_of(ex: Exchange) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) from the reply's `usage` (a JSON body, or the last stream event that
    carries one); None when the reply reports none."""
    if "text/event-stream" in ex.content_type:
        found = None
        for event in ex.sse.data_events:
            if '"usage"' not in event.data:
                continue
            try:
                doc = json.loads(event.data)
            except (ValueError, RecursionError):
                continue
            pair = _usage_pair(doc.get("usage")) if isinstance(doc, Mapping) else None
            found = pair or found
        return found
    body = ex.json_or_none()
    return _usage_pair(body.get("usage")) if isinstance(body, Mapping) else None


# -- the run's meter --------------------------------------------------------------------------------

@dataclass
class Meter:
    """The tokens a run's live exchanges used, per provider, and the budget they must stay within.

    `pricing`: provider → Pricing; a provider without one costs nothing against a money budget (the plugin
    refuses a money budget for a hosted provider without pricing). `announce`: called with a line before a
    probe of BIG_PROBE_TOKENS or more is sent."""

    budget: Budget | None = None
    pricing: Mapping[str, Pricing] = field(default_factory=dict)
    announce: Callable[[str], None] | None = None
    used: dict[str, Usage] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)      # provider → sends refused by the budget

    def cost(self, provider: str, prompt: int, completion: int) -> float | None:
        price = self.pricing.get(provider)
        return None if price is None else price.cost(prompt, completion)

    def spent_so_far(self) -> float:
        """The running total in the budget's unit (tokens, or money in the budget's currency)."""
        if self.budget is None or not self.budget.money:
            return float(sum(u.total for u in self.used.values()))
        return sum(self.cost(p, u.prompt, u.completion) or 0.0 for p, u in self.used.items())

    def admit(self, provider: str, spec: RequestSpec, who: str = "") -> Estimate:
        """Before a live send: raise BudgetExhausted when the running total + this probe's estimate would
        exceed the budget; announce a big probe."""
        guess = estimate(spec)
        if self.budget is not None:
            if self.budget.money:
                more = self.cost(provider, guess.prompt, guess.completion) or 0.0
            else:
                more = float(guess.total)
            so_far = self.spent_so_far()
            if so_far + more > self.budget.limit:
                self.refused[provider] = self.refused.get(provider, 0) + 1
                raise BudgetExhausted(
                    f"budget exhausted: {self.budget.describe(so_far)} used of {self.budget.describe()}, "
                    f"this probe may use ~{guess.total:,} tokens")
        if self.announce is not None and guess.prompt >= BIG_PROBE_TOKENS:
            self.announce(f"oaicompat: {provider}: sending ~{guess.prompt:,} prompt tokens"
                          + (f" ({who})" if who else ""))
        return guess

    def spent(self, provider: str, ex: Exchange) -> None:
        """After a live send: add the reply's reported usage (each sent exchange is counted once)."""
        u = self.used.setdefault(provider, Usage())
        u.replies += 1
        pair = usage_of(ex)
        if pair is None:
            u.without_usage += 1
            return
        u.prompt += pair[0]
        u.completion += pair[1]


__all__ = ["BIG_PROBE_TOKENS", "Budget", "BudgetError", "BudgetExhausted", "DEFAULT_COMPLETION_CAP", "Estimate",
           "Meter", "Pricing", "Usage", "estimate", "usage_of"]
