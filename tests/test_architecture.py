"""The package reads one way, and docs/architecture.md and the README's layout table say so.

    config → transport and SSE parsing → cassettes → checks → runner and outcomes → results → reports

Every module is placed in one layer (LAYERS below, mirrored by docs/architecture.md); a module may import only
from its own layer or an earlier one, including imports inside functions. A new module fails this test until it
is placed, and the page fails it until it names the module.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "oaicompat"

# (layer number, name, module patterns); the first matching pattern places a module
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
    (0, "foundation", ("oaicompat", "oaicompat.errors", "oaicompat.paths", "oaicompat.fileio", "oaicompat.run_mode")),
    (1, "config", ("oaicompat.config", "oaicompat.quirks")),
    (2, "transport and SSE parsing", ("oaicompat.sse", "oaicompat.exchange", "oaicompat.timing", "oaicompat.retry",
                                      "oaicompat.scrub", "oaicompat.transport", "oaicompat.budget")),
    (3, "cassettes", ("oaicompat.cassette", "oaicompat.cassette_schema", "oaicompat.session",
                      "oaicompat.imported", "oaicompat.imported.formats", "oaicompat.imported.profiles",
                      "oaicompat.imported.vendors", "oaicompat.imported.store", "oaicompat.imported.summary")),
    (4, "checks", ("oaicompat.checks", "oaicompat.checks.*", "oaicompat.sdk")),
    (5, "runner and outcomes", ("oaicompat.outcomes", "oaicompat.runner")),
    (6, "results", ("oaicompat.results", "oaicompat.latency", "oaicompat.run_summary", "oaicompat.imported.evidence",
                     "oaicompat.propose")),
    (7, "reports", ("oaicompat.report", "oaicompat.report.*")),
    (8, "entry points", ("oaicompat.plugin", "oaicompat.cli", "oaicompat.run", "oaicompat.nightly",
                         "oaicompat.imported.cli", "oaicompat.servers", "oaicompat.servers.*")),
]


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def layer_of(module: str) -> int | None:
    for number, _, patterns in LAYERS:
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return number
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base) + (f".{node.module}" if node.module else "")
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                out.add(full if full in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in known and m != module}


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in modules() if layer_of(m) is None]
    assert not unplaced, f"place these modules in LAYERS (and docs/architecture.md): {unplaced}"


def test_imports_only_go_to_the_same_or_an_earlier_layer() -> None:
    known = modules()
    wrong = []
    for module, path in known.items():
        here = layer_of(module)
        for target in sorted(imports_of(module, path, known)):
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                wrong.append(f"{module} (layer {here}) imports {target} (layer {there})")
    assert not wrong, "the package must read one way:\n" + "\n".join(wrong)


def test_the_checker_sees_a_backward_import(tmp_path: Path) -> None:
    """The rule above can fail: a config module importing the report layer is caught."""
    path = tmp_path / "config.py"
    path.write_text("from .report import render\n", encoding="utf-8")
    known = {"oaicompat.config": path, "oaicompat.report": PACKAGE / "report" / "__init__.py",
             "oaicompat.report.render": PACKAGE / "report" / "render.py"}
    assert imports_of("oaicompat.config", path, known) == {"oaicompat.report.render"}
    assert layer_of("oaicompat.report.render") > layer_of("oaicompat.config")  # type: ignore[operator]


@pytest.mark.parametrize("module", sorted(modules()))
def test_the_architecture_page_names_every_module(module: str) -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rel = modules()[module].relative_to(ROOT).as_posix()
    shown = rel[: -len("/__init__.py")] + "/" if rel.endswith("/__init__.py") else rel
    assert f"`{shown}`" in page or f"`{rel}`" in page, f"docs/architecture.md does not place {rel}"


def test_the_readme_layout_names_every_top_level_part() -> None:
    layout = (ROOT / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    parts = sorted({p.relative_to(PACKAGE).parts[0] for p in PACKAGE.rglob("*.py")} - {"__init__.py"})
    missing = [p for p in parts if not re.search(rf"`(oaicompat/)?{re.escape(p.removesuffix('.py'))}(\.py|/)?`",
                                                  layout)]
    assert not missing, f"README.md's Layout table does not mention: {missing}"
