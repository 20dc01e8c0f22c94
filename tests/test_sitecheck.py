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


def test_console_errors_keep_page_errors_and_drop_browser_noise():
    log = "\n".join([
        '[1:1:1125/1.0:ERROR:dbus/bus.cc:405] Failed to connect to the bus: no socket',
        '[1:1:1125/1.1:INFO:CONSOLE:62] "Uncaught SyntaxError: Identifier \'X\' has already been declared", '
        'source: file:///b/_build/html/notebooks/01.html (62)',
        '[1:1:1125/1.2:INFO:CONSOLE:1] "[PST]: Changed to auto mode using the light theme.", source: file:///t.js (1)',
    ])
    errs = sitecheck.console_errors(log)
    assert errs == ["Uncaught SyntaxError: Identifier 'X' has already been declared (01.html)"]


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
