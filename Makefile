# themes — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Prefect's settings (local database, no telemetry, start-up timeout) are not set here: every
# target runs Python that imports themes, which applies themes.config.prefect_environment().
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint train train-encoder samples clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=77' wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its test tools

run: $(STAMP) ## Install, then run the pipeline on the sample corpus into out/
	$(BIN)/themes run --corpus corpus/sample --out out

test: $(STAMP) ## Install, then run the whole test suite (slow real-corpus tests included)
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## Only the fast tests
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP) ## ruff over src, flows and tests
	$(BIN)/ruff check src flows tests

train: $(STAMP) ## Train the TF-IDF reference model on corpus/labels (saved, not made the default)
	$(BIN)/themes train

# The default model is a fine-tuned encoder: training it needs torch (the `train` extra) in its own
# venv, with a CPU torch wheel installed first (TORCH_WHEEL, or PyTorch's CPU index), never the CUDA one.
TRAIN_VENV  ?= ../venv-train
TORCH_WHEEL ?= torch --index-url https://download.pytorch.org/whl/cpu
ENCODER_OUT ?= /tmp/themes-minilm-finetuned
ENCODER_HEAD ?= rules, real thresholds
train-encoder: ## Fine-tune the encoder on corpus/labels (+ ../shared), fit its head and ship it as the default
	test -d $(TRAIN_VENV) || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -c "import torch" 2>/dev/null || $(TRAIN_VENV)/bin/pip install --quiet $(TORCH_WHEEL)
	$(TRAIN_VENV)/bin/pip install --quiet -e '.[train]'
	nice $(TRAIN_VENV)/bin/python benchmarks/finetune_encoder.py --model-out $(ENCODER_OUT)
	nice $(TRAIN_VENV)/bin/python benchmarks/encoder_head.py --model $(ENCODER_OUT) --out benchmarks/results \
		--write-head "$(ENCODER_HEAD)" --ship --make-default
	$(TRAIN_VENV)/bin/themes evaluate --documents corpus/doc-eval --write-card

samples: $(STAMP) ## Rebuild the sample PDFs from corpus/sample/src
	$(BIN)/python corpus/sample/build.py

clean: ## Remove out/ and the local Prefect database
	rm -rf out .prefect

.PHONY: server server-stop
SERVER_ARGS ?=
server: $(STAMP) ## Prefect server + UI on 127.0.0.1 serving the flows (options: SERVER_ARGS=--help)
	$(BIN)/python -m flows.serve $(SERVER_ARGS)

server-stop: ## Stop the server started by `make server` and every process it started
	@pidfile="$$($(BIN)/python -c 'import os, themes; print(os.environ["PREFECT_HOME"])')/server.pid"; \
	if [ ! -f "$$pidfile" ]; then echo "No server running ($$pidfile is missing)."; exit 0; fi; \
	pid=$$(cut -d' ' -f1 "$$pidfile"); \
	kill -TERM "$$pid" 2>/dev/null || { echo "Process $$pid has exited; removing $$pidfile."; rm -f "$$pidfile"; exit 0; }; \
	for i in $$(seq 240); do kill -0 "$$pid" 2>/dev/null || { echo "Stopped $$pid and everything it started."; exit 0; }; sleep 0.5; done; \
	echo "Process $$pid did not stop within 120 s; try: kill -KILL $$pid"; exit 1
