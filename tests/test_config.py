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
    assert "providers.yaml" in str(err.value) and "provider 'p'" in str(err.value) and "colour" in str(err.value)


def test_wrong_type_is_reported_with_key():
    bad = yaml.safe_load(yaml.safe_dump(MINIMAL))
    bad["providers"]["p"]["retries"] = {"max_retries": "two"}
    with pytest.raises(ConfigError, match="key 'retries.max_retries'"):
        parse_providers(bad, Path("providers.yaml"), {})


def test_alias_to_unknown_model_is_an_error():
    bad = yaml.safe_load(yaml.safe_dump(MINIMAL))
    bad["providers"]["p"]["aliases"] = {"x": "other"}
    with pytest.raises(ConfigError, match="aliases.x"):
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
