# Two commands matter: `make demo` and `make test`. Both install first, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned to the build that lies on this machine's disk; pip takes it from there.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo evidence test test-slurm test-gpu bench lint format clean

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
	$(BIN)/multirater timings --results results
	@echo "open results/report.html"

# The evidence run (README: What the evidence shows): the workflow once per rater preset (biased, noisy)
# and data seed (0, 1, 2), then LSE vs RSE over all six: results/evidence/summary.csv, fig_evidence.{png,pdf}.
evidence: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake evidence --profile profiles/local \
		--configfile config/evidence.yaml
	@echo "see results/evidence/summary.csv and results/evidence/fig_evidence.png"

# Two pytest-xdist workers; the tests sharing an expensive run go to one worker, the costliest first
# (tests/conftest.py). TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 2
test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

test-slurm: install
	PATH="$(CURDIR)/$(BIN):$$PATH" MULTIRATER_SLURM=1 $(BIN)/python -m pytest -m slurm tests/slurm

# The GPU tests (tests/gpu: AMP training, resume, CPU agreement, tiled prediction's memory); they skip
# themselves, with the reason, where no CUDA device is visible.
test-gpu: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m gpu -rs tests/gpu

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
