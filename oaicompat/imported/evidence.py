"""Run the registered checks over imported third-party recordings (evidence level "third-party").

A check runs on an imported exchange only when all of these hold (`inapplicable_reason` says which failed):

1. the exchange is not excluded (the source's recorder rewrote a body, see store.py);
2. the check has exactly one probe: a check comparing several exchanges cannot run on one recording;
3. `spec.applicable_to(ex)` holds: its `applies(request)` predicate, and `framing=True` checks need raw
   chunk boundaries, which no imported recording has (every one is framing "joined");
4. the reply is not one the harness would have retried (429, 408, 409, 502, 503, 504, 529);
5. the recording could have been the probe's request. The probe's RequestSpec is built with a
   ProbeContext for the vendor and compared with the imported request on
   - method, path, body kind (none / JSON object / other) and `stream`;
   - credentials: a 401/403 (or a 400 that blames the key) proves the key was rejected, so such a
     recording only stands for probes that send a wrong key, and the others only for a valid key;
   - every request feature: stream_options.include_usage, tools present, tool_choice, strict tools,
     response_format type, image / audio / other content-part types, tool results in the history, n,
     logprobs, prompt size. include_usage is left to the check's own applies() when it declares one
     (it only adds a final usage chunk);
   - the probe's own parameters (what it sets beyond the chat.basic baseline, or names as its subject in
     ctx.chat): stop, max_tokens of a cap probe, logprobs, an unknown model… must be equal;
   - the recording sends no field beyond the probe's and a benign list (temperature, max_tokens, seed…):
     reasoning_effort, thinking, vendor options may change the reply;
   - a capability check (kind "capability": the model must cooperate) needs the probe's own prompt;
6. the vendor does not declare a `needs` feature unsupported (then the outcome is "unsupported").

While a check runs, the response headers it reads are traced; if it read one the source's recorder dropped
or rewrote (or one oaicompat scrubbed, or a gzip Content-Encoding that no longer describes the decoded
body), the outcome is "not-applicable" whatever the check said. Outcomes come from
oaicompat.runner.evaluate_exchanges (the runner the plugin uses) with the vendor's Provider, so providers.yaml expectations turn findings into
expected-quirk. A vendor × check with no applicable recording gets one "not-applicable" record saying why.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks.base import CHECKS, PROBES, CheckSpec, ProbeContext
from ..config import DEFAULT_RETRIES, DEFAULT_TIMEOUTS, Provider, ProvidersConfig
from ..exchange import Exchange
from ..outcomes import Outcome
from ..paths import IMPORTED, PROJECT_ROOT
from ..results import make_record
from ..runner import Target, evaluate_exchanges
from .formats import RecordingError, load_yaml
from .store import RecorderProfile, StoredInteraction, load_stored_file

LARGE_INPUT_CHARS = 32_000
_AUTH_BLAME = re.compile(r"(?i)api[ _-]?key|unauthori[sz]ed|authenticat|invalid[ _-]?token|incorrect[ _-]?key"
                         r"|invalid[ _-]?credential")


def _registered_checks() -> dict[str, CheckSpec]:
    import oaicompat.checks  # noqa: F401  (registers every check and probe)
    return CHECKS


# -- loading ------------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    items: list[StoredInteraction] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def vendors(self) -> list[str]:
        return sorted({i.vendor for i in self.items})


def load_corpus(root: Path = IMPORTED, vendors: Iterable[str] | None = None) -> Corpus:
    """Every stored interaction under root/<vendor>/<slug>/. A file without provenance or licence is skipped."""
    corpus = Corpus()
    wanted = set(vendors) if vendors else None
    if not root.is_dir():
        return corpus
    for vendor_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if wanted is not None and vendor_dir.name not in wanted:
            continue
        for source_dir in sorted(p for p in vendor_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            prov_path = source_dir / "PROVENANCE.yaml"
            try:
                prov = load_yaml(prov_path.read_text(encoding="utf-8")) if prov_path.exists() else None
            except (RecordingError, OSError, UnicodeDecodeError) as exc:
                corpus.problems.append(f"{prov_path}: unreadable ({exc}); its recordings are not used")
                continue
            if not isinstance(prov, dict):
                corpus.problems.append(f"{source_dir}: no PROVENANCE.yaml; its recordings are not used")
                continue
            license_file = source_dir / str(prov.get("license_file") or "")
            if not prov.get("license_file") or not license_file.is_file():
                corpus.problems.append(f"{source_dir}: the licence notice {prov.get('license_file')} is missing; "
                                       f"its recordings are not used")
                continue
            listed = {f.get("stored_as") for f in prov.get("files", []) if isinstance(f, dict)}
            for path in sorted(source_dir.glob("*.yaml")):
                if path.name == "PROVENANCE.yaml":
                    continue
                if path.name not in listed:
                    corpus.problems.append(f"{path}: not listed in {prov_path}; not used")
                    continue
                try:
                    loaded = load_stored_file(path, prov, PROJECT_ROOT)
                except (RecordingError, OSError) as exc:
                    corpus.problems.append(str(exc))
                    continue
                for item in loaded:
                    if item.vendor != vendor_dir.name:
                        corpus.problems.append(f"{path}: says vendor {item.vendor!r} but lies under "
                                               f"{vendor_dir.name}/; not used")
                        break
                    corpus.items.append(item)
    return corpus


# -- request features -------------------------------------------------------------------------------------------

def _parts(messages: Any) -> Iterable[dict[str, Any]]:
    if not isinstance(messages, list):
        return
    for m in messages:
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            for part in m["content"]:
                if isinstance(part, dict):
                    yield part


def _text_size(messages: Any) -> int:
    total = 0
    if not isinstance(messages, list):
        return 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        c = m.get("content")
        if isinstance(c, str):
            total += len(c)
        for part in _parts([m]):
            if isinstance(part.get("text"), str):
                total += len(part["text"])
    return total


def _tool_choice(value: Any, has_tools: bool) -> str | None:
    if value is None:
        return "auto" if has_tools else None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("type") or "function")
    return type(value).__name__


def request_features(method: str, path: str, body: Any, raw: bool) -> dict[str, Any]:
    """The request features a probe fixes: what must match for an imported exchange to stand for it."""
    b = body if isinstance(body, dict) else {}
    tools = b.get("tools")
    functions = b.get("functions")
    has_tools = (isinstance(tools, list) and bool(tools)) or (isinstance(functions, list) and bool(functions))
    rf = b.get("response_format")
    rtype = rf.get("type") if isinstance(rf, dict) else (rf if isinstance(rf, str) else None)
    so = b.get("stream_options")
    messages = b.get("messages")
    parts = list(_parts(messages))
    n = b.get("n")
    return {
        "method": method.upper(),
        "path": path,
        "body": "none" if not raw else ("json-object" if isinstance(body, dict) else "not-a-json-object"),
        "stream": b.get("stream") is True,
        "include_usage": isinstance(so, dict) and so.get("include_usage") is True,
        "tools": has_tools,
        "tool_choice": _tool_choice(b.get("tool_choice", b.get("function_call")), has_tools),
        "response_format": None if rtype in (None, "text") else str(rtype),
        "strict_tools": isinstance(tools, list) and any(
            isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("strict") is True
            for t in tools),
        "images": any(p.get("type") in ("image_url", "input_image", "image") or "image_url" in p for p in parts),
        "part_types": sorted({str(p.get("type")) for p in parts} - {"text", "image_url"}),
        "audio": any(p.get("type") in ("input_audio", "audio") for p in parts) or bool(b.get("audio")),
        "tool_results": isinstance(messages, list) and any(
            isinstance(m, dict) and m.get("role") in ("tool", "function") for m in messages),
        "n": n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1,
        "logprobs": b.get("logprobs") is True,
        "large_input": _text_size(messages) > LARGE_INPUT_CHARS,
    }


SHAPE_KEYS = ("method", "path", "body", "stream")
# features a check's own applies() may settle: include_usage only adds a final usage chunk to a stream
ADDITIVE_KEYS = ("include_usage",)
# body fields that request_features already covers, or that carry the conversation itself
FEATURE_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "tools", "functions", "tool_choice",
                            "function_call", "response_format", "n", "logprobs", "audio", "modalities"})
# fields whose value a probe sets only incidentally (the baseline probe sets them too), unless it names them
# as its subject
INCIDENTAL_FIELDS = frozenset({"max_tokens", "temperature"})
BASELINE_PROBE = "chat.basic"
# fields an imported request may carry that the probe does not, without changing the reply's shape
BENIGN_FIELDS = frozenset({"model", "messages", "stream", "temperature", "top_p", "top_k", "max_tokens",
                           "max_completion_tokens", "seed", "user", "stop", "frequency_penalty", "presence_penalty",
                           "repetition_penalty", "min_p", "provider", "models", "transforms", "route"})
# a reply the harness itself would have retried says nothing about the rule (rate limits, overload)
TRANSIENT_STATUSES = frozenset({408, 409, 429, 502, 503, 504, 529})


def imported_features(ex: Exchange) -> dict[str, Any]:
    return request_features(ex.request.method, ex.request.path, ex.request.json, bool(ex.request.body))


def credentials(ex: Exchange) -> str:
    """'rejected' when the response proves the credentials were not valid, else 'accepted'."""
    if ex.status in (401, 403):
        return "rejected"
    if ex.status == 400 and _AUTH_BLAME.search(ex.text[:4000]):
        return "rejected"
    return "accepted"


_PROBE_AUTH = {"provider": "accepted", "wrong": "rejected"}


@dataclass(frozen=True)
class _SubjectContext(ProbeContext):
    """A ProbeContext that remembers which fields a probe names as its subject in ctx.chat(subject=…)."""
    subjects: list = field(default_factory=list, compare=False)

    def chat(self, messages: list[dict[str, Any]], *, subject: Iterable[str] = (), **fields: Any) -> dict[str, Any]:
        self.subjects.extend(subject)
        return super().chat(messages, subject=subject, **fields)


@dataclass(frozen=True)
class ProbeShape:
    features: dict[str, Any] | None
    auth: str | None                      # "accepted" / "rejected" / None (no key: not visible in a recording)
    params: dict[str, Any] = field(default_factory=dict)   # the probe's deliberate parameters: must be equal
    messages: Any = None                  # capability checks: the conversation must be the probe's own
    body_keys: tuple[str, ...] = ()       # every field the probe sends
    problem: str | None = None            # why no imported exchange can stand for this probe


def _body_of(rs: Any) -> Any:
    if rs.raw_body is not None:
        try:
            return json.loads(rs.raw_body)
        except ValueError:
            return None
    return rs.json


def _null_free(body: Any) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None} if isinstance(body, dict) else {}


def probe_shape(spec: CheckSpec, provider: Provider, model: str) -> ProbeShape:
    if len(spec.probes) != 1:
        return ProbeShape(None, None, problem=f"the check compares {len(spec.probes)} exchanges (probes "
                                              f"{', '.join(spec.probes)}); an imported recording is one exchange")
    probe = PROBES.get(spec.probes[0])
    if probe is None:
        return ProbeShape(None, None, problem=f"probe {spec.probes[0]!r} is not registered")
    ctx = _SubjectContext(provider, model)
    try:
        rs = probe.build(ctx)
    except Exception as exc:  # noqa: BLE001 - a probe that needs something this vendor entry lacks
        return ProbeShape(None, None, problem=f"probe {probe.name} cannot be built for {provider.name}: "
                                              f"{type(exc).__name__}: {exc}")
    if rs.base_url is not None:
        return ProbeShape(None, None, problem=f"probe {probe.name} targets another base URL ({rs.base_url})")
    body = _body_of(rs)
    features = request_features(rs.method, rs.path, body, bool(rs.body_bytes()))
    baseline: dict[str, Any] = {}
    base_probe = PROBES.get(BASELINE_PROBE)
    if base_probe is not None and base_probe is not probe:
        try:
            baseline = _null_free(_body_of(base_probe.build(ProbeContext(provider, model))))
        except Exception:  # noqa: BLE001 - no baseline: every parameter counts
            baseline = {}
    named = set(ctx.subjects) - FEATURE_FIELDS
    params = {}
    for key, value in _null_free(body).items():
        if key in FEATURE_FIELDS:
            continue
        if key in named or (key not in INCIDENTAL_FIELDS and baseline.get(key, _MISSING) != value):
            params[key] = value
    if isinstance(body, dict) and body.get("model") not in (None, model):   # e.g. a model that does not exist
        params["model"] = body["model"]
    messages = body.get("messages") if spec.kind == "capability" and isinstance(body, dict) else None
    return ProbeShape(features, _PROBE_AUTH.get(rs.auth), params, messages, tuple(_null_free(body)))


_MISSING = object()


def _differences(want: dict[str, Any], have: dict[str, Any], keys: Iterable[str]) -> list[str]:
    return [f"{k}: probe {want.get(k)!r}, recording {have.get(k)!r}" for k in keys if want.get(k) != have.get(k)]


def inapplicable_reason(spec: CheckSpec, item: StoredInteraction, shape: ProbeShape,
                        features: dict[str, Any] | None = None) -> str | None:
    """Why this check must not run on this imported exchange; None when it may."""
    if item.excluded or item.exchange is None:
        return f"excluded: {item.excluded or 'no response bytes'}"
    ex = item.exchange
    if shape.problem:
        return shape.problem
    if spec.framing and ex.framing != "raw":
        return ("the check needs the raw chunk boundaries and exact bytes; the source kept the body as one "
                "string (framing joined)")
    try:
        if not spec.applicable_to(ex):
            return "the imported request does not meet the check's applies() precondition"
    except Exception as exc:  # noqa: BLE001 - an applies() that chokes on an odd request
        return f"applies() failed on the imported request: {type(exc).__name__}: {exc}"
    have = features if features is not None else imported_features(ex)
    assert shape.features is not None
    diff = _differences(shape.features, have, SHAPE_KEYS)
    if diff:
        return "request shape differs from the probe's: " + "; ".join(diff)
    if ex.status in TRANSIENT_STATUSES:
        return f"the recording got a transient HTTP {ex.status} (the harness retries those)"
    cred = credentials(ex)
    if shape.auth != cred:
        sends = {"accepted": "a valid key", "rejected": "a wrong key"}.get(shape.auth or "", "no key")
        return f"credentials: the probe sends {sends}; the recording's credentials were {cred}"
    skip = set(SHAPE_KEYS) | (set(ADDITIVE_KEYS) if spec.applies is not None else set())
    diff = _differences(shape.features, have, [k for k in shape.features if k not in skip])
    if diff:
        return "request differs from the probe's: " + "; ".join(diff)
    body = _null_free(ex.request.json)
    diff = [f"{k}: probe {v!r}, recording {body.get(k)!r}" for k, v in shape.params.items() if body.get(k) != v]
    if diff:
        return "the probe's own parameters are not in the recording: " + "; ".join(diff)
    extra = sorted(set(body) - BENIGN_FIELDS - FEATURE_FIELDS - set(shape.body_keys))
    if extra:
        return f"the recording sends {', '.join(extra)}, which the probe does not (it may change the reply)"
    if shape.messages is not None and body.get("messages") != shape.messages:
        return "a capability check needs the probe's own prompt; the recording asked something else"
    return None


# -- running a check with header tracing ----------------------------------------------------------------------

class _Traced(Exchange):
    """An Exchange that notes which response headers a check reads ('*' for the whole list)."""

    def __getattribute__(self, name: str) -> Any:
        if name == "headers":
            object.__getattribute__(self, "__dict__").setdefault("_headers_read", set()).add("*")
        return object.__getattribute__(self, name)

    def header(self, name: str) -> str | None:
        self.__dict__.setdefault("_headers_read", set()).add(name.lower())
        lname = name.lower()
        for key, value in object.__getattribute__(self, "headers"):
            if key.lower() == lname:
                return value
        return None

    @property
    def headers_read(self) -> set[str]:
        return set(self.__dict__.get("_headers_read", set()))


def traced(ex: Exchange) -> _Traced:
    return _Traced(**{f.name: getattr(ex, f.name) for f in dataclasses.fields(Exchange)})


def _untrusted_headers(read: set[str], profile: RecorderProfile, also: Iterable[str] = ()) -> list[str]:
    extra = {h.lower() for h in also}
    bad = sorted(h for h in read if h != "*" and (h in extra or not profile.header_trustworthy(h)))
    if "*" in read and not profile.header_names_complete:
        bad.append("(the whole header list)")
    return bad


def evaluate(spec: CheckSpec, item: StoredInteraction, provider: Provider, shape: ProbeShape,
             features: dict[str, Any] | None = None) -> Outcome:
    reason = inapplicable_reason(spec, item, shape, features)
    if reason:
        return Outcome("not-applicable", f"not applicable: {reason}")
    assert item.exchange is not None
    ex = traced(item.exchange)
    evaluation = evaluate_exchanges(spec, Target(provider, item.model or provider.model), [ex])
    bad = _untrusted_headers(ex.headers_read, item.profile, item.exchange.meta.get("untrusted_headers", ()))
    if bad:
        return Outcome("not-applicable",
                       f"not applicable: the check reads response header(s) {', '.join(bad)}, which "
                       f"{item.profile.repo}'s recorder (or oaicompat's scrubbing) dropped or rewrote")
    return evaluation.outcome


# -- records ------------------------------------------------------------------------------------------------------

def stub_provider(name: str, model: str = "unknown") -> Provider:
    """A vendor providers.yaml does not define: no expectations, every feature assumed supported."""
    return Provider(name=name, kind="hosted", title=f"{name} (not in providers.yaml)", base_url=None,
                    base_url_template="", missing_vars=(), api_key_env=None, auth_header="authorization-bearer",
                    model=model, models=(), aliases={}, headers={}, timeouts=dict(DEFAULT_TIMEOUTS),
                    retries=dict(DEFAULT_RETRIES), limits={}, supports={}, params={}, software={}, docs=None,
                    notes="imported evidence for a vendor that providers.yaml does not define")


def provider_for(cfg: ProvidersConfig | None, vendor: str) -> Provider:
    if cfg is not None and vendor in cfg.providers:
        return cfg.providers[vendor]
    return stub_provider(vendor)


def _test_id(item: StoredInteraction, check_id: str) -> str:
    rel = item.file
    try:
        rel = item.file.relative_to(IMPORTED)
    except ValueError:
        rel = Path(*item.file.parts[-3:])
    return f"imported::{rel.as_posix()}#{item.index}::{check_id}"


@dataclass
class EvidenceRun:
    records: list[dict[str, Any]] = field(default_factory=list)
    providers: dict[str, tuple[Provider, set[str]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    exchanges: Counter = field(default_factory=Counter)        # vendor → usable exchanges
    excluded: Counter = field(default_factory=Counter)         # vendor → excluded interactions


def run_evidence(cfg: ProvidersConfig | None, root: Path = IMPORTED, *, vendors: Iterable[str] | None = None,
                 checks: Iterable[str] | None = None) -> EvidenceRun:
    registry = _registered_checks()
    wanted = list(checks) if checks else sorted(registry)
    unknown = [c for c in wanted if c not in registry]
    run = EvidenceRun()
    if unknown:
        run.problems.append(f"unknown check id(s): {', '.join(unknown)}")
    specs = [registry[c] for c in wanted if c in registry]
    corpus = load_corpus(root, vendors)
    run.problems.extend(corpus.problems)
    by_vendor: dict[str, list[StoredInteraction]] = {}
    for item in corpus.items:
        by_vendor.setdefault(item.vendor, []).append(item)
    for vendor, items in sorted(by_vendor.items()):
        provider = provider_for(cfg, vendor)
        models = {i.model for i in items if i.model}
        run.providers[vendor] = (provider, models)
        run.excluded[vendor] = sum(1 for i in items if i.excluded or i.exchange is None)
        run.exchanges[vendor] = len(items) - run.excluded[vendor]
        features = {id(i): imported_features(i.exchange) for i in items if i.exchange is not None}
        for spec in specs:
            run.records.extend(_check_vendor(spec, provider, items, features))
    return run


def _check_vendor(spec: CheckSpec, provider: Provider, items: list[StoredInteraction],
                  features: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    missing = [n for n in spec.needs if not provider.supports_feature(n)]
    if missing:
        outcome = Outcome("unsupported", f"unsupported (declared): {provider.name} does not support "
                                         f"{', '.join(missing)}")
        return [_aggregate_record(spec, provider, outcome)]
    shape = probe_shape(spec, provider, provider.model)
    records: list[dict[str, Any]] = []
    reasons: Counter = Counter()
    for item in items:
        reason = inapplicable_reason(spec, item, shape, features.get(id(item)))
        if reason:
            reasons[_reason_key(reason)] += 1
            continue
        outcome = evaluate(spec, item, provider, shape, features.get(id(item)))
        assert item.exchange is not None
        record = make_record(test=_test_id(item, spec.id), spec=spec, provider=provider,
                             model=item.model or provider.model, outcome=outcome, exchanges=[item.exchange])
        record.pop("timing", None)   # third-party recordings carry no arrival times
        records.append(record)
    if not records:
        top = "; ".join(f"{n}× {r}" for r, n in reasons.most_common(4))
        more = len(reasons) - 4
        msg = (f"not applicable: none of the {len(items)} imported recording(s) of {provider.name} can stand for "
               f"this check's probe ({top}{f'; and {more} other reason(s)' if more > 0 else ''})")
        records.append(_aggregate_record(spec, provider, Outcome("not-applicable", msg)))
    return records


def _reason_key(reason: str) -> str:
    # group "request differs …: tools: probe False, recording True; …" by its first difference
    return reason.split("; ")[0][:200]


def _aggregate_record(spec: CheckSpec, provider: Provider, outcome: Outcome) -> dict[str, Any]:
    record = make_record(test=f"imported::{provider.name}::{spec.id}", spec=spec, provider=provider,
                         model="(imported)", outcome=outcome, exchanges=[])
    record.pop("timing", None)
    return record


def imported_records(cfg: ProvidersConfig | None, root: Path = IMPORTED) -> list[dict[str, Any]]:
    """Every results record the imported recordings give (for `oaicompat validate --evidence`)."""
    return run_evidence(cfg, root).records
