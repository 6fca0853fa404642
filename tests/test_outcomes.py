from pathlib import Path

from oaicompat.checks import chat
from oaicompat.checks.base import Blocked, QuirkFound, Violation, spec_of
from oaicompat.config import parse_providers
from oaicompat.outcomes import decide

SPEC = spec_of(chat.object_is_chat_completion)


def provider(expectations=None):
    entry = {"kind": "hosted", "title": "P", "base_url": "https://p.invalid/v1", "model": "m", "models": ["m2"]}
    if expectations:
        entry["expectations"] = expectations
    return parse_providers({"version": 1, "providers": {"p": entry}}, Path("p.yaml"), {}).get("p")


def test_pass_and_stale():
    assert decide(SPEC, None, provider(), "m").name == "pass"
    stale = decide(SPEC, None, provider({"chat.object-wrong": {"reason": "r", "source": "s"}}), "m")
    assert stale.name == "stale-expectation" and stale.action == "fail"
    assert "remove chat.object-wrong from providers.yaml" in stale.message


def test_expected_and_unexpected_quirk():
    found = QuirkFound("chat.object-wrong", "object is 'x'")
    assert decide(SPEC, found, provider(), "m").name == "unexpected-quirk"
    exp = decide(SPEC, found, provider({"chat.object-wrong": {"reason": "r", "source": "s"}}), "m")
    assert exp.name == "expected-quirk" and exp.action == "xfail" and exp.quirks == ("chat.object-wrong",)


def test_expectation_restricted_to_models():
    p = provider({"chat.object-wrong": {"reason": "r", "source": "s", "models": ["m2"]}})
    found = QuirkFound("chat.object-wrong", "x")
    assert decide(SPEC, found, p, "m").name == "unexpected-quirk"
    assert decide(SPEC, found, p, "m2").name == "expected-quirk"
    assert decide(SPEC, None, p, "m").name == "pass"


def test_blocked_violation_and_harness_error():
    assert decide(SPEC, Blocked("rejected", "chat.status"), provider(), "m").action == "skip"
    assert decide(SPEC, Violation("RESP-2", "odd"), provider(), "m").name == "violation"
    err = decide(SPEC, KeyError("boom"), provider(), "m")
    assert err.name == "error" and "harness error" in err.message


def test_check_raising_undeclared_quirk_is_a_harness_error():
    import pytest

    from oaicompat.checks.base import check
    from tests.exchanges import json_exchange

    @check("selftest.bad", rule="RESP-2", probes=["chat.basic"], quirks=["selftest.declared"])
    def bad(ex):
        raise QuirkFound("selftest.other", "nope")
    try:
        with pytest.raises(RuntimeError, match="does not declare"):
            spec_of(bad).run(json_exchange({}))
    finally:
        from oaicompat.checks.base import CHECKS
        CHECKS.pop("selftest.bad")


def test_intermittent_expectation_passes_when_absent_and_is_expected_when_present():
    p = provider({"chat.object-wrong": {"reason": "timing", "source": "s", "intermittent": True}})
    absent = decide(SPEC, None, p, "m")
    assert absent.name == "pass" and "intermittent chat.object-wrong did not show" in absent.message
    present = decide(SPEC, QuirkFound("chat.object-wrong", "x"), p, "m")
    assert present.name == "expected-quirk" and present.declared["chat.object-wrong"]["intermittent"] is True


def test_compare_ignores_an_intermittent_quirk_seen_in_one_run_only():
    from oaicompat.results import compare_outcomes

    def doc(outcome, quirks, intermittent):
        declared = {"chat.object-wrong": {"reason": "r", "source": "s", "origin": "server"}
                    | ({"intermittent": True} if intermittent else {})}
        return {"records": [{"provider": "p", "model": "m", "check": "chat.object", "outcome": outcome,
                             "quirks": quirks, "declared": declared}]}

    assert compare_outcomes(doc("expected-quirk", ["chat.object-wrong"], True), doc("pass", [], True)) == []
    assert compare_outcomes(doc("expected-quirk", ["chat.object-wrong"], False), doc("stale-expectation", [], False))
    assert compare_outcomes(doc("expected-quirk", ["chat.object-wrong"], False), doc("pass", [], False))


def test_expectation_scoped_by_model_pattern():
    p = provider({"chat.object-wrong": {"reason": "r", "source": "s", "models": ["meta-llama/*", "m"]}})
    found = QuirkFound("chat.object-wrong", "x")
    assert decide(SPEC, found, p, "meta-llama/llama-3.3-70b").name == "expected-quirk"
    assert decide(SPEC, found, p, "m").name == "expected-quirk"
    assert decide(SPEC, found, p, "openai/gpt-4o").name == "unexpected-quirk"
    assert decide(SPEC, None, p, "openai/gpt-4o").name == "pass"           # out of scope: not stale
    assert decide(SPEC, None, p, "meta-llama/x").name == "stale-expectation"
    assert decide(SPEC, found, p, "meta-llama/x").declared["chat.object-wrong"]["models"] == ["meta-llama/*", "m"]


def test_expectation_scoped_by_endpoint():
    p = provider({"chat.object-wrong": {"reason": "r", "source": "s", "endpoints": ["/chat/completions"]}})
    found = QuirkFound("chat.object-wrong", "x")
    assert decide(SPEC, found, p, "m", endpoint="/chat/completions").name == "expected-quirk"
    assert decide(SPEC, found, p, "m", endpoint="/models").name == "unexpected-quirk"
    assert decide(SPEC, found, p, "m").name == "unexpected-quirk"             # path unknown: not in scope
    assert decide(SPEC, None, p, "m", endpoint="/models").name == "pass"
    assert decide(SPEC, None, p, "m", endpoint="/chat/completions").name == "stale-expectation"
    both = provider({"chat.object-wrong": {"reason": "r", "source": "s", "endpoints": ["/models*"],
                                           "models": ["m2"]}})
    assert decide(SPEC, found, both, "m2", endpoint="/models/m2").name == "expected-quirk"
    assert decide(SPEC, found, both, "m", endpoint="/models/m2").name == "unexpected-quirk"


def test_scoping_is_validated_by_the_schema():
    import pytest

    from oaicompat.errors import ConfigError
    with pytest.raises(ConfigError, match="endpoints"):
        provider({"chat.object-wrong": {"reason": "r", "source": "s", "endpoints": ["chat/completions"]}})
    with pytest.raises(ConfigError, match="models"):
        provider({"chat.object-wrong": {"reason": "r", "source": "s", "models": []}})


def test_judge_passes_the_exchange_path_to_decide():
    from oaicompat.runner import Target, judge
    from tests.exchanges import json_exchange
    p = provider({"chat.object-wrong": {"reason": "r", "source": "s", "endpoints": ["/chat/completions"]}})
    ex = json_exchange({"object": "wrong", "choices": []})
    out = judge(SPEC, Target(p, "m"), [ex]).outcome
    assert ex.request.path == "/chat/completions"
    assert out.name == "expected-quirk", out.message


def test_several_quirks_are_unexpected_unless_every_one_is_declared():
    from oaicompat.checks import errors
    from oaicompat.checks.base import QuirksFound
    spec = spec_of(errors.error_envelope)
    found = QuirksFound([QuirkFound("errors.string-error", "a"), QuirkFound("errors.non-openai-shape", "b")])
    one = provider({"errors.string-error": {"reason": "r", "source": "s"}})
    out = decide(spec, found, one, "m")
    assert out.name == "unexpected-quirk" and out.quirks == ("errors.string-error", "errors.non-openai-shape")
    assert "not declared for p: errors.non-openai-shape;" in out.message
    both = provider({"errors.string-error": {"reason": "r", "source": "s"},
                     "errors.non-openai-shape": {"reason": "r2", "source": "s"}})
    assert decide(spec, found, both, "m").name == "expected-quirk"
