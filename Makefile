# make help: list the targets. Every target sets up the virtual environment first if needed.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
EXPERIMENT ?=
ARGS ?=
export PROJECT_ROOT := $(CURDIR)
# Debian packages that some tests drive for real (see docs/testing.md); without them those tests skip.
SYSTEM_PACKAGES ?= chromium blender

.DEFAULT_GOAL := help
.PHONY: help install system-deps format lint test test-all data train sweep bench results results-families gpu-check clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,export,viewer]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package with its dev tools and the viewer (CPU torch 2.13)

system-deps: ## apt-get install $(SYSTEM_PACKAGES) when missing (as root; otherwise say how)
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing >/dev/null; \
	else \
	  echo "Debian packages missing:$$missing; the tests that need them skip (sudo apt-get install$$missing)"; \
	fi

format: $(STAMP) ## format the code with ruff
	$(VENV)/bin/ruff format temporal_nsr tests
	$(VENV)/bin/ruff check --fix temporal_nsr tests

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check temporal_nsr tests
	$(VENV)/bin/ruff format --check temporal_nsr tests

test: $(STAMP) system-deps ## run the fast test suite (what CI runs)
	WANDB_MODE=disabled $(PY) -m pytest -m "not slow and not gpu" -q

test-all: $(STAMP) system-deps ## run every test, slow ones included (gpu ones skip without CUDA)
	WANDB_MODE=disabled $(PY) -m pytest -q

data: $(STAMP) ## generate the default bending-bar dataset into data/bend-<digest of its config>/ (ARGS=...)
	$(PY) -m temporal_nsr.data.generate $(ARGS)

train: $(STAMP) ## the main job: bend_20t on a GPU, bend_20t_cpu without (EXPERIMENT=..., ARGS=...)
	@exp="$(EXPERIMENT)"; \
	if [ -z "$$exp" ]; then \
	  if $(PY) -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	    exp=bend_20t; echo "GPU found: training experiment=bend_20t (override: make train EXPERIMENT=...)"; \
	  else \
	    exp=bend_20t_cpu; echo "No GPU: training the CPU-sized experiment=bend_20t_cpu (override: make train EXPERIMENT=...)"; \
	  fi; \
	fi; \
	$(PY) -m temporal_nsr.train experiment=$$exp $(ARGS)

sweep: $(STAMP) ## Hydra multirun over the smoothness grid of bend_20t
	$(PY) -m temporal_nsr.train -m hparams_search=smoothness_grid experiment=bend_20t $(ARGS)

bench: $(STAMP) ## benchmarks -> outputs/bench/bench.json (ARGS=--quick for a smoke run)
	$(PY) -m temporal_nsr.bench $(ARGS)

# Every check that needs a GPU, as ONE command for a short loan of one (docs/performance.md, "On a
# GPU"): the training step under each GPU fast path (bench --gpu, at most GPU_BENCH_S seconds:
# steps/s and memory in $(GPU_OUT)/bench_gpu.json), the gpu-marked tests, then bend_20t and
# bend_20t_flow trained for GPU_TIME each and evaluated (steps, steps/s and memory in each run's
# metrics.json). A failed or out-of-memory step entry is a line of its report, not the end of
# the check. Rehearse it on a CPU (the step entries then run as a CPU rehearsal, tiny model) with
# make gpu-check GPU_TRAINER=cpu GPU_TIME=00:00:00:20 GPU_OUT=/tmp/gpu_check
GPU_TIME ?= 00:00:04:00
GPU_TRAINER ?= gpu
GPU_OUT ?= outputs/gpu_check
GPU_EXPERIMENTS ?= bend_20t bend_20t_flow
GPU_BENCH_S ?= 420
gpu-check: $(STAMP) ## on a GPU: step benchmarks, gpu tests, bend_20t and bend_20t_flow for GPU_TIME each
	set -e; tables=""; \
	$(PY) -m temporal_nsr.bench --gpu --budget-s $(GPU_BENCH_S) --out $(GPU_OUT)/bench_gpu.json \
	  || echo "gpu-check: some step entries failed (see $(GPU_OUT)/bench_gpu.json and .log)"; \
	WANDB_MODE=disabled $(PY) -m pytest -q -m gpu -p no:cacheprovider || [ $$? = 5 ]; \
	for exp in $(GPU_EXPERIMENTS); do \
	  $(PY) -m temporal_nsr.train experiment=$$exp trainer=$(GPU_TRAINER) trainer.max_time=$(GPU_TIME) \
	    hydra.run.dir=$(GPU_OUT)/$$exp $(ARGS); \
	  $(PY) -m temporal_nsr.evaluate run_dir=$(GPU_OUT)/$$exp max_views=10; \
	  tables="$$tables,$$exp: $(GPU_OUT)/$$exp/eval"; \
	done; \
	if [ -n "$$tables" ]; then \
	  $(PY) -m temporal_nsr.headline "results={$${tables#,}}" out=$(GPU_OUT)/summary.md; \
	fi

# The CPU experiments behind the README's results, in the order they need each other: the
# rotation-only baseline first (the one-bar experiments are scored against it; the 16-bar one
# has other data, so it gets none, and 10 target views per (object, time) as in docs/results.md).
# Each experiment's docs/<exp> is emptied once its training has finished, so no file of an older
# evaluation survives beside the new ones (the old ones stay in git).
RESULTS_EXPERIMENTS ?= enr_original_cpu bend_20t_cpu bend_20t_linear_cpu bend_many_linear_cpu
RESULTS_RUNS ?= outputs/results
# A smoke run points both elsewhere: make results ARGS=trainer.max_time=00:00:00:20 RESULTS_DOCS=/tmp/d ...
RESULTS_DOCS ?= docs
results: $(STAMP) ## regenerate the README's results into docs/ (about 2 hours on 2 cores): train, evaluate, render, curves, headline tables
	set -e; curves=""; tables=""; \
	for exp in $(RESULTS_EXPERIMENTS); do \
	  run=$(RESULTS_RUNS)/$$exp; \
	  $(PY) -m temporal_nsr.train experiment=$$exp hydra.run.dir=$$run $(ARGS); \
	  case $$exp in enr_original_cpu) extra="";; bend_many*) extra="max_views=10";; \
	    *) extra="baseline_run_dir=$(RESULTS_RUNS)/enr_original_cpu";; esac; \
	  rm -rf $(RESULTS_DOCS)/$$exp; \
	  $(PY) -m temporal_nsr.evaluate run_dir=$$run out_dir=$(RESULTS_DOCS)/$$exp $$extra; \
	  [ $$exp = enr_original_cpu ] || $(PY) -m temporal_nsr.render run_dir=$$run out_dir=$(RESULTS_DOCS)/$$exp; \
	  curves="$$curves,$$exp: $$run"; tables="$$tables,$$exp: $(RESULTS_DOCS)/$$exp"; \
	done; \
	$(PY) -m temporal_nsr.curves "runs={$${curves#,}}" out=$(RESULTS_DOCS)/learning_curves.png; \
	$(PY) -m temporal_nsr.headline "results={$${tables#,}}" out=$(RESULTS_DOCS)/results_summary.md

# The deformation families (issue 30) at one step budget: each family's CPU experiment, bend's
# included as the reference, and one model across six families, each trained for 2,000 steps
# (what 19 minutes give on 2 cores of the slower machines), scored on its last checkpoint.
# About 2 h 30 min on 2 cores (estimated from the runs' parts); docs/results.md ("Deformation families") has the table.
FAMILY_EXPERIMENTS ?= bend_20t_cpu twist_20t_cpu bend_twist_20t_cpu stretch_20t_cpu taper_20t_cpu \
  wave_20t_cpu flap_20t_cpu families_many_cpu
FAMILY_RUNS ?= outputs/results_families
FAMILY_DOCS ?= docs/families
FAMILY_STEPS ?= trainer.max_steps=2000 trainer.max_time=00:02:00:00
results-families: $(STAMP) ## train, evaluate and render every deformation family at 2,000 steps into docs/families/ (2 h 30 min on 2 cores)
	set -e; tables=""; \
	for exp in $(FAMILY_EXPERIMENTS); do \
	  run=$(FAMILY_RUNS)/$$exp; \
	  $(PY) -m temporal_nsr.train experiment=$$exp hydra.run.dir=$$run $(FAMILY_STEPS) $(ARGS); \
	  case $$exp in bend_twist*) extra="bend_targets=16";; families_many*) extra="max_views=4";; \
	    *) extra="";; esac; \
	  rm -rf $(FAMILY_DOCS)/$$exp; \
	  $(PY) -m temporal_nsr.evaluate run_dir=$$run checkpoint=last out_dir=$(FAMILY_DOCS)/$$exp $$extra; \
	  $(PY) -m temporal_nsr.render run_dir=$$run checkpoint=last out_dir=$(FAMILY_DOCS)/$$exp; \
	  tables="$$tables,$$exp: $(FAMILY_DOCS)/$$exp"; \
	done; \
	$(PY) -m temporal_nsr.headline "results={$${tables#,}}" out=$(FAMILY_DOCS)/results_summary.md

clean: ## remove caches (never outputs/ or data/)
	rm -rf .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
