"""What a conformance check is: a pure function over Exchanges that passes or raises a finding.

    @check("chat.object", rule="RESP-2", probes=["chat.basic"], quirks=["chat.object-wrong"])
    def object_is_chat_completion(ex: Exchange) -> None:
        body = require_success(ex, "chat.status")   # a 2xx JSON object, else Blocked (chat.status reports it)
        if body.get("object") != "chat.completion":
            raise QuirkFound("chat.object-wrong", f"object is {body.get('object')!r}", ex, evidence(ex))

Checks never send requests: a probe (a named request builder) says what to send, and the harness hands
the resulting Exchanges to the check in the order of `probes`. Expectations (which provider has which
quirk) live in providers.yaml, never here.

This module holds what every check is built from (findings, probes, the registries and the helpers below);
readers and owner ids that several areas share are in checks/common.py.
"""

from __future__ import annotations

import inspect
import json
import reprlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

import jsonschema

from ..config import Provider
from ..exchange import Exchange, Request
from ..transport import RequestSpec
from .requires import Requires

Kind = Literal["protocol", "capability", "info"]


# -- findings ---------------------------------------------------------------------------------------

class Finding(Exception):
    """Base of what a check raises instead of passing."""


class QuirkFound(Finding):
    """A catalogued deviation, with the lines of the exchange that prove it."""

    def __init__(self, quirk: str, detail: str, exchange: Exchange | None = None,
                 lines: Sequence[str] = ()) -> None:
        super().__init__(f"{quirk}: {detail}")
        self.quirk = quirk
        self.detail = detail
        self.exchange = exchange
        self.lines = tuple(lines)


class QuirksFound(QuirkFound):
    """Several catalogued deviations seen at once: none hides another (`quirk` is the first)."""

    def __init__(self, found: Sequence[QuirkFound]) -> None:
        if not found:
            raise ValueError("QuirksFound needs at least one QuirkFound; pass when nothing was found")
        first = found[0]
        super().__init__(first.quirk, "; ".join(f"[{f.quirk}] {f.detail}" for f in found), first.exchange,
                         tuple(line for f in found for line in f.lines))
        self.found = tuple(found)

    @property
    def quirks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.quirk for f in self.found))


def raise_all(found: Sequence[QuirkFound]) -> None:
    """Raise every quirk a check collected (one QuirkFound as itself, several as QuirksFound); else return."""
    if len(found) == 1:
        raise found[0]
    if found:
        raise QuirksFound(found)


def quirks_of(found: QuirkFound) -> tuple[str, ...]:
    return found.quirks if isinstance(found, QuirksFound) else (found.quirk,)


class Violation(Finding):
    """A protocol violation that no catalogued quirk names yet (fails; catalogue it)."""

    def __init__(self, rule: str, detail: str, exchange: Exchange | None = None,
                 lines: Sequence[str] = ()) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
        self.exchange = exchange
        self.lines = tuple(lines)


class Blocked(Finding):
    """The rule cannot be evaluated because an earlier step failed; `owner` is the check that reports it."""

    def __init__(self, detail: str, owner: str, exchange: Exchange | None = None) -> None:
        super().__init__(f"{detail} (reported by {owner})")
        self.detail = detail
        self.owner = owner
        self.exchange = exchange


class NotApplicable(Finding):
    """The exchange does not meet what the check needs (e.g. joined framing for a framing check)."""


@dataclass(frozen=True)
class Observation:
    """Informational: something worth recording that breaks no rule (an extension field, a header)."""
    key: str
    value: Any


CheckResult = Iterable[Observation] | None


# -- probes -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeContext:
    provider: Provider
    model: str

    def chat(self, messages: list[dict[str, Any]], *, subject: Iterable[str] = (), **fields: Any) -> dict[str, Any]:
        """A chat-completions body: model, messages, probe fields, then the provider's required params
        (`params` in providers.yaml), except for the fields this probe is testing (`subject`)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, **fields}
        skip = set(subject)
        for key, value in self.provider.params.items():
            if key not in skip:
                body[key] = value
        return body


@dataclass(frozen=True)
class Probe:
    name: str
    build: Callable[[ProbeContext], RequestSpec]
    fresh: bool = False          # never reuse another test's live exchange for this probe
    description: str = ""


PROBES: dict[str, Probe] = {}


ProbeBuilder = Callable[[ProbeContext], RequestSpec]


def probe(name: str, *, fresh: bool = False) -> Callable[[ProbeBuilder], ProbeBuilder]:
    def register(fn: ProbeBuilder) -> ProbeBuilder:
        if name in PROBES:
            raise ValueError(f"probe {name!r} registered twice")
        PROBES[name] = Probe(name, fn, fresh, (fn.__doc__ or "").strip())
        return fn
    return register


# -- checks -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckSpec:
    id: str
    area: str
    rule: str
    title: str
    probes: tuple[str, ...]
    quirks: tuple[str, ...]
    kind: Kind
    needs: tuple[str, ...]                       # provider features (providers.yaml `supports`)
    applies: Callable[[Request], bool] | None    # what a request must contain for this check to apply
    framing: bool                                # needs the raw chunk boundaries / exact bytes
    func: Callable[..., CheckResult] = field(repr=False)
    module: str = ""
    requires: Requires | None = None             # what an exchange must carry (None: derived from the probe)
    observes: bool = False                       # observes any reply: runs whatever `supports:` declares

    def run(self, *exchanges: Exchange) -> list[Observation]:
        """Call the check; a quirk it does not declare is a harness bug, not a vendor finding."""
        try:
            result = self.func(*exchanges)
        except QuirkFound as found:
            undeclared = [q for q in quirks_of(found) if q not in self.quirks]
            if undeclared:
                raise RuntimeError(
                    f"check {self.id} raised {', '.join(map(repr, undeclared))}, which it does not declare in quirks="
                ) from found
            raise
        return list(result or [])

    @property
    def skip_when_unsupported(self) -> bool:
        """True when a provider that declares a `needs` feature unsupported gets "unsupported" without a run.
        An observation check (`observes=True`) needs no special request, so it runs on every provider: a
        server that sends reasoning unasked shows it even where providers.yaml says `reasoning: false`."""
        return bool(self.needs) and not self.observes

    @property
    def accepts_one(self) -> bool:
        """The check can judge a single exchange: it has one probe, or it takes any number (*exchanges)."""
        if len(self.probes) == 1:
            return True
        try:
            params = inspect.signature(self.func).parameters.values()
        except (TypeError, ValueError):
            return False
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return not positional and any(p.kind == p.VAR_POSITIONAL for p in params)

    def applicable_to(self, exchange: Exchange) -> bool:
        if self.framing and exchange.framing != "raw":
            return False
        return self.applies(exchange.request) if self.applies else True


CHECKS: dict[str, CheckSpec] = {}


def check(
    id: str,
    *,
    rule: str,
    probes: Sequence[str],
    quirks: Sequence[str] = (),
    kind: Kind = "protocol",
    needs: Sequence[str] = (),
    applies: Callable[[Request], bool] | None = None,
    framing: bool = False,
    requires: Requires | None = None,
    observes: bool = False,
) -> Callable[[Callable[..., CheckResult]], Callable[..., CheckResult]]:
    def register(fn: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
        if id in CHECKS:
            raise ValueError(f"check {id!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        spec = CheckSpec(
            id=id, area=id.split(".")[0], rule=rule, title=doc[0] if doc else id,
            probes=tuple(probes), quirks=tuple(quirks), kind=kind, needs=tuple(needs),
            applies=applies, framing=framing, func=fn, module=fn.__module__, requires=requires,
            observes=observes,
        )
        CHECKS[id] = spec
        fn.spec = spec  # type: ignore[attr-defined]
        return fn
    return register


def spec_of(fn: Callable[..., Any]) -> CheckSpec:
    spec = getattr(fn, "spec", None)
    if not isinstance(spec, CheckSpec):
        raise TypeError(f"{fn!r} is not a registered check (decorate it with @check)")
    return spec


# -- helpers checks share ---------------------------------------------------------------------------

MAX_LINE = 300


def clip(text: str, limit: int = MAX_LINE) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def request_line(ex: Exchange) -> str:
    body = ex.request.body.decode("utf-8", errors="replace")
    return clip(f"> {ex.request.method} {ex.request.path} {body}")


def status_line(ex: Exchange) -> str:
    if ex.status is None:
        return f"< (no response) {ex.failure.kind + ': ' + ex.failure.message if ex.failure else ''}"
    ctype = ex.header("content-type") or "(no content-type)"
    return f"< HTTP {ex.status} content-type: {ctype}"


def body_line(ex: Exchange) -> str:
    return clip("< " + ex.text.replace("\r", "\\r").replace("\n", "\\n")) if ex.body else "< (empty body)"


def evidence(ex: Exchange, *extra: str) -> list[str]:
    """The request, the status and either the given lines or the start of the body."""
    return [request_line(ex), status_line(ex), *(extra or (body_line(ex),))]


def response_json(ex: Exchange, owner: str) -> Any:
    """The response body as JSON, or Blocked naming the check that reports the non-JSON body."""
    if ex.failure is not None and not ex.body:
        raise Blocked(f"no response: {ex.failure.kind}: {ex.failure.message}", owner, ex)
    try:
        return ex.json
    except ValueError:
        raise Blocked(f"HTTP {ex.status} body is not JSON: {clip(ex.text, 120)!r}", owner, ex) from None


def require_success(ex: Exchange, owner: str) -> dict[str, Any]:
    """A 2xx JSON object body, else Blocked (the `owner` check reports the rejection)."""
    if ex.status is None or not 200 <= ex.status < 300:
        failed = ex.failure.kind if ex.failure else "?"
        what = f"HTTP {ex.status}" if ex.status is not None else f"no response ({failed})"
        raise Blocked(f"the request was not answered with success: {what}", owner, ex)
    body = response_json(ex, owner)
    if not isinstance(body, dict):
        raise Blocked(f"body is JSON {type(body).__name__}, not an object", owner, ex)
    return body


def first_choice(body: Mapping[str, Any], owner: str, ex: Exchange) -> dict[str, Any]:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Blocked("the response has no usable choices[0]", owner, ex)
    return choices[0]


def compact(value: Any) -> str:
    try:
        return clip(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    except (ValueError, TypeError, RecursionError):
        return clip(reprlib.repr(value))


def is_int(value: Any) -> TypeGuard[int]:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_json(text: str) -> tuple[bool, Any, str]:
    """(ok, value, why-not) for vendor text; never raises (deep nesting raises RecursionError in json)."""
    try:
        return True, json.loads(text), ""
    except (ValueError, RecursionError) as exc:
        return False, None, f"{type(exc).__name__}: {clip(str(exc), 120)}"


def schema_error(instance: Any, schema: Any) -> str | None:
    """The best jsonschema error message, None when `instance` validates; never raises."""
    if schema is None:                       # TOOLS-3: no parameters means a function without arguments
        schema = {"type": "object"}
    if not isinstance(schema, (dict, bool)):
        return None
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)  # type: ignore[arg-type]  # a boolean schema is valid JSON Schema
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(instance))
    except (jsonschema.exceptions.SchemaError, RecursionError):
        return None
    if error is None:
        return None
    where = "/".join(map(str, error.absolute_path)) or "(root)"
    return f"at {where}: {clip(error.message, 160)}"


def error_shape(ex: Exchange) -> str:
    """How a rejection looked: the status and the error envelope (or what stood in its place)."""
    status = f"HTTP {ex.status}" if ex.status is not None else "no response"
    if ex.failure is not None:
        status += f" ({ex.failure.kind}: {clip(ex.failure.message, 80)})"
    if not ex.body:
        return f"{status}, empty body"
    body = ex.json_or_none()
    if body is None:
        return f"{status}, non-JSON body {clip(ex.text, 120)!r}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        parts = ", ".join(f"{k}={clip(compact(err[k]), 120)}" for k in ("type", "code", "param", "message")
                          if k in err)
        return f"{status}, error envelope {{{parts}}}"
    if isinstance(body, dict):
        return f"{status}, JSON object without an error object, keys {sorted(body)[:12]}"
    return f"{status}, JSON {type(body).__name__} body"
