"""providers.yaml: load, validate against its JSON Schema, interpolate environment variables.

Nothing here talks to the network. The environment is passed in, so loading is a pure function of
(file text, environment) and easy to test.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from .errors import ConfigError, UnknownModelError, UnknownProviderError
from .paths import SCHEMAS

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_TIMEOUTS = {"connect": 5.0, "read": 60.0, "total": 120.0}
DEFAULT_RETRIES = {"max_retries": 2, "max_delay": 8.0}


@dataclass(frozen=True)
class Expectation:
    quirk: str
    reason: str
    source: str
    models: tuple[str, ...] = ()      # ids or fnmatch patterns; () = every model
    origin: str = "server"
    intermittent: bool = False   # shows in some exchanges or runs only: a pass is not a stale expectation
    endpoints: tuple[str, ...] = ()   # request paths relative to base_url, fnmatch patterns allowed; () = every path

    def applies_to(self, model: str, endpoint: str | None = None) -> bool:
        """Whether the expectation covers a record of `model` on `endpoint` (None: the path is not known, so an
        endpoint-scoped expectation does not apply)."""
        if self.models and not _matches(model, self.models):
            return False
        if self.endpoints and (endpoint is None or not _matches(endpoint, self.endpoints)):
            return False
        return True


def _matches(value: str, patterns: tuple[str, ...]) -> bool:
    return value in patterns or any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True)
class Provider:
    name: str
    kind: str
    title: str
    base_url: str | None          # None when a ${VAR} without default is unset
    base_url_template: str
    missing_vars: tuple[str, ...]
    api_key_env: str | None
    auth_header: str
    model: str
    models: tuple[str, ...]
    aliases: Mapping[str, str]
    headers: Mapping[str, str]
    timeouts: Mapping[str, float]
    retries: Mapping[str, float]
    limits: Mapping[str, int]
    supports: Mapping[str, bool]
    params: Mapping[str, Any]
    software: Mapping[str, str]
    docs: str | None
    notes: str | None
    expectations: Mapping[str, Expectation] = field(default_factory=dict)

    def resolve_model(self, name: str | None) -> str:
        """The model id for --model NAME (an id or an alias); the default model when NAME is None."""
        if name is None:
            return self.model
        if name in self.aliases:
            return self.aliases[name]
        if name == self.model or name in self.models:
            return name
        known = sorted({self.model, *self.models, *self.aliases})
        raise UnknownModelError(
            f"provider {self.name!r} has no model {name!r}; known models and aliases: {', '.join(known)}"
        )

    def supports_feature(self, feature: str) -> bool:
        """Declared support; undeclared features are assumed supported, so checks run and find out."""
        return self.supports.get(feature, True)

    def expectation_for(self, quirk: str, model: str, endpoint: str | None = None) -> Expectation | None:
        exp = self.expectations.get(quirk)
        return exp if exp is not None and exp.applies_to(model, endpoint) else None

    def api_key(self, env: Mapping[str, str]) -> str | None:
        return env.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True)
class ProvidersConfig:
    path: Path
    providers: Mapping[str, Provider]

    def get(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise UnknownProviderError(name, list(self.providers)) from None

    def select(self, spec: list[str]) -> list[Provider]:
        """--provider values: names, comma lists, or `all`."""
        names: list[str] = []
        for item in spec:
            for name in (part.strip() for part in item.split(",")):
                if not name:
                    continue
                if name == "all":
                    names.extend(self.providers)
                elif name not in names:
                    names.append(name)
        return [self.get(n) for n in dict.fromkeys(names)]

    def key_variables(self) -> list[str]:
        """Names of every variable that holds a key: what scrubbing must hide."""
        return sorted({p.api_key_env for p in self.providers.values() if p.api_key_env})


def interpolate(template: str, env: Mapping[str, str]) -> tuple[str | None, tuple[str, ...]]:
    """Expand ${VAR} and ${VAR:-default}. Returns (value, missing variables); value is None if any is missing."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        missing.append(name)
        return ""

    result = _VAR.sub(sub, template)
    return (None if missing else result), tuple(missing)


def _schema() -> dict[str, Any]:
    return json.loads((SCHEMAS / "providers.schema.json").read_text(encoding="utf-8"))


def _describe(error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if len(where) >= 2 and where[0] == "providers":
        loc = f"provider {where[1]!r}" + (f", key {'.'.join(map(str, where[2:]))!r}" if len(where) > 2 else "")
    elif where:
        loc = f"key {'.'.join(map(str, where))!r}"
    else:
        loc = "top level"
    return f"{loc}: {error.message}"


def parse_providers(data: Any, path: Path, env: Mapping[str, str]) -> ProvidersConfig:
    """Validate a parsed providers.yaml document and build the config. Raises ConfigError naming file, provider and key."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors[:20])
        raise ConfigError(f"{path} does not match fixtures/schemas/providers.schema.json:\n{lines}")
    providers: dict[str, Provider] = {}
    for name, raw in data["providers"].items():
        base_url, missing = interpolate(raw["base_url"], env)
        aliases = dict(raw.get("aliases", {}))
        models = tuple(raw.get("models", ()))
        for alias, target in aliases.items():
            if target != raw["model"] and target not in models:
                raise ConfigError(
                    f"{path}: provider {name!r}, key 'aliases.{alias}': points to {target!r}, "
                    f"which is neither 'model' nor listed in 'models'"
                )
        expectations = {
            quirk: Expectation(
                quirk=quirk,
                reason=e["reason"],
                source=e["source"],
                models=tuple(e.get("models", ())),
                origin=e.get("origin", "server"),
                intermittent=bool(e.get("intermittent", False)),
                endpoints=tuple(e.get("endpoints", ())),
            )
            for quirk, e in raw.get("expectations", {}).items()
        }
        providers[name] = Provider(
            name=name,
            kind=raw["kind"],
            title=raw["title"],
            base_url=base_url.rstrip("/") if base_url else None,
            base_url_template=raw["base_url"],
            missing_vars=missing,
            api_key_env=raw.get("api_key_env"),
            auth_header=raw.get("auth_header", "authorization-bearer"),
            model=raw["model"],
            models=models,
            aliases=aliases,
            headers=dict(raw.get("headers", {})),
            timeouts={**DEFAULT_TIMEOUTS, **raw.get("timeouts", {})},
            retries={**DEFAULT_RETRIES, **raw.get("retries", {})},
            limits=dict(raw.get("limits", {})),
            supports=dict(raw.get("supports", {})),
            params=dict(raw.get("params", {})),
            software=dict(raw.get("software", {})),
            docs=raw.get("docs"),
            notes=raw.get("notes"),
            expectations=expectations,
        )
    return ProvidersConfig(path=path, providers=providers)


def load_providers(path: Path, env: Mapping[str, str] | None = None) -> ProvidersConfig:
    """Read and validate providers.yaml. `env` defaults to os.environ overlaid on the local servers' URL file."""
    if env is None:
        env = runtime_environment()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}; pass --providers-file PATH") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_providers(data, path, env)


def servers_env_file() -> Path:
    root = Path(os.environ.get("OAICOMPAT_CACHE", Path.home() / ".cache" / "oaicompat"))
    return root / "run" / "servers.env"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (as written by `oaicompat servers up`); missing file → {}."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.removeprefix("export ").strip()] = value.strip().strip("'\"")
    return out


def runtime_environment() -> dict[str, str]:
    """os.environ wins over the URLs that `oaicompat servers up` wrote for the local servers."""
    return {**read_env_file(servers_env_file()), **os.environ}
