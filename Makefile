# Two commands do everything on a fresh machine (Python 3.11):
#   make demo   set up .venv and build the bundled sample into ./registry
#   make test   set up .venv and run the test suite
#
# torch: a machine without an NVIDIA GPU gets the CPU build pinned below; a machine with one gets
# the default (CUDA) build. Override with e.g. `make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX=...`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REGISTRY ?= registry
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
TORCH_SPEC ?= $(if $(HAS_GPU),torch,torch==2.13.0)
TORCH_INDEX ?=
PIP_TORCH_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)

.PHONY: setup demo test lint bench clean system-tools

setup: $(VENV)/.installed system-tools

# Debian packages the toolkit runs, installed when missing (as root; otherwise it says how):
# bubblewrap, the kernel sandbox of `qlora-trainer benchmark` (setpriv comes with util-linux);
# chromium, the headless browser the report page test renders report.html in.
SYSTEM_TOOLS := bwrap:bubblewrap setpriv:util-linux chromium:chromium
system-tools:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "note: missing Debian packages:$$missing (sudo apt-get install -y$$missing): without bubblewrap benchmark refuses to run generated code; without chromium the report page test fails"; fi; fi

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and on its own, so nothing below can pull a different (CUDA) build.
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[translate,train,eval,ray,dev]"
	touch $@

# demo fetches the en->ru Argos package once where there is a network; offline the build says it
# skipped translation and keeps the English rows labelled "en". The install's own error line says
# why it could not fetch one.
demo: setup
	@$(BIN)/dataset-builder models list | grep -q 'en->ru' || $(BIN)/dataset-builder models install en ru \
		|| echo "note: no en->ru Argos package installed (the line above says why); the build will skip translation"
	$(BIN)/dataset-builder --registry $(REGISTRY) build recipes/sample.toml
	$(BIN)/dataset-builder --registry $(REGISTRY) show python-ru-sample@0.1.0

# Two processes (pytest-xdist), one thread each (tests/conftest.py); a test file stays in one
# process, so its module fixtures (one local Ray, one tiny model, ...) are made once, and the files
# go out longest first (tests/conftest.py: LONGEST_FIRST) rather than by their number of tests. The sandbox's
# own tests run after, alone: they check that no process of the sandbox's user is left, which a
# HumanEval test scoring in the other process at the same moment would break.
test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --ignore-glob='tests/test_sandbox*.py'
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/test_sandbox*.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/build.py

clean:
	rm -rf $(VENV) $(REGISTRY) .pytest_cache
