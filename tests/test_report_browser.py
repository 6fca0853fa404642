"""The report as a person sees it: real headless Chromium (Debian's /usr/bin/chromium). The report has no JavaScript.

Chromium is installed by scripts/install-chromium.sh when missing; the tests skip only if that install (apt)
fails. Pages are driven over the DevTools protocol on --remote-debugging-pipe (stdlib only: no sockets, no extra
packages): the test evaluates its measurements in the loaded page; the page itself carries no script.
Set OAICOMPAT_SCREENSHOT=path to keep the 1366×768 screenshot of the matrix (e.g. for the README).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from oaicompat.quirks import Catalogue, load_catalogue
from oaicompat.report.model import build_report
from oaicompat.report.render import render_site
from oaicompat.report.sample import synthetic_results
from tests.test_report import CATALOGUE_YAML, XSS_IMG, XSS_SCRIPT, xss_results

CHROMIUM = Path("/usr/bin/chromium")
INSTALL = Path(__file__).resolve().parents[1] / "scripts" / "install-chromium.sh"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio"]
WIDTH, HEIGHT = 1366, 768

# -- Chromium -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        proc = subprocess.run(["sh", str(INSTALL)], capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            pytest.skip(f"Chromium is missing and scripts/install-chromium.sh (apt) failed, exit {proc.returncode}: {tail}")
        assert CHROMIUM.exists(), f"install-chromium.sh succeeded but {CHROMIUM} is missing:\n{proc.stdout[-2000:]}"
    return CHROMIUM


class Browser:
    """A headless Chromium driven over --remote-debugging-pipe (fd 3: commands in, fd 4: replies out, NUL-framed)."""

    def __init__(self, binary: Path, profile: Path) -> None:
        a_r, a_w = os.pipe()
        b_r, b_w = os.pipe()
        # all ends above 9, so moving the child's ends onto 3 and 4 clobbers none of them
        child_in, self._w, self._r, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (a_r, a_w, b_r, b_w))
        for fd in (a_r, a_w, b_r, b_w):
            os.close(fd)
        # bash (multi-digit fds) puts the child's ends on fds 3 and 4, where --remote-debugging-pipe expects them
        wiring = f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", wiring, str(binary), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(child_in, child_out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self._next = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                data = os.read(self._r, 1 << 16)
            except OSError:
                data = b""
            if not data:
                for q in list(self._waiting.values()):
                    q.put({"error": {"message": "Chromium closed the pipe"}})
                os.close(self._r)
                return
            buf += data
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in self._waiting:
                    self._waiting.pop(msg["id"]).put(msg)
                elif "method" in msg:
                    self.events.put(msg)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False,
             timeout: float = 60) -> dict[str, Any]:
        with self._lock:
            self._next += 1
            reply: queue.Queue[dict[str, Any]] = queue.Queue()
            self._waiting[self._next] = reply
            msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = self.session
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        answer = reply.get(timeout=timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def open(self, url: str, timeout: float = 60) -> None:
        while not self.events.empty():
            self.events.get_nowait()
        self.send("Page.navigate", {"url": url}, session=True)
        while True:
            ev = self.events.get(timeout=timeout)
            if ev.get("method") == "Page.loadEventFired" and ev.get("sessionId") == self.session:
                return

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError, queue.Empty):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[Browser]:
    profile = tmp_path / "profile"
    profile.mkdir()
    b = Browser(chromium, profile)
    yield b
    b.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    d = tmp_path / "quirks"
    d.mkdir()
    (d / "chat.yaml").write_text(yaml.safe_dump(CATALOGUE_YAML), encoding="utf-8")
    return load_catalogue(d)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


# -- layout -------------------------------------------------------------------------------------------

MEASURE = """(() => {
  const root = document.documentElement;
  const cols = [...document.querySelectorAll('table.m thead th.col')];
  return {client: root.clientWidth, scroll: root.scrollWidth, body: document.body.scrollWidth,
          names: cols.map(c => c.querySelector('a').textContent),
          shown: cols.filter(c => { const b = c.getBoundingClientRect();
                                    return b.left >= 0 && b.right <= root.clientWidth + 0.5 && b.top < innerHeight; }).length,
          widths: cols.map(c => Math.round(c.getBoundingClientRect().width)),
          stickyHead: getComputedStyle(cols[0]).position,
          stickyFirst: getComputedStyle(document.querySelector('table.m tbody th')).position,
          scripts: document.scripts.length};
})()"""


def test_matrix_of_15_providers_fits_a_1366_pixel_screen(chromium: Path, browser: Browser, tmp_path: Path,
                                                         catalogue: Catalogue) -> None:
    results = synthetic_results(15, 60, quirk_ids=["chat.object-wrong", "chat.usage-missing", "x.other"])
    site = tmp_path / "site"
    render_site(build_report([("nightly.json", results)], catalogue), site)
    index = site / "index.html"

    browser.open(index.as_uri())
    m = browser.evaluate(MEASURE)
    assert m["scripts"] == 0
    assert m["names"] == [f"provider-{i:02d}" for i in range(15)], m
    assert m["scroll"] <= m["client"] and m["body"] <= m["client"], f"the page overflows horizontally: {m}"
    assert m["shown"] == 15, f"not every provider column is on screen at {WIDTH}×{HEIGHT}: {m}"
    assert min(m["widths"]) >= 60, m
    assert (m["stickyHead"], m["stickyFirst"]) == ("sticky", "sticky"), m

    # the screenshot a reader sees (kept where OAICOMPAT_SCREENSHOT says)
    wanted = os.environ.get("OAICOMPAT_SCREENSHOT")
    shot = Path(wanted) if wanted else tmp_path / "matrix.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    profile = tmp_path / "shot-profile"
    profile.mkdir()
    proc = subprocess.run([str(chromium), *FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars",
                           f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", index.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 20_000          # a rendered table, not a blank page


# -- XSS ----------------------------------------------------------------------------------------------

INSPECT = """(() => {
  const d = document;
  const active = d.querySelectorAll('script,img,svg,iframe,object,embed,video,audio,form,base').length;
  const handlers = [...d.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length;
  const links = [...d.querySelectorAll('[href],[src]')].map(e => e.getAttribute('href') ?? e.getAttribute('src'));
  const unsafe = links.filter(h => { const p = new URL(h, location.href).protocol;
                                     return !['http:', 'https:', 'file:'].includes(p); });
  return {marker: d.documentElement.getAttribute('data-xss'), active, handlers, unsafe, text: d.body.innerText};
})()"""


def test_no_payload_runs_anywhere_and_vendor_text_shows_as_text(browser: Browser, tmp_path: Path,
                                                                 catalogue: Catalogue) -> None:
    site = tmp_path / "site"
    render_site(build_report([("evil.json", xss_results())], catalogue), site)
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 8

    # the detector works: the same payloads, deliberately unescaped, do run in this Chromium
    control = tmp_path / "control.html"
    control.write_text(f"<!doctype html><title>control</title><body><p>{XSS_SCRIPT}</p><p>x{XSS_IMG}</p>",
                       encoding="utf-8")
    browser.open(control.as_uri())
    assert browser.evaluate(INSPECT)["marker"] in ("script", "img")

    texts: dict[str, str] = {}
    # as published, then with the pages' Content-Security-Policy bypassed: escaping alone must hold
    for bypass in (False, True):
        browser.send("Page.setBypassCSP", {"enabled": bypass}, session=True)
        for page in pages:
            browser.open(page.as_uri())
            seen = browser.evaluate(INSPECT)
            where = f"{page.relative_to(site)} (CSP {'bypassed' if bypass else 'on'})"
            assert seen["marker"] is None, f"a payload ran in {where}"
            assert seen["active"] == 0 and seen["handlers"] == 0, (where, seen)
            assert seen["unsafe"] == [], (where, seen["unsafe"])
            texts[str(page.relative_to(site))] = seen["text"]
    evil = texts["providers/evil.html"]
    assert XSS_SCRIPT in evil and XSS_IMG.strip('"') in evil     # the payload is on the page, as text
    assert "javascript:document" in evil                          # shown, never linked
    assert "<script>" in texts["index.html"]
