"""Tests of oaicompat.servers: ports, run state, keys, start/wait/stop with harmless fake servers.

Tests marked ``servers`` talk to the real built servers (``oaicompat servers up``) and run only
with ``OAICOMPAT_SERVERS=1`` and ``OAICOMPAT_LOCAL_KEY`` exported.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from oaicompat.servers import cli, manager, paths, specs
from oaicompat.servers.errors import InstallError, KeyRequiredError, ServerError, ServerStartError, run_logged
from oaicompat.servers.manager import RunningServer

KEY = "sk-local-" + "ab" * 16

FAKE_SERVER = textwrap.dedent(
    """
    import http.server, os, sys
    KEY = os.environ.get("FAKE_KEY", "")
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.headers.get("Authorization") == "Bearer " + KEY
            body = b'{"object":"list","data":[{"id":"gemma"}]}' if ok else b'{"error":"bad key"}'
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            sys.stderr.write("request %s\\n" % self.path)
    print("fake server listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """
)


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(paths.CACHE_ENV, str(root))
    monkeypatch.delenv(specs.KEY_ENV, raising=False)
    return root


class FakeSpec(specs.ServerSpec):
    """A stand-in server: a tiny http.server that wants the key from FAKE_KEY."""

    version = "0.0-test"
    ready_timeout = 20.0

    def __init__(
        self, name: str, script: Path, env_var: str = "FAKE_URL", requires: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.script = script
        self.env_var = env_var
        self.requires = requires

    def installed(self) -> bool:
        return True

    def install(self, log: Path) -> None:
        raise AssertionError("nothing to install")

    def argv(self, port: int, key: str) -> list[str]:
        return [sys.executable, str(self.script), str(port)]

    def env(self, key: str) -> dict[str, str]:
        return {"FAKE_KEY": key}


@pytest.fixture
def fake_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, specs.ServerSpec]:
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    table: dict[str, specs.ServerSpec] = {
        "fake-a": FakeSpec("fake-a", script, "FAKE_A_URL"),
        "fake-b": FakeSpec("fake-b", script, "FAKE_B_URL", requires=("fake-a",)),
    }
    monkeypatch.setattr(specs, "SPECS", table)
    monkeypatch.setattr(manager, "SPECS", table)
    monkeypatch.setattr(cli, "SPECS", table)
    monkeypatch.setattr(specs, "get_spec", table.__getitem__)
    monkeypatch.setattr(manager, "get_spec", table.__getitem__)
    return table


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "120"], start_new_session=True)


def _record(proc: subprocess.Popen[bytes], name: str, log: Path) -> RunningServer:
    return RunningServer(
        name=name,
        pid=proc.pid,
        pgid=proc.pid,
        port=1,
        base_url="http://127.0.0.1:1/v1",
        log=str(log),
        version="0",
        started_at="now",
        cmd=["sleep", "120"],
        proc_start=manager.process_start_time(proc.pid),
    )


def _dead(proc: subprocess.Popen[bytes], timeout: float = 10) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


# --------------------------------------------------------------------------- ports


def test_pick_port_returns_a_bindable_loopback_port() -> None:
    port = manager.pick_port()
    assert 0 < port < 65536
    assert manager.port_is_free(port)


def test_pick_port_keeps_a_free_preferred_port_and_avoids_a_busy_one() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert not manager.port_is_free(taken)
        other = manager.pick_port(taken)
        assert other != taken
    free = manager.pick_port()
    assert manager.pick_port(free) == free


# --------------------------------------------------------------------------- state and env file


def test_state_round_trip_and_env_file(cache: Path) -> None:
    server = RunningServer(
        name="vllm",
        pid=123,
        pgid=123,
        port=4567,
        base_url="http://127.0.0.1:4567/v1",
        log="/x/vllm.log",
        version="0.32.0",
        started_at="t",
        cmd=["python", "-m", "vllm"],
        proc_start=9,
        ready_seconds=1.5,
    )
    other = RunningServer(
        name="llama-server",
        pid=7,
        pgid=7,
        port=8081,
        base_url="http://127.0.0.1:8081/v1",
        log="/x/l.log",
        version="0.3.36",
        started_at="t",
        cmd=["llama-server"],
    )
    manager.save_state({"vllm": server, "llama-server": other})
    assert manager.load_state() == {"vllm": server, "llama-server": other}
    raw = json.loads(paths.state_file().read_text())
    assert set(raw["vllm"]) >= {"pid", "pgid", "port", "base_url", "log", "version", "started_at", "cmd"}
    env = paths.env_file().read_text().splitlines()
    assert sorted(env) == ["LLAMA_SERVER_URL=http://127.0.0.1:8081/v1", "VLLM_URL=http://127.0.0.1:4567/v1"]


def test_env_var_names_are_the_agreed_ones() -> None:
    assert {s.name: s.env_var for s in specs.SPECS.values()} == {
        "llama-server": "LLAMA_SERVER_URL",
        "llama-cpp-python": "LLAMA_CPP_PYTHON_URL",
        "vllm": "VLLM_URL",
        "litellm": "LITELLM_URL",
        "transformers-serve": "TRANSFORMERS_SERVE_URL",
        "llama-server-qwen": "LLAMA_SERVER_QWEN_URL",
        "portkey": "PORTKEY_URL",
        "vllm-qwen": "VLLM_QWEN_URL",
        "llama-cpp-python-qwen": "LLAMA_CPP_PYTHON_QWEN_URL",
        "llama-server-qwen-think": "LLAMA_SERVER_QWEN_THINK_URL",
        "vllm-qwen-think": "VLLM_QWEN_THINK_URL",
        "litellm-qwen": "LITELLM_QWEN_URL",
        "portkey-think": "PORTKEY_THINK_URL",
        "transformers-serve-qwen": "TRANSFORMERS_SERVE_QWEN_URL",
        "transformers-serve-vision": "TRANSFORMERS_SERVE_VISION_URL",
        "vllm-vision": "VLLM_VISION_URL",
        "llama-server-vision": "LLAMA_SERVER_VISION_URL",
    }


@pytest.mark.parametrize("name", list(specs.SPECS))
def test_each_server_has_a_provider_that_reads_its_url_and_names_its_model(name: str) -> None:
    """providers.yaml has a provider of the same name whose base_url reads the variable `servers up` exports
    and whose model is the id the server answers to."""
    from oaicompat.config import load_providers

    spec = specs.SPECS[name]
    url = "http://127.0.0.1:40999/v1"
    env = {s.env_var: "http://127.0.0.1:40111/v1" for s in specs.SPECS.values()} | {spec.env_var: url}
    provider = load_providers(Path(__file__).parents[1] / "providers.yaml", env).get(name)
    assert provider.base_url == url
    assert provider.model == spec.model_id


def test_missing_state_file_means_nothing_runs() -> None:
    assert manager.load_state() == {}
    assert manager.status() == {}


def test_stale_entries_are_dropped(cache: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    server = _record(proc, "llama-server", cache / "x.log")
    proc.wait()
    manager.save_state({"llama-server": server})
    assert manager.status() == {}
    assert manager.load_state() == {}
    assert paths.env_file().read_text() == ""


# --------------------------------------------------------------------------- keys and argv


@pytest.mark.parametrize("name", list(specs.SPECS))
def test_argv_never_carries_the_key(name: str) -> None:
    spec = specs.SPECS[name]
    argv = spec.argv(5555, KEY)
    assert not any(KEY in arg for arg in argv)
    assert "5555" in argv or "--port=5555" in argv  # portkey reads only the --port=N form
    assert specs.LOOPBACK in argv or f"--host={specs.LOOPBACK}" in argv
    assert (KEY in spec.env(KEY).values()) == spec.reads_key   # the key only ever travels in the environment


def test_litellm_config_reads_the_key_from_the_environment(cache: Path) -> None:
    spec = specs.SPECS["litellm"]
    run = cache / "run"
    spec.prepare(specs.LaunchContext(run, {"llama-server": "http://127.0.0.1:9999/v1"}))
    text = (run / "litellm-config.yaml").read_text()
    assert "model_name: gemma" in text
    assert '"http://127.0.0.1:9999/v1"' in text
    assert '"os.environ/OAICOMPAT_LOCAL_KEY"' in text
    assert spec.env(KEY)["LITELLM_MASTER_KEY"] == KEY


def test_resolve_key_prefers_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(specs.KEY_ENV, KEY)
    assert manager.resolve_key({"vllm": object()}) == KEY  # type: ignore[dict-item]


def test_resolve_key_generates_one_when_nothing_runs() -> None:
    key = manager.resolve_key({})
    assert key.startswith("sk-local-") and len(key) == len("sk-local-") + 32
    assert manager.resolve_key({}) != key


def test_resolve_key_refuses_when_servers_run_without_it() -> None:
    with pytest.raises(KeyRequiredError, match="export OAICOMPAT_LOCAL_KEY"):
        manager.resolve_key({"vllm": object()})  # type: ignore[dict-item]


def test_dependencies_come_first() -> None:
    assert [s.name for s in manager.resolve_names(["litellm"])] == ["llama-server", "litellm"]
    assert [s.name for s in manager.resolve_names(None)] == list(specs.SPECS)


# --------------------------------------------------------------------------- down signals only what is recorded


def test_down_signals_only_recorded_process_groups(cache: Path) -> None:
    recorded, bystander = _sleeper(), _sleeper()
    try:
        manager.save_state({"llama-server": _record(recorded, "llama-server", cache / "a.log")})
        assert manager.down(None) == ["llama-server"]
        assert _dead(recorded)
        assert recorded.returncode == -signal.SIGTERM
        assert bystander.poll() is None
        assert manager.load_state() == {}
    finally:
        for proc in (recorded, bystander):
            proc.kill()
            proc.wait()


def test_down_by_name_leaves_the_others(cache: Path) -> None:
    a, b = _sleeper(), _sleeper()
    try:
        manager.save_state(
            {"vllm": _record(a, "vllm", cache / "a.log"), "litellm": _record(b, "litellm", cache / "b.log")}
        )
        assert manager.down(["vllm"]) == ["vllm"]
        assert _dead(a)
        assert b.poll() is None
        assert list(manager.load_state()) == ["litellm"]
    finally:
        for proc in (a, b):
            proc.kill()
            proc.wait()


def test_down_does_not_signal_a_reused_pid(cache: Path) -> None:
    proc = _sleeper()
    try:
        entry = _record(proc, "vllm", cache / "a.log")
        entry.proc_start -= 1  # as if the recorded process had died and its PID been reused
        manager.save_state({"vllm": entry})
        manager.down(None)
        assert proc.poll() is None
        assert manager.load_state() == {}
    finally:
        proc.kill()
        proc.wait()


def test_stop_escalates_to_sigkill(cache: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('x', flush=True); time.sleep(60)",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline()
    manager.stop(_record(proc, "x", cache / "x.log"), grace=0.5)
    assert _dead(proc)
    assert proc.returncode == -signal.SIGKILL


# --------------------------------------------------------------------------- readiness errors name the log


def test_early_exit_error_names_the_log_and_its_last_lines(
    fake_specs: dict[str, specs.ServerSpec], tmp_path: Path
) -> None:
    script = tmp_path / "crash.py"
    script.write_text("import sys; print('model file is corrupt', flush=True); sys.exit(3)\n")
    spec = fake_specs["fake-a"]
    assert isinstance(spec, FakeSpec)
    spec.script = script
    server, proc = manager.start(spec, KEY)
    with pytest.raises(ServerStartError) as err:
        manager.wait_ready(server, spec.readiness_url(server.port), KEY, 10, proc)
    assert server.log in str(err.value)
    assert "exit 3" in str(err.value)
    assert "model file is corrupt" in str(err.value)


def test_readiness_timeout_names_the_log_and_stops_the_server(
    fake_specs: dict[str, specs.ServerSpec], tmp_path: Path
) -> None:
    script = tmp_path / "mute.py"
    script.write_text("import time; print('loading weights', flush=True); time.sleep(60)\n")
    spec = fake_specs["fake-a"]
    assert isinstance(spec, FakeSpec)
    spec.script = script
    server, proc = manager.start(spec, KEY)
    with pytest.raises(ServerStartError) as err:
        manager.wait_ready(server, spec.readiness_url(server.port), KEY, 1.5, proc)
    # the timeout path, not the 60 s sleep ending (that would say the process exited): behaviour, not wall-clock
    assert "not ready within 2 s" in str(err.value) or "not ready within 1 s" in str(err.value)
    assert server.log in str(err.value)
    assert "loading weights" in str(err.value)
    assert _dead(proc)


def test_run_logged_failure_names_the_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    with pytest.raises(InstallError) as err:
        run_logged(
            [sys.executable, "-c", "print('cc1plus: out of memory'); raise SystemExit(2)"],
            log,
            what="building x",
        )
    assert str(log) in str(err.value) and "out of memory" in str(err.value) and "exit 2" in str(err.value)


# --------------------------------------------------------------------------- up / down with fake servers


def test_up_starts_waits_records_and_down_stops(fake_specs: dict[str, specs.ServerSpec], cache: Path) -> None:
    state = manager.up(["fake-b"], key=KEY, do_install=False)  # fake-b requires fake-a
    try:
        assert set(state) == {"fake-a", "fake-b"}
        for server in state.values():
            request = urllib.request.Request(
                server.base_url + "/models", headers={"Authorization": f"Bearer {KEY}"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
            assert server.ready_seconds is not None
            assert manager.is_alive(server)
        # Nothing on disk holds the key.
        for path in (paths.state_file(), paths.env_file(), *[Path(s.log) for s in state.values()]):
            assert KEY not in path.read_text(), path
        env = paths.env_file().read_text().splitlines()
        assert sorted(line.split("=", 1)[0] for line in env) == ["FAKE_A_URL", "FAKE_B_URL"]
        # A second up reuses the running ones.
        again = manager.up(["fake-a"], key=KEY, do_install=False)
        assert again["fake-a"].pid == state["fake-a"].pid
        # A wrong key is refused while they run.
        with pytest.raises(KeyRequiredError, match="does not match"):
            manager.up(["fake-a"], key="sk-local-wrong", do_install=False)
    finally:
        stopped = manager.down(None)
    assert stopped == ["fake-b", "fake-a"]
    assert manager.status() == {}
    for server in state.values():
        assert not manager.is_alive(server)


def test_cli_up_prints_exports_on_stdout_only(
    fake_specs: dict[str, specs.ServerSpec],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(manager, "install", lambda names=None: {})
    try:
        assert cli.main(["up", "fake-a"]) == 0
        out, err = capsys.readouterr()
        lines = out.strip().splitlines()
        assert lines[0].startswith(f"export {specs.KEY_ENV}=sk-local-")
        key = lines[0].split("=", 1)[1]
        assert lines[1].startswith("export FAKE_A_URL=http://127.0.0.1:")
        assert "ready" in err and key not in err
        # Without the key in the environment a second `up` refuses.
        assert cli.main(["up", "fake-a"]) == 1
        assert "export OAICOMPAT_LOCAL_KEY" in capsys.readouterr().err
        assert cli.main(["env"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("export FAKE_A_URL=") and key not in out
        assert cli.main(["status"]) == 0
        assert "fake-a" in capsys.readouterr().out
    finally:
        assert cli.main(["down"]) == 0
    assert manager.status() == {}


# --------------------------------------------------------------------------- the real servers

real = pytest.mark.skipif(
    os.environ.get("OAICOMPAT_SERVERS") != "1", reason="set OAICOMPAT_SERVERS=1 with servers up"
)


@pytest.fixture
def real_state(cache: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, RunningServer]:
    monkeypatch.undo()  # the real cache and the real key
    key = os.environ.get(specs.KEY_ENV)
    if not key:
        pytest.skip(f"export {specs.KEY_ENV} (printed by `oaicompat servers up`)")
    return manager.status()


@pytest.mark.servers
@real
@pytest.mark.parametrize("name", list(specs.SPECS))
def test_real_server_answers_a_chat_completion_and_keeps_the_key_out_of_its_log(
    name: str, real_state: dict[str, RunningServer]
) -> None:
    if name not in real_state:
        pytest.skip(f"{name} is not running")
    key = os.environ[specs.KEY_ENV]
    server = real_state[name]
    body = json.dumps(
        {"model": specs.SPECS[name].model_id, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
    ).encode()
    request = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=body,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            **specs.SPECS[name].request_headers({n: s.base_url for n, s in real_state.items()}),
        },
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        reply = json.loads(response.read())
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert key not in Path(server.log).read_text(errors="replace")
    assert key not in " ".join(server.cmd)
    if specs.SPECS[name].reads_key:
        assert manager.probe(server.base_url + "/models", "sk-local-wrong") != 200


# --------------------------------------------------------------------------- pytest --servers (for_run)

from oaicompat.servers import for_run  # noqa: E402


def use_specs(monkeypatch: pytest.MonkeyPatch, table: dict[str, specs.ServerSpec]) -> dict[str, specs.ServerSpec]:
    """Make ``table`` the known servers (nothing to install) for one test."""
    for module in (specs, manager):
        monkeypatch.setattr(module, "SPECS", table)
        monkeypatch.setattr(module, "get_spec", table.__getitem__)
    monkeypatch.setattr(manager, "install", lambda names=None: {})
    return table


def test_servers_for_keeps_the_local_servers_in_order() -> None:
    assert for_run.servers_for(["openai", "vllm", "litellm", "qwen"]) == ["vllm", "litellm"]


def test_bring_up_returns_the_env_and_take_down_stops_only_what_it_started(
    fake_specs: dict[str, specs.ServerSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager, "install", lambda names=None: {})
    monkeypatch.setenv(specs.KEY_ENV, KEY)
    run = for_run.bring_up(["fake-b"])           # requires fake-a: both start
    try:
        assert sorted(run.started) == ["fake-a", "fake-b"]
        assert run.env[specs.KEY_ENV] == KEY
        assert run.env["FAKE_A_URL"].startswith("http://127.0.0.1:") and "FAKE_B_URL" in run.env
    finally:
        assert sorted(for_run.take_down(run)) == ["fake-a", "fake-b"]
    assert manager.status() == {}

    manager.up(["fake-a"], key=KEY, do_install=False)   # already running before the run: used, left running
    try:
        run = for_run.bring_up(["fake-a", "fake-b"])
        assert run.started == ["fake-b"]
        for_run.take_down(run)
        assert set(manager.status()) == {"fake-a"}
    finally:
        manager.down(None)


REFERENCE_SERVER = textwrap.dedent(
    f"""
    import sys, time
    sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
    from tests.support.wire_server import WireServer, conformant
    WireServer(conformant, port=int(sys.argv[1])).start()
    print("reference server listening", flush=True)
    time.sleep(3600)
    """
)


def test_pytest_servers_option_starts_the_server_runs_live_and_stops_it(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pytest --provider=ref --live --servers`: the run starts `ref`, reads its URL and key, and stops it."""
    script = tmp_path / "reference_server.py"
    script.write_text(REFERENCE_SERVER)
    use_specs(monkeypatch, {"ref": FakeSpec("ref", script, "REF_URL")})
    providers = {"version": 1, "providers": {"ref": {
        "kind": "local", "title": "Ref", "base_url": "${REF_URL:-http://127.0.0.1:9/v1}",
        "api_key_env": specs.KEY_ENV, "model": "ref-model"}, "hosted": {
        "kind": "hosted", "title": "Hosted", "base_url": "https://hosted.invalid/v1", "model": "m"}}}
    pytester.makefile(".yaml", providers=json.dumps(providers))
    pytester.makepyfile(test_suite="""
from oaicompat.checks import chat

async def test_object(run_check):
    await run_check(chat.object_is_chat_completion)
""")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    args = ["-p", "no:cacheprovider", "-p", "no:randomly", "--providers-file", str(pytester.path / "providers.yaml"),
            "--cassette-dir", str(pytester.path / "cassettes"), "--results", str(pytester.path / "results.json")]

    result = pytester.runpytest(*args, "--provider=ref", "--servers")      # replay: nothing to start for
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--servers starts servers for a live run*"])

    result = pytester.runpytest(*args, "--provider=hosted", "--live", "--servers")   # nothing it can start
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*none of the chosen providers is a local server oaicompat starts*(ref)*"])

    result = pytester.runpytest(*args, "--provider=ref", "--live", "--servers")
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "results.json").read_text())
    assert doc["records"][0]["evidence"][0]["level"] == "live"
    assert manager.status() == {}                                      # stopped at the end of the run
    assert not (pytester.path / "cassettes").exists()                  # --live writes no cassette


# --------------------------------------------------------------------------- restart after a timed-out request

DEAF_SERVER = textwrap.dedent(
    f"""
    import asyncio, signal, sys, time
    sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
    from tests.support.wire_server import WireServer, conformant
    signal.signal(signal.SIGTERM, signal.SIG_IGN)          # like transformers serve while it computes

    async def hang_on_chat(req, resp):
        if req.method == "POST":
            await asyncio.sleep(3600)                      # never answers a completion
        await conformant(req, resp)

    WireServer(hang_on_chat, port=int(sys.argv[1])).start()
    print("deaf server listening", flush=True)
    time.sleep(3600)
    """
)


class DeafSpec(FakeSpec):
    restart_after_timeout = True


@pytest.fixture
def deaf_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> specs.ServerSpec:
    script = tmp_path / "deaf_server.py"
    script.write_text(DEAF_SERVER)
    return use_specs(monkeypatch, {"ref": DeafSpec("ref", script, "REF_URL")})["ref"]


def test_restart_sigkills_a_server_deaf_to_sigterm_and_starts_it_on_the_same_port(deaf_spec) -> None:
    first = manager.up(["ref"], key=KEY, do_install=False)["ref"]
    try:
        second = manager.restart("ref", KEY)
        assert second.port == first.port and second.pid != first.pid
        assert not manager.is_alive(first) and manager.is_alive(second)
        assert manager.status()["ref"].pid == second.pid
    finally:
        manager.down(None)
    with pytest.raises(ServerError, match="not recorded as running"):
        manager.restart("ref", KEY)


def test_restart_hung_acts_only_on_servers_that_need_it(fake_specs, monkeypatch) -> None:
    monkeypatch.setattr(manager, "install", lambda names=None: {})
    manager.up(["fake-a"], key=KEY, do_install=False)
    try:
        assert for_run.restart_hung("fake-a", KEY) is None      # its spec does not ask for it
        assert for_run.restart_hung("openai", KEY) is None      # not a local server
    finally:
        manager.down(None)


def test_a_timed_out_live_request_restarts_the_server_and_the_run_goes_on(
    pytester: pytest.Pytester, deaf_spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    providers = {"version": 1, "providers": {"ref": {
        "kind": "local", "title": "Ref", "base_url": "${REF_URL:-http://127.0.0.1:9/v1}",
        "api_key_env": specs.KEY_ENV, "model": "ref-model",
        "timeouts": {"read": 2, "total": 2}, "retries": {"max_retries": 0}}}}
    pytester.makefile(".yaml", providers=json.dumps(providers))
    pytester.makepyfile(test_suite="""
from oaicompat.checks import chat, models

async def test_object(run_check):
    await run_check(chat.object_is_chat_completion)

async def test_list(run_check):
    await run_check(models.list_status)
""")
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    monkeypatch.setenv(specs.KEY_ENV, KEY)
    first = manager.up(["ref"], key=KEY, do_install=False)["ref"]
    try:
        result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", "--providers-file",
                                    str(pytester.path / "providers.yaml"), "--results",
                                    str(pytester.path / "results.json"), "--provider=ref", "--live")
        result.stdout.fnmatch_lines(["*oaicompat: ref was SIGKILLed and restarted at http://127.0.0.1:*"])
        doc = json.loads((pytester.path / "results.json").read_text())
        by_check = {r["check"]: r for r in doc["records"]}
        assert by_check["chat.object"]["evidence"][0]["failure"].startswith(("timeout", "read-timeout"))
        assert by_check["models.list-status"]["outcome"] == "pass"     # the restarted server answered
        now = manager.status()["ref"]
        assert now.port == first.port and now.pid != first.pid and not manager.is_alive(first)
    finally:
        manager.down(None)


class AloneSpec(FakeSpec):
    starts_by_default = False


def test_up_without_names_leaves_out_a_server_that_wants_the_machine_to_itself(
    fake_specs: dict[str, specs.ServerSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_specs["fake-alone"] = AloneSpec("fake-alone", fake_specs["fake-a"].script, "FAKE_ALONE_URL")
    try:
        assert set(manager.up(None, key=KEY, do_install=False)) == {"fake-a", "fake-b"}
        assert set(manager.up(["fake-alone"], key=KEY, do_install=False)) == {"fake-a", "fake-b", "fake-alone"}
    finally:
        manager.down(None)
    assert not manager.status()
    assert not specs.TransformersServeSpec.starts_by_default


@pytest.mark.parametrize(("gateway", "upstream"), [("portkey", "llama-server-qwen"),
                                                   ("portkey-think", "llama-server-qwen-think")])
def test_portkey_provider_headers_name_the_running_upstream(gateway: str, upstream: str) -> None:
    """providers.yaml's portkey headers read the URL `servers up` exports for the upstream, and are the
    headers the spec itself uses."""
    from oaicompat.config import load_providers

    url = "http://127.0.0.1:40123/v1"
    spec = specs.SPECS[gateway]
    config = load_providers(Path(__file__).parents[1] / "providers.yaml", {specs.SPECS[upstream].env_var: url})
    portkey = config.get(gateway)
    assert dict(portkey.headers) == spec.request_headers({upstream: url})
    assert portkey.model == config.get(upstream).model == spec.model_id
    assert spec.requires == (upstream,)


def test_litellm_qwen_proxies_the_thinking_llama_server(cache: Path) -> None:
    spec = specs.SPECS["litellm-qwen"]
    run = cache / "run"
    spec.prepare(specs.LaunchContext(run, {"llama-server-qwen-think": "http://127.0.0.1:9998/v1"}))
    text = (run / "litellm-qwen-config.yaml").read_text()
    assert f"model_name: {specs.QWEN_THINK_MODEL_ID}" in text and '"http://127.0.0.1:9998/v1"' in text
    with pytest.raises(InstallError, match="llama-server-qwen-think"):
        spec.prepare(specs.LaunchContext(run, {"llama-server": "http://127.0.0.1:9999/v1"}))


def test_thinking_servers_use_the_qwq_template_and_a_reasoning_parser() -> None:
    template = str(specs.chat_template_path(specs.THINK_TEMPLATE))
    llama = specs.SPECS["llama-server-qwen-think"].argv(5555, KEY)
    assert llama[llama.index("--chat-template-file") + 1] == template
    assert llama[llama.index("--reasoning-format") + 1] == "deepseek"
    vllm = specs.SPECS["vllm-qwen-think"].argv(5555, KEY)
    assert vllm[vllm.index("--chat-template") + 1] == template
    assert vllm[vllm.index("--reasoning-parser") + 1] == "qwen3"
    assert json.loads(vllm[vllm.index("--default-chat-template-kwargs") + 1]) == {"enable_thinking": True}
    # the non-thinking instances are unchanged
    assert "--reasoning-parser" not in specs.SPECS["vllm-qwen"].argv(5555, KEY)
    assert "--chat-template-file" not in specs.SPECS["llama-server-qwen"].argv(5555, KEY)


def test_chat_template_is_copied_unchanged_from_llama_cpp_sources(cache: Path, monkeypatch) -> None:
    sources = cache / "src"
    templates = sources / "vendor" / "llama.cpp" / "models" / "templates"
    templates.mkdir(parents=True)
    (templates / "T.jinja").write_bytes(b"{{- 'x' }}\n")
    monkeypatch.setattr(specs, "llama_cpp_sources", lambda log, version=specs.LLAMA_CPP_PYTHON_VERSION: sources)
    path = specs.ensure_chat_template("T.jinja", cache / "log")
    assert path == specs.chat_template_path("T.jinja") and path.read_bytes() == b"{{- 'x' }}\n"
    with pytest.raises(InstallError, match="no models/templates/missing.jinja"):
        specs.ensure_chat_template("missing.jinja", cache / "log")


def test_a_header_variable_without_default_that_is_unset_makes_the_provider_unavailable(tmp_path: Path) -> None:
    from oaicompat.config import load_providers

    path = tmp_path / "providers.yaml"
    path.write_text(
        "version: 1\nproviders:\n  gw:\n    kind: gateway\n    title: gw\n    base_url: http://127.0.0.1:1/v1\n"
        "    model: m\n    headers: {x-upstream: '${GW_UPSTREAM_URL}'}\n"
    )
    gw = load_providers(path, {}).get("gw")
    assert gw.base_url is None and gw.missing_vars == ("GW_UPSTREAM_URL",)
    assert load_providers(path, {"GW_UPSTREAM_URL": "http://x/v1"}).get("gw").headers == {"x-upstream": "http://x/v1"}
