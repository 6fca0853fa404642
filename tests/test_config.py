import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oaicompat.config import interpolate, load_providers, parse_providers, read_env_file
from oaicompat.errors import ConfigError, UnknownModelError, UnknownProviderError
from oaicompat.paths import PROVIDERS_FILE

MINIMAL = {"version": 1, "providers": {"p": {"kind": "local", "title": "P", "base_url": "${P_URL:-http://127.0.0.1:1/v1}",
                                              "api_key_env": "P_KEY", "model": "m", "aliases": {"short": "m"}}}}


def test_interpolate_default_and_env():
    assert interpolate("${A:-x}/v1", {}) == ("x/v1", ())
    assert interpolate("${A:-x}/v1", {"A": "y"}) == ("y/v1", ())
    assert interpolate("${A}/v1", {}) == (None, ("A",))


def test_parse_minimal_resolves_aliases_and_defaults():
    cfg = parse_providers(MINIMAL, Path("p.yaml"), {})
    p = cfg.get("p")
    assert p.base_url == "http://127.0.0.1:1/v1"
    assert p.resolve_model(None) == "m" and p.resolve_model("short") == "m"
    assert p.retries["max_retries"] == 2 and p.timeouts["connect"] == 5.0
    with pytest.raises(UnknownModelError, match="known models and aliases: m, short"):
        p.resolve_model("nope")


def test_unknown_key_names_file_provider_and_key():
    bad = yaml.safe_load(yaml.safe_dump(MINIMAL))
    bad["providers"]["p"]["colour"] = "red"
    with pytest.raises(ConfigError) as err:
        parse_providers(bad, Path("providers.yaml"), {})
    assert str(err.value).startswith("providers.yaml: providers.p.colour: unknown key")


def test_wrong_type_is_reported_with_key():
    bad = yaml.safe_load(yaml.safe_dump(MINIMAL))
    bad["providers"]["p"]["retries"] = {"max_retries": "two"}
    with pytest.raises(ConfigError, match=r"providers\.p\.retries\.max_retries: must be integer"):
        parse_providers(bad, Path("providers.yaml"), {})


def test_alias_to_unknown_model_is_an_error():
    bad = yaml.safe_load(yaml.safe_dump(MINIMAL))
    bad["providers"]["p"]["aliases"] = {"x": "other"}
    with pytest.raises(ConfigError, match=r"providers\.p\.aliases\.x: points to 'other'"):
        parse_providers(bad, Path("providers.yaml"), {})


def test_select_names_commas_all_and_unknown():
    cfg = load_providers(PROVIDERS_FILE, {})
    assert [p.name for p in cfg.select(["llama-server,vllm", "llama-server"])] == ["llama-server", "vllm"]
    assert len(cfg.select(["all"])) == len(cfg.providers)
    with pytest.raises(UnknownProviderError, match="configured providers: .*llama-server"):
        cfg.select(["nosuch"])


def test_malformed_yaml_and_missing_file(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("version: 1\nproviders: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_providers(f, {})
    with pytest.raises(ConfigError, match="cannot read"):
        load_providers(tmp_path / "missing.yaml", {})


def test_project_providers_file_is_valid_and_names_no_key():
    cfg = load_providers(PROVIDERS_FILE, {})
    assert len(cfg.providers) >= 20
    text = PROVIDERS_FILE.read_text()
    assert "sk-" not in text and "Bearer" not in text


def test_env_file(tmp_path):
    f = tmp_path / "servers.env"
    f.write_text("# comment\nexport LLAMA_SERVER_URL=http://127.0.0.1:5/v1\nVLLM_URL='http://x/v1'\n")
    assert read_env_file(f) == {"LLAMA_SERVER_URL": "http://127.0.0.1:5/v1", "VLLM_URL": "http://x/v1"}
    assert read_env_file(tmp_path / "none") == {}


# -- hostile providers.yaml (issue 19): each bad entry is one line naming the file, the line and the key ---------

GOOD_ENTRY = """\
version: 1
providers:
  p:
    kind: local
    title: P
    base_url: http://127.0.0.1:1/v1
    api_key_env: P_API_KEY
    model: m
"""
ONE_LINE = re.compile(r"^(?P<file>\S+providers\.yaml):(?P<line>\d+): (?P<key>providers\.p\.[\w.-]+|\S+): (?P<what>.+)$")


def entry_with(line: str) -> str:
    """GOOD_ENTRY with one key replaced (same indentation) or added: `line` is `key: value`."""
    key = line.split(":", 1)[0]
    rows = [r for r in GOOD_ENTRY.splitlines() if not r.startswith(f"    {key}:")]
    return "\n".join(rows[:6] + [f"    {line}"] + rows[6:]) + "\n"


def one_violation(path: Path, key: str) -> tuple[str, int]:
    """The ConfigError of load_providers and the stderr of `oaicompat validate --providers-file X` are the
    same single line naming file, line and key; returns (what is wrong, line)."""
    with pytest.raises(ConfigError) as err:
        load_providers(path, {})
    message = str(err.value)
    assert "\n" not in message, message
    m = ONE_LINE.match(message)
    assert m and m.group("file") == str(path) and m.group("key") == key, message
    done = subprocess.run([sys.executable, "-m", "oaicompat.cli", "validate", "--providers-file", str(path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done
    assert done.stdout == "" and done.stderr == f"oaicompat: {message}\n", done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return m.group("what"), int(m.group("line"))


ROOT = Path(__file__).resolve().parents[1]


def test_good_entry_loads(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(GOOD_ENTRY)
    assert load_providers(f, {}).get("p").base_url == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize("url,why", [
    ("file:///etc/passwd", "file: URL"),
    ("javascript:alert(1)", "javascript: URL"),
    ("ftp://127.0.0.1/v1", "ftp: URL"),
    ("http://user:hunter22@127.0.0.1:1/v1", "credentials"),
    ('"http://127.0.0.1:1/v1\\r\\nX-Injected: 1"', "control character"),
    ('"http://127.0.0.1:1/v1\\u0000"', "control character"),
])
def test_bad_base_url_is_one_line(tmp_path, url, why):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with(f"base_url: {url}"))
    what, line = one_violation(f, "providers.p.base_url")
    assert why in what and line == 7
    assert "hunter22" not in what                         # a password is never echoed


def test_base_url_from_the_environment_is_checked_after_expansion(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with("base_url: ${P_URL:-http://127.0.0.1:1/v1}"))
    assert load_providers(f, {}).get("p").base_url == "http://127.0.0.1:1/v1"
    with pytest.raises(ConfigError, match=r"providers\.yaml:7: providers\.p\.base_url: is a file: URL.*\$\{P_URL\}"):
        load_providers(f, {"P_URL": "file:///etc/passwd"})


def test_header_value_with_crlf_is_one_line(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with('headers: {X-Extra: "a\\r\\nX-Injected: 1"}'))
    what, line = one_violation(f, "providers.p.headers.X-Extra")
    assert "control character" in what and line == 7


def test_header_name_with_a_colon_is_rejected(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with('headers: {"X-A: b": "c"}'))
    with pytest.raises(ConfigError, match=r"providers\.yaml:7: providers\.p\.headers"):
        load_providers(f, {})


@pytest.mark.parametrize("key,size,limit", [("title", 50_000_000, "4,096"), ("model", 5_000_000, "4,096"),
                                            ("title", 300, "200"), ("model", 300, "256")])
def test_oversized_strings_are_rejected_by_size(tmp_path, key, size, limit):
    """50 MB / 5 MB values are refused from the file's size, before any YAML parse (no time bound asserted:
    the bound is that the file is never parsed, which the message shows: it counts the line's bytes)."""
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with(f"{key}: {'A' * size}"))
    what, line = one_violation(f, f"providers.p.{key}")
    assert limit in what and line == 7
    if size > 1_000_000:
        assert what.startswith(f"line is {size + len(key) + 7:,} bytes")


def test_any_string_is_bounded(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with(f"params: {{stop: {'x' * 5000}}}"))
    what, line = one_violation(f, "providers.p.params.stop")
    assert "4,096" in what and line == 7


@pytest.mark.parametrize("value", ["1e308", "1e-300", "0", "-1", "1.0e+308", ".inf", ".nan", "3601"])
def test_timeouts_out_of_range(tmp_path, value):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with(f"timeouts: {{total: {value}}}"))
    what, line = one_violation(f, "providers.p.timeouts.total")
    assert ("out of range" in what or "not a finite number" in what) and line == 7


@pytest.mark.parametrize("value", ["0.1", "3600", "45"])
def test_timeouts_in_range(tmp_path, value):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with(f"timeouts: {{total: {value}}}"))
    assert load_providers(f, {}).get("p").timeouts["total"] == float(value)


def test_api_key_env_must_name_a_key_variable(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with("api_key_env: PATH"))
    what, line = one_violation(f, "providers.p.api_key_env")
    assert "'PATH' does not name a key variable" in what and "api_key_env_trusted" in what and line == 7
    f.write_text(entry_with("api_key_env: PATH") + "    api_key_env_trusted: true\n")
    assert load_providers(f, {}).get("p").api_key_env == "PATH"      # the explicit opt-in
    for ok in ("OPENAI_API_KEY", "OAICOMPAT_LOCAL_KEY", "HF_TOKEN"):
        f.write_text(entry_with(f"api_key_env: {ok}"))
        assert load_providers(f, {}).get("p").api_key_env == ok


def test_alias_bomb_fails_fast_with_one_line(tmp_path):
    """A billion laughs: nine levels of nine aliases. Its expansion is measured without being built (the
    bound is in values counted, not seconds), and reported on the line where it exceeds the limit."""
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    f = tmp_path / "providers.yaml"
    f.write_text(GOOD_ENTRY.replace("    model: m\n", "    model: m\n    params:\n"
                                    + "".join(f"      {row}\n" for row in levels)))
    what, line = one_violation(f, "providers.p.params.f")
    assert "aliases" in what and "100,000" in what and line == 15


def test_self_referencing_alias_is_one_line(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(GOOD_ENTRY + "    params: &x {loop: *x}\n")
    with pytest.raises(ConfigError) as err:
        load_providers(f, {})
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{f}:")


def test_deep_nesting_is_one_line(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(GOOD_ENTRY + "    params: {x: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(ConfigError) as err:
        load_providers(f, {})
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{f}")


def test_missing_file_is_one_line(tmp_path):
    missing = tmp_path / "missin" / "providers.yaml"
    done = subprocess.run([sys.executable, "-m", "oaicompat.cli", "validate", "--providers-file", str(missing)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stderr == f"oaicompat: {missing}: cannot read: No such file or directory; pass --providers-file PATH\n"


def test_validate_accepts_the_option_before_and_after_the_subcommand():
    for args in (["--providers-file", str(PROVIDERS_FILE), "validate"], ["validate", "--providers-file", str(PROVIDERS_FILE)]):
        done = subprocess.run([sys.executable, "-m", "oaicompat.cli", *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0 and done.stdout.rstrip().endswith("OK"), done.stdout + done.stderr


def test_header_value_outside_latin1_is_one_line(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text(entry_with('headers: {X-Extra: "caf\\u00e9 \\u2603"}'), encoding="utf-8")
    what, line = one_violation(f, "providers.p.headers.X-Extra")
    assert "Latin-1" in what and line == 7
