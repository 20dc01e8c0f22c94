# Executable reproduction of Fang et al. (Materials 2026): build, run and test the book.
#
#   make book               venv + run every notebook with PROFILE=cpu (cached results) + HTML site
#   make test               venv + DFT deps + unit tests + notebooks with PROFILE=smoke + HTML + site checks
#   make notebooks PROFILE=smoke|cpu|gpu|paper [RECOMPUTE=1]
#   make html               assemble _build/book-src from the executed notebooks and build _build/html
#
# Everything runs with one thread per process (OMP_NUM_THREADS=1): the target machines have 2 shared cores.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
RECOMPUTE ?= 0
KERNEL := mo-transfer
BUILD := _build
EXECUTED := $(BUILD)/executed
BOOKSRC := $(BUILD)/book-src
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
RECOMPUTE_BOOL := $(if $(filter 1 true True yes,$(RECOMPUTE)),True,False)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DFT_DEBS := libxc-dev libopenblas-dev libfftw3-dev pkg-config
# -W: Sphinx warnings are errors (the book builds with none); override with SPHINXOPTS= for a lenient build
SPHINXOPTS ?= -W --keep-going

export OMP_NUM_THREADS := 1
export MKL_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1
export MO_TRANSFER_NO_PROGRESS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: help venv kernel dft-deps browser-deps notebooks html book test unit site-test widgets clean

help:
	@sed -n '3,8p' Makefile

# --- environment --------------------------------------------------------------------------------------------------
venv: $(VENV)/.installed kernel

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install torch==2.13.0   # first: the CPU build; an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install -e .
	touch $@

# Jupyter kernel inside the venv, so papermill runs notebooks with the venv's Python.
kernel: $(VENV)/share/jupyter/kernels/$(KERNEL)/kernel.json

$(VENV)/share/jupyter/kernels/$(KERNEL)/kernel.json:
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (mo-transfer)"

# GPAW: Debian build dependencies, then the DFT extras built with scripts/gpaw_siteconfig.py (compiles GPAW on the
# first install, 1-2 minutes; later runs find it installed).
dft-deps: requirements-dft.txt
	@if dpkg -s $(DFT_DEBS) >/dev/null 2>&1; then echo "Debian packages present: $(DFT_DEBS)"; \
	else $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y $(DFT_DEBS); fi
	CC=g++ GPAW_CONFIG=$(CURDIR)/scripts/gpaw_siteconfig.py $(PY) -m pip install -r requirements-dft.txt

# --- notebooks ----------------------------------------------------------------------------------------------------
# Runs notebooks/NN_*.ipynb in order with papermill; executed copies go to _build/executed/notebooks/.
# Stops at the first failing notebook (its partial output stays there for inspection).
notebooks: kernel
	mkdir -p $(EXECUTED)/notebooks
	for nb in $(NOTEBOOKS); do \
	  echo "== $$nb  (profile $(PROFILE), recompute $(RECOMPUTE_BOOL))"; \
	  start=$$(date +%s); \
	  MO_TRANSFER_COMMAND="make notebooks PROFILE=$(PROFILE) RECOMPUTE=$(RECOMPUTE) ($$nb)" \
	  $(VENV)/bin/papermill "$$nb" "$(EXECUTED)/$$nb" -k $(KERNEL) --cwd notebooks \
	    -p profile $(PROFILE) -p recompute $(RECOMPUTE_BOOL) --no-progress-bar; \
	  echo "== $$nb done in $$(( $$(date +%s) - start )) s"; \
	done

# --- book ---------------------------------------------------------------------------------------------------------
widgets:
	$(PY) scripts/copy_widget_js.py

# The book source root is assembled in _build/book-src with the executed notebooks at the same paths as the
# committed sources (notebooks/NN_*.ipynb), so page URLs and Colab launch buttons point at the real notebooks.
html: widgets
	@missing=""; for nb in $(NOTEBOOKS); do test -f "$(EXECUTED)/$$nb" || missing="$$missing $$nb"; done; \
	if [ -n "$$missing" ]; then echo "not executed yet:$$missing -- run 'make notebooks PROFILE=...' first" >&2; exit 1; fi
	rm -rf $(BOOKSRC) && mkdir -p $(BOOKSRC)/notebooks
	cp _config.yml _toc.yml $(BOOKSRC)/
	cp -r book widgets_static $(BOOKSRC)/
	cp $(addprefix $(EXECUTED)/,$(NOTEBOOKS)) $(BOOKSRC)/notebooks/
	$(PY) -m mo_transfer.sphinx_ext $(BOOKSRC)/notebooks/*.ipynb
	rm -rf $(BUILD)/html $(BUILD)/.doctrees
	$(VENV)/bin/jupyter-book build $(BOOKSRC) --path-output . --builder html $(SPHINXOPTS)
	@echo "book: $(BUILD)/html/index.html"

book: venv
	$(MAKE) notebooks PROFILE=cpu
	$(MAKE) html

# --- tests --------------------------------------------------------------------------------------------------------
unit:
	$(PY) -m pytest -q --ignore=tests/test_site.py

# Static checks of the built HTML, then every page opened in headless Chromium (JavaScript errors, figures and
# widgets that did not render); screenshots land in _build/screenshots/.
site-test: browser-deps
	$(PY) -m pytest -q tests/test_site.py
	$(PY) -m mo_transfer.sitecheck $(BUILD)/html --screenshots $(BUILD)/screenshots --report $(BUILD)/sitecheck.json

browser-deps:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium present: $$(command -v chromium)"; \
	else $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi

# The smoke notebooks recompute (RECOMPUTE=1): CI really trains and evaluates through the code path, in minutes.
test: venv dft-deps
	$(MAKE) unit
	$(MAKE) notebooks PROFILE=smoke RECOMPUTE=1
	$(MAKE) html
	$(MAKE) site-test

clean:
	rm -rf $(BUILD)/html $(BUILD)/.doctrees $(BUILD)/jupyter_execute $(BUILD)/book-src $(EXECUTED) widgets_static/vendor
