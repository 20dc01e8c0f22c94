"""Sphinx extension for the book: drops duplicate script tags from every page.

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


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
