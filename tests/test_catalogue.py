"""The quirk catalogue, the checks and providers.yaml agree with each other."""

import ast
import inspect
import pkgutil

import oaicompat.checks as checks_pkg
from oaicompat.checks.base import CHECKS, PROBES
from oaicompat.config import load_providers
from oaicompat.paths import PROJECT_ROOT, PROVIDERS_FILE
from oaicompat.quirks import load_catalogue

CATALOGUE = load_catalogue()


def test_every_id_a_check_can_raise_is_catalogued():
    missing = {(c.id, q) for c in CHECKS.values() for q in c.quirks if q not in CATALOGUE}
    assert not missing


def test_every_catalogued_id_is_owned_by_exactly_one_check():
    owners: dict[str, list[str]] = {}
    for c in CHECKS.values():
        for q in c.quirks:
            owners.setdefault(q, []).append(c.id)
    assert {q for q in CATALOGUE.quirks if q not in owners} == set()
    assert {q: o for q, o in owners.items() if len(o) > 1} == {}


def test_every_expectation_names_a_catalogued_id():
    cfg = load_providers(PROVIDERS_FILE, {})
    bad = [(p.name, q) for p in cfg.providers.values() for q in p.expectations if q not in CATALOGUE]
    assert not bad


def test_quirks_raised_in_check_code_are_declared_by_that_check():
    """Static: every QuirkFound("id", …) literal in a check function is in its decorator's quirks=."""
    problems = []
    for path in (PROJECT_ROOT / "oaicompat" / "checks").glob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            spec = next((c for c in CHECKS.values() if c.func.__name__ == fn.name and
                         c.module.endswith(path.stem)), None)
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                if getattr(call.func, "id", None) == "QuirkFound" and call.args and \
                        isinstance(call.args[0], ast.Constant) and spec is not None:
                    if call.args[0].value not in spec.quirks:
                        problems.append((spec.id, call.args[0].value))
    assert not problems


def test_every_check_has_a_suite_test_and_known_probes():
    suite_text = "".join(p.read_text() for p in (PROJECT_ROOT / "suites").glob("test_*.py"))
    for c in CHECKS.values():
        assert f".{c.func.__name__})" in suite_text, f"check {c.id} has no test in suites/"
        assert all(p in PROBES for p in c.probes), c.id
        assert c.rule and c.title


def test_check_area_matches_its_quirk_areas():
    for c in CHECKS.values():
        for q in c.quirks:
            assert q.split(".")[0] == CATALOGUE.get(q).area


def _decorator_text(func) -> str:
    """The `@check(` line of a check and the line after it, from its source."""
    lines, _ = inspect.getsourcelines(inspect.unwrap(func))
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("@check("))
    return "".join(lines[start:start + 2])


def test_every_check_names_its_id_literally_at_its_decorator():
    """`grep -rn '"<id>"' oaicompat/checks` lands on the check, not on a constant."""
    missing = [c.id for c in CHECKS.values() if f'"{c.id}"' not in _decorator_text(c.func)]
    assert not missing, f"write these ids literally in @check(...): {missing}"


def _registered_area_of_module() -> dict[str, set[str]]:
    """Module stem → the areas of the checks and probes it registers (empty for a reader module)."""
    areas: dict[str, set[str]] = {m.name: set() for m in pkgutil.iter_modules(checks_pkg.__path__)}
    for c in CHECKS.values():
        areas[c.module.rsplit(".", 1)[1]].add(c.area)
    for p in PROBES.values():
        areas[p.build.__module__.rsplit(".", 1)[1]].add(p.name.split(".")[0])
    return areas


def _sibling_imports(path) -> set[str]:
    """Stems of the oaicompat.checks modules that `path` imports (relative or absolute)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                out.add(node.module.split(".")[0])
            elif node.level == 1:
                out.update(a.name for a in node.names)
            elif node.level == 0 and (node.module or "").startswith("oaicompat.checks."):
                out.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[2] for a in node.names if a.name.startswith("oaicompat.checks."))
    return out


def test_no_check_area_imports_another():
    """Areas share through checks/base.py, checks/common.py and reader modules, never sideways."""
    areas = _registered_area_of_module()
    assert {"base", "common", "streamview", "tool_calls"} <= {m for m, a in areas.items() if not a}
    problems = []
    for path in (PROJECT_ROOT / "oaicompat" / "checks").glob("*.py"):
        mine = areas.get(path.stem, set())
        for other in _sibling_imports(path):
            theirs = areas.get(other, set())
            if theirs and theirs != mine:
                problems.append(f"{path.stem} ({sorted(mine)}) imports {other} ({sorted(theirs)})")
    assert not problems


def test_every_area_module_is_registered_in_a_fixed_order():
    """AREAS names every module that registers something, so the order of results does not drift."""
    areas = _registered_area_of_module()
    assert {m for m, a in areas.items() if a} == set(checks_pkg.AREAS)
    assert {m for m, a in areas.items() if not a and not m.startswith("_")} == set(checks_pkg.READERS)
