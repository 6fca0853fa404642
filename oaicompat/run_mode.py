"""The run mode: ``--record-mode`` and ``--live`` read once, at configure time, into one frozen value.

The record modes keep pytest-recording's names and meanings:

    none          replay only; a request the cassette does not hold is an error (the default)
    once          replay a test that has a cassette; record one that has none
    new_episodes  replay what the cassette holds, send the rest and add it to the cassette
    all           send everything and rewrite the cassette
    rewrite       the same as all (pytest-recording's name for deleting and recording again)

``--live`` sends every request and writes no cassette, whatever the record mode says.

Every question a later layer asks about the mode ("does this request replay?", "does the session write?",
"are credentials needed?", "what do results call it?") is a method here, so no other module compares
record-mode strings. This module imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

RecordMode = Literal["none", "once", "new_episodes", "all", "rewrite"]
RECORD_MODES: tuple[str, ...] = get_args(RecordMode)


class RunModeError(ValueError):
    """An unknown record mode."""


@dataclass(frozen=True)
class RunMode:
    """How a run treats providers and cassettes. Build it with :meth:`parse`."""

    record_mode: RecordMode = "none"
    live_only: bool = False          # --live: send every request, write no cassette

    @classmethod
    def parse(cls, record_mode: str | None = "none", *, live: bool = False) -> RunMode:
        mode = record_mode or "none"
        if mode not in RECORD_MODES:
            raise RunModeError(f"unknown record mode {mode!r}: use one of {', '.join(RECORD_MODES)}")
        return cls(cast(RecordMode, mode), bool(live))

    # -- what the run does ------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """The run may talk to providers (--live, or any record mode but none)."""
        return self.live_only or self.record_mode != "none"

    @property
    def replay_only(self) -> bool:
        """Every request is answered from a cassette; nothing is sent."""
        return not self.live

    @property
    def name(self) -> str:
        """What results.json calls the mode: replay, live, or record:<mode>."""
        if self.live_only:
            return "live"
        return "replay" if self.record_mode == "none" else f"record:{self.record_mode}"

    @property
    def loads_cassette(self) -> bool:
        """An existing cassette is read (to replay from it, or to add new episodes to it)."""
        return not self.live_only and self.record_mode not in ("all", "rewrite")

    @property
    def requires_cassette(self) -> bool:
        """A test without a cassette cannot run (it is reported not-recorded)."""
        return not self.live

    @property
    def merges(self) -> bool:
        """A written cassette keeps its old interactions and gains the new ones."""
        return not self.live_only and self.record_mode == "new_episodes"

    def replays(self, *, cassette_loaded: bool, recorded: bool) -> bool:
        """Whether a request is answered from the cassette. `recorded`: the cassette holds this request."""
        if self.replay_only:
            return True
        if not cassette_loaded:
            return False
        return self.record_mode == "once" or recorded

    def writes(self, *, cassette_loaded: bool) -> bool:
        """Whether the session writes its cassette when it closes."""
        if self.live_only or self.record_mode == "none":
            return False
        if self.record_mode == "once":
            return not cassette_loaded
        return True

    def needs_credentials(self, *, cassette_exists: bool) -> bool:
        """Whether the test may send to the provider (so its URL and key must be configured)."""
        if not self.live:
            return False
        return self.live_only or not (self.record_mode == "once" and cassette_exists)

    def pytest_args(self) -> list[str]:
        """The pytest options that give this mode (for the CLI's pytest children)."""
        if self.live_only:
            return ["--live"]
        return [] if self.record_mode == "none" else [f"--record-mode={self.record_mode}"]


REPLAY = RunMode()

__all__ = ["RECORD_MODES", "REPLAY", "RecordMode", "RunMode", "RunModeError"]
