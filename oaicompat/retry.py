"""openai-python's retry rules as pure functions (openai-wire.md RETRY-2..RETRY-5).

The transport asks `decide` after every response or transport failure; nothing here sleeps or does I/O.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 120.0
RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float
    reason: str


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked to wait: retry-after-ms, then retry-after as seconds, then as an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp() - (time.time() if now is None else now)


def backoff(retries_taken: int, rand: Callable[[], float] = random.random) -> float:
    """min(0.5 × 2^n, 8) × (1 − 0.25 × jitter)."""
    return min(INITIAL_RETRY_DELAY * 2.0**retries_taken, MAX_RETRY_DELAY) * (1 - 0.25 * rand())


def decide(
    *,
    status: int | None,
    headers: Mapping[str, str],
    retries_taken: int,
    max_retries: int,
    max_delay: float,
    transport_failure: bool = False,
    now: float | None = None,
    rand: Callable[[], float] = random.random,
) -> RetryDecision:
    """Whether openai-python would retry, and after how long (capped by the provider's max_delay)."""
    if retries_taken >= max_retries:
        return RetryDecision(False, 0.0, "no retries left")
    lowered = {k.lower(): v for k, v in headers.items()}
    server_delay = parse_retry_after(lowered, now)
    if transport_failure:
        reason = "transport failure"
    else:
        assert status is not None
        if server_delay is not None and server_delay > MAX_RETRY_AFTER:
            return RetryDecision(False, 0.0, f"retry-after {server_delay:g}s exceeds {MAX_RETRY_AFTER:g}s")
        should = lowered.get("x-should-retry")
        if should == "true":
            reason = "x-should-retry: true"
        elif should == "false":
            return RetryDecision(False, 0.0, "x-should-retry: false")
        elif status in RETRY_STATUSES or status >= 500:
            reason = f"status {status}"
        else:
            return RetryDecision(False, 0.0, f"status {status} is not retried")
    if server_delay is not None and 0 < server_delay <= MAX_RETRY_AFTER and not transport_failure:
        delay = server_delay
    else:
        delay = backoff(retries_taken, rand)
    return RetryDecision(True, min(delay, max_delay), reason)
