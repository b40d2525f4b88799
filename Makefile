# Integration Hub. `make help` lists the targets.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY_SOURCES := libs services tests bench scripts
TYPED := libs/client/src libs/common/src libs/devstack/src libs/hubctl/src services/gateway/src services/ledger/src \
	services/webhook-dispatcher/src services/reconciler/src services/mock-operator/src services/mock-rgs/src tests bench scripts

.PHONY: help setup up test test-unit lint format bench migrate check-deploy

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## Install uv, system tools that are missing, and the locked workspace
	@scripts/bootstrap.sh
	@$(UV) sync --locked --all-packages --quiet

up: setup ## Run the hub: Kafka, PostgreSQL, every service and mock, a demo stream, a summary (Ctrl-C stops)
	@$(UV) run --locked hub-up

test: setup ## Unit tests, then integration and end-to-end tests on real Kafka 4.x and PostgreSQL
	@$(UV) run --locked pytest

test-unit: setup ## Unit tests only (no broker, no database)
	@$(UV) run --locked pytest tests/unit

lint: setup ## ruff (lint + format check), mypy --strict on code and tests, import-linter package boundaries
	@$(UV) run --locked ruff check $(PY_SOURCES)
	@$(UV) run --locked ruff format --check $(PY_SOURCES)
	@$(UV) run --locked mypy $(TYPED)
	@$(UV) run --locked lint-imports --no-cache --no-logo

format: setup ## Apply ruff fixes and formatting
	@$(UV) run --locked ruff check --fix $(PY_SOURCES)
	@$(UV) run --locked ruff format $(PY_SOURCES)

bench: setup ## Benchmarks against the real stack; prints ratios measured in one run
	@$(UV) run --locked python -m bench

check-deploy: setup ## Render deploy/ and check it: kubernetes-validate, kube-score, promtool, hadolint, compose schema
	@DEPLOY_TOOLS_BIN="$$(scripts/deploy-tools.sh)" $(UV) run --locked python -m scripts.check_deploy

migrate: setup ## Apply database migrations to DATABASE_URL
	@$(UV) run --locked hub-migrate

# ---- containers: images built without a registry, the testcontainers suite, the compose stack -------------------
# The images `make images` builds; docker-compose.yml and `make test-docker` use the same names.
HUB_IMAGE ?= integration-hub:local
HUB_KAFKA_IMAGE ?= integration-hub/kafka:4.1.1
HUB_POSTGRES_IMAGE ?= integration-hub/postgres:15
CONTAINER_IMAGES := HUB_IMAGE="$(HUB_IMAGE)" HUB_KAFKA_IMAGE="$(HUB_KAFKA_IMAGE)" HUB_POSTGRES_IMAGE="$(HUB_POSTGRES_IMAGE)"

.PHONY: images test-docker

images: setup ## Build the Hub, Kafka and PostgreSQL images (no registry needed) and print their sizes
	@$(CONTAINER_IMAGES) UV="$(UV)" scripts/images.sh

test-docker: setup ## Integration tests on Kafka/PostgreSQL testcontainers, then the image and compose tests
	@status=0; $(CONTAINER_IMAGES) HUB_INFRA=docker $(UV) run --locked pytest tests/integration tests/containers \
		--ignore=tests/integration/devstack || status=$$?; \
	$(UV) run --locked python -m hub_devstack.docker_containers; exit $$status
