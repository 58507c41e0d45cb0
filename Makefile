# Two entry points: `make run` (the main job) and `make test` (the whole suite).
# Both create .venv on first use, installing the CPU build of torch 2.13.0 first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tdrl-installed

.PHONY: run test test-td014 lint bench setup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,dev,mujoco,export,ray]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/tdrl train ppo --env CartPole-v1 --out runs/ppo-cartpole --force

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2

# The module stack on the oldest supported tensordict (0.14.x), in a second venv, plus
# TorchRL's losses / collector on tdrl modules (tests/test_torchrl_losses.py): torchrl
# 0.14.1 (which needs tensordict 0.14.x) is a test-only dependency of this venv.
VENV14 := .venv-td014
STAMP14 := $(VENV14)/.tdrl-installed
STAMP14RL := $(VENV14)/.torchrl-installed

$(STAMP14): pyproject.toml
	test -x $(VENV14)/bin/python || $(PY) -m venv $(VENV14)
	$(VENV14)/bin/python -m pip install -q --upgrade pip
	$(VENV14)/bin/python -m pip install -q torch==2.13.0
	$(VENV14)/bin/python -m pip install -q "tensordict==0.14.*"
	$(VENV14)/bin/python -m pip install -q -e ".[train,dev]"
	touch $(STAMP14)

$(STAMP14RL): $(STAMP14)
	$(VENV14)/bin/python -m pip install -q "torchrl==0.14.1"
	touch $(STAMP14RL)

test-td014: $(STAMP14RL)
	$(VENV14)/bin/python -c "import tensordict; assert tensordict.__version__.startswith('0.14'), tensordict.__version__"
	$(VENV14)/bin/python -c "import torch, torchrl; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert torchrl.__version__ == '0.14.1', torchrl.__version__"
	$(VENV14)/bin/python -m pytest -q -n 2 --ignore=tests/test_train.py --ignore=tests/test_cli.py --ignore=tests/test_compile.py

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(VENV14) runs
