"""Run the registered checks over imported third-party recordings (evidence level "third-party").

Every check is offered every imported exchange. It runs on one when all of these hold (`inapplicable_reason`
says which failed, naming the missing property):

1. the exchange is not excluded (the source's recorder rewrote a body, see store.py);
2. the check can judge one exchange (`spec.accepts_one`: a single probe, or a check that takes any number of
   exchanges, `*exchanges`); a pair check (streamed vs non-streamed, parallel vs named…) cannot;
3. `spec.applicable_to(ex)` holds: its `applies(request)` predicate, and `framing=True` checks need raw
   chunk boundaries, which no imported recording has (every one is framing "joined");
4. the reply is not one the harness would have retried (429, 408, 409, 502, 503, 504, 529);
5. the exchange has what the check needs: `unmet(requires, exchange)` (checks/requires.py) is empty. The
   check's declared `requires=` is the authority (e.g. a delta-index rule needs "streamed, 2xx, the reply
   carries tool calls"). A check that declares none gets needs derived from its one probe (`from_probe`):
   method, path, body kind, `stream`, credentials (a 401/403, or a 400 that blames the key, stands only for
   probes that send a wrong key), everything the probe asks for (tools with its tool_choice, strict tools,
   a response_format, images, other part types, audio, tool results, n, logprobs, include_usage unless the
   check's applies() settles it, a large prompt), no tool calls / logprobs / n > 1 in the reply when the
   probe asks none, the probe's own parameters (what it sets beyond the chat.basic baseline, or names as
   its subject in ctx.chat: stop, a cap's max_tokens, an unknown model…), no request field beyond the
   probe's and a benign list (reasoning_effort, thinking, vendor options may change the reply), and for a
   capability check (the model must cooperate) the probe's own prompt;
6. the vendor does not declare a `needs` feature unsupported, unless the check observes any reply
   (`spec.skip_when_unsupported` is False: where reasoning travels, extension fields); then the outcome is
   "unsupported" for all the vendor's exchanges.

While a check runs, the response headers it reads are traced; if it read one the source's recorder dropped
or rewrote (or one oaicompat scrubbed, or a gzip Content-Encoding that no longer describes the decoded
body), the outcome is "not-applicable" whatever the check said. Outcomes come from
oaicompat.runner.evaluate_exchanges (the runner the plugin uses) with the vendor's Provider, so providers.yaml
expectations turn findings into expected-quirk.

Records: every (exchange, check) pair gets a decision, never a silent drop. A check that ran gives one record
per exchange (test `imported::<vendor>/<source>/<file>#<n>::<check>`). The exchanges a check did not run on
are grouped: one "not-applicable" record per (vendor, check, reason), test
`imported::<vendor>::<check>::not-applicable-<k>`, model "(imported)", message "not applicable to N of M
imported exchange(s): <reason>", and `lines` naming each exchange as "exchange <vendor>/<source>/<file>#<n>";
an "unsupported" vendor × check is one such record listing all its exchanges. Record fields are those of
results.make_record, so the report and `validate --evidence` read them unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks.base import CHECKS, PROBES, CheckSpec, ProbeContext
from ..checks.requires import (  # noqa: F401  (request_features and credentials are re-exported)
    BENIGN_FIELDS,
    FEATURE_FIELDS,
    LARGE_INPUT_CHARS,
    Requires,
    credentials,
    exchange_features,
    from_probe,
    request_fault,
    request_features,
    unmet,
)
from ..config import DEFAULT_RETRIES, DEFAULT_TIMEOUTS, Provider, ProvidersConfig
from ..exchange import Exchange
from ..outcomes import Outcome
from ..paths import IMPORTED, PROJECT_ROOT
from ..results import make_record
from ..runner import Target, evaluate_exchanges
from .formats import RecordingError, load_yaml
from .store import RecorderProfile, StoredInteraction, load_stored_file


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


# -- request features (read in the checks layer, see checks/requires.py) ------------------------------------

# fields whose value a probe sets only incidentally (the baseline probe sets them too), unless it names them
# as its subject
INCIDENTAL_FIELDS = frozenset({"max_tokens", "temperature"})
BASELINE_PROBE = "chat.basic"
# a reply the harness itself would have retried says nothing about the rule (rate limits, overload)
TRANSIENT_STATUSES = frozenset({408, 409, 429, 502, 503, 504, 529})


def imported_features(ex: Exchange) -> dict[str, Any]:
    """Every property a check may require, read from the exchange's request and reply."""
    return exchange_features(ex)


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
    """What an exchange needs for a check to run on it: the check's declared `requires`, or needs derived
    from its single probe (checks/requires.py from_probe). `problem` says why no exchange can stand for it."""
    requires: Requires | None
    problem: str | None = None
    derived: bool = False                 # True when read from the probe, not declared by the check


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
    if not spec.accepts_one:
        return ProbeShape(None, problem=f"the check compares {len(spec.probes)} exchanges (probes "
                                        f"{', '.join(spec.probes)}); an imported recording is one exchange")
    if spec.requires is not None:
        return ProbeShape(spec.requires)
    if len(spec.probes) != 1:
        return ProbeShape(None, problem=f"the check takes several exchanges ({', '.join(spec.probes)}) and "
                                        f"declares no requires= saying what one of them must carry")
    probe = PROBES.get(spec.probes[0])
    if probe is None:
        return ProbeShape(None, problem=f"probe {spec.probes[0]!r} is not registered")
    ctx = _SubjectContext(provider, model)
    try:
        rs = probe.build(ctx)
    except Exception as exc:  # noqa: BLE001 - a probe that needs something this vendor entry lacks
        return ProbeShape(None, problem=f"probe {probe.name} cannot be built for {provider.name}: "
                                        f"{type(exc).__name__}: {exc}")
    if rs.base_url is not None:
        # the URL itself is not shown: it depends on where the servers run, and the published report must not
        return ProbeShape(None, problem=f"probe {probe.name} targets another base URL than the chat endpoint's")
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
    requires = from_probe(features, auth=_PROBE_AUTH.get(rs.auth), params=params,
                          body_keys=tuple(_null_free(body)), messages=messages)
    if spec.applies is not None:
        # a check with its own applies() settles include_usage itself (it only adds a final usage chunk)
        requires = dataclasses.replace(requires, include_usage=None)
    return ProbeShape(requires, derived=True)


_MISSING = object()


def inapplicable_reason(spec: CheckSpec, item: StoredInteraction, shape: ProbeShape,
                        features: dict[str, Any] | None = None) -> str | None:
    """Why this check must not run on this imported exchange; None when it may."""
    if item.excluded or item.exchange is None:
        return f"excluded: {item.excluded or 'no response bytes'}"
    ex = item.exchange
    if shape.problem or shape.requires is None:
        return shape.problem or "the check says nothing about what an exchange must carry"
    if spec.framing and ex.framing != "raw":
        return ("the check needs the raw chunk boundaries and exact bytes; the source kept the body as one "
                "string (framing joined)")
    try:
        if not spec.applicable_to(ex):
            return "the imported request does not meet the check's applies() precondition"
    except Exception as exc:  # noqa: BLE001 - an applies() that chokes on an odd request
        return f"applies() failed on the imported request: {type(exc).__name__}: {exc}"
    if ex.status in TRANSIENT_STATUSES:
        return f"the recording got a transient HTTP {ex.status} (the harness retries those)"
    fault = request_fault(ex) if any(q.endswith("rejected") for q in spec.quirks) else None   # x.rejected, x.y-rejected
    if fault:
        return (f"the vendor refused the recorded request for a fault of its own (HTTP {ex.status}: {fault!r}); "
                f"an acceptance check needs a request known to be valid, as the suite's own probe is")
    missing = unmet(shape.requires, ex, features)
    if missing:
        origin = "its probe's request" if shape.derived else "its requires="
        return f"the exchange lacks what the check needs ({origin}): " + "; ".join(missing)
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
    """Every exchange of the vendor gets a decision from this check: a record of its own when the check ran,
    else a place in one grouped record per (vendor, check, reason), whose `lines` name the exchanges."""
    missing = [n for n in spec.needs if not provider.supports_feature(n)] if spec.skip_when_unsupported else []
    if missing:
        outcome = Outcome("unsupported", f"unsupported (declared): {provider.name} does not support "
                                         f"{', '.join(missing)} (all {len(items)} imported exchange(s))")
        return [_aggregate_record(spec, provider, outcome, [_exchange_ref(i) for i in items])]
    shape = probe_shape(spec, provider, provider.model)
    records: list[dict[str, Any]] = []
    groups: dict[str, list[StoredInteraction]] = {}
    for item in items:
        reason = inapplicable_reason(spec, item, shape, features.get(id(item)))
        if reason:
            groups.setdefault(_reason_key(reason), []).append(item)
            continue
        outcome = evaluate(spec, item, provider, shape, features.get(id(item)))
        assert item.exchange is not None
        record = make_record(test=_test_id(item, spec.id), spec=spec, provider=provider,
                             model=item.model or provider.model, outcome=outcome, exchanges=[item.exchange])
        record.pop("timing", None)   # third-party recordings carry no arrival times
        records.append(record)
    for n, (reason, group) in enumerate(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))):
        msg = f"not applicable to {len(group)} of {len(items)} imported exchange(s): {reason}"
        records.append(_aggregate_record(spec, provider, Outcome("not-applicable", msg),
                                         [_exchange_ref(i) for i in group], suffix=f"::not-applicable-{n + 1}"))
    return records


def _exchange_ref(item: StoredInteraction) -> str:
    try:
        rel = item.file.relative_to(IMPORTED).as_posix()
    except ValueError:
        rel = Path(*item.file.parts[-3:]).as_posix()
    return f"{rel}#{item.index}"


def _reason_key(reason: str) -> str:
    return reason[:400]


def _aggregate_record(spec: CheckSpec, provider: Provider, outcome: Outcome, refs: Iterable[str] = (),
                      suffix: str = "") -> dict[str, Any]:
    record = make_record(test=f"imported::{provider.name}::{spec.id}{suffix}", spec=spec, provider=provider,
                         model="(imported)", outcome=outcome, exchanges=[])
    record.pop("timing", None)
    record["lines"] = [f"exchange {r}" for r in refs]
    return record


def imported_records(cfg: ProvidersConfig | None, root: Path = IMPORTED) -> list[dict[str, Any]]:
    """Every results record the imported recordings give (for `oaicompat validate --evidence`)."""
    return run_evidence(cfg, root).records
