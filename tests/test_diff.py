"""`oaicompat diff`: coverage lost (a check judged before, not judged now) is reported apart from regressions,
with counts and the first ids, and a diff with changes never says "no changes"."""

from __future__ import annotations

from pathlib import Path

import pytest

from oaicompat.report.cli import diff_main
from oaicompat.report.diff import JUDGED, NOT_JUDGED, SHOWN, diff_html, diff_markdown, diff_results, diff_text
from oaicompat.report.model import merge_runs
from tests.test_report import doc, rec, write

SDK = [f"sdk.check-{i:02d}" for i in range(SHOWN + 3)]


def _diff(old, new):
    return diff_results(merge_runs([("old.json", old)]), merge_runs([("new.json", new)]))


def test_pass_to_blocked_is_coverage_lost_not_a_regression_and_not_no_changes() -> None:
    old = doc([rec("p", c) for c in SDK] + [rec("q", "chat.x")])
    new = doc([rec("p", c, "blocked") for c in SDK] + [rec("q", "chat.x")])
    d = _diff(old, new)
    assert not d.regressed
    assert d.lost_coverage == len(SDK) and d.counts["coverage lost"] == len(SDK)
    p = next(x for x in d.providers if x.provider == "p")
    assert [(c.check, c.old, c.new) for c in p.lost_coverage] == [(c, "pass", "blocked") for c in SDK]
    text = diff_text(d)
    assert "no changes" not in text
    assert f"coverage lost: {len(SDK)} check(s) in 1 provider(s)" in text
    assert f"↓ coverage lost: {len(SDK)} check(s)" in text
    assert SDK[0] in text and SDK[SHOWN - 1] in text and SDK[SHOWN] not in text    # the first SHOWN ids
    assert "(3 more)" in text
    assert "coverage lost" in diff_markdown(d) and "coverage lost" in diff_html(d)


@pytest.mark.parametrize("after", sorted(NOT_JUDGED - {"missing"}))
def test_every_not_judged_outcome_after_a_judged_one_is_lost(after: str) -> None:
    for before in sorted(JUDGED):
        quirks = ("chat.q",) if "quirk" in before else ()
        d = _diff(doc([rec("p", "chat.x", before, quirks=quirks)]), doc([rec("p", "chat.x", after)]))
        assert d.lost_coverage == 1, (before, after)


def test_a_record_or_a_provider_that_disappeared_is_lost_coverage() -> None:
    old = doc([rec("p", "chat.x"), rec("p", "chat.y", "expected-quirk", quirks=("chat.q",)), rec("gone", "chat.x")])
    new = doc([rec("p", "chat.x")])
    d = _diff(old, new)
    assert d.lost == ("gone",) and d.lost_coverage == 2
    gone = next(x for x in d.providers if x.provider == "gone")
    assert gone.status == "lost" and [c.check for c in gone.lost_coverage] == ["chat.x"]
    assert "gone [lost]:" in diff_text(d)


def test_blocked_to_not_recorded_is_no_loss_and_a_change_is_still_shown() -> None:
    d = _diff(doc([rec("p", "chat.x", "blocked"), rec("p", "chat.y")]), doc([rec("p", "chat.y")]))
    assert d.lost_coverage == 0 and not d.regressed
    text = diff_text(d)
    assert "? no record now for 1 check(s): chat.x" in text and "no changes" not in text


def test_exit_code_fails_on_lost_coverage_only_when_asked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    o = write(tmp_path / "old.json", doc([rec("p", c) for c in SDK]))
    n = write(tmp_path / "new.json", doc([rec("p", c, "blocked") for c in SDK]))
    assert diff_main([str(o), str(n)]) == 0
    assert "no regressions, but coverage lost" in capsys.readouterr().out
    assert diff_main([str(o), str(n), "--fail-on-lost-coverage"]) == 1
    assert diff_main([str(o), str(o), "--fail-on-lost-coverage"]) == 0
    assert "no regressions (no changes)" in capsys.readouterr().out


def test_a_regression_with_lost_coverage_names_both() -> None:
    d = _diff(doc([rec("p", "chat.x"), rec("p", "chat.y")]),
              doc([rec("p", "chat.x", "violation"), rec("p", "chat.y", "not-recorded")]))
    assert d.regressed and d.lost_coverage == 1
    assert diff_text(d).rstrip().splitlines()[-1].startswith("REGRESSED: 1 check(s) started failing")
    assert "coverage lost: 1 check(s)" in diff_text(d).rstrip().splitlines()[-1]
