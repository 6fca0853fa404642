"""The pytest side of ``--servers``: start the real local servers a live run needs at configure time, stop the
ones it started at unconfigure, and restart a server left computing after a request timed out.

The plugin (oaicompat.plugin) delegates to these; the work itself is in oaicompat.servers.for_run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from ..errors import OaicompatError
from ..exchange import Exchange

if TYPE_CHECKING:   # for_run (and the server manager) is imported only when a run starts or restarts servers
    from .for_run import RunServers


def start(live: bool, provider_names: Iterable[str]) -> RunServers:
    """Bring up the local servers among the chosen providers; a usage error when the run is not live or none
    of them is a server oaicompat starts."""
    from .for_run import bring_up, server_names, servers_for

    if not live:
        raise pytest.UsageError("--servers starts servers for a live run: add --live or a --record-mode")
    names = servers_for(provider_names)
    if not names:
        raise pytest.UsageError("--servers: none of the chosen providers is a local server oaicompat starts; "
                                f"name one with --provider ({', '.join(server_names())})")
    try:
        return bring_up(names)
    except OaicompatError as exc:
        raise pytest.UsageError(f"--servers: {exc}") from None


def stop(run: RunServers | None) -> None:
    """Stop the servers this run started (none when --servers was not given)."""
    if run is not None:
        from .for_run import take_down

        take_down(run)


@dataclass
class HungServerWatch:
    """A live request that timed out may leave a local server computing for minutes (and deaf to SIGTERM):
    the servers whose spec says so are SIGKILLed by PID and restarted, once per timed-out request.

    `down` is the run's map of unreachable providers (a failed restart is noted there); `say` writes a line
    to the terminal."""

    down: MutableMapping[str, str]
    say: Callable[[str], None]
    # timed-out exchanges already acted on, by id (held here, so an id is never reused while it is a key)
    restarted_after: dict[int, Exchange] = field(default_factory=dict)

    def after_send(self, provider_name: str, api_key: str | None, exchanges: Sequence[Exchange]) -> None:
        timed_out = [ex for ex in exchanges if ex.source == "live" and ex.failure is not None
                     and ex.failure.kind in ("timeout", "read-timeout") and id(ex) not in self.restarted_after]
        if not timed_out or not api_key:
            return
        self.restarted_after.update((id(ex), ex) for ex in timed_out)
        from .for_run import restart_hung

        try:
            note = restart_hung(provider_name, api_key)
        except OaicompatError as exc:
            self.down[provider_name] = f"restart after a timeout failed: {exc}"
            note = f"{provider_name}: {self.down[provider_name]}"
        if note:
            self.say(f"oaicompat: {note}")


__all__ = ["HungServerWatch", "start", "stop"]
