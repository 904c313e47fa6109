# pynq-sparse: `make run` and `make test` set everything up themselves (.venv, system tools).
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
SHARED  ?= $(abspath ../shared)
APT_PKGS := iverilog yosys espeak-ng sox flite libportaudio2 libsndfile1 chromium chromium-driver
export PYNQ_SPARSE_SHARED := $(SHARED)

.PHONY: run test bench model-card system-deps clean-venv help

help:
	@echo "make run    - set up .venv and run the keyword-spotting job on the emulated overlay"
	@echo "make test   - set up .venv and system tools, then run the whole test suite"
	@echo "make bench  - run the benchmarks (results in docs/benchmarks/ and overlays/reports/)"

$(STAMP): requirements.txt setup.py pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==24.3.1"
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

# Debian tools the tests drive (simulators, synthesis, speech, browser); installed only when missing.
system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing >/dev/null; \
	fi

run: $(STAMP)
	$(PY) -m pynq_sparse.cli run

test: $(STAMP) system-deps
	$(PY) -m pytest -q tests

bench: $(STAMP) system-deps
	$(PY) -m pynq_sparse.cli bench all

model-card: $(STAMP)
	$(PY) -m pynq_sparse.model_card --data $(SHARED)/data/gsc_v2_dev --out docs/model_card.md

clean-venv:
	rm -rf $(VENV)
