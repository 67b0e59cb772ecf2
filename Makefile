# Human entry points (`make` or `make help` lists them). Every target that runs Python first creates/repairs
# .venv (scripts/setup.sh). Each target's `##` comment is its line in `make help`.
PY := .venv/bin/python
CLI := .venv/bin/pixel-spotter
SWEEP ?= $(shell ls -dt multirun/*/ 2>/dev/null | head -1)
# test processes (pytest-xdist): 2 halves the suite's wall time on a 2-core machine; each process trains the
# suite's shared runs once, so more workers than cores only adds work (WORKERS=0: one process); worksteal: an idle
# process takes tests queued for a busy one (the suite ends with a few long subprocess tests)
WORKERS ?= 2

.PHONY: help setup demo train sweep seed-grid report tensorboard test test-all lint bench bench-overhead clean

help:  ## this list: every target and what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup:  ## create or repair .venv: pixel-spotter with its test, sweep and export extras (every other target does this first)
	@bash scripts/setup.sh

demo: setup  ## the main job: baseline CNN and ResNet18, 5 epochs on the CPU (1 min 16 s measured on 2 idle cores)
	$(PY) train.py -m model=cnn,resnet18
	@echo ""
	@echo "The two commands above (tensorboard, pixel-spotter) live in the virtualenv: run"
	@echo "  source .venv/bin/activate"
	@echo "once in this shell first (or use 'make report' and 'make tensorboard', which need no activation)."

train: setup  ## one run with the defaults; add ARGS="model=resnet18 trainer.max_epochs=10"
	$(PY) train.py $(ARGS)

sweep: setup  ## any multirun: make sweep ARGS="model=cnn,resnet18 model.lr=1e-4,1e-3"
	$(PY) train.py -m $(ARGS)

seed-grid: setup  ## the 'Pixel Spotter' blog post's 12-run grid (2 models x lr 1e-4,1e-3 x epochs 16,32,64)
	$(PY) train.py experiment=seed_grid $(ARGS)

report: setup  ## comparison report of the newest sweep (or SWEEP=multirun/...); ARGS="--compare resnet18:cnn"
	$(CLI) report $(SWEEP) $(ARGS)

tensorboard: setup  ## serve every run's logs (outputs/ and multirun/) on http://localhost:6006
	@mkdir -p outputs multirun
	$(PY) -m tensorboard.main --logdir_spec outputs:outputs,multirun:multirun --host localhost --port 6006

test: setup  ## the test suite on WORKERS=2 processes; skips the slow real-subprocess tests unless CI=true (CI runs everything)
	$(PY) -m pytest -q -n $(WORKERS) --dist worksteal $(if $(filter true,$(CI)),,-m "not slow")

test-all: setup  ## every test, the slow subprocess runs, sweeps and kill-and-resume included (what CI runs)
	$(PY) -m pytest -q -n $(WORKERS) --dist worksteal

lint: setup  ## ruff on the package, its Hydra plugins, the tests and train.py (CI runs it)
	$(PY) -m ruff check pixel_spotter hydra_plugins tests train.py

bench: setup  ## per-model time-to-exact, throughput and latency vs the argmax oracle; ARGS="--split quadrant"
	$(CLI) bench $(ARGS)

bench-overhead: setup  ## Lightning pipeline vs a bare PyTorch loop, same CNN and data; ARGS="EPOCHS REPEATS"
	$(CLI) bench-overhead $(ARGS)

clean:  ## delete outputs/, multirun/, lightning_logs/ and the pytest cache (every run and sweep!)
	rm -rf outputs multirun lightning_logs .pytest_cache
