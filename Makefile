# Fruits! pipeline: the command index. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
# The second venv: the same lock and tools with pyspark 4.1 (emr-spark-8.1.0, the LTS line; docs/spark-4.md).
VENV41  ?= .venv-spark41
PY41    := $(VENV41)/bin/python
# Which venv `make demo` runs the job in: SPARK=3.5 (.venv, emr-7.x) or SPARK=4.1 (.venv-spark41).
SPARK   ?= 3.5
SPARK_VENV = $(if $(filter 4.1,$(SPARK)),$(VENV41),$(VENV))
DATA    ?= ../shared/data/fruits-360-sample
WEIGHTS ?= ../shared/models/mobilenet_v2/mobilenet_v2_1.0_224_no_top_rebuilt.h5
OUT     ?= output/demo
MASTER  ?= local[*]
# Extra CDK CLI arguments, e.g. CDK_ARGS="-c uploadDir=../fruits-360 -c runId=2026-11-21a"
CDK_ARGS ?=
CDK     := npx --no-install cdk
# The job's locked runtime: this machine's lock for the venv, the cluster's platform for the wheelhouse.
LOCAL_ARCH := $(shell uname -m)
RUNTIME_LOCK := spark_job/requirements.$(LOCAL_ARCH).lock
# Cluster platform: x86_64 (m5, m6i ...) or aarch64 (Graviton: m7g ...), as the instance types say.
ARCH    ?= x86_64
WHEELHOUSE := build/wheelhouse/$(ARCH)
# pip without this machine's config files and PIP_* variables: the lock and PyPI decide alone.
# $(call locked_pip,VENV_DIR)
locked_pip = env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null $(1)/bin/python -m pip --isolated

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION = 20
export PYTHONPATH := $(CURDIR)

.PHONY: help venv demo test test-fast test-spark41 lint synth deploy-check deploy-data deploy destroy bench \
	bench-scaling bench-install bench-growth bench-predict bench-scale record-rates

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# The job's runtime first, from its lock, hashes required: the tests run exactly what the nodes install.
# Then the tools and the venv's pyspark; the lock is installed again after them, so a tool cannot move a
# locked package. $(call locked_venv,VENV_DIR,REQUIREMENTS)
define locked_venv
	test -x $(1)/bin/python || python3 -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(call locked_pip,$(1)) install -q --require-hashes -r $(RUNTIME_LOCK)
	$(1)/bin/python -m pip install -q -r $(2)
	$(call locked_pip,$(1)) install -q --require-hashes -r $(RUNTIME_LOCK)
	touch $(1)/.installed
endef

$(VENV)/.installed: requirements.txt requirements-tools.txt requirements-dev.txt $(RUNTIME_LOCK)
	$(call locked_venv,$(VENV),requirements-dev.txt)

# The same lock (the job's runtime is the same on both lines: docs/spark-4.md) with pyspark 4.1.
$(VENV41)/.installed: requirements.txt requirements-tools.txt requirements-spark41.txt $(RUNTIME_LOCK)
	$(call locked_venv,$(VENV41),requirements-spark41.txt)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

venv: $(VENV)/.installed $(VENV41)/.installed node_modules/.installed ## Create .venv (pyspark 3.5) and .venv-spark41 (pyspark 4.1), install Node dependencies

demo: $(SPARK_VENV)/.installed ## Run the job locally (SPARK=3.5 or 4.1): fit on $(DATA)/Training, transform $(DATA)/Test, into $(OUT)/
	@case "$(SPARK)" in 3.5|4.1) ;; *) echo "SPARK must be 3.5 (emr-7.x) or 4.1 (emr-spark-8.1.0), got '$(SPARK)'" >&2; exit 2 ;; esac
	$(SPARK_VENV)/bin/python -m spark_job fit --input "$(DATA)/Training" --output "$(OUT)/fit" --weights "$(WEIGHTS)" --master "$(MASTER)" --overwrite
	$(SPARK_VENV)/bin/python -m spark_job transform --model "$(OUT)/fit/model" --input "$(DATA)/Test" --output "$(OUT)/transform" --weights "$(WEIGHTS)" --master "$(MASTER)" --overwrite
	$(SPARK_VENV)/bin/python -m spark_job summary "$(OUT)/fit" "$(OUT)/transform"

# Benchmark options: make bench BENCH_ARGS="--images 2000 --image-size 224 --cores 2 --repeats 3"
BENCH_ARGS ?=
bench: $(VENV)/.installed ## Featurize stage vs the bare engine and bare TF, same images and cores (last two lines)
	$(PY) -m bench.featurize_bench --mode ratio $(BENCH_ARGS)

bench-scaling: $(VENV)/.installed ## The job's featurize stage at N and 4N images (last line: the time ratio)
	$(PY) -m bench.featurize_bench --mode scaling $(BENCH_ARGS)

# The app's model of $(OUT)/fit (fitted first when it has none, as `make demo` fits it).
PREDICT_MODEL ?= $(OUT)/fit/model
bench-predict: $(VENV)/.installed ## `predict` on $(DATA)/Test: time to first answer, ms per photo on one core (last line)
	test -f "$(PREDICT_MODEL)/classifier.tflite" || $(PY) -m spark_job fit --input "$(DATA)/Training" --output "$(OUT)/fit" --weights "$(WEIGHTS)" --master "$(MASTER)" --overwrite
	$(PY) -m bench.predict_bench --model "$(PREDICT_MODEL)" --photos "$(DATA)/Test" $(BENCH_ARGS)

bench-install: $(VENV)/.installed wheelhouse ## A node's install: shipped wheelhouse (offline) vs PyPI (last line: time ratio)
	$(PY) -m bench.install_bench $(BENCH_ARGS)

# N photos for bench-scale (default 20000: fits at N and 4N) and bench-growth (default 2000, a quick check;
# the issue's size is `make bench-growth N=80000`, tens of minutes on 2 vCPUs). BENCH_ARGS adds options, e.g.
# BENCH_ARGS="--transform 20000" (bench-growth), BENCH_ARGS="--repeats 2 --save build/scale.json".
N ?=
bench-scale: $(VENV)/.installed ## The real fit at N and 4N photos the store holds: stages, peaks (last lines: RSS ratio, marginal share)
	$(PY) -m bench.scale_bench $(if $(N),--images $(N)) $(BENCH_ARGS)

bench-growth: $(VENV)/.installed ## fit on N new photos, then on N + N/10 with the store: whole runs (last line: their ratio)
	$(PY) -m bench.growth_bench $(if $(N),--images $(N)) $(BENCH_ARGS)

lint: $(VENV)/.installed ## ruff on the whole repo, mypy on spark_job/, stacks/, ops/, import-linter's contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy spark_job stacks ops
	$(VENV)/bin/lint-imports

test: venv wheelhouse ## Lint and run every test (job, infra, bootstrap, step contract, emulated deploy), then the job's on pyspark 4.1
	$(MAKE) wheelhouse ARCH=aarch64
	$(MAKE) lint
	$(PY) -m pytest
	$(MAKE) test-spark41

# The job's tests and the step contract (synthesized with -c releaseLabel=emr-spark-8.1.0) on pyspark 4.1;
# .venv runs the CDK app (cdk.json) for that synth.
test-spark41: $(VENV)/.installed $(VENV41)/.installed node_modules/.installed wheelhouse ## The job's tests and the step contract on pyspark 4.1 (emr-spark-8.1.0)
	$(PY41) -m pytest tests/job tests/deploy

test-fast: $(VENV)/.installed ## The fast tier (about a minute; the default line only): every test but the real model, installs, emulated deploys
	$(PY) -m pytest -m "not slow" -n auto --maxprocesses 2 --dist loadfile

# Locks and wheelhouse (stacks/runtime_deps.py). `make lock` needs PyPI; so does a missing wheelhouse.
.PHONY: lock wheelhouse
lock: $(VENV)/.installed ## Compile spark_job/requirements.in into the hashed locks (x86_64, aarch64; uv)
	$(PY) scripts/runtime_deps.py lock --uv $(VENV)/bin/uv

$(WHEELHOUSE)/wheelhouse.json: spark_job/requirements.$(ARCH).lock | $(VENV)/.installed
	$(PY) scripts/runtime_deps.py wheelhouse --arch $(ARCH) --dest $(WHEELHOUSE)

wheelhouse: $(WHEELHOUSE)/wheelhouse.json ## Download the locked wheels for the cluster (ARCH=x86_64|aarch64) into build/
	$(PY) scripts/runtime_deps.py check --arch $(ARCH) --dest $(WHEELHOUSE)

synth: venv wheelhouse ## Synthesize the CloudFormation templates into cdk.out/ (offline, cdk-nag on)
	$(CDK) synth --quiet $(CDK_ARGS)

# Both network designs are checked: the default (egress=none) into cdk.out/, egress=nat into build/.
deploy-check: venv wheelhouse ## Before deploying: synth, cdk-nag, cfn-lint, shellcheck, step contract (egress none and nat)
	@status=0; \
	bash scripts/deploy_check.sh $(CDK_ARGS) || status=1; \
	echo "== the same with -c egress=nat"; \
	CDK_OUT=build/cdk.out-egress-nat DEPLOY_CHECK_LOGS=build/deploy-check-egress-nat \
	  bash scripts/deploy_check.sh $(CDK_ARGS) -c egress=nat || status=1; \
	exit $$status

deploy-data: venv wheelhouse ## Deploy only the data bucket (FruitsData), to upload data before the first run
	$(CDK) deploy FruitsData --require-approval never $(CDK_ARGS)

deploy: venv wheelhouse ## Deploy every stack to eu-west-3 and run the job (needs AWS credentials and `cdk bootstrap`)
	$(CDK) deploy --all --require-approval never $(CDK_ARGS)

# A run started by `make run` or the schedule uses the stack's subnets, groups and roles: destroy waits for none.
destroy: venv wheelhouse ## Remove the stacks (the data bucket is retained unless -c retainData=false); refused while a run is up
	$(PY) -m ops before-destroy
	$(CDK) destroy --all --force $(CDK_ARGS)

# Operator CLI (python -m ops --help): before and after `make deploy`. RUN= names a run (default: the newest).
.PHONY: upload run status follow runs results cost record-rates

# The only command that rewrites ops/data/rates.json (commit it with the machine it names): ~30-60 min here.
record-rates: $(VENV)/.installed ## Measure each stage's cost per photo (featurize, bench-scale --transform) into ops/data/rates.json
	$(PY) -m bench.record_rates $(if $(N),--images $(N)) $(BENCH_ARGS)

IMAGES ?= 90483
cost: $(VENV)/.installed ## Time per stage (IMAGES, 90k, 1M, 10M photos) and dollars of one run for this configuration (CDK_ARGS="-c taskCapacity=8")
	$(PY) -m ops cost --images $(IMAGES) $(CDK_ARGS)

upload: $(VENV)/.installed ## Upload DIR=path/to/fruits-360 (Training/, Test/) to s3://<bucket>/data/, resumable
	@test -n "$(DIR)" || { echo "usage: make upload DIR=path/to/fruits-360" >&2; exit 2; }
	$(PY) -m ops upload "$(DIR)"

run: $(VENV)/.installed ## Start a run now: the deployed cluster, a new run id (or RUN=new-id), no stack change
	$(PY) -m ops run $(if $(RUN),"$(RUN)")

status: $(VENV)/.installed ## RUN's cluster (default: the newest run), each step's state and elapsed time (exit 1 if a step failed)
	$(PY) -m ops status $(if $(RUN),"$(RUN)")

follow: $(VENV)/.installed ## Wait until RUN's steps end (default: the newest run); exit 1 and print the stderr location if one failed
	$(PY) -m ops status --follow $(if $(RUN),"$(RUN)")

runs: $(VENV)/.installed ## One line per run: its folder under runs/ or its cluster (state, images, reused/inferred, k, accuracy)
	$(PY) -m ops runs

results: $(VENV)/.installed ## Download RUN's manifests, report and app model (default: the newest run) to DEST=output/results/RUN
	$(PY) -m ops results $(if $(RUN),"$(RUN)") $(if $(DEST),--dest "$(DEST)")
