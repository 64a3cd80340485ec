# Everything runs from the project's own virtualenv in .venv, created on first use and filled
# from the lock file (exact versions, checked by hash): every install gets the same packages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# requirements.lock: what the bot runs on (the Docker image installs exactly this, and the build tools).
# requirements-dev.lock: the same pins plus the test and lint tools and FFmpeg as a pip package.
# requirements-build.lock: the build tools of pyproject.toml's [build-system] (setuptools, wheel),
# installed next to either lock so the project itself is built without build isolation (which
# would fetch the newest setuptools on every install).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
BUILD_LOCK := requirements-build.lock
# The one tool used only to write the lock files (never to install): pinned here.
UV_VERSION := 0.13.8
UV := $(VENV)/tools/bin/uv
COMPILE = $(UV) pip compile pyproject.toml --quiet --universal --python-version 3.11 --generate-hashes
BUILD_COMPILE = $(UV) pip compile - --quiet --universal --python-version 3.11 --generate-hashes
# [build-system] requires, one per line, for uv to read from stdin.
BUILD_REQUIRES = $(VENV)/tools/bin/python -c 'import tomllib; \
  print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'
GUILD ?=

.PHONY: install test lint run emulator bench chaos sync lock upgrade clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml $(DEV_LOCK) $(BUILD_LOCK)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK) -r $(BUILD_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check || { \
	  echo "pyproject.toml asks for packages that $(DEV_LOCK) does not pin: run 'make lock'" >&2; exit 1; }
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pyright --project pyproject.toml
	$(BIN)/hadolint Dockerfile
	$$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))') \
	  --project-directory . -f docker-compose.yml config --quiet

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/chatterbox-bot run

emulator: $(STAMP)
	$(BIN)/chatterbox-bot emulator

# The long kill campaign (SIGKILL at 50 random points per engine); prints its counts.
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --points 50

sync: $(STAMP)
	$(BIN)/chatterbox-bot sync $(if $(GUILD),--guild $(GUILD))

bench: $(STAMP)
	$(BIN)/python bench/voice_start.py
	$(BIN)/python bench/voices_autocomplete.py
	$(BIN)/python bench/cache.py
	$(BIN)/python bench/delivery.py
	$(BIN)/python bench/quotas.py
	$(BIN)/python bench/long_text.py
	$(BIN)/python bench/autoread_gaps.py

$(UV):
	$(PYTHON) -m venv $(VENV)/tools
	$(VENV)/tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

# Re-resolve after a change to pyproject.toml's dependencies, keeping every pin that still fits.
lock: $(UV)
	$(COMPILE) -o $(LOCK)
	$(COMPILE) --extra dev --extra ffmpeg -c $(LOCK) -o $(DEV_LOCK)
	$(BUILD_REQUIRES) | $(BUILD_COMPILE) -c $(DEV_LOCK) -o $(BUILD_LOCK)

# Move every package (or only PACKAGE=name) to its newest release that pyproject.toml allows;
# then run `make test` and commit both lock files.
UPGRADE = $(if $(PACKAGE),--upgrade-package $(PACKAGE),--upgrade)
upgrade: $(UV)
	$(COMPILE) $(UPGRADE) -o $(LOCK)
	$(COMPILE) --extra dev --extra ffmpeg $(UPGRADE) -c $(LOCK) -o $(DEV_LOCK)
	$(BUILD_REQUIRES) | $(BUILD_COMPILE) $(UPGRADE) -c $(DEV_LOCK) -o $(BUILD_LOCK)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
