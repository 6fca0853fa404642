"""Start, wait for, list and stop the local servers; the run state in ``run/servers.json``.

- ``install(names)``: compiling installs one after the other (2 cores), pip-only installs in
  parallel threads beside them.
- ``up(names)``: installs if needed, starts each server (and what it requires) on a free loopback
  port in its own process group with output to ``logs/<name>-<timestamp>.log``, and waits until
  ``GET /v1/models`` with the key answers 200.
- ``down(names)``: signals exactly the process groups recorded in ``servers.json``.

The API key is never written: ``servers.json`` and ``servers.env`` hold URLs, PIDs and argv only.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from . import paths
from .errors import InstallError, KeyRequiredError, ServerError, ServerStartError, log_tail
from .specs import KEY_ENV, LOOPBACK, SPECS, LaunchContext, ServerSpec, get_spec

STOP_GRACE_SECONDS = 8.0
POLL_SECONDS = 0.5


@dataclass
class RunningServer:
    """One started server as recorded in ``servers.json``."""

    name: str
    pid: int
    pgid: int
    port: int
    base_url: str
    log: str
    version: str
    started_at: str
    cmd: list[str]
    proc_start: int = 0  # /proc start time (clock ticks): guards against PID reuse
    ready_seconds: float | None = None

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> RunningServer:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["name"] = name
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["name"]
        return data


class ServersUpError(ServerError):
    """Some servers failed to start; ``started`` holds those that are up."""

    def __init__(self, errors: list[ServerError], started: dict[str, RunningServer]) -> None:
        super().__init__("\n\n".join(str(e) for e in errors))
        self.errors = errors
        self.started = started


# --------------------------------------------------------------------------- names


def resolve_names(names: Iterable[str] | None) -> list[ServerSpec]:
    """The specs for ``names`` (all if None) plus what they require, requirements first."""
    wanted = list(names) if names else list(SPECS)
    ordered: list[ServerSpec] = []

    def add(name: str) -> None:
        spec = get_spec(name)
        for dep in spec.requires:
            add(dep)
        if spec not in ordered:
            ordered.append(spec)

    for name in wanted:
        add(name)
    return ordered


# --------------------------------------------------------------------------- ports, keys


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a server could listen on ``port`` now. Like the servers, it binds with SO_REUSEADDR, so
    connections of a killed server left in TIME_WAIT do not count as busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int | None = None, host: str = LOOPBACK) -> int:
    """``preferred`` if it is free, else a free port the kernel picks (bind to port 0)."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def new_key() -> str:
    return f"sk-local-{secrets.token_hex(16)}"


def resolve_key(running: Mapping[str, RunningServer]) -> str:
    """The key for this ``up``: ``$OAICOMPAT_LOCAL_KEY``, else a new one if nothing is running."""
    key = os.environ.get(KEY_ENV)
    if key:
        return key
    if running:
        raise KeyRequiredError(
            f"servers are already running ({', '.join(sorted(running))}) with a key this shell does "
            f"not have: export {KEY_ENV}=<the key printed by the `servers up` that started them>, "
            "or stop them first with `oaicompat servers down`"
        )
    return new_key()


def probe(url: str, key: str, timeout: float = 3.0) -> int | None:
    """HTTP status of ``GET url`` with the bearer key; None when nothing answers."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def check_key(running: Mapping[str, RunningServer], key: str) -> None:
    """Raise KeyRequiredError if a running server refuses ``key``."""
    for server in running.values():
        status = probe(server.base_url + "/models", key)
        if status is None:
            continue
        if status != 200:
            raise KeyRequiredError(
                f"{KEY_ENV} does not match the key the running servers use ({server.name} answered "
                f"{status}); export the key printed by the `servers up` that started them, or run "
                "`oaicompat servers down` first"
            )
        return


# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, starttime) of ``pid`` from /proc, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            data = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = data[data.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state); pgrp is field 5; starttime is field 22.
    return fields[0], int(fields[2]), int(fields[19])


def process_start_time(pid: int) -> int:
    stat = _proc_stat(pid)
    return stat[2] if stat else 0


def is_alive(server: RunningServer) -> bool:
    """True if the recorded leader process still runs (same PID and same start time; a zombie is dead)."""
    stat = _proc_stat(server.pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return not server.proc_start or stat[2] == server.proc_start


def group_members(server: RunningServer) -> list[int]:
    """Live processes of the recorded process group started no earlier than the leader.

    Empty if the group's id now belongs to another process (the leader's PID was reused).
    """
    leader = _proc_stat(server.pgid)
    if leader is not None and server.proc_start and leader[2] != server.proc_start:
        return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _proc_stat(int(entry))
        if stat is None or stat[0] in ("Z", "X") or stat[1] != server.pgid:
            continue
        if server.proc_start and stat[2] < server.proc_start:
            continue
        members.append(int(entry))
    return members


def _signal(server: RunningServer, sig: signal.Signals) -> None:
    if is_alive(server) and server.pgid == server.pid:
        try:
            os.killpg(server.pgid, sig)
        except ProcessLookupError:
            pass
        return
    # The leader is gone: signal only the verified members left in its group.
    for pid in group_members(server):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _gone(server: RunningServer) -> bool:
    return not is_alive(server) and not group_members(server)


def _wait_until(condition: Callable[[], bool], seconds: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; return whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def stop(server: RunningServer, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the recorded process group, SIGKILL what is left after ``grace`` seconds."""
    if _gone(server):
        return
    _signal(server, signal.SIGTERM)
    if _wait_until(lambda: _gone(server), grace):
        return
    _signal(server, signal.SIGKILL)
    _wait_until(lambda: _gone(server), 5)


def rss_kib(server: RunningServer) -> int:
    """Resident memory of the server's process group in KiB (sum over its processes)."""
    total = 0
    for pid in group_members(server):
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------- state


@contextmanager
def state_lock() -> Iterator[None]:
    paths.run_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file(), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_state() -> dict[str, RunningServer]:
    try:
        data = json.loads(paths.state_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ServerError(f"cannot read {paths.state_file()}: {exc}; remove it if no server runs") from exc
    return {name: RunningServer.from_json(name, entry) for name, entry in data.items()}


def env_lines(state: Mapping[str, RunningServer]) -> list[str]:
    """``NAME_URL=http://127.0.0.1:PORT/v1`` for each recorded server (never the key)."""
    lines = []
    for name, server in state.items():
        spec = SPECS.get(name)
        if spec is not None:
            lines.append(f"{spec.env_var}={server.base_url}")
    return lines


def save_state(state: Mapping[str, RunningServer]) -> None:
    directory = paths.run_dir()
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.state_file(), json.dumps({n: s.to_json() for n, s in state.items()}, indent=2) + "\n")
    atomic_write_text(paths.env_file(), "".join(line + "\n" for line in env_lines(state)))


def prune(state: dict[str, RunningServer]) -> dict[str, RunningServer]:
    """Drop entries whose processes are all gone."""
    return {name: server for name, server in state.items() if not _gone(server)}


# --------------------------------------------------------------------------- install


def _log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def install(names: Iterable[str] | None = None) -> dict[str, float]:
    """Install the servers (and what they require) into the cache; return seconds per install.

    Compiling installs run one after the other in this thread; the others (mostly downloads) run in
    parallel threads meanwhile.
    """
    specs = resolve_names(names)
    timings: dict[str, float] = {}
    errors: list[Exception] = []
    for served in dict.fromkeys(s.gguf_model for s in specs if s.gguf_model is not None):
        served.ensure()
    todo = [s for s in specs if not s.installed()]
    if not todo:
        return timings

    def run(spec: ServerSpec) -> None:
        log = paths.new_log_path(f"install-{spec.name}")
        _log(f"installing {spec.name} {spec.version} (log: {log})")
        started = time.monotonic()
        try:
            spec.install(log)
        except Exception as exc:  # noqa: BLE001 - reported after the others finish
            errors.append(exc)
            return
        timings[spec.name] = round(time.monotonic() - started, 1)
        _log(f"installed {spec.name} in {timings[spec.name]:.0f} s")

    threads = [
        threading.Thread(target=run, args=(s,), name=f"install-{s.name}") for s in todo if not s.compiles
    ]
    for thread in threads:
        thread.start()
    for spec in todo:
        if spec.compiles:
            run(spec)
    for thread in threads:
        thread.join()
    if errors:
        raise InstallError("\n\n".join(str(e) for e in errors))
    return timings


# --------------------------------------------------------------------------- start / wait


def start(
    spec: ServerSpec, key: str, *, port: int | None = None
) -> tuple[RunningServer, subprocess.Popen[bytes]]:
    """Start ``spec`` on a free loopback port in its own process group, output to a fresh log."""
    port = pick_port(port)
    argv = spec.argv(port, key)
    if any(key in arg for arg in argv):
        raise ServerError(f"refusing to start {spec.name}: its argv would carry the API key")
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    env.update(spec.env(key))
    log = paths.new_log_path(spec.name)
    run_dir = paths.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=spec.workdir(run_dir),
            start_new_session=True,
            close_fds=True,
        )
    server = RunningServer(
        name=spec.name,
        pid=proc.pid,
        pgid=proc.pid,
        port=port,
        base_url=spec.base_url(port),
        log=str(log),
        version=spec.version,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        cmd=argv,
        proc_start=process_start_time(proc.pid),
    )
    return server, proc


def wait_ready(
    server: RunningServer,
    url: str,
    key: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
) -> float:
    """Poll ``url`` until 200; return the seconds it took.

    Raise ServerStartError naming the log (with its last lines) if the process exits first or the
    timeout passes (then the server is stopped).
    """
    started = time.monotonic()
    deadline = started + timeout
    last: int | None = None
    while True:
        exited = proc.poll() if proc is not None else (None if is_alive(server) else -1)
        if exited is not None:
            raise ServerStartError(
                f"{server.name} exited during start-up (exit {exited}); see {server.log}\n"
                f"--- last lines of {server.log} ---\n{log_tail(Path(server.log))}",
                Path(server.log),
            )
        last = probe(url, key)
        if last == 200:
            return round(time.monotonic() - started, 1)
        if time.monotonic() >= deadline:
            stop(server)
            if proc is not None:
                proc.poll()
            raise ServerStartError(
                f"{server.name} was not ready within {timeout:.0f} s (GET {url} -> {last or 'no answer'}); "
                f"stopped it; see {server.log}\n--- last lines of {server.log} ---\n{log_tail(Path(server.log))}",
                Path(server.log),
            )
        time.sleep(POLL_SECONDS)


def _key_in_log(server: RunningServer, key: str) -> bool:
    try:
        return key.encode() in Path(server.log).read_bytes()
    except OSError:
        return False


def up(
    names: Iterable[str] | None = None,
    *,
    key: str | None = None,
    do_install: bool = True,
) -> dict[str, RunningServer]:
    """Bring ``names`` (if None: every server that starts by default) and what they require up; return every
    server now running.

    Servers already running are kept. All servers share one key: ``key``, else ``$OAICOMPAT_LOCAL_KEY``,
    else a new one (refused if servers run with a key this process does not have).
    """
    if names is None:
        names = [n for n, spec in SPECS.items() if spec.starts_by_default]
    specs = resolve_names(names)
    with state_lock():
        state = prune(load_state())
        save_state(state)
    if key is None:
        key = resolve_key(state)
    check_key(state, key)
    if do_install:
        install([s.name for s in specs])

    started: dict[str, RunningServer] = {}
    errors: list[ServerError] = []
    with state_lock():
        state = prune(load_state())
        levels: dict[int, list[ServerSpec]] = {}
        for spec in specs:
            levels.setdefault(_depth(spec), []).append(spec)
        for depth in sorted(levels):
            pending: list[tuple[ServerSpec, RunningServer, subprocess.Popen[bytes]]] = []
            for spec in levels[depth]:
                if spec.name in state:
                    _log(f"{spec.name} already running at {state[spec.name].base_url}")
                    continue
                if any(dep not in state for dep in spec.requires):
                    errors.append(
                        ServerStartError(f"{spec.name} not started: {', '.join(spec.requires)} is not up")
                    )
                    continue
                spec.prepare(LaunchContext(paths.run_dir(), {n: s.base_url for n, s in state.items()}))
                server, proc = start(spec, key)
                _log(f"starting {spec.name} on port {server.port} (pid {server.pid}, log {server.log})")
                state[spec.name] = server
                save_state(state)  # recorded at once, so `down` can stop it whatever happens next
                pending.append((spec, server, proc))
            for index, (spec, server, proc) in enumerate(pending):
                try:
                    server.ready_seconds = wait_ready(
                        server, spec.readiness_url(server.port), key, spec.ready_timeout, proc
                    )
                except BaseException as exc:
                    if not isinstance(exc, ServerStartError):
                        # Interrupted (Ctrl-C) or broken: stop what is not ready yet, then re-raise.
                        for _, waiting, _ in pending[index:]:
                            stop(waiting)
                            state.pop(waiting.name, None)
                        save_state(state)
                        raise
                    stop(server)
                    del state[spec.name]
                    save_state(state)
                    errors.append(exc)
                    continue
                if _key_in_log(server, key):
                    stop(server)
                    del state[spec.name]
                    save_state(state)
                    Path(server.log).unlink(missing_ok=True)
                    errors.append(
                        ServerError(
                            f"{spec.name} wrote the API key into its log (deleted): a bug to fix in specs.py"
                        )
                    )
                    continue
                started[spec.name] = server
                save_state(state)
                _log(f"{spec.name} ready at {server.base_url} in {server.ready_seconds:.1f} s")
        if errors:
            raise ServersUpError(errors, dict(state))
        return dict(state)


def restart(name: str, key: str, *, port_wait: float = 15.0) -> RunningServer:
    """SIGKILL a recorded server's process group by its PID and start it again on the same port.

    For a server that a timed-out request leaves computing and that ignores SIGTERM: the next request then
    meets a fresh server at the same URL. Raises ServerError if it is not recorded, ServerStartError if it
    does not come back (then it is stopped and dropped from the state).
    """
    spec = get_spec(name)
    with state_lock():
        state = prune(load_state())
        old = state.get(name)
        if old is None:
            raise ServerError(f"{name} is not recorded as running (oaicompat servers status); nothing to restart")
        _log(f"restarting {name}: SIGKILL to process group {old.pgid} (pid {old.pid})")
        kill(old)
        if not _wait_until(lambda: port_is_free(old.port), port_wait, 0.2):
            del state[name]
            save_state(state)
            raise ServerError(f"{name} was killed but port {old.port} stayed busy for {port_wait:.0f} s; "
                              f"start it again with `oaicompat servers up {name}`")
        spec.prepare(LaunchContext(paths.run_dir(), {n: s.base_url for n, s in state.items()}))
        server, proc = start(spec, key, port=old.port)
        state[name] = server
        save_state(state)
        try:
            server.ready_seconds = wait_ready(server, spec.readiness_url(server.port), key, spec.ready_timeout, proc)
        except BaseException:
            stop(server)
            del state[name]
            save_state(state)
            raise
        save_state(state)
        _log(f"{name} ready again at {server.base_url} in {server.ready_seconds:.1f} s")
        return server


def kill(server: RunningServer) -> None:
    """SIGKILL the recorded process group at once (no SIGTERM first) and wait until it is gone."""
    if _gone(server):
        return
    _signal(server, signal.SIGKILL)
    _wait_until(lambda: _gone(server), 10)


def _depth(spec: ServerSpec) -> int:
    return 0 if not spec.requires else 1 + max(_depth(get_spec(d)) for d in spec.requires)


def down(names: Iterable[str] | None = None) -> list[str]:
    """Stop the recorded servers ``names`` (all if None); return the names stopped.

    Only the PIDs and process groups recorded in ``servers.json`` are signalled. A server that
    others require is stopped after them.
    """
    with state_lock():
        state = load_state()
        targets = [n for n in (list(names) if names else list(state)) if n in state]
        targets.sort(key=lambda n: -_depth(SPECS[n]) if n in SPECS else 0)
        for name in targets:
            _log(f"stopping {name} (pid {state[name].pid})")
            stop(state[name])
            del state[name]
        save_state(prune(state))
        return targets


def status() -> dict[str, RunningServer]:
    """The running servers. Stale entries are dropped from ``servers.json`` unless an ``up`` or
    ``down`` holds the state lock (then this only reads, and does not wait)."""
    state = load_state()
    live = prune(state)
    if live.keys() != state.keys():
        with _try_state_lock() as locked:
            if locked:
                current = load_state()
                save_state(prune(current))
    return live


@contextmanager
def _try_state_lock() -> Iterator[bool]:
    paths.run_dir().mkdir(parents=True, exist_ok=True)
    with open(paths.lock_file(), "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


__all__ = [
    "RunningServer",
    "ServersUpError",
    "down",
    "install",
    "kill",
    "pick_port",
    "resolve_key",
    "restart",
    "status",
    "up",
]
