"""Where the project's files live. The harness runs from a checkout: fixtures are data, not package code."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = PROJECT_ROOT / "fixtures"
SCHEMAS = FIXTURES / "schemas"
QUIRKS_DIR = FIXTURES / "quirks"
CASSETTES = FIXTURES / "cassettes"
IMPORTED = FIXTURES / "imported"
PROVIDERS_FILE = PROJECT_ROOT / "providers.yaml"
REPORTS = PROJECT_ROOT / "reports"


def shown_path(path: Path | str) -> str:
    """A file as reports and results name it: relative to the checkout when inside it (so a published page reads
    the same on every machine), else as given."""
    p = Path(path)
    try:
        return p.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(p)
