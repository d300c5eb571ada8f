# Fruits! pipeline: the command index. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
DATA    ?= ../shared/data/fruits-360-sample
WEIGHTS ?= ../shared/models/mobilenet_v2/mobilenet_v2_1.0_224_no_top_rebuilt.h5
OUT     ?= output/demo
MASTER  ?= local[*]
# Extra CDK CLI arguments, e.g. CDK_ARGS="-c uploadDir=../fruits-360 -c runId=2026-11-21a"
CDK_ARGS ?=
CDK     := npx --no-install cdk

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
export PYTHONPATH := $(CURDIR)

.PHONY: help venv demo test test-fast lint synth deploy-check deploy-data deploy destroy bench bench-scaling \
	bench-growth

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt spark_job/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

venv: $(VENV)/.installed node_modules/.installed ## Create .venv and install Python and Node dependencies

demo: $(VENV)/.installed ## Run the job locally: fit on $(DATA)/Training, transform $(DATA)/Test, into $(OUT)/
	$(PY) -m spark_job fit --input "$(DATA)/Training" --output "$(OUT)/fit" --weights "$(WEIGHTS)" --master "$(MASTER)" --overwrite
	$(PY) -m spark_job transform --model "$(OUT)/fit/model" --input "$(DATA)/Test" --output "$(OUT)/transform" --weights "$(WEIGHTS)" --master "$(MASTER)" --overwrite
	$(PY) -m spark_job summary "$(OUT)/fit" "$(OUT)/transform"

# Benchmark options: make bench BENCH_ARGS="--images 2000 --image-size 224 --cores 2 --repeats 3"
BENCH_ARGS ?=
bench: $(VENV)/.installed ## Featurize stage vs bare TensorFlow, same images and cores (last line: the ratio)
	$(PY) -m bench.featurize_bench --mode ratio $(BENCH_ARGS)

bench-scaling: $(VENV)/.installed ## The job's featurize stage at N and 4N images (last line: the time ratio)
	$(PY) -m bench.featurize_bench --mode scaling $(BENCH_ARGS)

bench-growth: $(VENV)/.installed ## Features store: featurize N images, then N + N/10 (last line: the time ratio)
	$(PY) -m bench.featurize_bench --mode growth $(BENCH_ARGS)

lint: $(VENV)/.installed ## ruff on the whole repo, mypy on spark_job/, stacks/, ops/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy spark_job stacks ops

test: venv ## Lint and run every test (job, infra, bootstrap, step contract, emulated deploy)
	$(MAKE) lint
	$(PY) -m pytest

test-fast: $(VENV)/.installed ## The fast tier (under a minute): every test but the real model, installs, emulated deploys
	$(PY) -m pytest -m "not slow"

synth: venv ## Synthesize the CloudFormation templates into cdk.out/ (offline, cdk-nag on)
	$(CDK) synth --quiet $(CDK_ARGS)

deploy-check: venv ## Before deploying: synth, cdk-nag, cfn-lint, shellcheck, step contract run; PASS/FAIL summary
	bash scripts/deploy_check.sh $(CDK_ARGS)

deploy-data: venv ## Deploy only the data bucket (FruitsData), to upload data before the first run
	$(CDK) deploy FruitsData --require-approval never $(CDK_ARGS)

deploy: venv ## Deploy every stack to eu-west-3 and run the job (needs AWS credentials and `cdk bootstrap`)
	$(CDK) deploy --all --require-approval never $(CDK_ARGS)

destroy: venv ## Remove the stacks (the data bucket is retained unless -c retainData=false)
	$(CDK) destroy --all --force $(CDK_ARGS)

# Operator CLI (python -m ops --help): before and after `make deploy`.
.PHONY: upload status follow runs results

upload: $(VENV)/.installed ## Upload DIR=path/to/fruits-360 (Training/, Test/) to s3://<bucket>/data/, resumable
	@test -n "$(DIR)" || { echo "usage: make upload DIR=path/to/fruits-360" >&2; exit 2; }
	$(PY) -m ops upload "$(DIR)"

status: $(VENV)/.installed ## The EMR cluster and each step's state and elapsed time (exit 1 if a step failed)
	$(PY) -m ops status

follow: $(VENV)/.installed ## Wait until the EMR steps end; exit 1 and print the stderr location if one failed
	$(PY) -m ops status --follow

runs: $(VENV)/.installed ## One line per run under s3://<bucket>/runs/ (images, reused/inferred, k, accuracy)
	$(PY) -m ops runs

results: $(VENV)/.installed ## Download RUN's manifests and report (default: the stack's run) to DEST=output/results/RUN
	$(PY) -m ops results $(RUN) $(if $(DEST),--dest "$(DEST)")
