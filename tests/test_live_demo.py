"""Notebook 2's live miniature reads the same with or without GPAW (mo_transfer.live_demo)."""

import json
from pathlib import Path

import nbformat
import pytest

from mo_transfer import live_demo

ROOT = Path(__file__).resolve().parents[1]


def test_without_gpaw_the_cached_run_is_shown_and_said_so():
    rows, note = live_demo.miniature(ROOT, live=False)
    assert rows and rows[-1]["state"] == "E" and all(r["state"] == "NE" for r in rows[:-1])
    assert list(rows[0]) == ["step", "state", "energy (eV)", "max force (eV/A)"]
    assert note.startswith("GPAW is not available here") and str(live_demo.CACHE) in note
    doc = json.loads((ROOT / live_demo.CACHE).read_text())
    assert doc["config_id"] == live_demo.CONFIG_ID and doc["gpaw"] and doc["settings"]["ecut_ev"] == 250.0


def test_cached_mode_hides_gpaw(monkeypatch):
    monkeypatch.setenv(live_demo.MODE_ENV, "cached")
    assert live_demo.have_gpaw() is False
    rows, note = live_demo.miniature(ROOT)
    assert note.startswith("GPAW is not available here")


def test_missing_or_bad_cache_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="live_miniature.json is missing: run"):
        live_demo.miniature(tmp_path, live=False)
    (tmp_path / live_demo.CACHE).parent.mkdir(parents=True)
    (tmp_path / live_demo.CACHE).write_text('{"rows": []}')
    with pytest.raises(ValueError, match="field 'rows'"):
        live_demo.read_cache(tmp_path)


def test_notebook_2_shows_the_miniature_either_way():
    """The defect: without GPAW notebook 2 printed 'skipping the live miniature' and showed no Table 2.5."""
    nb = nbformat.read(ROOT / "notebooks" / "02_dft_data.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if c.cell_type == "code" and "Table 2.5." in c.source)
    assert "live_demo.miniature(ROOT)" in cell and "import gpaw" not in cell and "if " not in cell


@pytest.mark.gpaw
@pytest.mark.skipif(not live_demo.have_gpaw(), reason="needs GPAW (make dft-deps)")
def test_live_run_gives_the_cached_steps():
    rows, note = live_demo.miniature(ROOT)
    cached = live_demo.read_cache(ROOT)["rows"]
    assert note.startswith("Run live just now with GPAW")
    assert [r["state"] for r in rows] == [r["state"] for r in cached]
    assert rows[-1]["energy (eV)"] == pytest.approx(cached[-1]["energy (eV)"], abs=1e-3)
