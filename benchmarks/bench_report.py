"""Benchmark: `oaicompat report` on a synthetic results set of 20 providers × 300 checks.

Run ``python benchmarks/bench_report.py``; ``run()`` returns the numbers as a dict. The results document is
generated here (deterministic seed, oaicompat.report.sample), never stored. Goals: render under 2 s, peak
memory under 200 MB, index.html under 2 MB. The render time is view model + templates + writing the site;
loading (JSON parse + schema validation by oaicompat.results.load_results) is reported beside it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from oaicompat.errors import CatalogueError
from oaicompat.quirks import Catalogue, load_catalogue
from oaicompat.report.model import build_report
from oaicompat.report.render import render_site
from oaicompat.report.sample import synthetic_results
from oaicompat.results import load_results

PROVIDERS, CHECKS = 20, 300
GOAL_SECONDS, GOAL_MB, GOAL_INDEX_MB = 2.0, 200.0, 2.0


def _catalogue() -> Catalogue | None:
    try:
        return load_catalogue()
    except CatalogueError:        # the catalogue is not what is measured
        return None


def _render(doc: dict[str, Any], catalogue: Catalogue | None, out: Path) -> None:
    render_site(build_report([("bench.json", doc)], catalogue), out)


def run(providers: int = PROVIDERS, checks: int = CHECKS, repeat: int = 3) -> dict[str, Any]:
    catalogue = _catalogue()
    ids = sorted(catalogue.quirks)[:12] if catalogue else []
    doc = synthetic_results(providers, checks, quirk_ids=ids)
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        src = Path(tmp) / "results.json"
        src.write_text(json.dumps(doc), encoding="utf-8")
        t0 = time.perf_counter()
        loaded = load_results(src)
        load_s = time.perf_counter() - t0
        times, cpu = [], []
        for i in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            _render(loaded, catalogue, Path(tmp) / f"site{i}")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        tracemalloc.start()
        _render(loaded, catalogue, Path(tmp) / "site-mem")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        site = Path(tmp) / "site0"
        index_mb = (site / "index.html").stat().st_size / 1e6
        total_mb = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 1e6
    return {
        "providers": providers, "checks": checks, "records": providers * checks,
        "render_s": min(times), "render_cpu_s": min(cpu), "load_s": load_s, "loadavg": os.getloadavg()[0], "peak_mb": peak / 1e6,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "index_mb": index_mb, "site_mb": total_mb,
    }


def main() -> None:
    r = run()
    print(f"report {r['providers']}×{r['checks']} ({r['records']} records): "
          f"render {r['render_s']:.2f} s ({r['render_s'] / GOAL_SECONDS:.2f}× goal {GOAL_SECONDS:g} s; "
          f"{r['render_cpu_s']:.2f} s CPU), "
          f"peak {r['peak_mb']:.0f} MB traced ({r['peak_mb'] / GOAL_MB:.2f}× goal {GOAL_MB:g} MB; "
          f"process max RSS {r['maxrss_mb']:.0f} MB), "
          f"index.html {r['index_mb']:.2f} MB ({r['index_mb'] / GOAL_INDEX_MB:.2f}× goal {GOAL_INDEX_MB:g} MB); "
          f"site {r['site_mb']:.1f} MB; load+validate {r['load_s']:.2f} s; load average {r['loadavg']:.1f}")


if __name__ == "__main__":
    main()
