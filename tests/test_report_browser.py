"""The report as a person sees it: real headless Chromium (Debian's /usr/bin/chromium). The report has no JavaScript.

Chromium is installed by scripts/install-chromium.sh when missing; the tests skip only if that install (apt)
fails. Pages are driven over the DevTools protocol on --remote-debugging-pipe (stdlib only: no sockets, no extra
packages): the test evaluates its measurements in the loaded page; the page itself carries no script.
Set OAICOMPAT_SCREENSHOT=path to keep the 1366×768 screenshot of the check matrix, and
OAICOMPAT_FRONT_SCREENSHOT=path for the front page's quirk matrix. (The README's screenshots in docs/img/ are of
the published report: see the README's Reports section.)
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


def test_check_matrix_of_15_providers_fits_a_1366_pixel_screen(chromium: Path, browser: Browser, tmp_path: Path,
                                                               catalogue: Catalogue) -> None:
    results = synthetic_results(15, 60, quirk_ids=["chat.object-wrong", "chat.usage-missing", "x.other"])
    site = tmp_path / "site"
    render_site(build_report([("nightly.json", results)], catalogue), site)
    index = site / "checks.html"

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


# -- the front page: quirk matrix ----------------------------------------------------------------------

LONG_QUIRK = "context.overflow-nonstandard-error-with-extra-keys"
FRONT_QUIRKS = ["chat.object-wrong", "chat.usage-missing", LONG_QUIRK, "stream.created-changes", "tools.parallel-not-made",
                "errors.code-type-mismatch", "json.schema-ignored", "models.retrieve-unsupported"]


def wide_results() -> dict[str, Any]:
    """14 providers (5 local, 4 gateways, 5 hosted); two gateways have 10 and 6 models: 28 quirk-matrix columns,
    23 of them local or gateway."""
    doc = synthetic_results(14, 70, quirk_ids=FRONT_QUIRKS)
    extra = {"provider-02": 10, "provider-05": 6}
    records = []
    for rec in doc["records"]:
        for i in range(extra.get(rec["provider"], 1)):
            copy = json.loads(json.dumps(rec))
            if i:
                copy["model"] = f"org-{i}/a-rather-long-model-name-{i}-instruct"
                copy["test"] = copy["test"].replace("]", f"-{i}]")
            records.append(copy)
    for name, n in extra.items():
        doc["providers"][name]["models"] += [f"org-{i}/a-rather-long-model-name-{i}-instruct" for i in range(1, n)]
    doc["records"] = records
    return doc


FRONT = """(() => {
  const root = document.scrollingElement;
  const tables = [...document.querySelectorAll('table.qm')].map(t => {
    const b = t.getBoundingClientRect();
    return {caption: t.previousElementSibling.id, left: b.left, right: b.right,
            columns: t.querySelectorAll('tbody tr:not(.area)')[0].querySelectorAll('td').length};
  });
  // an inner scroll box: any element other than the page itself whose content overflows a clipping box
  const boxes = [...document.querySelectorAll('body *')].filter(e => {
    const s = getComputedStyle(e);
    const clips = ['auto', 'scroll', 'hidden'];
    return (clips.includes(s.overflowX) && e.scrollWidth > e.clientWidth + 1) ||
           (clips.includes(s.overflowY) && e.scrollHeight > e.clientHeight + 1);
  }).map(e => e.tagName + '.' + e.className);
  const words = [...document.querySelectorAll('table.qm td a:first-child')].map(a => a.textContent);
  const rotated = [...document.querySelectorAll('table.qm th.rot')];
  return {scroll: root.scrollWidth, inner: innerWidth, tables, boxes, words: [...new Set(words)],
          untitled: rotated.filter(th => !th.title).length, rotated: rotated.length,
          legend: [...document.querySelectorAll('#columns ~ table td:nth-child(2)')].length,
          scripts: document.scripts.length};
})()"""

# every word that the layout broke across lines between two letters or digits (a run of non-space characters in one
# text node; a break after a dot, a hyphen, a slash or other punctuation is a break between words of an id or of
# JSON, which is allowed)
BREAKS = r"""(() => {
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node, words = 0;
  while ((node = walker.nextNode())) {
    const text = node.textContent, re = /\S+/g;
    let m;
    while ((m = re.exec(text))) {
      words++;
      const range = document.createRange();
      range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
      const rects = [...range.getClientRects()].filter(r => r.width > 0 && r.height > 0);
      if (rects.length < 2) continue;
      const place = i => { const r = document.createRange(); r.setStart(node, m.index + i); r.setEnd(node, m.index + i + 1);
                           const b = r.getClientRects()[0]; return b ? [Math.round(b.top), Math.round(b.left)] : null; };
      let prev = place(0);
      for (let i = 1; i < m[0].length; i++) {
        const p = place(i);
        if (!p || !prev) { prev = p; continue; }
        if (Math.abs(p[0] - prev[0]) > 2 && p[1] <= prev[1]) {     // a new line starts at character i
          const inWord = c => /[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Nd}]/u.test(c);  // not CJK
          if (inWord(m[0][i - 1]) && inWord(m[0][i]))
            bad.push(m[0].slice(0, i) + '|' + m[0].slice(i));
          break;
        }
        prev = p;
      }
    }
  }
  return {bad, words};
})()"""


def shoot(chromium: Path, url: str, shot: Path, profile: Path) -> None:
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    profile.mkdir()
    proc = subprocess.run([str(chromium), *FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars",
                           f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert png_size(shot) == (WIDTH, HEIGHT)
    assert shot.stat().st_size > 20_000          # a rendered table, not a blank page


def test_quirk_matrix_front_page_fits_1366_pixels_without_a_scroll_box(chromium: Path, browser: Browser,
                                                                        tmp_path: Path, catalogue: Catalogue) -> None:
    site = tmp_path / "site"
    render_site(build_report([("nightly.json", wide_results())], catalogue), site)
    browser.open((site / "index.html").as_uri())
    m = browser.evaluate(FRONT)
    assert m["scripts"] == 0
    first = [t for t in m["tables"] if t["caption"].startswith("local")]
    assert sum(t["columns"] for t in first) == 23, m["tables"]
    assert sum(t["columns"] for t in m["tables"]) == 28, m["tables"]
    for t in first:                                   # the local and gateway providers: inside the viewport
        assert 0 <= t["left"] and t["right"] <= m["inner"], (t, m["inner"])
    assert m["scroll"] <= m["inner"], f"the page overflows horizontally at {WIDTH} px: {m}"
    assert m["boxes"] == [], f"inner scroll boxes: {m['boxes']}"
    assert set(m["words"]) <= {"seen", "expected", "documented", "not seen", "no evidence"} and len(m["words"]) >= 3, m
    assert m["rotated"] >= 28 and m["untitled"] == 0, m       # every rotated header has its full name on hover
    assert m["legend"] == 28, m                                  # … and in the column legend
    breaks = browser.evaluate(BREAKS)
    assert breaks["words"] > 500 and breaks["bad"] == [], breaks["bad"][:20]

    wanted = os.environ.get("OAICOMPAT_FRONT_SCREENSHOT")
    shoot(chromium, (site / "index.html").as_uri(), Path(wanted) if wanted else tmp_path / "front.png",
          tmp_path / "shot-profile")


def test_no_page_breaks_a_word_in_the_middle(browser: Browser, tmp_path: Path, catalogue: Catalogue) -> None:
    """Headers and cells wrap at spaces, dots and hyphens only, on every kind of page, at 1366 px."""
    control = tmp_path / "control.html"       # the detector works: a mid-word break is found, a hyphen break is not
    control.write_text('<!doctype html><body><p style="width:60px;word-break:break-all">abcdefghijklmnopqrstuvwxyz</p>'
                       '<p style="width:60px">stream-created-changes</p></body>', encoding="utf-8")
    browser.open(control.as_uri())
    found = browser.evaluate(BREAKS)["bad"]
    assert len(found) == 1 and found[0].startswith("abc") and "|" in found[0], found
    site = tmp_path / "site"
    render_site(build_report([("nightly.json", wide_results())], catalogue), site)
    pages = ["index.html", "checks.html", "providers/provider-02.html", "quirks/index.html",
             "quirks/chat.object-wrong.html", "docs/wire-rules.html"]
    for name in pages:
        if not (site / name).exists():
            continue
        browser.open((site / name).as_uri())
        breaks = browser.evaluate(BREAKS)
        assert breaks["words"] > 50 and breaks["bad"] == [], (name, breaks["bad"][:20])
    css = "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
    assert "break-all" not in css and "overflow-wrap:anywhere" not in css and "hyphens:auto" not in css


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
