# Two commands matter: `make demo` and `make test`. Both install first, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned to the build that lies on this machine's disk; pip takes it from there.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test test-slurm bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[test]'
	touch $(STAMP)

# The whole workflow on the demo config, then its HTML report (every figure and table, with captions).
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/local \
		--report results/report.html --report-after-run
	@echo "open results/report.html"

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

test-slurm: install
	PATH="$(CURDIR)/$(BIN):$$PATH" MULTIRATER_SLURM=1 $(BIN)/python -m pytest -m slurm tests/slurm

bench: install
	$(BIN)/python -m pip install -e '.[bench]'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_engine.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_train.py

lint: install
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

format: install
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf results .snakemake
