# Human entry points. Every target that runs Python first creates/repairs .venv (scripts/setup.sh).
PY := .venv/bin/python
SWEEP ?= $(shell ls -dt multirun/*/ 2>/dev/null | head -1)

.PHONY: setup demo train sweep seed-grid report tensorboard test test-all lint bench bench-overhead clean

setup:
	@bash scripts/setup.sh

demo: setup  ## the card's multirun on a small CPU default (about 3 minutes on 2 cores)
	$(PY) train.py -m model=cnn,resnet18

train: setup  ## one run with the defaults; add ARGS="model=resnet18 trainer.max_epochs=10"
	$(PY) train.py $(ARGS)

sweep: setup  ## any multirun: make sweep ARGS="model=cnn,resnet18 model.lr=1e-4,1e-3"
	$(PY) train.py -m $(ARGS)

seed-grid: setup  ## the seeds' 12-run grid (2 models x lr 1e-4,1e-3 x epochs 16,32,64)
	$(PY) train.py -m experiment=seed_grid $(ARGS)

report: setup  ## comparison report of the newest sweep (or SWEEP=multirun/...)
	$(PY) -m pixel_spotter.report $(SWEEP)

tensorboard: setup  ## serve every run's logs (outputs/ and multirun/) on http://localhost:6006
	@mkdir -p outputs multirun
	$(PY) -m tensorboard.main --logdir_spec outputs:outputs,multirun:multirun --host localhost --port 6006

test: setup  ## the test suite; skips the slow real-subprocess tests unless CI=true (CI runs everything)
	$(PY) -m pytest -q $(if $(filter true,$(CI)),,-m "not slow")

test-all: setup  ## every test, the slow subprocess runs, sweeps and kill-and-resume included (what CI runs)
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check pixel_spotter tests scripts train.py

bench: setup  ## per-model time-to-exact, throughput and latency vs the argmax oracle; ARGS="--split quadrant"
	$(PY) -m pixel_spotter.bench $(ARGS)

bench-overhead: setup  ## Lightning pipeline vs a bare PyTorch loop, same CNN and data; ARGS="EPOCHS REPEATS"
	$(PY) scripts/bench_overhead.py $(ARGS)

clean:
	rm -rf outputs multirun lightning_logs .pytest_cache
