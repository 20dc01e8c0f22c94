"""Static audit of the built book's HTML: everything a page loads must come from the site itself.

A page that renders offline loads no script, style sheet, font, image or frame from the network, and every local
file it loads exists in the built site. ``tests/test_site.py`` runs :func:`audit_page` on every page;
``mo_transfer.sitecheck`` then proves in a browser that nothing leaves the site at run time (inline scripts can
fetch URLs that no static reading finds). Links (``<a href>``) are navigation, not loads, and are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

#: ``<link rel=...>`` values whose ``href`` the browser fetches when the page loads.
LOADING_RELS: frozenset[str] = frozenset({"stylesheet", "preload", "modulepreload", "icon", "shortcut", "prefetch",
                                          "apple-touch-icon", "manifest"})
#: Elements whose ``src`` the browser fetches.
SRC_TAGS: frozenset[str] = frozenset({"script", "img", "iframe", "source", "video", "audio", "embed", "track",
                                      "input"})
#: ``url(...)`` and ``@import "..."`` in CSS (fonts, images, further style sheets).
CSS_URL_RE = re.compile(r"""url\(\s*['"]?([^'")\s]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""")


@dataclass
class Load:
    """One resource a page (or a style sheet it loads) asks the browser for."""

    url: str
    kind: str  # e.g. "script", "stylesheet", "font or image in <style>", "url() in _static/x.css"


@dataclass
class PageAudit:
    """The loads of one page and what is wrong with them."""

    page: str
    loads: list[Load] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _LoadParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.loads: list[Load] = []
        self._in_style = False
        self.style_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            if rels & LOADING_RELS:
                self.loads.append(Load(a["href"], "link rel=" + "/".join(sorted(rels))))
        elif tag in SRC_TAGS and a.get("src") and not (tag == "script" and a.get("type", "").startswith("text/x-")):
            self.loads.append(Load(a["src"], tag))
        if tag == "img" and a.get("srcset"):
            for part in a["srcset"].split(","):
                if part.strip():
                    self.loads.append(Load(part.split()[0], "img srcset"))
        if a.get("style"):
            self.loads += [Load(u, f"style attribute of <{tag}>") for u in css_urls(a["style"])]
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_text.append(data)


def css_urls(css: str) -> list[str]:
    """Every URL a piece of CSS refers to (``url(...)``, ``@import``), data: URIs left out."""
    out = []
    for m in CSS_URL_RE.finditer(css):
        url = m.group(1) or m.group(2)
        if not url.startswith(("data:", "#")):
            out.append(url)
    return out


def is_external(url: str) -> bool:
    """True when the browser would fetch ``url`` from the network (a scheme other than file/data, or ``//host``)."""
    parsed = urlparse(url)
    return bool(parsed.netloc) or parsed.scheme not in ("", "file", "data", "blob", "about")


def page_loads(html: str) -> list[Load]:
    """The resources one page's HTML asks for: script/img/iframe sources, loading links, CSS urls in the page."""
    parser = _LoadParser()
    parser.feed(html)
    loads = parser.loads
    loads += [Load(u, "url() in <style>") for u in css_urls("\n".join(parser.style_text))]
    return loads


def _local_file(url: str, base: Path) -> Path:
    return (base / unquote(urlparse(url).path)).resolve()


def audit_page(path: str | Path, root: str | Path) -> PageAudit:
    """Every load of a page, and of the local style sheets it links, checked: external ones and local files missing
    from the site are problems (``root`` is the site's top folder; pages and style sheets inside it)."""
    path, root = Path(path).resolve(), Path(root).resolve()
    audit = PageAudit(str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
    audit.loads = page_loads(path.read_text(errors="replace"))
    for load in list(audit.loads):
        if is_external(load.url):
            audit.problems.append(f"{load.kind} loads {load.url} from the network")
            continue
        if urlparse(load.url).scheme in ("data", "blob", "about") or not urlparse(load.url).path:
            continue
        local = _local_file(load.url, path.parent)
        if not local.is_file():
            audit.problems.append(f"{load.kind} {load.url} is not in the built site")
        elif local.suffix == ".css":
            for url in css_urls(local.read_text(errors="replace")):
                where = f"url() in {local.relative_to(root) if local.is_relative_to(root) else local}"
                if is_external(url):
                    audit.problems.append(f"{where} loads {url} from the network")
                elif urlparse(url).path and not _local_file(url, local.parent).is_file():
                    audit.problems.append(f"{where}: {url} is not in the built site")
    if 'class="math' in path.read_text(errors="replace") and not any(
            "mathjax" in load.url.lower() and load.kind == "script" and not is_external(load.url)
            for load in audit.loads):
        audit.problems.append("the page has equations but loads no local MathJax")
    return audit
