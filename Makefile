# Two commands matter: `make demo` and `make test`. Both install first, idempotently.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned to the build that lies on this machine's disk; pip takes it from there.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo evidence mechanism test test-slurm test-gpu gpu-check bench lint format docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e '.[test,docs]'
	touch $(STAMP)

# The whole workflow on the demo config, then its HTML report (every figure and table, with captions).
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile profiles/local \
		--report results/report.html --report-after-run
	$(BIN)/multirater timings --results results
	@echo "open results/report.html"

# The evidence run (docs/studies.md): the workflow once per rater preset (biased, noisy)
# and data seed (0, 1, 2), then LSE vs RSE over all six: results/evidence/summary.csv, fig_evidence.{png,pdf}.
evidence: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake evidence --profile profiles/local \
		--configfile config/evidence.yaml
	@echo "see results/evidence/summary.csv and results/evidence/fig_evidence.png"

# The mechanism study (docs/studies.md: when does the RSE win?): the workflow once per cell of config/mechanism.yaml's
# arms (graded rater bias 0-1; the paper's regime), then results/mechanism/summary.csv, cells.csv, ranges.csv
# and one figure per arm. In parts: ARM=bias or ARM=paper runs one arm's cells, CELL=<arm>-b<bias>-s<seed>
# one cell; the same command after an interruption finishes only the rest.
MECHANISM_TARGET = $(if $(CELL),results/mechanism/$(CELL)/run.json,$(if $(ARM),results/mechanism/arms/$(ARM).txt,evidence))
mechanism: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake $(MECHANISM_TARGET) --profile profiles/local \
		--configfile config/mechanism.yaml
	@echo "once every part has run: results/mechanism/summary.csv, ranges.csv, fig_*.png"

# The tests, the documentation build (tests/test_docs.py) included, on two pytest-xdist workers; the
# tests sharing an expensive run go to one worker, the costliest first (tests/conftest.py).
# TEST_WORKERS=0 runs them in one process. The 20 slowest setups and calls are listed at the end.
TEST_WORKERS ?= 2
test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
		--durations=20

test-slurm: install
	PATH="$(CURDIR)/$(BIN):$$PATH" MULTIRATER_SLURM=1 $(BIN)/python -m pytest -m slurm tests/slurm

# The GPU tests (tests/gpu: AMP training, resume, CPU agreement, tiled prediction's memory); they skip
# themselves, with the reason, where no CUDA device is visible.
test-gpu: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m gpu -rs tests/gpu

# The first run on a GPU node (benchmarks/gpu_check.py): the GPU tests, bench_train and bench_input on the device,
# a short MultiOrg-shaped training; under 8 minutes, one summary table (results/gpu-check/summary.md).
# DEVICE=cpu rehearses every step on the CPU.
DEVICE ?= cuda
gpu-check: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/gpu_check.py --device $(DEVICE)

bench: install
	$(BIN)/python -m pip install -e '.[bench]'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_engine.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_train.py

lint: install
	$(BIN)/snakefmt --check Snakefile workflow/rules
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

# The documentation site into site/; --strict: a broken link or anchor fails the build.
docs: install
	PATH="$(CURDIR)/$(BIN):$$PATH" NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "open site/index.html"

format: install
	$(BIN)/snakefmt Snakefile workflow/rules

clean:
	rm -rf results .snakemake site
