"""The committed notebooks: output-free, a papermill `parameters` cell first, the Colab cell, headings, and the
table of contents of the book listing every one of them."""

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def read(path):
    return nbformat.read(path, as_version=4)


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_*.ipynb found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_output_free(path):
    nb = read(path)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before commit"
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_its_own_id(path):
    """nbformat 4.5 requires cell ids; nbformat.read fills in missing ones with a warning (a future error), so the
    committed file is read as plain JSON here."""
    import json

    cells = json.loads(path.read_text())["cells"]
    ids = [c.get("id") for c in cells]
    assert all(ids), f"{path.name}: cells {[i for i, c in enumerate(ids) if not c]} have no id"
    assert len(set(ids)) == len(ids), f"{path.name}: duplicate cell ids"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_first(path):
    first = read(path).cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    values = {}
    for node in ast.parse(first.source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds plain assignments only"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    # other parameters may follow, these two are every notebook's
    assert values.get("profile") == "cpu" and values.get("recompute") is False


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_matches_the_repository_url(path):
    code = [c.source for c in read(path).cells if c.cell_type == "code"]
    colab = [s for s in code if '"google.colab" in sys.modules' in s]
    assert len(colab) == 1, "one Colab cell, guarded by `\"google.colab\" in sys.modules`"
    urls = re.findall(r'REPO_URL = "([^"]+)"', colab[0])
    assert urls == [CONFIG["repository"]["url"]], "the Colab cell must clone repository.url of _config.yml"
    assert 'profile = "gpu"' in colab[0] and "torch.cuda.is_available()" in colab[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_headings(path):
    levels = []
    for cell in read(path).cells:
        if cell.cell_type == "markdown":
            in_fence = False
            for line in cell.source.splitlines():
                if line.startswith("```"):
                    in_fence = not in_fence
                m = re.match(r"^(#+) ", line)
                if m and not in_fence:
                    levels.append(len(m.group(1)))
    assert levels and levels[0] == 1 and levels.count(1) == 1, "one H1 title"
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), f"heading levels skip: {levels}"


def _toc_files(entries):
    for e in entries:
        if "file" in e:
            yield e["file"]
        yield from _toc_files(e.get("sections", []))
        for part in e.get("parts", []):
            yield from _toc_files(part.get("chapters", []))


def test_toc_lists_every_notebook_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = list(_toc_files(toc.get("chapters", []) + [c for p in toc.get("parts", []) for c in p["chapters"]]))
    assert (ROOT / f"{toc['root']}.md").is_file()
    listed = [f for f in files if f.startswith("notebooks/")]
    assert listed == [f"notebooks/{p.stem}" for p in NOTEBOOKS]


def test_book_config():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    sphinx = CONFIG["sphinx"]["config"]
    assert sphinx["html_static_path"] == ["widgets_static"]
    js = list(sphinx["nb_ipywidgets_js"])
    assert js == ["vendor/require.js", "local-widgets-cdn.js", "vendor/embed-amd.js"]
    assert (ROOT / "widgets_static" / "local-widgets-cdn.js").is_file()
    for bib in CONFIG["bibtex_bibfiles"]:
        assert (ROOT / bib).is_file()
