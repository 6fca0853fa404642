"""oaicompat.latency: per-provider latency figures from results records (pure)."""

import pytest

from oaicompat.latency import annotate_latency, provider_latency, summarise


def rec(provider="p", *, check="chat.x", level="live", ttft=0.1, total=1.0, tokens=10, gap50=None, gap95=None,
        request=None, recorded_at=None, model="m"):
    ev = {"level": level, "status": 200, "request": request or f"POST /chat/completions {check}"}
    if recorded_at:
        ev["recorded_at"] = recorded_at
    return {"provider": provider, "model": model, "check": check, "evidence": [ev],
            "timing": {"ttft": ttft, "total": total, "completion_tokens": tokens, "gap_p50": gap50,
                       "gap_p95": gap95, "level": level}}


def test_streams_give_ttft_gap_and_decode_rate():
    records = [rec(check=f"stream.{i}", ttft=t, total=t + 1.0, tokens=20, gap50=0.05, gap95=g)
               for i, (t, g) in enumerate([(0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (1.0, 0.9)])]
    lat = provider_latency(records)["p"]
    assert lat["level"] == "live" and lat["recorded_at"] is None and lat["samples"] == 5
    assert lat["ttft_p50"] == pytest.approx(0.3)
    assert lat["ttft_p95"] == pytest.approx(0.88)          # inclusive percentile between 0.4 and 1.0
    assert lat["gap_p50"] == pytest.approx(0.05)
    assert lat["gap_p95"] == pytest.approx(0.4)            # the typical stream's p95 (median of the five)
    assert lat["tokens_per_s"] == pytest.approx(20.0) and lat["tokens_per_s_basis"] == "decode"
    assert lat["total_p50"] == pytest.approx(1.3)
    assert lat["total_sum"] == pytest.approx(1.1 + 1.2 + 1.3 + 1.4 + 2.0)


def test_one_piece_bodies_give_an_end_to_end_rate():
    # the first byte of a non-streamed body is also its last: tokens / (total - ttft) would be absurd
    lat = summarise([rec(ttft=1.999, total=2.0, tokens=16)])
    assert lat["tokens_per_s"] == pytest.approx(8.0) and lat["tokens_per_s_basis"] == "end-to-end"
    assert lat["gap_p50"] is None and lat["gap_p95"] is None


def test_a_shared_exchange_counts_once():
    # checks share one memoised live exchange (and their cassettes share the recording): one sample
    same = [rec(check=f"chat.c{i}", request="POST /chat/completions {\"model\":\"m\"}") for i in range(25)]
    assert provider_latency(same)["p"]["samples"] == 1
    assert provider_latency(same + [rec(check="chat.other", total=2.0)])["p"]["samples"] == 2


def test_recorded_figures_carry_their_dates_and_live_ones_win():
    recorded = [rec(level="recorded", recorded_at="2026-01-02T00:00:00Z", check="a"),
                rec(level="recorded", recorded_at="2026-01-05T00:00:00Z", check="b", total=3.0)]
    lat = provider_latency(recorded)["p"]
    assert lat["level"] == "recorded"
    assert lat["recorded_at"] == {"oldest": "2026-01-02T00:00:00Z", "newest": "2026-01-05T00:00:00Z"}
    mixed = provider_latency(recorded + [rec(check="c", total=5.0)])["p"]
    assert mixed["level"] == "live" and mixed["samples"] == 1 and mixed["total_p50"] == 5.0


def test_untimed_and_third_party_records_give_nothing():
    untimed = {"provider": "q", "model": "m", "check": "chat.x", "evidence": []}
    imported = rec("r", level="third-party")
    assert provider_latency([untimed, imported]) == {}
    assert summarise([]) is None


def test_missing_figures_are_null_not_errors():
    lat = summarise([rec(ttft=None, total=None, tokens=None), rec(check="b", ttft=-1, total="x", tokens=True)])
    assert lat["samples"] == 2
    assert lat["ttft_p50"] is None and lat["total_p50"] is None and lat["tokens_per_s"] is None
    assert lat["tokens_per_s_basis"] is None and lat["total_sum"] is None


def test_per_provider_and_annotate():
    records = [rec("a", total=1.0), rec("b", total=2.0), rec("c", total=3.0)]
    providers = {"a": {"title": "A"}, "b": {"title": "B"}}
    annotate_latency(providers, records)
    assert providers["a"]["latency"]["total_p50"] == 1.0
    assert providers["b"]["latency"]["total_p50"] == 2.0
    assert "c" not in providers        # only providers the document lists


def test_the_plugin_results_validate_with_latency():
    from oaicompat.results import validate_results
    doc = {"oaicompat_results": 1, "oaicompat_version": "0", "mode": "live", "started_at": "2026-01-01T00:00:00Z",
           "finished_at": "2026-01-01T00:00:01Z",
           "providers": {"p": {"title": "P", "kind": "hosted", "models": ["m"]}}, "records": []}
    annotate_latency(doc["providers"], [rec()])
    validate_results(doc, "doc")
    assert doc["providers"]["p"]["latency"]["samples"] == 1
