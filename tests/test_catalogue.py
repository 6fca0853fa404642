"""The quirk catalogue, the checks and providers.yaml agree with each other."""

import ast

import oaicompat.checks  # noqa: F401
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
