"""The `oaicompat` console script's surface: --version, --providers-file before or after any subcommand, help on
every option, and lines a terminal can show (`providers` ≤ 100 characters, `run` ≤ 120)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from oaicompat import __version__, cli, nightly, run
from oaicompat.config import load_providers
from oaicompat.paths import PROVIDERS_FILE
from oaicompat.report.cli import diff_parser, report_parser

UNSTARTABLE_LOCAL = ("ollama", "lm-studio", "mistral-rs")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"oaicompat {__version__}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_validate_reads_the_providers_file_given_before_or_after_it(
        where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "mine.yaml"
    shutil.copy(PROVIDERS_FILE, copy)
    argv = ["--providers-file", str(copy), "validate"] if where == "before" else ["validate", "--providers-file",
                                                                                 str(copy)]
    assert cli.main(argv) == 0
    missing = tmp_path / "missing.yaml"
    argv = ["--providers-file", str(missing), "validate"] if where == "before" else ["validate", "--providers-file",
                                                                                    str(missing)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.yaml" in err[0]


def test_a_delegated_subcommand_gets_the_providers_file_given_before_it() -> None:
    assert cli._split_delegated(["--providers-file", "x.yaml", "report", "r.json"]) == (
        ["--providers-file", "x.yaml"], "report", ["r.json"])
    assert cli._split_delegated(["validate", "report"]) is None


def test_a_global_option_before_a_subcommand_that_reads_no_providers_file_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--providers-file", "x.yaml", "diff", "a.json", "b.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "oaicompat diff takes its options after its name" in err[0]


def test_the_providers_file_option_has_one_name_everywhere() -> None:
    for parser in (report_parser(), nightly.build_parser(), run.build_parser(), cli.build_parser()):
        assert "--providers-file" in parser._option_string_actions, parser.prog
    assert report_parser().parse_args(["r.json", "--providers", "p.yaml"]).providers_file == Path("p.yaml")  # old
    n = nightly.build_parser()
    assert n.parse_args(["--provider", "a,b", "--provider", "c"]).provider == ["a,b", "c"]
    assert n.parse_args(["--providers", "a"]).provider == ["a"]                                              # old
    assert "--providers " not in n.format_help() and "--providers " not in report_parser().format_help()


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._SubParsersAction)]


@pytest.mark.parametrize("parser", [run.build_parser(), report_parser(), diff_parser(), nightly.build_parser()],
                         ids=lambda p: p.prog)
def test_every_option_has_help(parser: argparse.ArgumentParser) -> None:
    undocumented = [a.dest for a in _options(parser) if a.option_strings and not a.help]
    assert not undocumented, undocumented


def test_providers_lines_fit_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["providers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 20
    assert max(len(line) for line in lines) <= cli.PROVIDERS_WIDTH


def test_a_local_server_with_no_url_here_is_not_ready() -> None:
    cfg = load_providers(PROVIDERS_FILE, env={})
    for name in UNSTARTABLE_LOCAL:
        evidence, todo, url = cli.provider_status(cfg.providers[name], {}, frozenset())
        assert todo.startswith("no server here") and "ready" not in todo, (name, todo)
        assert url.startswith("$") and "unset" in url
    set_url = {"OLLAMA_URL": "http://127.0.0.1:9999/v1"}
    cfg = load_providers(PROVIDERS_FILE, env=set_url)
    assert cli.provider_status(cfg.providers["ollama"], set_url, frozenset())[1] == "ready"


def test_a_startable_local_server_says_how_to_start_it() -> None:
    cfg = load_providers(PROVIDERS_FILE, env={})
    _, todo, _ = cli.provider_status(cfg.providers["llama-server"], {}, frozenset({"llama-server"}))
    assert todo == 'eval "$(oaicompat servers up llama-server)"'


def test_run_wraps_its_lines_at_120() -> None:
    long = "    quirks: " + ", ".join(f"area.quirk-number-{i} ×{i}" for i in range(60))
    parts = run.wrap(long)
    assert len(parts) > 1 and all(len(p) <= run.WIDTH for p in parts)
    assert all(p.startswith("        ") for p in parts[1:])            # continuations indented under the list
    assert " ".join(p.strip() for p in parts) == long.strip()
    assert run.wrap("short") == ["short"]


def test_evidence_timings_carry_units() -> None:
    from oaicompat.report.pages import timing_view
    shown = dict(timing_view({"ttft": 2.55487, "gap_p95": 0.0001, "total": 12.5, "completion_tokens": 16,
                              "level": "recorded"}))
    assert shown["time to first token"] == "2555 ms" and shown["gap between chunks, 95th percentile"] == "0.1 ms"
    assert shown["total time"] == "12.5 s" and shown["completion"] == "16 tokens" and shown["evidence"] == "recorded"
    assert dict(timing_view({"ttft": True}))["time to first token"] == "True"   # not a number: shown as is
