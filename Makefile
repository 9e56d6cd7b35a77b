# Two entry points for a fresh machine: `make demo` and `make test`. Both (re)build .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_SPEC ?= torch==2.13.0
DEBIAN_DATA := dataset-fashion-mnist wordnet-base
STAMP_BASE := $(VENV)/.stamp-base
STAMP_DEV := $(VENV)/.stamp-dev

.PHONY: demo test bench docs venv dev-venv debian-data chromium clean

demo: $(STAMP_BASE) debian-data
	$(VENV)/bin/latentfuse demo  # Flickr8k: a local copy, else fetched once when online; else Fashion-MNIST

test: $(STAMP_DEV) debian-data chromium
	$(VENV)/bin/lint-imports --no-cache  # layers contract in pyproject.toml: imports point down only
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir build/site-check  # offline, every link checked
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# The documentation site (mkdocs-material): guides in docs/, reference pages generated from the code, benchmark
# tables rendered from the result files bench/ writes. Open site/index.html, or `$(VENV)/bin/mkdocs serve`.
docs: $(STAMP_DEV)
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(VENV)/bin/mkdocs build --strict

bench: $(STAMP_DEV) debian-data chromium
	HF_HUB_OFFLINE=1 $(PY) -m bench.run_all

venv: $(STAMP_BASE)
dev-venv: $(STAMP_DEV)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch is installed first, pinned, so no other requirement can pull a multi-GB CUDA build.
$(STAMP_BASE): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[e5,onnx]"
	touch $@

# clip-retrieval only for its client module (the compatibility test loads clip_client.py by path); --no-deps,
# since its package pulls open_clip, flask and a CUDA torch.
$(STAMP_DEV): pyproject.toml $(STAMP_BASE)
	$(PIP) install -q -e ".[e5,onnx,dev]"
	$(PIP) install -q --no-deps "clip-retrieval==2.45.0"
	touch $@

# Debian's Fashion-MNIST and WordNet (the fashion-mnist and wordnet sources and their tests). Installed
# where apt-get works; elsewhere a message says how to get them, and the code that needs them says so too.
debian-data:
	@if [ -d /usr/share/datasets/fashion-mnist ] && [ -f /usr/share/wordnet/data.noun ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q $(DEBIAN_DATA) >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $(DEBIAN_DATA) >/dev/null 2>&1)) \
	  || echo "note: could not apt-get install $(DEBIAN_DATA); fashion-mnist / wordnet tests will be skipped"; \
	else echo "note: install Debian's $(DEBIAN_DATA) (or pass fashion-mnist:DIR, wordnet:DIR) to use them"; fi

# Debian's Chromium for the web-page test (tests/test_browser.py): Playwright drives /usr/bin/chromium and never
# downloads a browser. Installed where apt-get works; elsewhere that test skips and says why.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
	  || echo "note: could not apt-get install chromium; the browser test will be skipped"; \
	else echo "note: install Chromium (Debian: chromium) to run the browser test"; fi

clean:
	rm -rf $(VENV) build src/*.egg-info
