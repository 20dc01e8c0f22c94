"""The browser check's parsing (what a page promises, what the browser drew, which console lines are errors) and
the Sphinx extension that removes duplicate scripts. The browser run itself is `make site-test`."""

from types import SimpleNamespace

import pytest

from mo_transfer import sitecheck, sphinx_ext

STATIC = ('<div id="a1" class="plotly-graph-div" style="height:400px"></div>'
          '<div id="b2" class="plotly-graph-div" style="height:400px"></div>'
          '<script type="application/vnd.jupyter.widget-state+json">{"model_name": "NGLModel"}</script>')


def test_expectation_counts_plotly_divs_and_nglview_state():
    exp = sitecheck.expectation(STATIC)
    assert exp.plotly_figures == 2 and exp.nglview
    assert sitecheck.expectation("<p>text</p>") == sitecheck.PageExpectation(0, False)


def test_a_page_that_did_not_render_is_a_failure():
    drawn = ('<div id="a1" class="plotly-graph-div js-plotly-plot"><svg class="main-svg"></svg></div>'
             '<canvas data-engine="three.js r158" width="10"></canvas>')
    exp = sitecheck.expectation(STATIC)
    ok = sitecheck.PageResult("p.html", exp, *sitecheck.rendered_counts(drawn.replace("a1", "a1") * 2))
    assert ok.problems == []
    missing = sitecheck.PageResult("p.html", exp, *sitecheck.rendered_counts(STATIC))
    assert "2 plotly figures in the HTML, 0 rendered" in missing.problems
    assert any("no WebGL canvas" in p for p in missing.problems)


def test_page_errors_keep_page_errors_and_drop_noise():
    events = [
        {"method": "Runtime.exceptionThrown", "params": {"exceptionDetails": {
            "text": "Uncaught", "url": "file:///b/_build/html/notebooks/01.html",
            "exception": {"description": "SyntaxError: Identifier 'X' has already been declared\n    at x"}}}},
        {"method": "Runtime.consoleAPICalled", "params": {"type": "log", "args": [{"value": "[PST]: light theme"}]}},
        {"method": "Runtime.consoleAPICalled", "params": {"type": "error", "args": [{"value": "Error displaying widget"}]}},
        {"method": "Log.entryAdded", "params": {"entry": {"level": "error", "url": "file:///x/a.woff2",
                                                          "text": "Failed to load resource: net::ERR_FILE_NOT_FOUND"}}},
        {"method": "Log.entryAdded", "params": {"entry": {"level": "verbose", "text": "noise"}}},
    ]
    assert sitecheck.page_errors(events) == [
        "Uncaught SyntaxError: Identifier 'X' has already been declared (01.html)",
        "Error displaying widget",
        "Failed to load resource: net::ERR_FILE_NOT_FOUND (file:///x/a.woff2)"]


def test_requests_leaving_the_site_are_problems():
    def req(url):
        return {"method": "Network.requestWillBeSent", "params": {"request": {"url": url}}}

    events = [req("file:///b/_static/vendor/mathjax/tex-mml-svg.js"), req("data:font/woff2;base64,AA"),
              req("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),
              req("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"), req("blob:null/1")]
    urls = sitecheck.external_requests(events)
    assert urls == ["https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"]
    res = sitecheck.PageResult("book/methods.html", sitecheck.PageExpectation(0, False), 0, 0,
                               external_requests=urls, layout=["raw TeX in the text: ...\\(D(s)\\)..."])
    assert res.problems == ["request leaves the site: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
                            "raw TeX in the text: ...\\(D(s)\\)..."]


def test_raw_tex_is_found_in_visible_text():
    """The defect: without a network the Methods page showed `\\[ s_n = \\left(R_n, ...\\]` and the glossary
    `\\(D(s)\\)`, and the browser check called the pages ok."""
    assert sitecheck.sitelayout.raw_tex("The dopant set \\(D(s)\\) of s.")
    assert sitecheck.sitelayout.raw_tex("\\[ s_n = \\left(R_n, Z_n\\right) \\]")
    assert sitecheck.sitelayout.raw_tex("$$E = mc^2$$")
    assert sitecheck.sitelayout.raw_tex("costs 5 $ and (x) [y] a\\b") == []


def test_overlapping_and_cut_off_figure_text_is_found():
    def item(kind, text, left, top, right, bottom):
        return {"kind": kind, "text": text, "left": left, "top": top, "right": right, "bottom": bottom}

    svg = {"left": 0, "top": 0, "right": 700, "bottom": 900}
    # Figure 3.3 before the fix: a lower panel's title under the upper panel's x-axis title
    fig = {"index": 2, "svg": svg, "items": [
        item("axis title", "DFT energy (eV/atom)", 100, 300, 240, 318),
        item("annotation", "Scratch-E(M), repeat 0", 90, 310, 260, 350),
        item("axis title", "model energy (eV/atom)", -8, 100, 10, 250),  # Figure 2.3: y title cut off
        item("tick label", "-10.6", 120, 312, 140, 322), item("tick label", "-10.8", 150, 312, 170, 322),
        item("toolbar", "plotly toolbar", 500, 0, 700, 30)]}
    probs = sitecheck.sitelayout.figure_problems([fig])
    assert probs == [
        "plotly figure 3: axis title 'DFT energy (eV/atom)' overlaps annotation 'Scratch-E(M), repeat 0'",
        "plotly figure 3: annotation 'Scratch-E(M), repeat 0' overlaps tick label '-10.6'",
        "plotly figure 3: annotation 'Scratch-E(M), repeat 0' overlaps tick label '-10.8'",
        "plotly figure 3: axis title 'model energy (eV/atom)' is cut off by the figure's edge"]
    clean = {"index": 0, "svg": svg, "items": [item("title", "a", 10, 10, 100, 30), item("toolbar", "t", 500, 0,
                                                                                            700, 30)]}
    assert sitecheck.sitelayout.figure_problems([clean]) == []
    sliders = {"index": 0, "svg": svg, "items": [item("slider label", "step 0 (NE): E = -174.8", 100, 800, 300, 815),
                                                  item("slider label", "step 5 (NE): E = -174.8", 250, 800, 450, 815)]}
    assert sitecheck.sitelayout.figure_problems([sliders]) == [
        "plotly figure 1: slider labels overlap each other (too many or too long for the slider)"]


def test_content_wider_than_the_column_is_a_problem_unless_its_box_scrolls():
    col = {"column_left": 300, "column_right": 1000}
    wide = [{"tag": "table", "caption": "Table 2.3. Deviation", "scrolls": False, "left": 300, "right": 1240,
             "top": 0, "bottom": 10, **col},
            {"tag": "div", "cls": "js-plotly-plot", "scrolls": False, "left": 280, "right": 900, "top": 0,
             "bottom": 10, **col}]
    assert sitecheck.sitelayout.width_problems(wide) == [
        "table 'Table 2.3. Deviation' runs 240 px past the right edge of the content column and does not scroll in "
        "its own box",
        "div (js-plotly-plot) starts 20 px left of the content column (clipped)"]
    assert sitecheck.sitelayout.width_problems([]) == []


def test_hidden_captions_and_printed_lines_are_problems():
    hidden = [{"what": "table caption", "text": "Table 2.3. Deviation of each setting from the reference"},
              {"what": "printed output", "text": "Production setting 400 eV / 3 k-points per 1/A"}]
    assert sitecheck.sitelayout.hidden_text_problems(hidden) == [
        "table caption 'Table 2.3. Deviation of each setting from the refe' is wider than its box: its end is hidden",
        "printed output 'Production setting 400 eV / 3 k-points per 1/A' is wider than its box: its end is hidden"]


def test_missing_build_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="build the book first"):
        sitecheck.check_site(tmp_path)


def test_unique_scripts_drops_the_second_copy_only():
    class JS(str):
        def __new__(cls, name, **attrs):
            obj = super().__new__(cls, name)
            obj.filename, obj.attributes = name, attrs
            return obj

    thebe = dict(body='const THEBE_JS_URL = "x"')
    scripts = [JS("a.js"), JS("", **thebe), JS("b.js", defer="defer"), JS("", **thebe), JS("b.js")]
    scripts[3].filename = None  # Sphinx 7 registers sphinx-thebe's inline script once as None and once as 
    kept = sphinx_ext.unique_scripts(scripts)
    assert [(str(s), s.attributes) for s in kept] == [("a.js", {}), ("", thebe), ("b.js", {"defer": "defer"}),
                                                       ("b.js", {})]
    ctx = {"script_files": scripts}
    sphinx_ext._dedupe(SimpleNamespace(), "p", "t", ctx, None)
    assert len(ctx["script_files"]) == 4


def test_no_download_button_when_the_site_keeps_no_sources():
    config = SimpleNamespace(html_copy_source=False, html_theme_options={"launch_buttons": {"colab_url": "x"}})
    sphinx_ext._no_download_without_sources(None, config)
    assert config.html_theme_options == {"launch_buttons": {"colab_url": "x"}, "use_download_button": False}
    kept = SimpleNamespace(html_copy_source=True, html_theme_options={})
    sphinx_ext._no_download_without_sources(None, kept)
    assert kept.html_theme_options == {}


def test_only_the_injected_parameters_are_shown(tmp_path):
    import nbformat

    cells = [nbformat.v4.new_code_cell('profile = "cpu"'), nbformat.v4.new_code_cell('profile = "smoke"'),
             nbformat.v4.new_markdown_cell("# Title")]
    cells[0].metadata["tags"] = ["parameters"]
    cells[1].metadata["tags"] = ["injected-parameters"]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))
    assert sphinx_ext.hide_replaced_parameters(path) is True
    got = nbformat.read(str(path), as_version=4).cells
    assert got[0].metadata["tags"] == ["parameters", "remove-cell"] and got[1].metadata["tags"] == ["injected-parameters"]
    assert sphinx_ext.hide_replaced_parameters(path) is False  # idempotent
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cells[0]]), str(plain))
    assert sphinx_ext.hide_replaced_parameters(plain) is False


@pytest.mark.skipif(sitecheck.shutil.which("chromium") is None, reason="needs Debian's chromium (make browser-deps)")
def test_a_bad_page_fails_the_browser_check_with_its_name_and_reasons(tmp_path, capsys):
    """End to end in headless Chromium: a page that loads a script from a CDN and shows raw TeX fails, named, with
    both reasons; a clean page passes; a full-page screenshot of each is saved."""
    (tmp_path / "index.html").write_text("<html><body><main><p>Clean page.</p></main></body></html>")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "methods.html").write_text(
        '<html><head><script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script></head>'
        '<body><main><p>The dopant set \\(D(s)\\) of a structure.</p>' + "<p>filler</p>" * 150 +
        '<div class="cell_output"><div class="output stream"><pre style="overflow-x:auto">' + "verdict " * 60 +
        "</pre></div></div></main></body></html>")
    code = sitecheck.main([str(tmp_path), "--screenshots", str(tmp_path / "shots"),
                           "--report", str(tmp_path / "report.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL book/methods.html" in out and "ok   index.html" in out
    assert "book/methods.html: request leaves the site: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js" \
        in out
    assert "book/methods.html: raw TeX in the text: ...The dopant set \\(D(s)\\) of a structure" in out
    assert "book/methods.html: printed output 'verdict verdict" in out
    from PIL import Image

    with Image.open(tmp_path / "shots" / "book__methods.png") as shot:
        assert shot.size[0] == sitecheck.WIDTH and shot.size[1] > 2000  # the whole page, not one screen
