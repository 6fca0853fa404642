"""providers.yaml: load, validate against its JSON Schema, interpolate environment variables.

Nothing here talks to the network. The environment is passed in, so loading is a pure function of
(file text, environment) and easy to test.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from .errors import ConfigError, UnknownModelError, UnknownProviderError
from .paths import SCHEMAS

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_TIMEOUTS = {"connect": 5.0, "read": 60.0, "total": 120.0}
DEFAULT_RETRIES = {"max_retries": 2, "max_delay": 8.0}

LOCAL_KEY_ENV = "OAICOMPAT_LOCAL_KEY"   # the key of the local servers `oaicompat servers up` starts
# names of variables that hold keys: what api_key_env may name without api_key_env_trusted, and what the
# writers of results and reports scrub whoever calls them
KEY_VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*_(?:API_)?(?:KEY|TOKEN)$")
MAX_FILE_BYTES = 1024 * 1024        # providers.yaml is configuration: a bigger file is a mistake or an attack
MAX_STRING_BYTES = 4096             # any one string (title and model ids have tighter limits in the schema)
MAX_NODES = 100_000                 # values in the document with every YAML alias expanded
MAX_DEPTH = 64
MAX_REPORTED = 20
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_KEY_LINE = re.compile(r"^( *)(?:- +)?([^\s:#'\"][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(?:\s|$)")


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
    pricing: Mapping[str, Any] = field(default_factory=dict)   # input_per_mtok, output_per_mtok, currency

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
        """Names of every variable that holds a key: what scrubbing must hide (the local servers' key too)."""
        return sorted({p.api_key_env for p in self.providers.values() if p.api_key_env} | {LOCAL_KEY_ENV})


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


def _interpolate_headers(raw: Mapping[str, str], env: Mapping[str, str]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Header values may use ${VAR} and ${VAR:-default} too (a gateway's upstream URL, say)."""
    headers: dict[str, str] = {}
    missing: list[str] = []
    for key, template in raw.items():
        value, absent = interpolate(template, env)
        headers[key] = value if value is not None else template
        missing.extend(absent)
    return headers, tuple(missing)


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads((SCHEMAS / "providers.schema.json").read_text(encoding="utf-8"))


# -- reading the file: bounded, with the line of every key ------------------------------------------------

Where = tuple[Any, ...]        # a key path in the document: ("providers", "vllm", "timeouts", "read")


class _Problem(Exception):
    """One violation at a key path (raised while reading, before there is a document)."""

    def __init__(self, where: Where, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.where, self.message, self.line = where, message, line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose documents are composed first, so alias expansion is measured before anything
    (jsonschema, interpolation) walks the expanded tree. `1e308` is a number, as in YAML 1.2 and JSON (YAML
    1.1 reads it as a string), so a range check rather than a type error reports it."""


_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _expanded_size(node: yaml.Node, memo: dict[int, int], where: Where = ()) -> int:
    """Nodes the document would have with every alias expanded; each distinct node is visited once, so a
    billion-laughs bomb is measured in microseconds. Raises _Problem past the bounds."""
    known = memo.get(id(node))
    if known is not None:
        return known
    if len(where) > MAX_DEPTH:
        raise _Problem(where[:4], f"nested more than {MAX_DEPTH} levels deep (or an alias refers to itself); "
                                  f"flatten it", _line(node))
    memo[id(node)] = MAX_NODES + 1        # a node met again while still being measured is a cycle
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo, (*where, i)) for i, child in enumerate(node.value))
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo, (*where, "?")) + _expanded_size(v, memo, (*where, _key_name(k)))
                    for k, v in node.value)
    if size > MAX_NODES:
        raise _Problem(where, f"more than {MAX_NODES:,} values once YAML aliases (*name) are expanded; write "
                              f"the entries out instead of aliasing them, and keep the file to providers", _line(node))
    memo[id(node)] = size
    return size


def _key_name(node: yaml.Node) -> str:
    return node.value[:60] if isinstance(node, yaml.ScalarNode) else "?"


def _key_lines(node: yaml.Node, where: Where, out: dict[Where, int]) -> None:
    """The line of every key path (the line of the key for mapping entries)."""
    out.setdefault(where, _line(node))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                out.setdefault((*where, k.value), _line(k))
                _key_lines(v, (*where, k.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _key_lines(child, (*where, i), out)


def _oversize_line(path: Path, size: int) -> _Problem:
    """A file over MAX_FILE_BYTES: name the first over-long line and the key it holds (from indentation),
    without parsing (a 50 MB title must not cost a YAML parse)."""
    stack: list[tuple[int, str]] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number > 1_000_000:
                break
            text = raw[:512].decode("utf-8", "replace")
            m = _KEY_LINE.match(text)
            if m:
                indent = len(m.group(1))
                while stack and stack[-1][0] >= indent:
                    stack.pop()
                stack.append((indent, m.group(2)))
            if len(raw) > MAX_STRING_BYTES:
                where = tuple(k for _, k in stack) if m else ()
                return _Problem(where, f"line is {len(raw):,} bytes: no value may exceed {MAX_STRING_BYTES:,} "
                                       f"bytes, nor the file {MAX_FILE_BYTES:,}; shorten it", number)
    return _Problem((), f"file is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit for providers.yaml; "
                        f"split it or remove what is not a provider", 1)


def _read_document(path: Path) -> tuple[Any, dict[Where, int]]:
    """The parsed document and the line of each key path. Raises ConfigError (one line) or _Problem."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _oversize_line(path, size)
        text = path.read_bytes()[:MAX_FILE_BYTES + 1].decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}; pass --providers-file PATH") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _expanded_size(node, {})
        lines: dict[Where, int] = {}
        _key_lines(node, (), lines)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise ConfigError(f"{path}{line}: not valid YAML: {what}; fix the syntax") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


# -- checking it --------------------------------------------------------------------------------------------

def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} chars)"


def _schema_problem(error: jsonschema.ValidationError) -> tuple[Where, str]:
    where: Where = tuple(error.absolute_path)
    v = error.validator
    value: Any = error.validator_value
    inst: Any = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if v == "additionalProperties" and isinstance(inst, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = next((k for k in inst if k not in allowed), None)
        if extra is not None:
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            return (*where, extra), f"unknown key{hint}"
    if v == "required":
        return where, f"{error.message}; add it"
    if v == "maxLength":
        return where, f"is {len(inst):,} characters, over the limit of {value:,}; shorten it"
    if v == "minLength":
        return where, "is empty; give a value"
    if v == "maxItems" or v == "maxProperties":
        return where, f"has {len(inst):,} entries, over the limit of {value:,}"
    if v == "type":
        return where, f"must be {value if isinstance(value, str) else ' or '.join(value)}, not {_show(inst)}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo, hi = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
        bounds = f" (from {lo:g} to {hi:g})" if lo is not None and hi is not None else f" ({v} {value:g})"
        return where, f"{_show(inst)} is out of range{bounds}; use a value in range"
    if v == "enum":
        return where, f"{_show(inst)} is not one of {', '.join(map(str, value))}"
    if v == "const":
        return where, f"must be {value!r}, not {_show(inst)}"
    if v == "pattern":
        if isinstance(inst, str) and _CONTROL.search(inst):
            return where, "contains a control character (CR, LF, NUL, …); remove it"
        return where, f"{_show(inst)} does not match the pattern {value}"
    if v == "propertyNames":
        return where, f"a key here is not allowed: {error.message[:160]}"
    return where, " ".join(error.message.split())[:200]


def _long_strings(value: Any, where: Where, out: list[tuple[Where, str]]) -> None:
    """Any string (key or value, params and notes included) over MAX_STRING_BYTES."""
    if isinstance(value, str):
        if len(value) > MAX_STRING_BYTES:
            out.append((where, f"is {len(value):,} characters, over the {MAX_STRING_BYTES:,} limit for any "
                               f"string; shorten it"))
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and len(k) > MAX_STRING_BYTES:
                out.append((where, f"has a key of {len(k):,} characters; shorten it"))
            _long_strings(v, (*where, k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _long_strings(v, (*where, i), out)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider's base URL (None when it can): http(s) only, a host, no credentials,
    no control characters or spaces. Never quotes the URL (it might hold a password)."""
    if _URL_UNSAFE.search(url):
        return "contains a control character or a space (CR, LF, NUL, …); remove it"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        return f"is not a valid URL ({exc}); write http://HOST:PORT/PATH"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"a {parts.scheme}: URL" if parts.scheme else "not an absolute URL"
        return f"is {scheme}; only http:// and https:// base URLs are allowed"
    if "@" in parts.netloc:
        return ("contains credentials (user:password@); remove them: the key belongs in the environment "
                "variable named by api_key_env")
    if not parts.hostname:
        return "has no host; write http://HOST:PORT/PATH"
    return None


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _provider_problems(name: str, raw: Any, env: Mapping[str, str]) -> list[tuple[Where, str]]:
    """What the schema cannot say: the URL after ${VAR} expansion, the key variable, finite numbers.
    Defensive: runs on entries that may also have failed the schema."""
    out: list[tuple[Where, str]] = []
    if not isinstance(raw, dict):
        return out
    at: Where = ("providers", name)
    base_url = interpolate(raw["base_url"], env)[0] if isinstance(raw.get("base_url"), str) else None
    if base_url is not None:
        why = url_problem(base_url)
        if why is not None:
            via = [m.group(1) for m in _VAR.finditer(raw["base_url"]) if env.get(m.group(1))]
            source = f" (as expanded from ${{{via[0]}}})" if via else ""
            out.append(((*at, "base_url"), f"{why}{source}"))
    key_env = raw.get("api_key_env")
    if isinstance(key_env, str) and key_env and not raw.get("api_key_env_trusted") and not KEY_VARIABLE.match(key_env):
        out.append(((*at, "api_key_env"),
                    f"{key_env!r} does not name a key variable (NAME_KEY, NAME_API_KEY or NAME_TOKEN), so its "
                    f"value would be sent as the key; name the variable that holds the key, or add "
                    f"api_key_env_trusted: true if {key_env} really holds it"))
    headers = raw.get("headers")
    for header, value in (headers.items() if isinstance(headers, dict) else ()):
        if isinstance(value, str) and not _latin1(value):
            out.append(((*at, "headers", str(header)), "contains characters an HTTP header cannot carry (outside "
                                                       "Latin-1); use ASCII"))
    for section in ("timeouts", "retries"):
        values = raw.get(section)
        for key, value in (values.items() if isinstance(values, dict) else ()):
            if isinstance(value, float) and not math.isfinite(value):
                out.append(((*at, section, key), f"{value!r} is not a finite number; use seconds from 0.1 to 3600"))
    aliases, models = raw.get("aliases"), raw.get("models")
    for alias, target in (aliases.items() if isinstance(aliases, dict) else ()):
        if target != raw.get("model") and not (isinstance(models, list) and target in models):
            out.append(((*at, "aliases", alias),
                        f"points to {_show(target)}, which is neither 'model' nor listed in 'models'"))
    return out


def _format(path: Path, problems: list[tuple[Where, str]], lines: Mapping[Where, int]) -> str:
    def line_of(where: Where) -> int | None:
        for n in range(len(where), -1, -1):
            if where[:n] in lines:
                return lines[where[:n]]
        return None

    rows = []
    for where, message in problems:
        line = line_of(where)
        key = ".".join(map(str, where)) or "(top level)"
        rows.append((line or 0, f"{path}{f':{line}' if line else ''}: {key}: {message}"))
    rows.sort(key=lambda r: r[0])
    shown = [text for _, text in rows[:MAX_REPORTED]]
    if len(rows) > MAX_REPORTED:
        shown.append(f"{path}: … and {len(rows) - MAX_REPORTED} more problem(s)")
    return "\n".join(shown)


def parse_providers(data: Any, path: Path, env: Mapping[str, str],
                    lines: Mapping[Where, int] | None = None) -> ProvidersConfig:
    """Validate a parsed providers.yaml document and build the config. Raises ConfigError with one line per
    violation: `FILE:LINE: providers.NAME.KEY: what is wrong and what to do` (LINE when `lines` is known)."""
    lines = lines or {}
    problems: list[tuple[Where, str]] = []
    _long_strings(data, (), problems)
    if not problems:
        validator = jsonschema.Draft202012Validator(_schema())
        problems = [_schema_problem(e) for e in validator.iter_errors(data)]
        entries = data.get("providers") if isinstance(data, dict) else None
        for name, raw in (entries.items() if isinstance(entries, dict) else ()):
            seen = {where for where, _ in problems}     # one line per key: the schema's, else ours
            problems.extend(p for p in _provider_problems(str(name), raw, env) if p[0] not in seen)
    if problems:
        raise ConfigError(_format(path, problems, lines))
    providers: dict[str, Provider] = {}
    for name, raw in data["providers"].items():
        base_url, missing = interpolate(raw["base_url"], env)
        headers, header_missing = _interpolate_headers(raw.get("headers", {}), env)
        if header_missing:   # a header the provider needs cannot be built: unavailable, like a missing URL
            base_url, missing = None, tuple(dict.fromkeys(missing + header_missing))
        aliases = dict(raw.get("aliases", {}))
        models = tuple(raw.get("models", ()))
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
            headers=headers,
            timeouts={**DEFAULT_TIMEOUTS, **raw.get("timeouts", {})},
            retries={**DEFAULT_RETRIES, **raw.get("retries", {})},
            limits=dict(raw.get("limits", {})),
            supports=dict(raw.get("supports", {})),
            params=dict(raw.get("params", {})),
            software=dict(raw.get("software", {})),
            docs=raw.get("docs"),
            notes=raw.get("notes"),
            expectations=expectations,
            pricing=dict(raw.get("pricing", {})),
        )
    return ProvidersConfig(path=path, providers=providers)


def load_providers(path: Path, env: Mapping[str, str] | None = None) -> ProvidersConfig:
    """Read and validate providers.yaml. `env` defaults to os.environ overlaid on the local servers' URL file.
    Every problem is a ConfigError whose lines each name the file, the line and the key."""
    if env is None:
        env = runtime_environment()
    try:
        data, lines = _read_document(path)
    except _Problem as problem:
        raise ConfigError(_format(path, [(problem.where, problem.message)],
                                  {problem.where: problem.line} if problem.line else {})) from None
    return parse_providers(data, path, env, lines)


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
