"""The pytest plugin (registered through the pytest11 entry point): options, parametrisation, fixtures.

User-facing surface:
    --provider NAME[,NAME…] | all      which providers (default: every provider that has cassettes)
    --model NAME                        a model id or alias (default: each provider's default model)
    --record-mode none|once|new_episodes|all|rewrite   (pytest-recording's meanings; default none = replay)
    --live                              talk to the providers, write no cassette
    --servers                           start the real local servers the run needs; stop them at the end
    --providers-file, --cassette-dir, --results

    async def test_object(run_check):
        await run_check(chat.object_is_chat_completion)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import pytest

from . import checks as _checks  # noqa: F401  (registers every check and probe)
from .checks.base import PROBES, CheckSpec, Finding, ProbeContext, spec_of
from .config import Provider, ProvidersConfig, load_providers, runtime_environment
from .errors import CassetteError, CassetteMiss, OaicompatError
from .exchange import Exchange
from .latency import annotate_latency
from .outcomes import Outcome, decide
from .paths import CASSETTES, PROVIDERS_FILE
from .results import ResultsLog, make_record
from .scrub import Scrubber
from .session import RECORD_MODES, LiveMemo, ProbeSession, cassette_path

if TYPE_CHECKING:
    from .servers.for_run import RunServers

STASH = pytest.StashKey["OaicompatState"]()
OUTCOME_KEY = pytest.StashKey[dict]()


@dataclass(frozen=True)
class Target:
    provider: Provider
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider.name}-{self.model}"


@dataclass
class OaicompatState:
    pytest_config: pytest.Config
    env: dict[str, str]
    _providers: ProvidersConfig | None = None
    memo: LiveMemo = field(default_factory=LiveMemo)
    down: dict[str, str] = field(default_factory=dict)          # provider → why it is unavailable
    results: ResultsLog | None = None
    servers: RunServers | None = None    # started by --servers, stopped at unconfigure
    # timed-out exchanges already acted on, by id (held here, so an id is never reused while it is a key)
    restarted_after: dict[int, Exchange] = field(default_factory=dict)

    @property
    def record_mode(self) -> str:
        return self.pytest_config.getoption("oaicompat_record_mode")

    @property
    def live(self) -> bool:
        return bool(self.pytest_config.getoption("oaicompat_live")) or self.record_mode != "none"

    @property
    def mode_name(self) -> str:
        if self.pytest_config.getoption("oaicompat_live"):
            return "live"
        return "replay" if self.record_mode == "none" else f"record:{self.record_mode}"

    @property
    def cassette_root(self) -> Path:
        opt = self.pytest_config.getoption("oaicompat_cassette_dir")
        return Path(opt) if opt else CASSETTES

    @property
    def providers(self) -> ProvidersConfig:
        if self._providers is None:
            path = Path(self.pytest_config.getoption("oaicompat_providers_file") or PROVIDERS_FILE)
            try:
                self._providers = load_providers(path, self.env)
            except OaicompatError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._providers

    def scrubber(self) -> Scrubber:
        return Scrubber.from_env(self.providers.key_variables(), self.env)

    def targets(self) -> list[Target]:
        cfg = self.providers
        names: list[str] = self.pytest_config.getoption("oaicompat_provider") or []
        try:
            if names:
                chosen = cfg.select(names)
            else:  # the offline default: every provider that has recordings
                chosen = [p for p in cfg.providers.values() if (self.cassette_root / p.name).is_dir()]
            model_opt = self.pytest_config.getoption("oaicompat_model")
            return [Target(p, p.resolve_model(model_opt)) for p in chosen]
        except OaicompatError as exc:
            raise pytest.UsageError(str(exc)) from None

    def log(self) -> ResultsLog:
        if self.results is None:
            self.results = ResultsLog(mode=self.mode_name)
        return self.results


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oaicompat", "OpenAI-compatibility conformance")
    group.addoption("--provider", action="append", dest="oaicompat_provider", default=[],
                    help="provider(s) from providers.yaml: a name, a comma list, or 'all' (repeatable). "
                         "Default: every provider that has cassettes.")
    group.addoption("--model", dest="oaicompat_model", default=None,
                    help="model id or alias (default: each provider's default model)")
    group.addoption("--record-mode", dest="oaicompat_record_mode", default="none", choices=RECORD_MODES,
                    help="none (replay only, default), once, new_episodes, all, rewrite — as in pytest-recording")
    group.addoption("--live", dest="oaicompat_live", action="store_true",
                    help="send every request to the provider and write no cassette")
    group.addoption("--servers", dest="oaicompat_servers", action="store_true",
                    help="start the real local servers among the chosen providers (as `oaicompat servers up`, "
                         "installing into the cache if needed) for a live run, and stop the ones this run "
                         "started when it ends")
    group.addoption("--providers-file", dest="oaicompat_providers_file", default=None,
                    help="path of providers.yaml (default: the one in the project root)")
    group.addoption("--cassette-dir", dest="oaicompat_cassette_dir", default=None,
                    help="root of the cassettes (default: fixtures/cassettes)")
    group.addoption("--results", dest="oaicompat_results", default=None,
                    help="where to write results.json (default: results.json when conformance checks ran)")


def pytest_configure(config: pytest.Config) -> None:
    state = OaicompatState(config, runtime_environment())
    config.stash[STASH] = state
    if config.getoption("oaicompat_provider") or config.getoption("oaicompat_model"):
        state.targets()   # an unknown provider or model is one usage error, before collection
    if config.getoption("oaicompat_servers"):
        _start_servers(state)


def _start_servers(state: OaicompatState) -> None:
    from .servers.for_run import bring_up, server_names, servers_for

    if not state.live:
        raise pytest.UsageError("--servers starts servers for a live run: add --live or a --record-mode")
    names = servers_for(t.provider.name for t in state.targets())
    if not names:
        raise pytest.UsageError("--servers: none of the chosen providers is a local server oaicompat starts; "
                                f"name one with --provider ({', '.join(server_names())})")
    try:
        state.servers = bring_up(names)
    except OaicompatError as exc:
        raise pytest.UsageError(f"--servers: {exc}") from None
    state.env.update(state.servers.env)   # the URLs and key providers.yaml reads; never written to disk
    state._providers = None               # read providers.yaml again with the servers' URLs


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STASH, None)
    if state is not None and state.servers is not None:
        from .servers.for_run import take_down

        take_down(state.servers)
        state.servers = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        targets = metafunc.config.stash[STASH].targets()
        metafunc.parametrize("target", targets, ids=[t.id for t in targets], scope="function")


@pytest.fixture
def oaicompat_state(request: pytest.FixtureRequest) -> OaicompatState:
    return request.config.stash[STASH]


@pytest.fixture
def run_check(request: pytest.FixtureRequest, target: Target,
              oaicompat_state: OaicompatState) -> Callable[[Callable[..., Any]], Awaitable[Outcome]]:
    """`await run_check(check_function)`: send the check's probes, run it, and pass/xfail/fail/skip."""

    async def run(fn: Callable[..., Any]) -> Outcome:
        spec = spec_of(fn)
        outcome, exchanges = await _evaluate(request, target, oaicompat_state, spec)
        _record(request, target, oaicompat_state, spec, outcome, exchanges)
        _act(outcome)
        return outcome

    return run


def rerecord_command(request: pytest.FixtureRequest, target: Target) -> str:
    return (f"pytest {shlex.quote(request.node.nodeid)} --provider={target.provider.name} "
            f"--model={target.model} --record-mode=rewrite")


async def _evaluate(request: pytest.FixtureRequest, target: Target, state: OaicompatState,
                    spec: CheckSpec) -> tuple[Outcome, list[Exchange]]:
    provider, model = target.provider, target.model
    for need in spec.needs:
        if not provider.supports_feature(need):
            return Outcome("unsupported", f"unsupported (declared): {provider.name} does not support {need}"), []
    module = Path(str(request.node.fspath)).stem
    path = cassette_path(state.cassette_root, provider, model, module, request.node.originalname)
    if not state.live and not path.exists():
        return Outcome("not-recorded", f"not recorded: no cassette {path}; record it with: "
                                       f"{rerecord_command(request, target).replace('rewrite', 'once')}"), []
    api_key = None
    if state.live and not (state.record_mode in ("none", "once") and path.exists()
                           and not state.pytest_config.getoption("oaicompat_live")):
        missing = list(provider.missing_vars)
        api_key = provider.api_key(state.env)
        if provider.api_key_env and not api_key:
            missing.append(provider.api_key_env)
        if missing:
            return Outcome("not-configured", f"not configured: set {' and '.join(missing)}"), []
        if provider.name in state.down:
            return Outcome("unavailable", f"provider unavailable: {state.down[provider.name]}"), []
    session = ProbeSession(
        provider=provider, model=model, path=path, mode=state.record_mode,
        live_only=bool(state.pytest_config.getoption("oaicompat_live")), api_key=api_key,
        scrubber=state.scrubber(), memo=state.memo, test_id=request.node.nodeid,
        rerecord=rerecord_command(request, target),
    )
    exchanges: list[Exchange] = []
    try:
        session.prepare()
        ctx = ProbeContext(provider, model)
        async with session:
            for name in spec.probes:
                probe = PROBES[name]
                exchanges.append(await session.send(probe.build(ctx), fresh=probe.fresh))
    except (CassetteMiss, CassetteError) as exc:
        return Outcome("error", str(exc)), exchanges
    _restart_after_timeout(state, provider, api_key, exchanges)
    for ex in exchanges:
        if ex.source == "live" and ex.failure is not None and ex.failure.kind == "connect" and ex.status is None:
            state.down[provider.name] = f"cannot connect to {provider.base_url}: {ex.failure.message}"
            return Outcome("unavailable", f"provider unavailable: {state.down[provider.name]}"), exchanges
    try:
        observations = tuple(spec.run(*exchanges))
        finding: BaseException | None = None
    except Finding as found:
        observations, finding = (), found
    except Exception as exc:  # a harness bug, never a quirk
        observations, finding = (), exc
    return decide(spec, finding, provider, model, observations, scrubber=session.scrubber), exchanges


def _restart_after_timeout(state: OaicompatState, provider: Provider, api_key: str | None,
                           exchanges: list[Exchange]) -> None:
    """A live request that timed out may leave a local server computing for minutes (and deaf to SIGTERM):
    the servers whose spec says so are SIGKILLed by PID and restarted, once per timed-out request."""
    timed_out = [ex for ex in exchanges if ex.source == "live" and ex.failure is not None
                 and ex.failure.kind in ("timeout", "read-timeout") and id(ex) not in state.restarted_after]
    if not timed_out or not api_key:
        return
    state.restarted_after.update((id(ex), ex) for ex in timed_out)
    from .servers.for_run import restart_hung

    try:
        note = restart_hung(provider.name, api_key)
    except OaicompatError as exc:
        state.down[provider.name] = f"restart after a timeout failed: {exc}"
        note = f"{provider.name}: {state.down[provider.name]}"
    if note:
        reporter = state.pytest_config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"oaicompat: {note}")


def _record(request: pytest.FixtureRequest, target: Target, state: OaicompatState, spec: CheckSpec,
            outcome: Outcome, exchanges: list[Exchange]) -> None:
    state.log().note_provider(target.provider, target.model)
    record = make_record(test=request.node.nodeid, spec=spec, provider=target.provider, model=target.model,
                         outcome=outcome, exchanges=exchanges)
    state.log().records.append(record)
    request.node.stash[OUTCOME_KEY] = record


def _act(outcome: Outcome) -> None:
    text = outcome.message
    if outcome.lines:
        text += "\n" + "\n".join("    " + line for line in outcome.lines)
    if outcome.action == "xfail":
        pytest.xfail(text)
    elif outcome.action == "skip":
        pytest.skip(text)
    elif outcome.action == "fail":
        pytest.fail(f"{outcome.name}: {text}", pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STASH, None)
    if state is None:
        return
    target = session.config.getoption("oaicompat_results")
    if state.results is None and not target:
        return
    log = state.log()
    if state._providers is not None:
        for t in _safe_targets(state):
            log.note_provider(t.provider, t.model,
                              recorded=(state.cassette_root / t.provider.name).is_dir())
    annotate_latency(log.providers, log.records)
    log.write(Path(target or "results.json"), state.scrubber() if state._providers is not None else None)


def _safe_targets(state: OaicompatState) -> list[Target]:
    try:
        return state.targets()
    except pytest.UsageError:
        return []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STASH, None)
    if state is None or state.results is None:
        return
    by_provider: dict[str, dict[str, int]] = {}
    quirks: dict[str, set[str]] = {}
    for r in state.results.records:
        counts = by_provider.setdefault(r["provider"], {})
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        if r["quirks"] and r["outcome"] in ("expected-quirk", "unexpected-quirk"):
            quirks.setdefault(r["provider"], set()).update(r["quirks"])
    terminalreporter.section("oaicompat")
    for name, counts in sorted(by_provider.items()):
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_line(f"{name}: {summary}")
        if quirks.get(name):
            terminalreporter.write_line(f"    quirks: {', '.join(sorted(quirks[name]))}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    record = item.stash.get(OUTCOME_KEY, None)
    if record is None or call.when != "call":
        return
    try:
        from pytest_html import extras  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover
        return
    from html import escape
    lines = "\n".join(record.get("lines") or [e.get("body_head", "") for e in record["evidence"]][:1])
    html = (f"<p><b>{escape(record['check'])}</b> — rule {escape(record['rule'])} — outcome "
            f"{escape(record['outcome'])} {escape(' '.join(record['quirks']))}</p>"
            f"<pre>{escape(record['message'])}\n{escape(lines)}</pre>")
    report.extras = getattr(report, "extras", []) + [extras.html(html)]
