# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck layers containers container-prep chromium pytest bench clean lock

install: $(STAMP)

# Rebuilt only when the lock or the project metadata changes, so a second `make` is a no-op.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The whole loop in a fresh workspace (left in demo-workspace/ to inspect with the CLI).
demo: install
	rm -rf demo-workspace
	$(BIN)/modelcycle demo --workspace demo-workspace

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

# podman, buildah, runc and debootstrap for the container-target tests, when missing.
containers:
	scripts/container-tools.sh

# The slow once-per-machine part of a container deployment (the base image, the wheelhouse, the
# build cache), done before the timed tests with a budget of its own. A failure does not stop
# the suite: it says why, and the container tests skip naming that reason.
CONTAINER_PREP_BUDGET ?= 1200
container-prep: install containers
	timeout --kill-after=30 $(CONTAINER_PREP_BUDGET) $(BIN)/python scripts/prepare-containers.py \
	|| echo "warning: preparing container builds failed or ran out of its" \
	        "$(CONTAINER_PREP_BUDGET) s budget; the container tests will skip and say why" >&2

# Debian's chromium for the console's browser tests (tests/ui), when missing.
chromium:
	scripts/chromium.sh

# The test session starts (and stops) its own PostgreSQL server on 127.0.0.1: see tests/_pg.py.
# Two pytest processes (one PostgreSQL server each); a file's tests stay together, in order, on
# one process. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 2
pytest: install containers container-prep chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck layers pytest

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Regenerate the lock after changing dependencies in pyproject.toml (needs network to the registry).
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
