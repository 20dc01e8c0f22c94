"""Checks of the built book (`make html`): EVERY page loads nothing from the network (scripts, style sheets, fonts,
MathJax: all local copies present in the site), and notebook 1 embeds its nglview widget state and plotly figures
with require.js, the widget manager and nglview's JavaScript as local copies.

Skipped when the site has not been built; `make test` builds it before running this file."""

import json
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

from mo_transfer import siteaudit, sitecheck

ROOT = Path(__file__).resolve().parents[1]
# the site under test: the cpu book by default, the smoke build of `make test` through MO_TRANSFER_SITE
HTML = Path(os.environ.get("MO_TRANSFER_SITE", ROOT / "_build" / "html")).resolve()
PAGE = HTML / "notebooks" / "01_structures.html"
RENDERED_NB = Path(os.environ.get("MO_TRANSFER_BOOKSRC", ROOT / "_build" / "book-src")) / "notebooks" / \
    "01_structures.ipynb"
CDN_HOSTS = ("cdn.jsdelivr", "unpkg.com", "cdn.plot.ly", "cdnjs.cloudflare.com")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

pytestmark = pytest.mark.skipif(not (HTML / "index.html").is_file(),
                                reason="book not built: run `make notebooks PROFILE=smoke html` (make test does)")


PAGES = [str(p.relative_to(HTML)) for p in sitecheck.book_pages(HTML)] if (HTML / "index.html").is_file() else []


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_nothing_from_the_network(name):
    """Scripts, style sheets (and the fonts and images they name), images and frames of every page are local files
    of the built site; a page with equations loads the local MathJax (they rendered as raw TeX offline)."""
    audit = siteaudit.audit_page(HTML / name, HTML)
    assert not audit.problems, f"{name}: " + "; ".join(audit.problems)


def test_every_page_is_audited():
    names = set(PAGES)
    assert {"book/methods.html", "book/glossary.html", "book/intro.html", "notebooks/01_structures.html",
            "notebooks/02_dft_data.html"} <= names
    methods = (HTML / "book" / "methods.html").read_text()
    assert 'class="math' in methods and "vendor/mathjax/tex-mml-svg.js" in methods
    assert (HTML / "_static" / "vendor" / "mathjax" / "tex-mml-svg.js").stat().st_size > 1_000_000


@pytest.fixture(scope="module")
def page():
    assert PAGE.is_file(), f"{PAGE} missing: notebooks/01_structures is not in the built book"
    return PAGE.read_text()


def scripts(html):
    """(attributes, body) of every <script> element."""
    return re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)


def attr(attrs, name):
    m = re.search(rf'\b{name}="([^"]*)"', attrs)
    return m.group(1) if m else None


def is_plotly_bundle(body):
    return "plotly.js v" in body[:400]


def test_widget_state_is_embedded_with_nglview_models(page):
    states = [body for attrs, body in scripts(page) if attr(attrs, "type") == WIDGET_STATE]
    assert len(states) == 1
    models = json.loads(states[0])["state"]
    ngl = [m for m in models.values() if m["model_module"] == "nglview-js-widgets" and m["model_name"] == "NGLModel"]
    assert len(ngl) >= 2, "both host cells (BCC, FCC) are nglview widgets"
    for m in ngl:
        archive = m["state"]["_ngl_msg_archive"]
        assert any(msg["methodName"] == "loadFile" for msg in archive)
        assert any(msg["methodName"] == "addRepresentation" for msg in archive)
    views = [json.loads(body)["model_id"] for attrs, body in scripts(page) if attr(attrs, "type") == WIDGET_VIEW]
    assert views and set(views) <= set(models)
    assert {m_id for m_id, m in models.items() if m["model_name"] == "NGLModel"} <= set(views)


def test_plotly_figures_are_rendered_with_plotly_inlined(page):
    bundles = [body for _, body in scripts(page) if is_plotly_bundle(body)]
    assert len(bundles) == 1, "plotly.js is written into the page exactly once"
    nb = nbformat.read(RENDERED_NB, as_version=4)
    plotly_outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert plotly_outputs, "notebook 1 has plotly figures"
    assert all("text/html" in o["data"] for o in plotly_outputs), "every plotly output carries text/html"
    assert page.count('class="plotly-graph-div"') == len(plotly_outputs)
    assert page.count("Plotly.newPlot(") >= len(plotly_outputs)


def test_every_loaded_file_is_local_and_present(page):
    refs = [attr(a, "src") for a, _ in scripts(page) if attr(a, "src")]
    refs += re.findall(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"', page)
    refs += re.findall(r'<link[^>]*href="([^"]+)"[^>]*rel="stylesheet"', page)
    assert refs
    for ref in refs:
        url = urlparse(ref)
        assert not url.scheme and not url.netloc, f"page loads {ref} from the network"
        assert (PAGE.parent / url.path).resolve().is_file(), f"{ref} is not in the built site"


def test_widget_javascript_is_the_local_copy(page):
    srcs = [urlparse(attr(a, "src")).path for a, _ in scripts(page) if attr(a, "src")]
    order = [s for s in srcs if s.endswith(("vendor/require.js", "local-widgets-cdn.js", "vendor/embed-amd.js"))]
    assert order == ["../_static/vendor/require.js", "../_static/local-widgets-cdn.js",
                     "../_static/vendor/embed-amd.js"]
    embed = next(a for a, _ in scripts(page) if (attr(a, "src") or "").startswith("../_static/vendor/embed-amd.js"))
    assert attr(embed, "data-jupyter-widgets-cdn-only") == "true"
    assert attr(embed, "data-jupyter-widgets-cdn") is None  # the local shim sets it, absolute, at load time
    static = HTML / "_static"
    assert "requirejs" in (static / "vendor" / "require.js").read_text()[:2000].lower()
    assert "data-jupyter-widgets-cdn" in (static / "vendor" / "embed-amd.js").read_text()
    shim = (static / "local-widgets-cdn.js").read_text()
    assert 'new URL("vendor/npm/", me.src)' in shim
    # every widget module the page needs, other than those bundled in embed-amd.js, is in _static/vendor/npm
    state = json.loads(next(b for a, b in scripts(page) if attr(a, "type") == WIDGET_STATE))["state"]
    modules = {(m["model_module"], m["model_module_version"]) for m in state.values()
               if not m["model_module"].startswith("@jupyter-widgets/")}
    assert "nglview-js-widgets" in {name for name, _ in modules}
    for name, version in modules:
        js = static / "vendor" / "npm" / f"{name}@{version}" / "dist" / "index.js"
        assert js.is_file() and js.stat().st_size > 100_000, f"{js} missing"


def test_no_cdn_reference(page):
    # Left out: the inlined plotly.js bundle (its map features name tile and icon servers that no figure here uses)
    # and sphinx-thebe's configuration line (thebe is disabled; its URL would be fetched only on a launch click).
    rest = []
    for attrs, body in scripts(page):
        if is_plotly_bundle(body) or body.lstrip().startswith("const THEBE_JS_URL"):
            continue
        rest.append(attrs + body)
    outside_scripts = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    text = "\n".join(rest) + outside_scripts
    for host in CDN_HOSTS:
        assert host not in text, f"{host} referenced by the page"
    assert "mathjax" not in "".join(a for a, _ in scripts(page)).lower()


def test_colab_launch_button_opens_the_committed_notebook(page):
    import yaml

    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    path = urlparse(repo).path.strip("/")
    assert f"https://colab.research.google.com/github/{path}/blob/main/notebooks/01_structures.ipynb" in page
    assert (ROOT / "notebooks" / "01_structures.ipynb").is_file()
