# opsflow: one command per habit. `make test` is what CI runs (.ci/run).
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The dev/test environment runs the Lambda runtime's Python (python3.13): PATH first, then pyenv.
# (A pyenv shim on PATH may exist without working, so each candidate is tried.)
PYTHON313 ?= $(shell for p in "$$(command -v python3.13)" \
	$$(command -v pyenv >/dev/null 2>&1 && ls -d "$$(pyenv root)"/versions/3.13*/bin/python3.13 2>/dev/null | sort -r); do \
	[ -n "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV     := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
PY       := $(VENV)/bin/python
SAM      := $(SAM_VENV)/bin/sam
# `sam build` needs a python3.13 on PATH (its own check); the dev venv has one.
SAM_ENV  := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-eu-west-1}
HOST_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/')

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: python
python:
	@if [ -z "$(PYTHON313)" ]; then \
	  echo "error: python3.13 not found (the Lambda runtime is python3.13)." >&2; \
	  echo "Install CPython 3.13 (e.g. 'pyenv install 3.13' or your OS package) so 'python3.13' is on PATH." >&2; \
	  exit 1; fi

$(VENV)/.installed: requirements/dev.txt | python
	rm -rf $(VENV)
	$(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt | python
	rm -rf $(SAM_VENV)
	$(PYTHON313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/sam.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt | python
	rm -rf $(CHECKOV_VENV)
	$(PYTHON313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: setup
setup: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed node_modules/.installed ## create every environment

.PHONY: lint
lint: $(VENV)/.installed ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: validate
validate: $(VENV)/.installed $(SAM_VENV)/.installed ## sam validate --lint and cfn-lint on template.yaml
	$(SAM_ENV) $(SAM) validate --lint
	$(VENV)/bin/cfn-lint template.yaml

.PHONY: scan
scan: $(CHECKOV_VENV)/.installed ## checkov over template.yaml (.checkov.yaml says why each skipped check is skipped)
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --config-file .checkov.yaml

.PHONY: check-asl
check-asl: $(VENV)/.installed node_modules/.installed ## asl-validator and moto's ASL parser on statemachines/
	npx --no-install asl-validator $(foreach f,$(wildcard statemachines/*.asl.json),--json-path $(f))
	$(PY) -m tools.check_statemachines

.PHONY: build
build: $(VENV)/.installed $(SAM_VENV)/.installed ## sam build (arm64, no container) into .aws-sam/build, compiled to bytecode
	$(SAM_ENV) $(SAM) build --cached
	$(PY) -m tools.compile_bytecode .aws-sam/build

# The same build for this machine's architecture, which Python can import here (the import check, the bench).
.PHONY: build-host
build-host: $(VENV)/.installed $(SAM_VENV)/.installed
	$(SAM_ENV) $(SAM) build --build-dir .aws-sam/build-host --cache-dir .aws-sam/cache-host --cached \
	  --parameter-overrides Architecture=$(HOST_ARCH) >/dev/null
	$(PY) -m tools.compile_bytecode .aws-sam/build-host

.PHONY: check-build
check-build: build build-host ## import every built function with its built layer under python3.13
	$(PY) -m tools.check_build --build-dir .aws-sam/build --expect-arch arm64
	$(PY) -m tools.check_build --build-dir .aws-sam/build-host --expect-arch $(HOST_ARCH) --import

# The template as deployed (SAM policy templates expanded): the least-privilege tests read it.
build/template.transformed.json: template.yaml tools/transform_template.py template_model/cloudformation.py sandbox/sam.py $(VENV)/.installed
	$(PY) -m tools.transform_template $@

.PHONY: unit
unit: $(VENV)/.installed node_modules/.installed build/template.transformed.json ## pytest only
	$(VENV)/bin/pytest -n 2

.PHONY: test
test: lint validate scan check-asl check-build unit ## every check, in order, failing on the first error (CI runs this)

.PHONY: demo
demo: $(VENV)/.installed ## the rolling restart of 12 simulated instances, 3 at a time, in the sandbox
	$(PY) -m sandbox run RollingRestartStateMachine --input events/rolling_restart/demo.json \
	  --fleet size=12,boot=60,readiness=40,spread=0.3,delay=300,interval=10,healthy=3 --seed 7 --out build/demo

.PHONY: bench
bench: build-host ## the benchmark matrix in the sandbox: writes bench/results.md and bench/results.png
	$(PY) bench/run.py --jobs 2

# Deployed stack helpers (need the AWS CLI and credentials): make start-restart INPUT=events/rolling_restart/production.json
STACK ?= opsflow
INPUT ?= events/rolling_restart/production.json
.PHONY: start-restart
start-restart: ## start a rolling restart of the deployed stack STACK with INPUT
	aws stepfunctions start-execution --input file://$(INPUT) --state-machine-arn "$$(aws cloudformation describe-stacks \
	  --stack-name $(STACK) --query "Stacks[0].Outputs[?OutputKey=='RollingRestartStateMachineArn'].OutputValue" --output text)"

.PHONY: smoke
smoke: ## dry run against the deployed stack STACK: prints the preflight verdict (AWS CLI, credentials; SMOKE_INPUT optional)
	bash tools/smoke.sh $(STACK) $(SMOKE_INPUT)

.PHONY: delete-stack
delete-stack: ## empty the data bucket of the deployed stack STACK, then delete the stack (AWS CLI, credentials)
	bucket=$$(aws cloudformation describe-stacks --stack-name $(STACK) \
	  --query "Stacks[0].Outputs[?OutputKey=='DataBucketName'].OutputValue" --output text); \
	[ -z "$$bucket" ] || [ "$$bucket" = None ] || aws s3 rm "s3://$$bucket" --recursive
	aws cloudformation delete-stack --stack-name $(STACK)
	aws cloudformation wait stack-delete-complete --stack-name $(STACK)

.PHONY: docs
docs: $(VENV)/.installed ## rewrite the README's parameter table, docs/workflows.md and docs/fault-matrix.md (runs the matrix, minutes)
	$(PY) -m tools.readme_parameters
	$(PY) -m tools.diagrams
	$(PY) -m tools.fault_matrix

.PHONY: lock
lock: python ## re-pin requirements/*.txt from requirements/dev.in and the SAM CLI version
	rm -rf .venv-lock && $(PYTHON313) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements/dev.in
	{ echo "# Lock of requirements/dev.in for Python 3.13: every package pinned. Regenerate with 'make lock'."; \
	  .venv-lock/bin/pip freeze; } > requirements/dev.txt
	rm -rf .venv-lock && $(PYTHON313) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet "$$(grep -m1 '^checkov==' requirements/checkov.txt)"
	{ echo "# checkov (IaC scanner) in its own virtualenv: it pins many packages. Regenerate with 'make lock'."; \
	  .venv-lock/bin/pip freeze; } > requirements/checkov.txt
	rm -rf .venv-lock

.PHONY: clean
clean: ## remove build output and environments
	rm -rf .aws-sam build $(VENV) $(SAM_VENV) $(CHECKOV_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache
