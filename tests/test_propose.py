"""`oaicompat propose`: expectations drafted from results (plain, intermittent, model- or endpoint-scoped,
re-scoped, removed) and written into providers.yaml without disturbing its comments and order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from oaicompat.config import parse_providers
from oaicompat.errors import ConfigError
from oaicompat.propose import Draft, apply_drafts, check_applied, draft_expectations, record_endpoint
from oaicompat.quirks import load_catalogue
from oaicompat.results import ResultsLog

CHECK = "chat.object"
QUIRK = "chat.object-wrong"
OWNERS = {CHECK: (QUIRK,)}
CATALOGUE = load_catalogue()

PROVIDERS_TEXT = """\
# top comment: keep me
version: 1
providers:

  # ---- first group ----
  p:
    kind: hosted
    title: P            # trailing comment
    base_url: https://p.invalid/v1
    model: m
    expectations:
      chat.refusal-key-missing: {reason: "documented", source: "https://p.invalid/docs"}
      # a comment inside expectations
      chat.model-not-echoed: {reason: "was seen", source: fixtures/imported/p/gone/file.yaml}

  # ---- second group ----
  q:
    kind: hosted
    title: Q
    base_url: https://q.invalid/v1
    model: m
    notes: >
      folded notes
      over two lines
"""


def config(text: str = PROVIDERS_TEXT, path: Path = Path("providers.yaml")):
    return parse_providers(yaml.safe_load(text), path, {})


def rec(outcome: str, *, model: str = "m", path: str = "/chat/completions", provider: str = "p",
        check: str = CHECK, quirks: tuple[str, ...] = (), n: int = 0) -> dict:
    return {"test": f"imported::{provider}/{n}::{check}", "check": check, "area": "chat", "rule": "RESP-2",
            "kind": "protocol", "title": "t", "provider": provider, "model": model, "outcome": outcome,
            "quirks": list(quirks), "message": "m", "lines": [], "declared": {}, "observations": [],
            "evidence": [{"level": "third-party", "status": 200, "request": f"POST {path} {{}}",
                          "imported_file": f"fixtures/imported/{provider}/src/file{n}.yaml#0"}]}


def shows(**kw) -> dict:
    return rec("unexpected-quirk", quirks=(QUIRK,), **kw)


def drafts(records, cfg=None, **kw):
    return draft_expectations(records, cfg or config(), CATALOGUE, owners=OWNERS, **kw)


def test_seen_everywhere_is_a_plain_expectation_citing_the_file_with_the_catalogue_title():
    [d] = drafts([shows(n=1), shows(n=2)]).drafts
    assert (d.provider, d.quirk, d.action) == ("p", QUIRK, "add")
    assert d.entry == {"reason": CATALOGUE.quirks[QUIRK].title, "source": "fixtures/imported/p/src/file1.yaml"}


def test_seen_in_some_exchanges_of_a_model_and_clean_in_others_is_intermittent():
    [d] = drafts([shows(n=1), rec("pass", n=2), rec("pass", n=3)]).drafts
    assert d.entry["intermittent"] is True and "models" not in d.entry
    assert "seen in 1 of 3" in d.note


def test_seen_in_every_exchange_of_some_models_and_none_of_others_is_scoped_by_model():
    records = [shows(model="a", n=1), shows(model="a", n=2), shows(model="b", n=3),
               rec("pass", model="c", n=4), rec("pass", model="c", n=5)]
    [d] = drafts(records).drafts
    assert d.entry["models"] == ["a", "b"] and "intermittent" not in d.entry
    mixed = records + [rec("pass", model="a", n=6)]
    [d] = drafts(mixed).drafts
    assert d.entry["models"] == ["a", "b"] and d.entry["intermittent"] is True


def test_scoped_by_endpoint_when_one_path_shows_it_and_another_never_does():
    [d] = drafts([shows(path="/models", n=1), rec("pass", path="/chat/completions", n=2)]).drafts
    assert d.entry["endpoints"] == ["/models"] and "intermittent" not in d.entry
    assert record_endpoint(rec("pass", path="/models?x=1")) == "/models"


def test_other_outcomes_say_nothing_about_the_quirk():
    records = [shows(n=1), rec("not-applicable", n=2), rec("blocked", n=3), rec("info", n=4),
               rec("pass", check="chat.other", n=5)]
    [d] = drafts(records).drafts
    assert "intermittent" not in d.entry


def test_a_declared_expectation_that_fits_is_left_alone_and_one_that_does_not_is_rescoped():
    text = PROVIDERS_TEXT.replace("      # a comment inside",
                                  f'      {QUIRK}: {{reason: "doc", source: "https://p.invalid/x", models: ["a"]}}\n'
                                  "      # a comment inside")
    cfg = config(text)
    assert drafts([shows(model="a", n=1), rec("pass", model="b", n=2)], cfg).drafts == []
    [d] = drafts([shows(model="a", n=1), shows(model="z", n=3), rec("pass", model="a", n=2)], cfg).drafts
    assert d.action == "update"
    assert d.entry == {"reason": "doc", "source": "https://p.invalid/x", "models": ["a", "z"], "intermittent": True}


def test_declared_but_never_shown_is_removed_only_when_its_source_file_is_gone(tmp_path):
    records = [rec("stale-expectation", check="chat.model-echo", quirks=("chat.model-not-echoed",), n=1),
               rec("stale-expectation", check="chat.refusal-key", quirks=("chat.refusal-key-missing",), n=2)]
    owners = {"chat.model-echo": ("chat.model-not-echoed",), "chat.refusal-key": ("chat.refusal-key-missing",)}
    got = draft_expectations(records, config(), CATALOGUE, owners=owners, root=tmp_path)
    assert [(d.quirk, d.action) for d in got.drafts] == [("chat.model-not-echoed", "remove")]
    assert len(got.notes) == 1 and "chat.refusal-key-missing" in got.notes[0] and "documented" in got.notes[0]
    (tmp_path / "fixtures/imported/p/gone").mkdir(parents=True)
    (tmp_path / "fixtures/imported/p/gone/file.yaml").write_text("x")
    kept = draft_expectations(records, config(), CATALOGUE, owners=owners, root=tmp_path)
    assert kept.drafts == [] and len(kept.notes) == 2
    records[0]["evidence"][0]["imported_file"] = "fixtures/imported/p/gone/file.yaml#3"   # its own file passes
    got = draft_expectations(records, config(), CATALOGUE, owners=owners, root=tmp_path)
    assert [(d.quirk, d.action) for d in got.drafts] == [("chat.model-not-echoed", "remove")]


def test_apply_drafts_keeps_every_comment_and_line_order():
    ds = [Draft("p", QUIRK, "add", {"reason": "Reply `object`: \"x\" #1", "source": "fixtures/a.yaml#0",
                                    "models": ["meta-llama/*", "x:free"], "intermittent": True}),
          Draft("p", "chat.refusal-key-missing", "update",
                {"reason": "documented", "source": "https://p.invalid/docs", "intermittent": True}),
          Draft("p", "chat.model-not-echoed", "remove"),
          Draft("q", "stream.done-missing", "add", {"reason": "r", "source": "fixtures/b.yaml"})]
    edited = apply_drafts(PROVIDERS_TEXT, ds)
    check_applied(edited, ds)
    config(edited)   # still valid against the schema
    old = PROVIDERS_TEXT.splitlines()
    new = edited.splitlines()
    kept = [line for line in old if "chat.model-not-echoed" not in line and "chat.refusal-key-missing" not in line]
    rest = iter(new)
    assert all(line in rest for line in kept)                      # every other line, in its order
    assert sum(line.lstrip().startswith("#") for line in new) == sum(line.lstrip().startswith("#") for line in old)
    p_block = [line for line in new[new.index("  p:"):new.index("  # ---- second group ----")] if line]
    assert p_block[-2].strip().startswith("# a comment inside") and p_block[-1].startswith(f"      {QUIRK}: {{")
    q_block = new[new.index("  q:"):]
    assert q_block[-2:] == ["    expectations:", "      stream.done-missing: {reason: r, source: fixtures/b.yaml}"]
    assert yaml.safe_load(edited)["providers"]["q"]["notes"] == "folded notes over two lines\n"


def test_apply_drafts_refuses_what_it_cannot_edit_safely():
    with pytest.raises(ConfigError, match="not found"):
        apply_drafts(PROVIDERS_TEXT, [Draft("nope", QUIRK, "add", {"reason": "r", "source": "s"})])
    with pytest.raises(ConfigError, match="already declares"):
        apply_drafts(PROVIDERS_TEXT, [Draft("p", "chat.refusal-key-missing", "add", {"reason": "r", "source": "s"})])
    multi = PROVIDERS_TEXT.replace('{reason: "documented", source: "https://p.invalid/docs"}',
                                   '\n        reason: documented\n        source: https://p.invalid/docs')
    with pytest.raises(ConfigError, match="several lines"):
        apply_drafts(multi, [Draft("p", "chat.refusal-key-missing", "remove")])


def _results_file(path: Path, records: list[dict]) -> Path:
    log = ResultsLog(mode="imported")
    log.records = records
    log.write(path)
    return path


def test_propose_write_edits_the_file_and_a_second_run_drafts_nothing(tmp_path, capsys):
    from oaicompat.cli import main

    providers = tmp_path / "providers.yaml"
    providers.write_text(PROVIDERS_TEXT)
    results = _results_file(tmp_path / "r.json", [shows(n=1), rec("pass", n=2), shows(provider="q", n=3)])
    args = ["--providers-file", str(providers), "propose", str(results)]
    assert main(args) == 0
    assert "intermittent: true" in capsys.readouterr().out and providers.read_text() == PROVIDERS_TEXT
    assert main([*args, "--provider", "q", "--write"]) == 0
    written = yaml.safe_load(providers.read_text())["providers"]
    assert QUIRK in written["q"]["expectations"] and QUIRK not in written["p"]["expectations"]
    assert main([*args, "--write"]) == 0
    assert yaml.safe_load(providers.read_text())["providers"]["p"]["expectations"][QUIRK]["intermittent"] is True
    assert providers.read_text().startswith("# top comment: keep me\n")
    capsys.readouterr()
    assert main([*args, "--write"]) == 0
    assert "0 new, 0 re-scoped, 0 removed" in capsys.readouterr().err


def test_run_names_each_provider_with_unexpected_or_stale_records(tmp_path):
    from oaicompat.run import disagreement_lines

    results = _results_file(tmp_path / "r.json", [
        shows(n=1), rec("stale-expectation", quirks=("chat.model-not-echoed",), n=2), rec("pass", provider="q")])
    assert disagreement_lines([results]) == [
        "p: 1 unexpected-quirk, 1 stale-expectation (chat.model-not-echoed, chat.object-wrong)"]
    clean = _results_file(tmp_path / "c.json", [rec("pass"), rec("expected-quirk", quirks=(QUIRK,))])
    assert disagreement_lines([clean]) == []


def test_validate_evidence_names_a_declared_quirk_that_some_exchanges_pass():
    from oaicompat.cli import partly_stale

    text = PROVIDERS_TEXT.replace("      # a comment inside",
                                  f'      {QUIRK}: {{reason: "doc", source: "https://p.invalid/x"}}\n      # a')
    cfg = config(text)
    records = [rec("expected-quirk", quirks=(QUIRK,), n=1), rec("stale-expectation", quirks=(QUIRK,), n=2)]
    [line] = partly_stale(cfg, records)
    assert f"declares {QUIRK!r}, which 1 imported exchange(s) show, but 1 passed" in line
    assert partly_stale(cfg, records[1:]) == []           # never shown: validate_evidence's "contradicted"


def test_an_expectation_drafted_from_evidence_is_rescoped_from_the_evidence():
    text = PROVIDERS_TEXT.replace("      # a comment inside",
                                  f"      {QUIRK}: {{reason: r, source: fixtures/imported/p/src/file1.yaml}}\n      # a")
    [d] = drafts([shows(model="a", n=1), rec("pass", model="b", n=2)], config(text)).drafts
    assert d.action == "update" and d.entry == {"reason": "r", "source": "fixtures/imported/p/src/file1.yaml",
                                                "models": ["a"]}
