"""reports/ holds the published report of the committed cassettes and imported evidence: regenerating it
with the main command must give the same files (else: run `oaicompat run` and commit reports/)."""

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oaicompat.paths import PROJECT_ROOT, REPORTS

IGNORED = {"data", "matrix.png", ".oaicompat-report"}
RUN_TIME = re.compile(rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")   # when the replay ran is not content


def content(path: Path) -> bytes:
    return RUN_TIME.sub(b"<time>", path.read_bytes())


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).parts[0] not in IGNORED}


@pytest.mark.skipif(not (REPORTS / "index.html").exists(), reason="no published report committed yet")
def test_published_report_is_current(tmp_path):
    out = tmp_path / "site"
    cmd = [sys.executable, "-m", "oaicompat.cli", "run", "-o", str(out),
           "--results", str(tmp_path / "results.json"), "--evidence-results", str(tmp_path / "results-imported.json"),
           "--", "-q", "-p", "no:randomly"]
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800)
    assert (out / "index.html").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    published, fresh = tree(REPORTS), tree(out)
    assert fresh == published, f"pages added {sorted(fresh - published)[:10]}, removed {sorted(published - fresh)[:10]}"
    stale = [name for name in sorted(fresh) if content(out / name) != content(REPORTS / name)]
    assert not stale, (f"reports/ is stale ({len(stale)} files differ, e.g. {stale[:5]}): run `oaicompat run` and commit "
                       f"reports/. First difference in {stale[0] if stale else ''}:\n{first_difference(out, stale)}")


def first_difference(out: Path, stale: list[str]) -> str:
    if not stale:
        return ""
    old = content(REPORTS / stale[0]).decode("utf-8", "replace").splitlines()
    new = content(out / stale[0]).decode("utf-8", "replace").splitlines()
    return "\n".join(list(difflib.unified_diff(old, new, "published", "fresh", n=0, lineterm=""))[:8])
