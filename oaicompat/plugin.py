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
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

import pytest

from . import checks as _checks  # noqa: F401  (registers every check and probe)
from .checks.base import spec_of
from .config import ProvidersConfig, load_providers, runtime_environment
from .errors import OaicompatError
from .exchange import Exchange
from .outcomes import Outcome
from .paths import CASSETTES, PROVIDERS_FILE
from .results import ResultsLog, make_record
from .run_mode import RECORD_MODES, RunMode
from .run_summary import html_extra, terminal_summary, write_results
from .runner import Evaluation, Target, evaluate
from .scrub import Scrubber
from .servers import pytest_hooks as servers
from .session import LiveMemo, ProbeSession, cassette_path, credentials

if TYPE_CHECKING:
    from .servers.for_run import RunServers

STASH = pytest.StashKey["OaicompatState"]()
OUTCOME_KEY = pytest.StashKey[dict]()

__all__ = ["OaicompatState", "Target", "rerecord_command"]


@dataclass
class OaicompatState:
    """What one pytest session holds: its options (read once at configure), the providers, the run's memo of
    live exchanges and unreachable providers, and the results log."""

    pytest_config: pytest.Config
    env: dict[str, str]
    mode: RunMode
    cassette_root: Path
    providers_file: Path
    provider_names: list[str]
    model: str | None
    memo: LiveMemo = field(default_factory=LiveMemo)
    down: dict[str, str] = field(default_factory=dict)          # provider → why it is unavailable
    results: ResultsLog | None = None
    servers: RunServers | None = None    # started by --servers, stopped at unconfigure
    watch: servers.HungServerWatch | None = None
    loaded: ProvidersConfig | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> OaicompatState:
        cassette_dir = config.getoption("oaicompat_cassette_dir")
        state = cls(
            pytest_config=config, env=runtime_environment(),
            mode=RunMode.parse(config.getoption("oaicompat_record_mode"),
                               live=bool(config.getoption("oaicompat_live"))),
            cassette_root=Path(cassette_dir) if cassette_dir else CASSETTES,
            providers_file=Path(config.getoption("oaicompat_providers_file") or PROVIDERS_FILE),
            provider_names=list(config.getoption("oaicompat_provider") or []),
            model=config.getoption("oaicompat_model"),
        )
        state.watch = servers.HungServerWatch(state.down, state.say)
        return state

    @property
    def providers(self) -> ProvidersConfig:
        if self.loaded is None:
            try:
                self.loaded = load_providers(self.providers_file, self.env)
            except OaicompatError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self.loaded

    def use_environment(self, env: dict[str, str]) -> None:
        """Add variables (the started servers' URLs and key; never written to disk) and read providers.yaml
        again with them."""
        self.env.update(env)
        self.loaded = None

    def scrubber(self) -> Scrubber:
        return Scrubber.from_env(self.providers.key_variables(), self.env)

    def targets(self) -> list[Target]:
        cfg = self.providers
        try:
            if self.provider_names:
                chosen = cfg.select(self.provider_names)
            else:  # the offline default: every provider that has recordings
                chosen = [p for p in cfg.providers.values() if (self.cassette_root / p.name).is_dir()]
            return [Target(p, p.resolve_model(self.model)) for p in chosen]
        except OaicompatError as exc:
            raise pytest.UsageError(str(exc)) from None

    def log(self) -> ResultsLog:
        if self.results is None:
            self.results = ResultsLog(mode=self.mode.name)
        return self.results

    def say(self, line: str) -> None:
        reporter = self.pytest_config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)


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
    state = OaicompatState.from_config(config)
    config.stash[STASH] = state
    if state.provider_names or state.model:
        state.targets()   # an unknown provider or model is one usage error, before collection
    if config.getoption("oaicompat_servers"):
        state.servers = servers.start(state.mode.live, (t.provider.name for t in state.targets()))
        state.use_environment(state.servers.env)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STASH, None)
    if state is not None:
        servers.stop(state.servers)
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
        session = probe_session(request, target, oaicompat_state)
        evaluation = await evaluate(spec_of(fn), target, session, down=oaicompat_state.down,
                                    after_send=_after_send(oaicompat_state, session))
        _record(request, oaicompat_state, evaluation)
        _act(evaluation.outcome)
        return evaluation.outcome

    return run


def rerecord_command(request: pytest.FixtureRequest, target: Target, record_mode: str = "rewrite") -> str:
    return (f"pytest {shlex.quote(request.node.nodeid)} --provider={target.provider.name} "
            f"--model={target.model} --record-mode={record_mode}")


def probe_session(request: pytest.FixtureRequest, target: Target, state: OaicompatState) -> ProbeSession:
    """The test's session: its cassette path, the run mode, and the provider's credentials when it may send."""
    provider, model = target.provider, target.model
    module = Path(str(request.node.fspath)).stem
    path = cassette_path(state.cassette_root, provider, model, module, request.node.originalname)
    api_key, missing = None, ()
    if state.mode.needs_credentials(cassette_exists=path.exists()):
        api_key, missing = credentials(provider, state.env)
    return ProbeSession(
        provider=provider, model=model, path=path, mode=state.mode, api_key=api_key, missing=missing,
        scrubber=state.scrubber(), memo=state.memo, test_id=request.node.nodeid,
        rerecord=rerecord_command(request, target), record_hint=rerecord_command(request, target, "once"),
    )


def _after_send(state: OaicompatState, session: ProbeSession) -> Callable[[Target, Sequence[Exchange]], None]:
    def after(target: Target, exchanges: Sequence[Exchange]) -> None:
        if state.watch is not None:
            state.watch.after_send(target.provider.name, session.api_key, exchanges)
    return after


def _record(request: pytest.FixtureRequest, state: OaicompatState, evaluation: Evaluation) -> None:
    target = evaluation.target
    state.log().note_provider(target.provider, target.model)
    record = make_record(test=request.node.nodeid, spec=evaluation.spec, provider=target.provider,
                         model=target.model, outcome=evaluation.outcome, exchanges=list(evaluation.exchanges))
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
    chosen = _safe_targets(state) if state.loaded is not None else []
    write_results(state.log(), Path(target or "results.json"), chosen, state.cassette_root)


def _safe_targets(state: OaicompatState) -> list[Target]:
    try:
        return state.targets()
    except pytest.UsageError:
        return []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STASH, None)
    if state is not None and state.results is not None:
        terminal_summary(terminalreporter, state.results.records)


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
    report.extras = getattr(report, "extras", []) + [extras.html(html_extra(record))]
