import email.utils

from oaicompat.retry import backoff, decide, parse_retry_after


def d(status, headers=None, taken=0, max_retries=2, max_delay=8.0, **kw):
    return decide(status=status, headers=headers or {}, retries_taken=taken, max_retries=max_retries,
                  max_delay=max_delay, rand=lambda: 0.0, **kw)


def test_retry_statuses():
    for status in (408, 409, 429, 500, 502, 503):
        assert d(status).retry, status
    for status in (400, 401, 403, 404, 422):
        assert not d(status).retry, status


def test_x_should_retry_overrides():
    assert d(400, {"x-should-retry": "true"}).retry
    assert not d(503, {"x-should-retry": "false"}).retry


def test_retry_after_variants():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    date = email.utils.formatdate(1000.0 + 5, usegmt=True)
    assert abs(parse_retry_after({"retry-after": date}, now=1000.0) - 5.0) < 1.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert d(429, {"retry-after": "2"}).delay == 2.0


def test_retry_after_over_120s_is_not_retried():
    assert not d(429, {"retry-after": "121"}).retry


def test_backoff_doubles_caps_and_jitters_down():
    assert backoff(0, lambda: 0.0) == 0.5 and backoff(1, lambda: 0.0) == 1.0
    assert backoff(10, lambda: 0.0) == 8.0
    assert backoff(0, lambda: 1.0) == 0.375


def test_no_retries_left_and_cap():
    assert not d(500, taken=2).retry
    assert d(429, {"retry-after": "60"}, max_delay=0.1).delay == 0.1


def test_transport_failure_retried_with_backoff():
    r = d(None, transport_failure=True)
    assert r.retry and r.delay == 0.5
