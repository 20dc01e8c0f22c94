"""Sphinx extension for the book: registers the bibliography's author-year label style (:mod:`mo_transfer.bibstyle`),
drops duplicate script tags from every page, and the download button when the
site keeps no copies of its sources (``html_copy_source = False``: each executed notebook carries its own plotly.js,
so the copies doubled the site; readers open notebooks through the repository's Colab button instead).

Sphinx 7 registers a script twice when one call names it with ``None`` and another with ``''`` (fixed upstream in
Sphinx PR 13402); with sphinx-book-theme that duplicates sphinx-thebe's inline ``const THEBE_JS_URL`` and every
page throws "Identifier 'THEBE_JS_URL' has already been declared". Listed under ``sphinx.extra_extensions``.
"""

from __future__ import annotations

import sys
from pathlib import Path


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


def hide_replaced_parameters(path: str | Path) -> bool:
    """Tag a notebook's default ``parameters`` cell ``remove-cell`` when papermill injected the values it ran with
    (tag ``injected-parameters``), so a page shows the parameters once, as run; True when the file changed."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    if not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells):
        return False
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
            changed = True
    if changed:
        nbformat.write(nb, str(path))
    return changed


def setup(app):
    from . import bibstyle

    bibstyle.register()  # the bibliography's author-year labels (bibtex_default_style in _config.yml)
    app.connect("config-inited", _no_download_without_sources, priority=900)
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":  # used by `make html` on the executed copies in the book source, never on notebooks/
    for arg in sys.argv[1:]:
        hide_replaced_parameters(arg)
