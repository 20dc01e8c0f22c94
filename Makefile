# Executable reproduction of Fang et al. (Materials 2026): build, run and test the book.
#
#   make book               venv + run every notebook with PROFILE=cpu (cached results) + HTML site in _build/html
#   make test               venv + DFT deps + unit tests + notebooks with PROFILE=smoke + HTML + site checks, all
#                           under _build/smoke/ (site in _build/smoke/html): the cpu book in _build/html stays
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
# Where each build lands; `make test` overrides all five with the folders under $(SMOKE).
EXECUTED := $(BUILD)/executed
BOOKSRC := $(BUILD)/book-src
HTML := $(BUILD)/html
SCREENSHOTS := $(BUILD)/screenshots
REPORT := $(BUILD)/sitecheck.json
SMOKE := $(BUILD)/smoke
SMOKE_VARS := EXECUTED=$(SMOKE)/executed BOOKSRC=$(SMOKE)/book-src HTML=$(SMOKE)/html \
              SCREENSHOTS=$(SMOKE)/screenshots REPORT=$(SMOKE)/sitecheck.json
# torch's CPU build comes from PyTorch's own CPU wheel index where it is reachable (PyPI's default torch on Linux is
# the CUDA build with about 20 NVIDIA packages); otherwise from what the machine's pip index offers.
# `make venv TORCH_INDEX=` skips the CPU index.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
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
	@sed -n '3,10p' Makefile

# --- environment --------------------------------------------------------------------------------------------------
venv: $(VENV)/.installed kernel

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_INDEX)" ] && $(PY) -m pip install --timeout 30 --retries 1 --index-url $(TORCH_INDEX) \
	      torch==2.13.0; then echo "torch: CPU build from $(TORCH_INDEX)"; \
	else echo "torch: $(TORCH_INDEX) not reachable, installing torch==2.13.0 from the default index"; \
	     $(PY) -m pip install torch==2.13.0; fi
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
# Two kernel log lines read like failures and are none; they are filtered from the log:
# - ipykernel warns on every start that its ZeroMQ sockets use TCP without encryption: they listen on 127.0.0.1 for
#   papermill on this machine only;
# - jupyter_client interrupts the kernel when it shuts it down after the last cell (KernelManager.shutdown_kernel),
#   and ipykernel logs "KeyboardInterrupt caught in kernel" when that SIGINT lands while it handles a message.
#   A real failure still stops papermill with the cell's traceback and a non-zero exit.
KERNEL_NOISE := -e "Kernel is running over TCP without encryption" -e "KeyboardInterrupt caught in kernel"
# Runs notebooks/NN_*.ipynb in order with papermill; executed copies go to _build/executed/notebooks/.
# Stops at the first failing notebook (its partial output stays there for inspection).
notebooks: kernel
	mkdir -p $(EXECUTED)/notebooks
	for nb in $(NOTEBOOKS); do \
	  echo "== $$nb  (profile $(PROFILE), recompute $(RECOMPUTE_BOOL))"; \
	  start=$$(date +%s); \
	  MO_TRANSFER_COMMAND="make notebooks PROFILE=$(PROFILE) RECOMPUTE=$(RECOMPUTE) ($$nb)" \
	  $(VENV)/bin/papermill "$$nb" "$(EXECUTED)/$$nb" -k $(KERNEL) --cwd notebooks \
	    -p profile $(PROFILE) -p recompute $(RECOMPUTE_BOOL) --no-progress-bar \
	    2> >(grep -v --line-buffered $(KERNEL_NOISE) >&2); \
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
	$(VENV)/bin/jupyter-book build $(BOOKSRC) --path-output $(BOOKSRC) --builder html $(SPHINXOPTS)
	rm -rf $(HTML) && mkdir -p $(dir $(HTML)) && mv $(BOOKSRC)/_build/html $(HTML)
	@echo "book: $(HTML)/index.html"

book: venv
	$(MAKE) notebooks PROFILE=cpu
	$(MAKE) html

# --- tests --------------------------------------------------------------------------------------------------------
# Two pytest workers (pytest-xdist), one test file each at a time, so a file's module fixtures are built once: on 2
# quiet cores 169 s instead of 284 s. PYTEST_WORKERS=0 runs in one process. The log lists the 15 slowest tests,
# for trimming CI toward its 15-minute target.
PYTEST_WORKERS ?= 2
unit:
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=15 --ignore=tests/test_site.py

# Static checks of the built HTML, then every page opened in headless Chromium (JavaScript errors, figures and
# widgets that did not render); screenshots land in _build/screenshots/.
# A page that fails a check is named with the reason (pytest's test id, sitecheck's "FAIL <page>: <reason>").
site-test: browser-deps
	MO_TRANSFER_SITE=$(HTML) MO_TRANSFER_BOOKSRC=$(BOOKSRC) $(PY) -m pytest -q tests/test_site.py
	$(PY) -m mo_transfer.sitecheck $(HTML) --screenshots $(SCREENSHOTS) --report $(REPORT)

browser-deps:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium present: $$(command -v chromium)"; \
	else $(SUDO) apt-get update && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; fi

# The smoke notebooks recompute (RECOMPUTE=1): CI really trains and evaluates through the code path, in minutes.
# Everything of the smoke build lands under $(SMOKE)/, so the cpu book in $(HTML) is left as it was.
test: venv dft-deps
	$(MAKE) unit
	$(MAKE) notebooks PROFILE=smoke RECOMPUTE=1 $(SMOKE_VARS)
	$(MAKE) html $(SMOKE_VARS)
	$(MAKE) site-test $(SMOKE_VARS)

clean:
	rm -rf $(BUILD)/html $(BUILD)/.doctrees $(BUILD)/jupyter_execute $(BUILD)/book-src $(EXECUTED) $(SMOKE) \
	  $(BUILD)/screenshots $(BUILD)/sitecheck.json widgets_static/vendor
