"""Browser check of the built book: open every page in headless Chromium with the network cut off, and fail a page
on a JavaScript error, on plotly figures or nglview widgets that did not render, on any request that leaves the
site, on TeX left unrendered in its visible text, on plotly text drawn over other text or cut off, and on tables
or figures that run off the content column without scrolling in their own box. A full-page screenshot of each
page is saved to look at.

Static checks (tests/test_site.py) prove the right bytes are in the HTML; this proves a browser turns them into
figures, offline, from ``file://`` (no server, no network). Chromium is driven through its DevTools pipe
(:mod:`mo_transfer.cdp`); what is measured in the page is judged by :mod:`mo_transfer.sitelayout`.
Run: ``python -m mo_transfer.sitecheck _build/html``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from . import cdp, sitelayout

#: Flags that make Debian's chromium work headless in a container without a GPU, and cut it off from the network:
#: every host name fails to resolve, so a page that needs the network shows it (see stack.md).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--disable-sync", "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-features=MediaRouter,OptimizationHints,Translate",
)
#: Viewport width of the check and of the screenshots (CSS pixels): a laptop screen, both sidebars of the theme.
WIDTH = 1280
#: Console messages that are errors of the page itself (uncaught exceptions, failed loads, widget errors).
ERROR_PATTERNS: tuple[str, ...] = (r"Uncaught", r"Failed to load resource", r"Error displaying widget",
                                   r"Could not (?:create|instantiate|render)", r"is not defined")
#: URL schemes that stay on this machine.
LOCAL_SCHEMES: frozenset[str] = frozenset({"file", "data", "blob", "about", "chrome", "devtools"})


@dataclass
class PageExpectation:
    """What a page's HTML promises: how many plotly figures, whether an nglview widget is embedded."""

    plotly_figures: int
    nglview: bool


@dataclass
class PageResult:
    """What the browser made of one page."""

    page: str
    expected: PageExpectation
    plotly_rendered: int
    webgl_canvases: int
    errors: list[str] = field(default_factory=list)
    screenshot: str | None = None
    external_requests: list[str] = field(default_factory=list)
    layout: list[str] = field(default_factory=list)  # raw TeX, overlapping or cut-off text, too-wide content

    @property
    def problems(self) -> list[str]:
        out = [f"JavaScript error: {e}" for e in self.errors]
        if self.plotly_rendered < self.expected.plotly_figures:
            out.append(f"{self.expected.plotly_figures} plotly figures in the HTML, {self.plotly_rendered} rendered")
        if self.expected.nglview and self.webgl_canvases == 0:
            out.append("nglview widget embedded but no WebGL canvas rendered")
        out += [f"request leaves the site: {u}" for u in self.external_requests]
        out += self.layout
        return out


def find_chromium() -> str:
    """Path of a Chromium binary; a clear error when none is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no chromium found on PATH: install Debian's `chromium` (make browser-deps)")


def expectation(html: str) -> PageExpectation:
    """Figures a page's static HTML contains: plotly graph divs and embedded nglview widget state."""
    n_plotly = len(re.findall(r'<div id="[^"]+" class="plotly-graph-div"', html))
    return PageExpectation(plotly_figures=n_plotly, nglview='"NGLModel"' in html)


def rendered_counts(dom: str) -> tuple[int, int]:
    """(plotly figures drawn, WebGL canvases) in a DOM dumped after the page's scripts ran."""
    plotly = len(re.findall(r'class="plotly-graph-div[^"]*js-plotly-plot', dom)) or \
        len(re.findall(r'class="[^"]*js-plotly-plot', dom))
    canvases = len(re.findall(r'<canvas data-engine="three\.js', dom))
    return plotly, canvases


def is_page_error(message: str) -> bool:
    """True for a console message that is an error of the page (not browser-internal noise)."""
    return any(re.search(p, message) for p in ERROR_PATTERNS)


def external_requests(events: list[dict]) -> list[str]:
    """URLs of the requests in DevTools events that would leave this machine (http, https, ws, ...)."""
    out = []
    for e in events:
        if e.get("method") == "Network.requestWillBeSent":
            url = e["params"]["request"]["url"]
            if urlparse(url).scheme not in LOCAL_SCHEMES and url not in out:
                out.append(url)
    return out


def page_errors(events: list[dict]) -> list[str]:
    """Uncaught exceptions, console errors and failed loads reported by the page, from DevTools events."""
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            msg = (d.get("exception") or {}).get("description") or d.get("text", "exception")
            out.append(f"Uncaught {msg.splitlines()[0]} ({Path(d.get('url', '')).name})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            if is_page_error(text) or params.get("type") == "assert":
                out.append(text[:300])
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            out.append(f"{entry.get('text', '')[:300]} ({entry.get('url', '')})")
    return list(dict.fromkeys(out))


#: True once the page has settled: loaded, MathJax done, the expected plotly figures and WebGL canvases drawn.
_READY_JS = """(async () => {
  if (document.readyState !== 'complete') { return false; }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const plots = document.querySelectorAll('.js-plotly-plot').length;
  const canvases = document.querySelectorAll('canvas[data-engine^="three.js"]').length;
  return plots >= %d && (!%s || canvases > 0);
})()"""


def check_page(browser: cdp.Browser, path: Path, root: Path, screenshots: Path | None,
               settle_s: float = 60.0) -> PageResult:
    """Open one page, wait until it has drawn what it promises (at most ``settle_s``), then measure and judge it."""
    url = path.resolve().as_uri()
    exp = expectation(path.read_text(errors="replace"))
    browser.events.clear()
    session = browser.new_page(WIDTH, 1000)
    browser.send("Page.navigate", {"url": url}, session=session)
    deadline = time.monotonic() + settle_s
    ready_js = _READY_JS % (exp.plotly_figures, "true" if exp.nglview else "false")
    while time.monotonic() < deadline:
        browser.drain(0.5)
        try:
            if browser.evaluate(session, ready_js, timeout_s=30):
                break
        except cdp.CDPError:
            pass  # navigating: no context to evaluate in yet
    browser.drain(2.0)  # widgets fit their view 300 ms after display; late requests and errors arrive here
    dom = browser.evaluate(session, "document.documentElement.outerHTML") or ""
    plotly, canvases = rendered_counts(dom)
    probe = browser.evaluate(session, sitelayout.PROBE_JS) or {}
    layout = [f"raw TeX in the text: ...{s}..." for s in sitelayout.raw_tex(probe.get("text", ""))]
    layout += sitelayout.figure_problems(probe.get("figures", []))
    layout += sitelayout.width_problems(probe.get("wide", []))
    layout += sitelayout.hidden_text_problems(probe.get("hidden", []))
    res = PageResult(str(path.relative_to(root)), exp, plotly, canvases, page_errors(browser.events),
                     external_requests=external_requests(browser.events), layout=layout)
    if screenshots is not None:
        shot = screenshots / (str(path.relative_to(root)).replace("/", "__").removesuffix(".html") + ".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(browser.full_page_png(session, WIDTH))
        res.screenshot = str(shot)
    return res


def book_pages(html_root: Path) -> list[Path]:
    """The book's content pages (index, chapters, notebooks), not Sphinx's search/genindex pages."""
    skip = {"search.html", "genindex.html", "py-modindex.html"}
    return sorted(p for p in html_root.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def check_site(html_root: str | Path, screenshots: str | Path | None = None,
               pages: list[str] | None = None) -> list[PageResult]:
    """Check every page of a built book (or the named ones, paths relative to ``html_root``); one result per page."""
    root = Path(html_root)
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"{root / 'index.html'} not found: build the book first (make html)")
    shots = Path(screenshots) if screenshots is not None else None
    todo = book_pages(root) if not pages else [root / p for p in pages]
    for p in todo:
        if not p.is_file():
            raise FileNotFoundError(f"{p} is not a page of the built book")
    results = []
    for p in todo:
        with cdp.Browser(find_chromium(), CHROMIUM_FLAGS) as browser:  # a fresh browser per page: no shared state
            try:
                results.append(check_page(browser, p, root, shots))
            except cdp.CDPError as err:
                results.append(PageResult(str(p.relative_to(root)), expectation(p.read_text(errors="replace")),
                                          0, 0, [f"browser failed: {err}"]))
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.sitecheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("html", nargs="?", default="_build/html")
    p.add_argument("--screenshots", default="_build/screenshots", help="full-page screenshots go here")
    p.add_argument("--report", default=None, help="write the results as JSON here")
    p.add_argument("--page", action="append", default=None,
                   help="check only this page (path relative to the site, e.g. notebooks/03_iid.html); repeatable")
    args = p.parse_args(argv)
    try:
        results = check_site(args.html, args.screenshots, args.page)
    except FileNotFoundError as err:
        print(f"sitecheck: {err}", file=sys.stderr)
        return 2
    bad = 0
    for r in results:
        status = "ok" if not r.problems else "FAIL"
        print(f"{status:4} {r.page}: plotly {r.plotly_rendered}/{r.expected.plotly_figures}, "
              f"WebGL canvases {r.webgl_canvases}{' (nglview)' if r.expected.nglview else ''}")
        for prob in r.problems:
            print(f"     {r.page}: {prob}")
        bad += bool(r.problems)
    if args.report:
        Path(args.report).write_text(json.dumps([asdict(r) | {"problems": r.problems} for r in results], indent=1))
    print(f"{len(results) - bad}/{len(results)} pages ok; full-page screenshots in {args.screenshots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
