"""Sphinx extension for the book: drops duplicate script tags from every page, and the download button when the
site keeps no copies of its sources (``html_copy_source = False``: each executed notebook carries its own plotly.js,
so the copies doubled the site; readers open notebooks through the repository's Colab button instead).

Sphinx 7 registers a script twice when one call names it with ``None`` and another with ``''`` (fixed upstream in
Sphinx PR 13402); with sphinx-book-theme that duplicates sphinx-thebe's inline ``const THEBE_JS_URL`` and every
page throws "Identifier 'THEBE_JS_URL' has already been declared". Listed under ``sphinx.extra_extensions``.
"""

from __future__ import annotations


def unique_scripts(scripts: list) -> list:
    """The scripts in order, each (file name or inline body, attributes) kept once."""
    seen, out = set(), []
    for js in scripts:
        attrs = tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items()))
        name = getattr(js, "filename", js)
        key = (str(name) if name else "", attrs)  # None and '' are the same script (the Sphinx bug)
        if key not in seen:
            seen.add(key)
            out.append(js)
    return out


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = unique_scripts(context["script_files"])


def _no_download_without_sources(app, config) -> None:
    if not config.html_copy_source:
        config.html_theme_options = {**(config.html_theme_options or {}), "use_download_button": False}


def setup(app):
    app.connect("config-inited", _no_download_without_sources, priority=900)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
