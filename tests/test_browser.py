"""The built book as a reader sees it: every page loaded in headless Chromium, offline.

The built HTML (``_build/html``, or ``$MBC_BOOK_HTML``) is served on 127.0.0.1 and each
page of the TOC is opened in Debian's ``chromium`` (driven by ``chromedriver`` through
Selenium) with every other host unreachable — a reader on a train. Per page: it loads
(HTTP 200, not an error title), no SEVERE console error and no failed request from the
local server, every image is local and decodes, MathJax (served from ``_static``) has
typeset every formula, chapters have figures and a static explorer whose sliders swap
the frame, notebook pages have the Colab launch link of their own notebook, and every
internal link (and ``#anchor``) resolves. A first test proves the network is really off;
a last one keeps full-width screenshots of two chapters in ``artifacts/screenshots/``
(not committed).

Skipped when Chromium, chromedriver or Selenium is missing, unless ``MBC_REQUIRE_BROWSER=1``
(set by ``.ci/run``); skipped when the book is not built, unless ``MBC_REQUIRE_BUILT_BOOK=1``.
"""
from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
from bookutil import HTML, ROOT, built, colab_url, toc_files, toc_root

CHROMIUM = os.environ.get("MBC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("MBC_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
WIDTH = 1280
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# what a reader's browser could fetch if it were online; each must fail inside the test browser
EXTERNAL_PROBES = [
    "https://example.com/",
    "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js",
    "https://unpkg.com/@jupyter-widgets/html-manager@^1.0.1/dist/embed-amd.js",
    "http://1.1.1.1/",
]
# console errors of the book's toolchain itself, not of the course: tolerated, counted in the summary
KNOWN_UPSTREAM_ERRORS = {
    # sphinx-thebe 0.3.1 (Jupyter Book 1.x) inserts its inline config script twice; the
    # second `const` fails, the first stands, and thebe (a live kernel, online only) is unused
    "Identifier 'THEBE_JS_URL' has already been declared": "sphinx-thebe's config script is included twice",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--mute-audio",
    f"--window-size={WIDTH},1000",
    # the network is off: no host but the local one resolves, and anything else (an IP
    # literal included) goes to a proxy that is not there; loopback bypasses the proxy
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=localhost;127.0.0.1",
]


def _pages() -> list[tuple[str, str | None]]:
    """(html path relative to the book, source file relative to the repo) for the landing page and the TOC."""
    out: list[tuple[str, str | None]] = [("index.html", None)]
    for entry in [toc_root(), *toc_files()]:
        sources = sorted(p for p in ROOT.glob(entry + ".*") if p.suffix in (".ipynb", ".md", ".rst"))
        out.append((entry + ".html", sources[0].relative_to(ROOT).as_posix() if sources else None))
    return out


PAGES = _pages()
_BOOK_CHAPTERS = [e.split("/", 1)[1] for e in toc_files() if e.startswith("notebooks/")]
SHOT_CHAPTERS = sorted({_BOOK_CHAPTERS[0], _BOOK_CHAPTERS[-1]}) if _BOOK_CHAPTERS else []  # first and last in the TOC
_REPORT: list[str] = []  # lines for the terminal summary (screenshots, blocked external requests)
_TOLERATED: dict[str, int] = {}  # known upstream console error -> pages it appeared on


class _Summary:
    """A plugin, registered by the module, that prints what the browser test kept and saw."""

    def pytest_terminal_summary(self, terminalreporter):
        if _REPORT:
            terminalreporter.write_sep("-", "browser test (tests/test_browser.py)")
            for line in _REPORT:
                terminalreporter.write_line(line)
            for pattern, pages in _TOLERATED.items():
                terminalreporter.write_line(f"tolerated upstream console error on {pages} pages: {pattern} "
                                            f"({KNOWN_UPSTREAM_ERRORS[pattern]})")


# -- fixtures ---------------------------------------------------------------------------


def _need_browser():
    """Selenium's webdriver module, or skip (fail under MBC_REQUIRE_BROWSER=1) with the reason."""
    tools = (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
    missing = [name for name, path in tools if not os.access(path, os.X_OK)]
    try:
        from selenium import webdriver  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        msg = f"the browser test needs {', '.join(missing)}"
        if os.environ.get("MBC_REQUIRE_BROWSER") == "1":
            pytest.fail(msg + ": `apt-get install chromium chromium-driver` and `pip install selenium`")
        pytest.skip(msg + " (apt-get install chromium chromium-driver)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    failures: list[tuple[int, str]]


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet; failed requests are recorded instead
        pass

    def send_error(self, code, message=None, explain=None):
        self.server.failures.append((code, self.path))
        super().send_error(code, message, explain)


@pytest.fixture(scope="module")
def server(request):
    built()
    _need_browser()
    request.config.pluginmanager.register(_Summary(), "mbc-browser-summary")
    httpd = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(HTML)))
    httpd.failures = []
    thread = threading.Thread(target=httpd.serve_forever, name="book-http", daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM  # with both paths given, selenium-manager is never asked
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


# -- helpers ----------------------------------------------------------------------------


def _wait(driver, predicate, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))
    except Exception as exc:  # TimeoutException, or a script error while the page settles
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from exc


def _load(driver, url: str):
    driver.get(url)
    _wait(driver, lambda d: d.execute_script("return document.readyState") == "complete", 60, f"{url} to load")


def _is_local(url: str) -> bool:
    return urlsplit(url).hostname in LOCAL_HOSTS


def _console(driver) -> tuple[list[str], list[str]]:
    """SEVERE console entries since the last call: (about local resources or scripts, about external URLs)."""
    local, external = [], []
    for entry in driver.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        msg = entry["message"]
        known = next((k for k in KNOWN_UPSTREAM_ERRORS if k in msg), None)
        if known:
            _TOLERATED[known] = _TOLERATED.get(known, 0) + 1
            continue
        urls = re.findall(r"(?:https?|wss?)://[^\s\"')]+", msg)
        if urls and not _is_local(urls[0]):
            external.append(msg)
        else:
            local.append(msg)
    return local, external


@functools.cache
def _fetch(url: str) -> tuple[int, str]:
    """(HTTP status, body if HTML) of a local URL, once per URL."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, body.decode("utf-8", "replace") if "html" in kind else ""
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@functools.cache
def _anchors(url: str) -> frozenset[str]:
    html = _fetch(url)[1]
    return frozenset(unquote(m) for m in re.findall(r"""\s(?:id|name)=["']([^"']+)["']""", html))


def _imgs_settled(driver) -> bool:
    return driver.execute_script("return Array.from(document.images).every(i => i.complete)")


_BROKEN_IMGS = """return Array.from(document.images)
  .filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => (i.getAttribute('src') || '(no src)').slice(0, 120));"""
_EXTERNAL_IMGS = """return Array.from(document.images).map(i => i.currentSrc || i.src)
  .filter(s => !s.startsWith('data:') && !s.startsWith(location.origin)).map(s => s.slice(0, 120));"""
_UNTYPESET_WHERE = """return Array.from(document.querySelectorAll('.math'))
  .filter(e => !e.querySelector('mjx-container'))
  .map(e => (e.closest('nav, .bd-sidebar-primary') ? 'in the navigation: ' : '') + e.textContent.trim().slice(0, 60));"""
_LINKS = """return Array.from(document.querySelectorAll('a[href]')).map(a => [a.getAttribute('href'), a.href]);"""
_FIGURES = """return Array.from(document.querySelectorAll('.cell_output img, figure img'))
  .filter(i => i.complete && i.naturalWidth > 0).length;"""


def _mathjax_ready(driver) -> str:
    """'ok' once MathJax (a deferred script, run before the load event) has typeset the page,
    'absent' when the page does not load it, else the error."""
    return driver.execute_async_script("""const done = arguments[arguments.length - 1];
        if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) { done('absent'); return; }
        MathJax.startup.promise.then(() => done('ok'), e => done('error: ' + e));""")


def _scrub(driver) -> tuple[int, list[str]]:
    """Drag every slider of every static explorer to its end (keyboard, like a reader) and back.

    Returns (number of sliders moved, problems)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    moved, problems = 0, []
    for root in driver.find_elements(By.CSS_SELECTOR, ".mbc-explorer"):
        rid = root.get_attribute("id")
        img = root.find_element(By.CSS_SELECTOR, "img.mbc-explorer-frame")
        for slider in root.find_elements(By.CSS_SELECTOR, "input[type=range][data-param]"):
            param = slider.get_attribute("data-param")
            if int(slider.get_attribute("max")) == 0:
                continue  # a single value: nothing to scrub
            label = root.find_element(By.CSS_SELECTOR, f'b[data-value="{param}"]')
            before, before_label = img.get_attribute("src"), label.text
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", slider)
            slider.send_keys(Keys.END)
            after, after_label = img.get_attribute("src"), label.text
            if slider.get_attribute("value") != slider.get_attribute("max"):
                problems.append(f"{rid}: slider {param!r} did not move")
            elif after == before:
                problems.append(f"{rid}: moving {param!r} to its end did not change the figure")
            elif after_label == before_label:
                problems.append(f"{rid}: moving {param!r} did not update its value label")
            else:
                ok = driver.execute_script("var i = arguments[0]; return i.complete && i.naturalWidth > 0;", img)
                if not ok:
                    problems.append(f"{rid}: the frame for {param!r} at its end does not decode")
            slider.send_keys(Keys.HOME)
            if img.get_attribute("src") != before:
                problems.append(f"{rid}: moving {param!r} back did not restore the first frame")
            moved += 1
    return moved, problems


# -- tests ------------------------------------------------------------------------------


def test_the_browser_is_offline(server, browser):
    """The sanity check of the setting: the local server answers, anything else fails."""
    _load(browser, server.base + "index.html")
    results = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        Promise.all(arguments[0].map(u => fetch(u, {mode: 'no-cors', cache: 'no-store'})
            .then(() => [u, 'fetched'], e => [u, String(e)]))).then(done);""",
        [server.base + "index.html", *EXTERNAL_PROBES],
    )
    local, *external = results
    assert local[1] == "fetched", f"the local book server is not reachable from the browser: {local}"
    reached = [u for u, r in external if r == "fetched"]
    assert not reached, f"the test browser reached the internet ({reached}): the offline setting does not hold"
    _console(browser)  # the probes' failures are logged; drop them
    _REPORT.append(f"network off: {len(external)} external probes failed in the browser as intended "
                   f"({', '.join(u for u, _ in external)})")


@pytest.mark.parametrize("page,source", PAGES, ids=[p for p, _ in PAGES])
def test_page_as_a_reader_sees_it(server, browser, page, source):
    assert (HTML / page).exists(), f"{page} was not built"
    server.failures.clear()
    _console(browser)
    url = server.base + page
    _load(browser, url)
    if page == "index.html":  # the landing page forwards to the book's first page
        target = server.base + toc_root() + ".html"
        _wait(browser, lambda d: d.current_url == target and
              d.execute_script("return document.readyState") == "complete", 20, f"index.html to forward to {target}")
        url = target
    problems: list[str] = []

    status = browser.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")
    if status not in (200, None):
        problems.append(f"HTTP {status}")
    title = browser.title
    if not title or re.search(r"\b(404|error|not found)\b", title, re.I):
        problems.append(f"error title {title!r}")

    _wait(browser, _imgs_settled, 30, "the images to load")
    broken = browser.execute_script(_BROKEN_IMGS)
    if broken:
        problems.append(f"{len(broken)} images do not load: {broken[:5]}")
    remote = browser.execute_script(_EXTERNAL_IMGS)
    if remote:
        problems.append(f"images from outside the book (absent offline): {remote[:5]}")

    n_math = browser.execute_script("return document.querySelectorAll('.math').length")
    if n_math:
        mathjax = _mathjax_ready(browser)
        left = browser.execute_script(_UNTYPESET_WHERE)
        script = browser.execute_script(
            "var s = document.querySelector('script[src*=\"mathjax\" i], script[src*=\"tex-chtml\"]'); return s && s.src")
        if mathjax == "absent" and script:
            problems.append(f"MathJax ({script}) did not start, so {len(left)} formulas show as raw TeX: {left[:3]}")
        elif mathjax == "absent":
            problems.append(f"the page does not load MathJax, so {len(left)} formulas show as raw TeX: {left[:3]}"
                            " (Sphinx adds MathJax only to pages with math in their body; math in a title"
                            " reaches every page's navigation)")
        elif mathjax != "ok" or left:
            problems.append(f"MathJax ({mathjax}) did not typeset {len(left)} of {n_math} formulas: {left[:3]}")
        errors = browser.execute_script("""return Array.from(document.querySelectorAll('mjx-merror'))
            .map(e => e.getAttribute('data-mjx-error') || e.textContent)""")
        if errors:
            problems.append(f"TeX errors on the page: {errors[:5]}")

    views, state = browser.execute_script("""return [
        document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
        document.querySelectorAll('script[type="application/vnd.jupyter.widget-state+json"]').length];""")
    if views and not state:
        problems.append(f"{views} widget views without their embedded widget state (blank offline and on the web)")
    if page.startswith("notebooks/"):
        figures = browser.execute_script(_FIGURES)
        if figures < 1:
            problems.append("a chapter without a figure")
        if not browser.execute_script("return document.querySelectorAll('.mbc-explorer img.mbc-explorer-frame').length;"):
            problems.append("no static explorer (the scrubbable figure) on a chapter")
    moved, scrub_problems = _scrub(browser)
    problems += scrub_problems
    if page.startswith("notebooks/") and not moved:
        problems.append("no explorer slider to scrub on a chapter")

    colab = sorted(set(browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href*=\"colab.research.google.com\"]')).map(a => a.href)")))
    if source and source.endswith(".ipynb"):
        if colab != [colab_url(source)]:
            problems.append(f"Colab launch link {colab}, expected [{colab_url(source)}]")
    elif colab:
        problems.append(f"a Colab launch link on a page that is not a notebook: {colab}")

    # what the browser asked of the local server and did not get (the link checks below add their own)
    problems += [f"local server answered {code} to {path}"
                 for code, path in server.failures if not path.endswith("favicon.ico")]
    here = urldefrag(url)[0]
    for raw, absolute in browser.execute_script(_LINKS):
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not _is_local(absolute):
            continue  # mailto:, javascript:, and links out of the book
        target, fragment = urldefrag(absolute)
        if target != here:
            status = _fetch(target)[0]
            if status != 200:
                problems.append(f"broken link {raw!r} (HTTP {status})")
                continue
        fragment = unquote(fragment)
        if not fragment:
            continue
        if target == here:
            found = browser.execute_script(
                "return !!(document.getElementById(arguments[0]) || document.getElementsByName(arguments[0]).length)",
                fragment)
        else:
            found = fragment in _anchors(target)
        if not found:
            problems.append(f"broken anchor {raw!r}")

    local_errors, external = _console(browser)
    problems += [f"console: {m}" for m in local_errors]
    if external:
        _REPORT.append(f"{page}: blocked external requests (offline, as intended): "
                       + "; ".join(m[:160] for m in external))
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("chapter", SHOT_CHAPTERS)
def test_screenshot_of_a_chapter(server, browser, chapter):
    """Full-page, 1280-px-wide screenshots of two chapters, kept as artifacts (not committed)."""
    page = f"notebooks/{chapter}.html"
    assert (HTML / page).exists(), f"{page} was not built"
    _load(browser, server.base + page)
    _wait(browser, _imgs_settled, 30, "the images to load")
    _mathjax_ready(browser)
    # lay the whole page out in one 1280-px-wide viewport as tall as the page, then capture it
    height = 0
    for _ in range(3):  # the layout may grow once the viewport is tall (sticky sidebars)
        new = min(int(browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]), 16000)
        if new == height:
            break
        height = new
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(0.3)
    try:
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    data = base64.b64decode(shot["data"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, "the screenshot is empty"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / f"{chapter}.png"
    out.write_bytes(data)
    _console(browser)
    _REPORT.append(f"screenshot: {out.relative_to(ROOT)} ({WIDTH}x{height}, {len(data) // 1024} KiB)")
