"""Static audit of built pages (mo_transfer.siteaudit): every load of a page is local and present."""

from mo_transfer import siteaudit


def write_site(tmp_path, page_html, css="body { color: black; }"):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "book.css").write_text(css)
    (tmp_path / "_static" / "local.js").write_text("// local")
    (tmp_path / "notebooks").mkdir()
    page = tmp_path / "notebooks" / "p.html"
    page.write_text(page_html)
    return page


def test_external_script_style_and_font_are_problems(tmp_path):
    """The defect: the Methods page loaded MathJax from cdn.jsdelivr.net, and the check looked at one page only."""
    page = write_site(tmp_path, """<html><head>
      <script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
      <link rel="stylesheet" href="//fonts.googleapis.com/css?family=Lato">
      <link rel="stylesheet" href="../_static/book.css">
      <script src="../_static/local.js"></script>
      <style>@font-face { src: url(https://example.org/f.woff2); }</style>
      </head><body><a href="https://doi.org/10.3390/ma19091715">paper</a>
      <span class="math notranslate nohighlight">\\(D(s)\\)</span></body></html>""")
    audit = siteaudit.audit_page(page, tmp_path)
    assert audit.page == "notebooks/p.html"
    assert audit.problems == [
        "script loads https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js from the network",
        "link rel=stylesheet loads //fonts.googleapis.com/css?family=Lato from the network",
        "url() in <style> loads https://example.org/f.woff2 from the network",
        "the page has equations but loads no local MathJax",
    ]


def test_local_loads_must_exist_and_their_css_must_be_local(tmp_path):
    page = write_site(tmp_path, """<html><head>
      <link rel="stylesheet" href="../_static/book.css?v=1">
      <script src="../_static/missing.js"></script>
      <script type="text/x-public-path" src="../_static/never-fetched.js"></script>
      <img src="data:image/png;base64,AAAA"></head><body></body></html>""",
                      css="@import 'https://cdn.example/x.css'; .a { background: url(img/none.png); }")
    assert siteaudit.audit_page(page, tmp_path).problems == [
        "url() in _static/book.css loads https://cdn.example/x.css from the network",
        "url() in _static/book.css: img/none.png is not in the built site",
        "script ../_static/missing.js is not in the built site",
    ]


def test_a_clean_page_with_local_mathjax_passes(tmp_path):
    page = write_site(tmp_path, """<html><head><script src="../_static/local.js"></script>
      <script defer src="../_static/vendor/mathjax/tex-mml-svg.js"></script></head>
      <body><div class="math notranslate">\\[x\\]</div></body></html>""")
    (tmp_path / "_static" / "vendor" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "vendor" / "mathjax" / "tex-mml-svg.js").write_text("// mathjax")
    audit = siteaudit.audit_page(page, tmp_path)
    assert audit.problems == [] and [ld.kind for ld in audit.loads] == ["script", "script"]


def test_is_external():
    assert siteaudit.is_external("https://a.b/c.js") and siteaudit.is_external("//a.b/c.js")
    assert not siteaudit.is_external("../_static/x.js") and not siteaudit.is_external("data:font/woff2;base64,A")
    assert not siteaudit.is_external("file:///tmp/x.js")
