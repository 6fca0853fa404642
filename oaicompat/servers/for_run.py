"""The real local servers for one live run (pytest ``--servers``): start what the chosen providers need,
hand back the variables providers.yaml reads, and stop afterwards exactly the servers this run started.

A server that was already running (``oaicompat servers up`` in the shell) is used and left running. A server
that keeps computing after a request timed out (``transformers serve``) is SIGKILLed and restarted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from . import manager, specs
from .specs import KEY_ENV


def server_names() -> list[str]:
    """Every local server oaicompat can start."""
    return list(specs.SPECS)


def servers_for(provider_names: Iterable[str]) -> list[str]:
    """The chosen providers that are local servers oaicompat can start (in the given order)."""
    return [name for name in provider_names if name in specs.SPECS]


@dataclass
class RunServers:
    """What a live run got: the environment to read providers.yaml with, and whom to stop at the end."""

    env: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)


def env_of(state: dict[str, manager.RunningServer], key: str) -> dict[str, str]:
    """``{OAICOMPAT_LOCAL_KEY: key, LLAMA_SERVER_URL: …, …}`` for the running servers."""
    env = {KEY_ENV: key}
    for line in manager.env_lines(state):
        name, _, value = line.partition("=")
        env[name] = value
    return env


def bring_up(names: list[str]) -> RunServers:
    """Install what is missing and start ``names`` (and what they require). On a failure, stops what this
    call started and raises ServersUpError, which names each server's log."""
    before = set(manager.status())
    key = manager.resolve_key(manager.status())
    try:
        state = manager.up(names, key=key)
    except manager.ServersUpError as exc:
        manager.down([n for n in exc.started if n not in before])
        raise
    return RunServers(env=env_of(state, key), started=[n for n in state if n not in before])


def restart_hung(name: str, key: str) -> str | None:
    """After a request to ``name`` timed out: SIGKILL and restart it if it is a local server oaicompat runs and
    its spec says a timed-out request leaves it computing. Returns what was done, or None when nothing was."""
    spec = specs.SPECS.get(name)
    if spec is None or not spec.restart_after_timeout or name not in manager.status():
        return None
    server = manager.restart(name, key)
    return f"{name} was SIGKILLed and restarted at {server.base_url} after a timed-out request"


def take_down(run: RunServers) -> list[str]:
    """Stop the servers this run started (by the PIDs recorded when they started)."""
    return manager.down(run.started) if run.started else []


__all__ = ["RunServers", "bring_up", "env_of", "restart_hung", "server_names", "servers_for", "take_down"]
