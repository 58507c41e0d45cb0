"""The off-policy plumbing DQN and SAC share: replay writes, flag checks, checkpoint keys, acting."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import TanhNormal
from tdrl.recipes.config import TrainError
from tdrl.recipes.dqn import DQN, DQNConfig
from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.replay import ReplayBuffer
from tdrl.recipes.sac import SAC, SACConfig

PENDULUM = EnvInfo(gym.spaces.Box(-8, 8, (3,)), gym.spaces.Box(-2, 2, (1,)), None)
CARTPOLE = EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), 475.0)


def _batch(start: int, n: int) -> dict[str, torch.Tensor]:
    x = torch.arange(start, start + n, dtype=torch.float32)
    return {"obs": x.unsqueeze(-1).expand(n, 2).clone(), "done": x.long() % 2 == 0}


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 9), sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8))
def test_replay_plain_mapping_adds_equal_tensordict_adds(capacity, sizes):
    """Slice writes of a dict hold exactly what TensorDict index writes hold, wrap-around included."""
    sizes = [min(n, capacity) for n in sizes]
    plain, boxed = ReplayBuffer(capacity), ReplayBuffer(capacity)
    start = 0
    for n in sizes:
        batch = _batch(start, n)
        plain.add(batch)
        boxed.add(TensorDict(batch, batch_size=[n]))
        start += n
    assert (
        (plain.pos, plain.size)
        == (boxed.pos, boxed.size)
        == (start % capacity, min(start, capacity))
    )
    for key in ("obs", "done"):
        assert plain.storage[key].dtype == boxed.storage[key].dtype
        assert torch.equal(plain.storage[key], boxed.storage[key])
    # the newest min(start, capacity) transitions are the ones kept
    kept = sorted(plain.storage["obs"][: plain.size, 0].tolist())
    assert kept == [float(v) for v in range(start - plain.size, start)]


def test_replay_add_with_other_keys_names_both_and_writes_nothing():
    rb = ReplayBuffer(4)
    rb.add(_batch(0, 1))
    before = rb.storage.clone()
    with pytest.raises(
        KeyError, match=r"keys \['done', 'observation'\] differ from the stored \['done', 'obs'\]"
    ):
        rb.add({"observation": torch.zeros(1, 2), "done": torch.zeros(1, dtype=torch.bool)})
    assert (rb.pos, rb.size) == (1, 1) and (rb.storage == before).all()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (SACConfig(tau=0.0), "--tau must be in (0, 1], got 0.0"),
        (SACConfig(learning_starts=-1), "--learning-starts must be >= 0, got -1"),
        (SACConfig(buffer_size=2, num_envs=3), "--buffer-size 2 must be >= num_envs = 3"),
        (SACConfig(batch_size=0), "--batch-size must be > 0, got 0"),
        (DQNConfig(gamma=1.5), "--gamma must be in [0, 1], got 1.5"),
        (
            DQNConfig(buffer_size=5, num_envs=2, n_step=3),
            "--buffer-size 5 must be >= num_envs * n_step = 6",
        ),
    ],
)
def test_offpolicy_flag_checks_name_the_flag(cfg, message):
    with pytest.raises(TrainError) as err:
        cfg.validate()
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("make", "own_keys"),
    [
        (
            lambda: SAC(SACConfig(hidden=(8, 8)), PENDULUM),
            {"model", "target", "log_alpha", "optimizer"},
        ),
        (
            lambda: DQN(DQNConfig(hidden=(8, 8), num_envs=2), CARTPOLE),
            {"model", "target", "egreedy", "optimizer", "nstep_pending"},
        ),
    ],
)
def test_offpolicy_checkpoint_keys_are_unchanged(make, own_keys):
    """The keys checkpoints written before the OffPolicy base hold (they must keep loading)."""
    algo = make()
    shared = {"buffer", "envs", "obs", "stats", "global_step", "updates", "since_train"}
    try:
        state = algo.state_dict()
        assert set(state) == shared | own_keys
        algo.load_state_dict(state)
    finally:
        algo.close()


@pytest.mark.parametrize("shared_trunk", [False, True])
def test_sac_acting_fast_path_draws_what_the_policy_operator_draws(shared_trunk):
    """The TensorDict-free acting path samples the policy operator's distribution, draw for draw."""
    algo = SAC(SACConfig(hidden=(8, 8), shared_trunk=shared_trunk), PENDULUM)
    try:
        obs = torch.randn(5, 3)
        torch.manual_seed(7)
        with torch.no_grad():
            loc, scale = algo.parts.act_net(obs)
            fast = TanhNormal(loc, scale, **algo.bounds).sample()
        torch.manual_seed(7)
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            slow = algo.parts.policy(TensorDict(observation=obs, batch_size=[5]))["action"]
        assert fast.shape == (5, 1) and torch.equal(fast, slow)
        assert (fast.abs() <= 2.0).all()
    finally:
        algo.close()


@pytest.mark.parametrize("make", ["dqn", "sac"])
def test_soft_target_update_moves_each_target_tau_of_the_way(make):
    """Polyak: after a gradient step, target = old target + tau * (new online - old target)."""
    if make == "dqn":
        algo = DQN(DQNConfig(hidden=(8, 8), tau=0.25, batch_size=4), CARTPOLE)
        online, target = list(algo.qnet.parameters()), list(algo.target.parameters())
        step = algo.train_step
    else:
        algo = SAC(SACConfig(hidden=(8, 8), tau=0.25, batch_size=4), PENDULUM)
        online = list(algo.agent.value_parameters())
        target = list(algo.target_agent.value_parameters())
        step = algo.update
    try:
        for _ in range(6):
            algo.env_step()
        with torch.no_grad():  # move the targets away, so that the update has a distance to cover
            for p in target:
                p.add_(1.0)
        old_target = [p.detach().clone() for p in target]
        step()
        for t_old, t_new, o in zip(old_target, target, online, strict=True):
            torch.testing.assert_close(t_new, t_old + 0.25 * (o.detach() - t_old))
            assert not t_new.requires_grad
    finally:
        algo.close()
