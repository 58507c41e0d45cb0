# Two entry points: `make run` (the main job) and `make test` (the whole suite).
# Both create .venv on first use, installing the CPU build of torch 2.13.0 first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tdrl-installed

.PHONY: run test test-td014 test-fallback test-ray lint bench bench-train bench-floor setup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,dev,mujoco,export,ray,loggers,atari,minatar,envpool]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/tdrl train ppo --env CartPole-v1 --out runs/ppo-cartpole --force

lint: $(STAMP)
	$(BIN)/ruff check .

# Ray's tests start one local Ray instance per module (2 CPUs): `make test-ray` runs them
# serially, after the rest (two pytest-xdist workers would start two instances on 2 cores,
# and split a module's order-dependent tests). Each test has a hard pytest-timeout limit.
RAY_TESTS := tests/test_ray_train.py tests/test_ray_collector.py tests/test_ray_hostile.py \
	tests/test_ray_user_module.py tests/test_ray_pixels.py

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 $(addprefix --ignore=,$(RAY_TESTS))

test-ray: $(STAMP)
	$(BIN)/python -m pytest -q -p no:xdist $(RAY_TESTS)

# The module stack, doctests included, with tdrl/_compat.py on its public fallbacks
# (no private torch / tensordict internals). Three tests assert the fast path's own error
# text or hook cache, which the fallback (tensordict's dispatch) words differently.
MODULE_TESTS := tests/test_actor_critic.py tests/test_actor_critic_siblings.py tests/test_core.py tests/test_core_conventions.py \
	tests/test_distributions.py tests/test_distributions_api.py \
	tests/test_distributions_tanh_normal.py tests/test_exploration.py tests/test_imports.py \
	tests/test_probabilistic.py tests/test_qvalue.py tests/test_qvalue_actor.py \
	tests/test_qvalue_reliability.py tests/test_tanh_module.py \
	tests/test_specs_composite.py tests/test_specs_construction.py tests/test_specs_properties.py \
	tests/test_specs_shape.py tests/test_specs_stack.py tests/test_specs_values.py tests/test_compat.py tests/test_optim.py \
	tests/test_specs_hostile.py tests/test_distribution_contracts.py \
	tests/test_ordinal.py tests/test_multistep_actor.py tests/test_actor_extras.py tests/test_specs_extras.py \
	tests/test_rnn_modules.py tests/test_rnn_cells.py tests/test_rnn_api.py tests/test_step_mdp.py \
	tests/test_multiagent.py tests/test_value_norms.py \
	tests/test_models_nets.py \
	tdrl/modules tdrl/data tdrl/envs tdrl/utils.py tdrl/_compat.py

test-fallback: $(STAMP)
	TDRL_COMPAT_FALLBACK=1 $(BIN)/python -c "import tdrl._compat as c; assert not (c._FAST_STR or c._HOOKS_KNOWN or c._FOREACH_LERP or c._FUSED_RNN)"
	TDRL_COMPAT_FALLBACK=1 $(BIN)/python -m pytest -q -n 2 $(MODULE_TESTS) \
		--deselect tests/test_core.py::TestSafeSequential::test_missing_first_input \
		--deselect tests/test_qvalue_reliability.py::test_torchrl_error_phrases_keep_tdrl_detail \
		--deselect "tdrl/modules/tensordict_module/core.py::tdrl.modules.tensordict_module.core.hook_free"

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
	$(VENV14)/bin/python -m pytest -q -n 2 $(MODULE_TESTS) tests/test_torchrl_losses.py

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

# the README's CartPole / Pendulum / HalfCheetah tables from one run (~30 min, quiet 2 cores)
bench-train: $(STAMP)
	$(BIN)/python benchmarks/training.py

# tdrl's PPO / DQN / SAC updates and collection against the same code by hand (~5 min)
bench-floor: $(STAMP)
	$(BIN)/python benchmarks/floor.py 2>/dev/null

clean:
	rm -rf $(VENV) $(VENV14) runs
