"""The Colab install cell of every notebook, executed with Colab faked (issue #25 item 7).

Each notebook's second code cell clones the repository and pip-installs the checkout when ``google.colab`` is
imported, and switches ``profile`` from "cpu" to "gpu" when torch sees a GPU. Here that cell's own source runs in a
namespace holding only ``profile``, with a fake ``google.colab`` module, ``subprocess.run`` and ``os.chdir``
recording their calls (nothing is cloned or installed) and ``torch.cuda.is_available`` patched. A real install into
a fresh virtual environment (torch, mace-torch and the rest from the package index) takes minutes and a network,
too slow for CI; what this test cannot see is whether the index resolves, which ``pip check`` in CI covers.

The install must be editable (``pip install -e <checkout>``): the package finds the checkout's data through its own
file (``metrics.PAPER_DIR``, ``dft.DATA_ROOT``, ``foundation.MODELS_DIR`` are ``<package>/../../data/...``). A
regular install copies the package into site-packages, where those paths point at folders that do not exist, and
notebooks 3 and 4 then fail reading the paper's tables (checked by installing the package with ``--target``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
GUARD = '"google.colab" in sys.modules'


def colab_cell(path: Path) -> str:
    """Source of a notebook's second code cell, which must be its Colab install cell."""
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert len(code) >= 2 and GUARD in code[1], f"{path.name}: the second code cell is not the Colab cell"
    return code[1]


def run_cell(source: str, profile: str, monkeypatch, gpu: bool, colab: bool = True,
             checkout_exists: bool = False) -> tuple[dict, dict]:
    """Execute ``source`` with Colab faked; returns the namespace after the cell and the recorded calls."""
    import torch

    calls: dict = {"run": [], "chdir": [], "widgets": 0}

    def fake_run(args, **kwargs):
        calls["run"].append((list(args), kwargs))
        return subprocess.CompletedProcess(args, 0)

    def enable_custom_widget_manager():
        calls["widgets"] += 1

    if colab:
        google = types.ModuleType("google")
        module = types.ModuleType("google.colab")
        module.output = types.SimpleNamespace(enable_custom_widget_manager=enable_custom_widget_manager)
        google.colab = module
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", module)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os, "chdir", lambda path: calls["chdir"].append(str(path)))
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir",
                        lambda p: checkout_exists if str(p).startswith("/content/") else real_isdir(p))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.delenv("MO_TRANSFER_ROOT", raising=False)  # restored after the test if the cell sets it
    namespace: dict = {"profile": profile, "__name__": "__main__"}
    exec(compile(source, "<colab cell>", "exec"), namespace)
    return namespace, calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_clones_installs_and_switches_profile(path, monkeypatch):
    source = colab_cell(path)
    ns, calls = run_cell(source, "cpu", monkeypatch, gpu=True)
    checkout = ns["checkout"]
    (clone, clone_kw), (pip, pip_kw) = calls["run"]
    assert clone[:2] == ["git", "clone"] and clone[-2:] == [REPO_URL, checkout] and clone_kw.get("check")
    assert pip[:4] == [sys.executable, "-m", "pip", "install"] and pip_kw.get("check")
    assert checkout in pip, "pip installs the checkout"
    assert pip[pip.index(checkout) - 1] == "-e", "editable install: the package reads <checkout>/data"
    assert calls["chdir"] == [os.path.join(checkout, "notebooks")]
    assert ns["profile"] == "gpu"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_profile_switches_only_with_a_gpu_and_only_from_cpu(path, monkeypatch):
    source = colab_cell(path)
    assert run_cell(source, "cpu", monkeypatch, gpu=False)[0]["profile"] == "cpu"
    for chosen in ("smoke", "gpu", "paper"):
        assert run_cell(source, chosen, monkeypatch, gpu=True)[0]["profile"] == chosen


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_existing_checkout_is_not_cloned_again_and_outside_colab_nothing_runs(path, monkeypatch):
    source = colab_cell(path)
    _, calls = run_cell(source, "cpu", monkeypatch, gpu=True, checkout_exists=True)
    assert [args[:4] for args, _ in calls["run"]] == [[sys.executable, "-m", "pip", "install"]]
    ns, calls = run_cell(source, "cpu", monkeypatch, gpu=True, colab=False)
    assert calls == {"run": [], "chdir": [], "widgets": 0} and ns["profile"] == "cpu"
    assert "checkout" not in ns
