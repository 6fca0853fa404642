"""The pytest plugin (registered through the pytest11 entry point): options, parametrisation, fixtures.

User-facing surface:
    --provider NAME[,NAME…] | all      which providers (default: every provider that has cassettes)
    --model NAME                        a model id or alias (default: each provider's default model)
    --record-mode none|once|new_episodes|all|rewrite   (pytest-recording's meanings; default none = replay)
    --live                              talk to the providers, write no cassette
    --servers                           start the real local servers the run needs; stop them at the end
    --allow-empty                       exit 0 even when every check of a provider was skipped
    --budget N | $X                     a live run sends no probe that would take it over N tokens (or X money)
    --dry-run                           collect only, and print the tokens a live run would send per provider
    --providers-file, --cassette-dir, --results

    async def test_object(run_check):
        await run_check(chat.object_is_chat_completion)
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import checks as _checks  # noqa: F401  (registers every check and probe)
from .budget import Budget, BudgetError, BudgetExhausted, Estimate, Meter, Pricing, estimate
from .checks import sdk as _sdk_checks
from .checks.base import PROBES, CheckSpec, ProbeContext, spec_of
from .config import ProvidersConfig, load_providers, runtime_environment
from .errors import OaicompatError
from .exchange import Exchange
from .outcomes import Outcome
from .paths import CASSETTES, PROVIDERS_FILE
from .results import ResultsLog, make_record
from .run_mode import RECORD_MODES, RunMode
from .run_summary import empty_providers, estimate_summary, html_extra, terminal_summary, write_results
from .runner import Evaluation, Target, evaluate, unsupported
from .scrub import Scrubber
from .sdk import warm_openai
from .servers import pytest_hooks as servers
from .session import LiveMemo, ProbeSession, cassette_path, credentials

if TYPE_CHECKING:
    from .servers.for_run import RunServers
    from .servers.pytest_hooks import HungServerWatch

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
    watch: HungServerWatch | None = None
    loaded: ProvidersConfig | None = None
    config_error: str | None = None      # why providers.yaml (or --provider/--model) cannot be used
    budget: Budget | None = None
    meter: Meter | None = None           # live runs: the tokens replies report, and --budget
    record_commands: dict[str, str] = field(default_factory=dict)   # provider → the command that records it
    empty: list[str] = field(default_factory=list)                   # providers for which nothing ran
    estimates: dict[str, list[tuple[str, Estimate]]] | None = None   # --dry-run: provider → (probe, estimate)

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
        budget = config.getoption("oaicompat_budget")
        if budget:
            try:
                state.budget = Budget.parse(budget)
            except BudgetError as exc:
                raise pytest.UsageError(str(exc)) from None
            if not state.mode.live:
                raise pytest.UsageError("--budget limits what a live run sends: add --live or a --record-mode")
        return state

    def start_meter(self) -> None:
        """A live run counts tokens (and keeps to --budget); a money budget needs every hosted provider's
        pricing in providers.yaml, in the budget's currency."""
        targets = self.targets()
        pricing = {t.provider.name: price for t in targets
                   if (price := Pricing.from_mapping(t.provider.pricing)) is not None}
        if self.budget is not None and self.budget.money:
            for t in targets:
                price = pricing.get(t.provider.name)
                if t.provider.kind == "local":
                    continue
                if price is None or price.currency != self.budget.currency:
                    raise pytest.UsageError(
                        f"{self.providers_file}: provider {t.provider.name!r}: --budget in "
                        f"{self.budget.currency} needs pricing (input_per_mtok, output_per_mtok, currency "
                        f"{self.budget.currency}); add it, or give --budget in tokens")
        self.meter = Meter(self.budget, pricing, announce=self.say)

    @property
    def providers(self) -> ProvidersConfig:
        if self.config_error is not None:
            raise pytest.UsageError(self.config_error)
        if self.loaded is None:
            try:
                self.loaded = load_providers(self.providers_file, self.env)
            except OaicompatError as exc:
                self.config_error = str(exc)
                raise pytest.UsageError(self.config_error) from None
        return self.loaded

    @property
    def explicit(self) -> bool:
        """The command line names the providers file, a provider, a model or a live run: a conformance run
        whose configuration is read (and refused, as one usage error) before collection."""
        opt = self.pytest_config.getoption
        return bool(self.provider_names or self.model or opt("oaicompat_providers_file") or self.mode.live
                    or opt("oaicompat_servers"))

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
            self.config_error = str(exc)
            raise pytest.UsageError(self.config_error) from None

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
    group.addoption("--allow-empty", dest="oaicompat_allow_empty", action="store_true",
                    help="exit 0 even when every check of a chosen provider was skipped (not recorded, not "
                         "configured, unsupported, over --budget); by default such a run exits 1")
    group.addoption("--budget", dest="oaicompat_budget", default=None, metavar="N|$X",
                    help="live runs: send no probe that would take the run's tokens over N (50000, 50k) or its "
                         "cost over X ($2, 2EUR; needs pricing in providers.yaml); such checks are skipped as "
                         "'budget exhausted'")
    group.addoption("--dry-run", dest="oaicompat_dry_run", action="store_true",
                    help="collect only (as --collect-only) and print, per provider, the tokens a live run "
                         "would send")
    group.addoption("--providers-file", dest="oaicompat_providers_file", default=None,
                    help="path of providers.yaml (default: the one in the project root)")
    group.addoption("--cassette-dir", dest="oaicompat_cassette_dir", default=None,
                    help="root of the cassettes (default: fixtures/cassettes)")
    group.addoption("--results", dest="oaicompat_results", default=None,
                    help="where to write results.json (default: results.json when conformance checks ran)")


def pytest_configure(config: pytest.Config) -> None:
    state = OaicompatState.from_config(config)
    config.stash[STASH] = state
    if state.explicit:
        state.targets()   # a bad providers file, provider or model is one usage error, before collection
    if config.getoption("oaicompat_dry_run"):
        config.option.collectonly = True
    if state.mode.live:
        state.start_meter()     # before --servers starts anything: a money budget may refuse the run
    if config.getoption("oaicompat_servers"):
        state.servers = servers.start(state.mode.live, (t.provider.name for t in state.targets()))
        state.use_environment(state.servers.env)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STASH, None)
    if state is not None:
        servers.stop(state.servers)
        state.servers = None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise by target. providers.yaml is read at the first module that needs it; a problem with it is
    kept and raised once after collection (pytest_collection_modifyitems), not once per module."""
    if "target" in metafunc.fixturenames:
        try:
            targets = metafunc.config.stash[STASH].targets()
        except pytest.UsageError:
            targets = []
        metafunc.parametrize("target", targets, ids=[t.id for t in targets], scope="function")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STASH, None)
    if state is not None and state.config_error is not None:
        raise pytest.UsageError(state.config_error)


def pytest_collection_finish(session: pytest.Session) -> None:
    """With --collect-only on a live run, estimate what it would send. Otherwise, when a selected test runs an
    openai-python check, import openai now (seconds, once), as part of the session's start, not inside the
    first SDK check's timing."""
    state = session.config.stash.get(STASH, None)
    if session.config.option.collectonly:
        if state is not None and state.mode.live:
            state.estimates = estimate_items(state, session.items)
        return
    if any(getattr(getattr(item, "module", None), "sdk", None) is _sdk_checks
           for item in session.items):
        warm_openai()


def checks_called(item: pytest.Item) -> list[CheckSpec]:
    """The checks a suite test passes to run_check, read from the names its code uses (`module.check`)."""
    fn = getattr(item, "function", None)
    module = getattr(item, "module", None)
    if fn is None or module is None:
        return []
    names = fn.__code__.co_names
    found: list[CheckSpec] = []
    for name in names:
        obj = getattr(module, name, None)
        for candidate in [obj, *(getattr(obj, attr, None) for attr in names)]:
            spec = getattr(candidate, "spec", None)
            if isinstance(spec, CheckSpec) and spec not in found:
                found.append(spec)
    return found


def estimate_items(state: OaicompatState, items: Sequence[pytest.Item]) -> dict[str, list[tuple[str, Estimate]]]:
    """Per provider, the distinct probes the collected tests would send live (a fresh probe once per test,
    as the run's memo sends them) and their estimated tokens."""
    out: dict[str, dict[str, tuple[str, Estimate]]] = {}
    for item in items:
        target = getattr(item, "callspec", None) and item.callspec.params.get("target")  # type: ignore[attr-defined]
        if not isinstance(target, Target):
            continue
        provider = target.provider
        path = cassette_path(state.cassette_root, provider, target.model, Path(str(item.fspath)).stem,
                             getattr(item, "originalname", item.name))
        if not state.mode.needs_credentials(cassette_exists=path.exists()):
            continue
        sent = out.setdefault(provider.name, {})
        for spec in checks_called(item):
            if unsupported(spec, target) is not None:
                continue
            for name in spec.probes:
                probe = PROBES[name]
                key = f"{name} {item.nodeid}" if probe.fresh else name
                if key not in sent:
                    sent[key] = (name, estimate(probe.build(ProbeContext(provider, target.model))))
    return {name: list(probes.values()) for name, probes in out.items()}


@pytest.fixture
def oaicompat_state(request: pytest.FixtureRequest) -> OaicompatState:
    return request.config.stash[STASH]


@pytest.fixture
def run_check(request: pytest.FixtureRequest, target: Target,
              oaicompat_state: OaicompatState) -> Callable[[Callable[..., Any]], Awaitable[Outcome]]:
    """`await run_check(check_function)`: send the check's probes, run it, and pass/xfail/fail/skip."""

    async def run(fn: Callable[..., Any]) -> Outcome:
        session = probe_session(request, target, oaicompat_state)
        try:
            evaluation = await evaluate(spec_of(fn), target, session, down=oaicompat_state.down,
                                        after_send=_after_send(oaicompat_state, session))
        except BudgetExhausted as exc:      # counted by the meter; the summary names it per provider
            pytest.skip(str(exc))
        _record(request, oaicompat_state, evaluation)
        outcome = evaluation.outcome
        del evaluation, session     # the skip/xfail/fail raised next keeps this frame: not the exchanges with it
        _act(outcome)
        return outcome

    return run


def rerecord_command(request: pytest.FixtureRequest, target: Target, record_mode: str = "rewrite") -> str:
    return (f"pytest {shlex.quote(request.node.nodeid)} --provider={target.provider.name} "
            f"--model={target.model} --record-mode={record_mode}")


def record_provider_command(request: pytest.FixtureRequest, target: Target) -> str:
    """The one command that records every missing cassette of the provider (the suite's folder, not one test)."""
    folder = Path(str(request.node.fspath)).parent
    try:
        shown = folder.relative_to(request.config.invocation_params.dir).as_posix() or "."
    except ValueError:
        shown = str(folder)
    model = "" if target.model == target.provider.model else f" --model={shlex.quote(target.model)}"
    return f"pytest {shlex.quote(shown)} --provider={target.provider.name}{model} --record-mode=once"


def probe_session(request: pytest.FixtureRequest, target: Target, state: OaicompatState) -> ProbeSession:
    """The test's session: its cassette path, the run mode, and the provider's credentials when it may send."""
    provider, model = target.provider, target.model
    module = Path(str(request.node.fspath)).stem
    path = cassette_path(state.cassette_root, provider, model, module, request.node.originalname)
    api_key: str | None = None
    missing: tuple[str, ...] = ()
    if state.mode.needs_credentials(cassette_exists=path.exists()):
        api_key, missing = credentials(provider, state.env)
    record_hint = state.record_commands.setdefault(provider.name, record_provider_command(request, target))
    return ProbeSession(
        provider=provider, model=model, path=path, mode=state.mode, api_key=api_key, missing=missing,
        scrubber=state.scrubber(), memo=state.memo, test_id=request.node.nodeid,
        rerecord=rerecord_command(request, target), record_hint=record_hint, meter=state.meter,
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
    # pytest renders a traceback for every pytest.xfail (finding and parsing each frame's source, scanning
    # sys.modules): this frame adds nothing to it
    __tracebackhide__ = True  # noqa: F841
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
    if state is None or state.config_error is not None:
        return
    chosen = _safe_targets(state) if state.loaded is not None else []
    refused = state.meter.refused if state.meter is not None else {}
    records = state.results.records if state.results is not None else []
    state.empty = empty_providers(records, [t.provider.name for t in chosen], refused)
    if state.empty and not session.config.getoption("oaicompat_allow_empty") and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    target = session.config.getoption("oaicompat_results")
    if state.results is None and not target:
        return
    write_results(state.log(), Path(target or "results.json"), chosen, state.cassette_root,
                  state.scrubber() if state.loaded is not None else None)


def _safe_targets(state: OaicompatState) -> list[Target]:
    try:
        return state.targets()
    except pytest.UsageError:
        return []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STASH, None)
    if state is None:
        return
    if state.estimates is not None:
        estimate_summary(terminalreporter, state.estimates, state.budget)
    elif config.getoption("oaicompat_dry_run"):
        terminalreporter.write_line("oaicompat: --dry-run: a replay sends nothing; add --live or a --record-mode "
                                    "to see what a live run would send")
    if state.results is not None or (state.meter is not None and state.meter.refused):
        terminal_summary(terminalreporter, state.results.records if state.results is not None else [],
                         record_commands=state.record_commands, meter=state.meter, empty=state.empty,
                         allow_empty=bool(config.getoption("oaicompat_allow_empty")))


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
