"""Published reports: results.json → a static site (matrix, provider and quirk pages, QUIRKS.md) and diffs.

    basics.py  pure helpers: names, safe links, merging results files, one cell from its records
    views.py   the view model's dataclasses (what the templates read)
    model.py   results documents → the whole view model (pure); pages.py: provider and quirk pages
    render.py  view model → HTML (jinja2, autoescaping on) and markdown; writes the site
    diff.py    two results → what changed per provider, and whether it regressed
    cli.py     `oaicompat report …` and `oaicompat diff …`
    sample.py  synthetic results documents for tests, the benchmark and demos
"""

from __future__ import annotations

from .model import build_report, merge_runs
from .views import Report

__all__ = ["Report", "build_report", "merge_runs"]
