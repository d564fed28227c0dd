# Two commands do all the set-up on a fresh machine:
#   make reproduce   build the environment from requirements.lock, then run the pipeline (dvc repro);
#                    FORCE=1 runs every stage again, even those the local DVC cache has
#   make test        build the environment, then run the test suite
#   make reproduce-zoo   the rest of the model zoo on census, tabled with the default models
#   make reproduce-tuned every default model tuned with the same search budget on validation, then retrained
#   make reproduce-aliexpress, make reproduce-ali-ccp   the public MTL recommendation data sets, from the files
#                        params.yaml's aliexpress.raw and ali_ccp.raw name (docs/data.md)
#   make reproduce-paper the papers' sizes (params.yaml profiles.paper), meant for a GPU; EXECUTOR=ray trains
#                        on a Ray cluster (RAY_ADDRESS) or on every GPU of this node, SET="KEY=VALUE ..." overrides
#                        parameters (docs/cluster.md)
#   make bench       install the peer libraries (the `bench` extra), then time this project against them
# requirements.lock includes Ray (the `distributed` extra): the test suite tests the ray executor.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXECUTOR ?=
FORCE ?=
SET ?=
export DVC_NO_ANALYTICS := 1
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: env reproduce reproduce-zoo reproduce-tuned reproduce-aliexpress reproduce-ali-ccp reproduce-paper test bench lock clean

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The venv's bin comes first on PATH so that dvc's stage commands run its python. FORCE=1: every stage
# again (dvc repro --force), even those whose outputs the local DVC cache has.
REPRO = PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro $(if $(FORCE),--force)

reproduce: env
	$(REPRO)

# The rest of the model zoo (pipelines/zoo/dvc.yaml), tabled with the default pipeline's models.
reproduce-zoo: env
	$(REPRO) pipelines/zoo/dvc.yaml

# Tuned baselines (pipelines/tuned/dvc.yaml): equal-budget searches on validation, then the best
# configurations over the usual seeds, tabled beside the untuned runs.
reproduce-tuned: env
	$(REPRO) pipelines/tuned/dvc.yaml

# AliExpress (one country) and Ali-CCP (pipelines/aliexpress, pipelines/ali_ccp): from the files the user
# obtained (params.yaml aliexpress.raw, ali_ccp.raw); hours on a CPU (docs/data.md).
reproduce-aliexpress: env
	$(REPRO) pipelines/aliexpress/dvc.yaml

reproduce-ali-ccp: env
	$(REPRO) pipelines/ali_ccp/dvc.yaml

# The papers' sizes (params.yaml profiles.paper) as a DVC experiment of the default pipeline: meant
# for a GPU (hours there; far too long for a CPU). `dvc exp show` lists it, `dvc exp apply` keeps it.
# EXECUTOR=ray sets train.executor=ray for it, SET="train.ensemble=2 ..." any other parameter.
reproduce-paper: env
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run $$($(BIN)/python -m replication profile-overrides paper) \
		$(if $(EXECUTOR),-S train.executor=$(EXECUTOR)) $(addprefix -S ,$(SET))

test: env
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

# The benchmark (benchmarks/README.md): the peers from pyproject.toml's `bench` extra, installed with
# requirements.lock as constraints so that torch and every shared package stay at their pinned versions.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -c requirements.lock -e '.[bench]'
	$(BIN)/python -m pip check
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.bench

# Re-pin every package after a dependency change in pyproject.toml.
lock: env
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV)
