# Martech Bridge - the README's vocabulary: run, test, invoke, lint, build, deploy, bench.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := .venv
TOOLS := .venv-tools
SCAN  := .venv-scan
PY    := $(VENV)/bin/python
# The Lambda runtime is Python 3.12; prefer it (pyenv's too) so `sam build` finds python3.12 in the venv.
PYTHON ?= $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3; do \
             if $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then echo $$p; break; fi; done)
export SAM_CLI_TELEMETRY := 0
# Local targets only: the embedded AWS answers in us-east-1. Deploying uses samconfig.toml's region, else
# your profile's (AWS_REGION / AWS_DEFAULT_REGION / ~/.aws/config), as sam and boto3 look them up.
LOCAL_REGION := us-east-1
# The venvs come first, so the python3.12 that `sam build` looks for is the project's.
TOOLPATH := $(abspath $(VENV))/bin:$(abspath $(TOOLS))/bin:$(PATH)

FN    ?= QueryFunction
EVENT ?= events/query-get-subscription.json
ENV   ?= default

.PHONY: help venv tools scan run reset test test-fast invoke post-eml lint build deploy setup delete bench clean

run test test-fast invoke bench: export AWS_DEFAULT_REGION ?= $(LOCAL_REGION)

help:
	@echo "make run      start the bridge locally (HTTP API on 127.0.0.1:3000, sandbox, embedded AWS)"
	@echo "               PERSIST=1 make run keeps tables across restarts; make reset forgets them"
	@echo "               PORT, SANDBOX_PORT, AWS_PORT move its ports (3000, 3100, 3200)"
	@echo "make reset    forget what PERSIST=1 make run kept in .local-state/"
	@echo "make test     install and run every test, the template checks and the arm64 build check"
	@echo "make test-fast  the same without the arm64 build check"
	@echo "make invoke   FN=<LogicalId> EVENT=events/<file>.json: one function, one event, no Docker"
	@echo "make post-eml EML=<file>.eml DISPATCH=d_... [AUTH=pass|fail|none]: a received reply through InboundMailFunction (SES's auth results simulated)"
	@echo "make lint     ruff, mypy, cfn-lint, sam validate --lint, checkov"
	@echo "make build    sam build for arm64, then prune and check the layer"
	@echo "make setup    ENV=dev|prod: list the stage's secrets and create the missing ones (SSM)"
	@echo "make deploy   ENV=dev|prod: check the secrets, build, then sam deploy (GUIDED=1 for sam's questions)"
	@echo "make delete   ENV=dev|prod: delete the stack (tables with data and your secrets are kept)"
	@echo "make bench    benchmarks, each beside its baseline from the same run"

# `make run` installs only what running needs (about a third of the test tools' size), showing pip's progress.
$(VENV)/.runtime: pyproject.toml layers/common/requirements.txt
	@test -x $(PY) || { test -n "$(PYTHON)" || { echo "Python >= 3.11 is needed (3.12 preferred)"; exit 1; }; \
	  echo "Creating $(VENV) with $(PYTHON)" >&2; $(PYTHON) -m venv $(VENV); }
	@echo "Installing what the local stack needs (first run only; a minute or so)..." >&2
	@$(PY) -m pip install --disable-pip-version-check --progress-bar on -e '.[local]' >&2
	@touch $@

$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	@test -x $(PY) || { test -n "$(PYTHON)" || { echo "Python >= 3.11 is needed (3.12 preferred)"; exit 1; }; \
	  echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(TOOLS)/.installed: requirements-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	@touch $@

$(SCAN)/.installed: requirements-scan.txt
	@test -x $(SCAN)/bin/python || $(PYTHON) -m venv $(SCAN)
	$(SCAN)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	@touch $@

venv: $(VENV)/.installed
tools: $(TOOLS)/.installed
scan: $(SCAN)/.installed

run: $(VENV)/.runtime
	@$(PY) -m devkit run

# Forget what PERSIST=1 make run kept in .local-state/.
reset: $(VENV)/.runtime
	@$(PY) -m devkit reset

# On every core (pytest-xdist, whole files per worker); the fuzz module apart, since schemathesis gives all
# its generated tests one node id, which xdist cannot tell apart.
# The fuzz module runs beside the parallel run, not after it: schemathesis gives its tests one node id, so xdist
# cannot share them out, and most of the suite waits on its servers, which leaves the cores room. Its report
# follows the parallel run's; either failing fails the target.
test: venv tools
	@fuzz=$$(mktemp); \
	PATH="$(TOOLPATH)" $(PY) -m pytest -p no:cacheprovider tests/e2e/test_fuzz.py >"$$fuzz" 2>&1 & fuzzing=$$!; \
	PATH="$(TOOLPATH)" $(PY) -m pytest -n auto --dist loadfile --ignore=tests/e2e/test_fuzz.py; suite=$$?; \
	wait $$fuzzing; fuzzed=$$?; cat "$$fuzz"; rm -f "$$fuzz"; \
	test $$suite -eq 0 && test $$fuzzed -eq 0

# Everything but the slow template build check.
test-fast: venv
	PATH="$(TOOLPATH)" $(PY) -m pytest -m "not template"

# Silent, so `make invoke ... | jq .` reads only the function's answer.
invoke: $(VENV)/.runtime
	@$(PY) -m devkit invoke $(FN) -e $(EVENT)

post-eml: $(VENV)/.runtime
	@$(PY) -m devkit post-eml $(EML) $(if $(DISPATCH),--dispatch $(DISPATCH)) $(if $(AUTH),--auth $(AUTH))

lint: venv tools scan
	$(VENV)/bin/ruff check layers functions devkit tests bench
	$(VENV)/bin/mypy layers/common/martech_bridge devkit
	$(TOOLS)/bin/cfn-lint template.yaml
	PATH="$(TOOLPATH)" sam validate --lint
	$(SCAN)/bin/checkov --quiet --compact --skip-download --framework cloudformation --file template.yaml

build: venv tools
	$(PY) -m devkit check-config --no-overlay --stage $(or $(STAGE),dev)
	PATH="$(TOOLPATH)" sam build --parallel
	$(PY) -m devkit check-layer --build-dir .aws-sam/build

setup: venv
	$(PY) -m bridgectl setup --config-env $(ENV)

deploy: venv
	$(PY) -m bridgectl setup --config-env $(ENV) --check
	$(MAKE) build STAGE=$$($(PY) -m bridgectl setup --config-env $(ENV) --print-stage)
	PATH="$(TOOLPATH)" sam deploy --config-env $(ENV) $(if $(GUIDED),--guided)

delete: venv tools
	$(PY) -m bridgectl setup --config-env $(ENV) --before-delete
	PATH="$(TOOLPATH)" sam delete --config-env $(ENV)

bench: venv tools
	@rm -f bench/results.json
	@for script in coldstart first_call replaced_utilities relay_overhead ingest console layer_size; do PATH="$(TOOLPATH)" $(PY) bench/$$script.py || exit 1; done
	@$(PY) bench/summary.py

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache .mypy_cache
