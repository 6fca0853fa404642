"""Errors of the local-server tooling, and running a command into a log.

Every error that concerns a process names its log file and quotes its last lines.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import OaicompatError

TAIL_LINES = 20


class ServerError(OaicompatError):
    """Installing, starting or stopping a local server failed."""


class InstallError(ServerError):
    """An install, build or model preparation step failed (the message names its log)."""


class ServerStartError(ServerError):
    """A server exited during start-up or was not ready in time (the message names its log)."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


class KeyRequiredError(ServerError):
    """Servers are running with a key this process does not have."""


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-blank lines of a log file ('' if it is missing)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in data.replace("\r", "\n").splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def run_logged(
    cmd: Sequence[str],
    log: Path,
    *,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run ``cmd`` with stdout and stderr appended to ``log``; raise InstallError naming the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n".encode())
        fh.flush()
        rc = subprocess.run(
            list(cmd),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            check=False,
        ).returncode
    if rc != 0:
        raise InstallError(
            f"{what} failed (exit {rc}); see {log}\n--- last lines of {log} ---\n{log_tail(log)}"
        )


class ModelIntegrityError(InstallError):
    """Model data read from an untrusted package is not the pinned bytes (size, sha256 or layout)."""
