"""Exceptions the harness raises about its own inputs.

Each message says what is wrong and what to do. Vendor bytes never raise these:
what a provider sends is data, reported as findings by the checks.
"""

from __future__ import annotations


class OaicompatError(Exception):
    """Base class of every error the harness raises about its own configuration or files."""


class ConfigError(OaicompatError):
    """providers.yaml (or another config file) is malformed or fails its schema."""


class UnknownProviderError(ConfigError):
    """A provider name was asked for that providers.yaml does not define."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown provider {name!r}; configured providers: {', '.join(sorted(known)) or '(none)'}"
        )
        self.name = name
        self.known = known


class UnknownModelError(ConfigError):
    """A --model was asked for that the provider does not list as its model or an alias."""


class CatalogueError(OaicompatError):
    """The quirk catalogue is malformed, or a check raised an id it does not hold."""


class CassetteError(OaicompatError):
    """A cassette file is unreadable, truncated or fails its format."""


class CassetteMiss(OaicompatError):
    """Replay found no recorded interaction for a request."""

    def __init__(self, path: str, request_summary: str, rerecord: str) -> None:
        super().__init__(
            f"no recorded interaction in {path} matches {request_summary}; "
            f"re-record it with: {rerecord}"
        )
        self.path = path
        self.rerecord = rerecord


class ResultsError(OaicompatError):
    """A results.json file is missing, empty, from another version, or fails its schema."""
