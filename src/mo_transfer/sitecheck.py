"""Browser check of the built book: open every page in headless Chromium, fail on JavaScript errors or on a page
whose plotly figures or nglview widgets did not render, and save a screenshot of each page.

Static checks (tests/test_site.py) prove the right bytes are in the HTML; this proves a browser turns them into
figures, offline, from ``file://`` (no server, no network). Run: ``python -m mo_transfer.sitecheck _build/html``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Flags that make Debian's chromium work headless in a container without a GPU or a network (see stack.md).
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-background-networking",
    "--disable-component-update", "--disable-quic", "--disable-sync", "--no-first-run", "--window-size=1200,2600",
    "--enable-logging=stderr", "--v=0",
)
#: Console messages that are errors of the page itself (uncaught exceptions, failed loads, widget errors).
ERROR_PATTERNS: tuple[str, ...] = (r"Uncaught", r"Failed to load resource", r"Error displaying widget",
                                   r"Could not (?:create|instantiate|render)", r"is not defined")
CONSOLE_RE = re.compile(r':INFO:CONSOLE[^\]]*\] "(?P<msg>.*)", source: (?P<src>\S*)')


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

    @property
    def problems(self) -> list[str]:
        out = [f"JavaScript error: {e}" for e in self.errors]
        if self.plotly_rendered < self.expected.plotly_figures:
            out.append(f"{self.expected.plotly_figures} plotly figures in the HTML, {self.plotly_rendered} rendered")
        if self.expected.nglview and self.webgl_canvases == 0:
            out.append("nglview widget embedded but no WebGL canvas rendered")
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


def console_errors(log: str) -> list[str]:
    """The page's own console errors in chromium's stderr log (browser-internal noise such as D-Bus is ignored)."""
    out = []
    for m in CONSOLE_RE.finditer(log):
        msg = m.group("msg")
        if any(re.search(p, msg) for p in ERROR_PATTERNS):
            out.append(f"{msg} ({Path(m.group('src')).name})")
    return out


def _chromium(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout_s)


def check_page(path: Path, root: Path, screenshots: Path | None, budget_ms: int = 20000,
               timeout_s: float = 180) -> PageResult:
    """Open one page, let its scripts run for ``budget_ms`` of virtual time, and check what was drawn."""
    url = path.resolve().as_uri()
    exp = expectation(path.read_text(errors="replace"))
    run = _chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout_s)
    plotly, canvases = rendered_counts(run.stdout)
    res = PageResult(str(path.relative_to(root)), exp, plotly, canvases, console_errors(run.stderr))
    if run.returncode != 0 and not run.stdout:
        res.errors.append(f"chromium exited {run.returncode}: {run.stderr[-300:]}")
    if screenshots is not None:
        shot = screenshots / (str(path.relative_to(root)).replace("/", "__").removesuffix(".html") + ".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        _chromium([f"--virtual-time-budget={budget_ms}", f"--screenshot={shot}", url], timeout_s)
        res.screenshot = str(shot) if shot.exists() else None
    return res


def book_pages(html_root: Path) -> list[Path]:
    """The book's content pages (index, chapters, notebooks), not Sphinx's search/genindex pages."""
    skip = {"search.html", "genindex.html", "py-modindex.html"}
    return sorted(p for p in html_root.rglob("*.html")
                  if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)


def check_site(html_root: str | Path, screenshots: str | Path | None = None) -> list[PageResult]:
    """Check every page of a built book; returns one result per page."""
    root = Path(html_root)
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"{root / 'index.html'} not found: build the book first (make html)")
    shots = Path(screenshots) if screenshots is not None else None
    return [check_page(p, root, shots) for p in book_pages(root)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mo_transfer.sitecheck", description=__doc__)
    p.add_argument("html", nargs="?", default="_build/html")
    p.add_argument("--screenshots", default="_build/screenshots")
    p.add_argument("--report", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    results = check_site(args.html, args.screenshots)
    bad = 0
    for r in results:
        status = "ok" if not r.problems else "FAIL"
        print(f"{status:4} {r.page}: plotly {r.plotly_rendered}/{r.expected.plotly_figures}, "
              f"WebGL canvases {r.webgl_canvases}{' (nglview)' if r.expected.nglview else ''}")
        for prob in r.problems:
            print(f"     {prob}")
        bad += bool(r.problems)
    if args.report:
        Path(args.report).write_text(json.dumps([asdict(r) | {"problems": r.problems} for r in results], indent=1))
    print(f"{len(results) - bad}/{len(results)} pages ok; screenshots in {args.screenshots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
