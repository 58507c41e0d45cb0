"""Exploration modules: EGreedyModule, AdditiveGaussianModule, OrnsteinUhlenbeckProcessModule."""
from __future__ import annotations

import copy
import math
import random

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictSequential
from torch import nn

from tdrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Unbounded,
)
from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    AdditiveGaussianModule,
    EGreedyModule,
    OrnsteinUhlenbeckProcessModule,
    QValueActor,
    QValueModule,
    SafeSequential,
)
from tdrl.modules.tensordict_module import exploration as exploration_mod

RANDOM = ExplorationType.RANDOM
DETERMINISTIC = ExplorationType.DETERMINISTIC

SPECS = {
    "one-hot": lambda: OneHot(4),
    "categorical": lambda: Categorical(4),
    "categorical-1": lambda: Categorical(4, shape=(1,)),
    "mult-one-hot": lambda: MultiOneHot([2, 3]),
    "multi-categorical": lambda: MultiCategorical([2, 3]),
    "binary": lambda: Binary(4),
}
N_VALUES = {"one-hot": 4, "categorical": 4, "categorical-1": 4, "binary": 4}
BATCHES = [(), (3,), (2, 3)]


def _greedy_td(sid, batch, masked=False, seed=0):
    """A TensorDict holding a greedy action (from QValueModule) and, optionally, a mask."""
    gen = torch.Generator().manual_seed(seed)
    spec = SPECS[sid]()
    n = N_VALUES.get(sid, 5)
    td = TensorDict({"action_value": torch.randn(*batch, n, generator=gen)}, batch_size=batch)
    if masked:
        mask = torch.ones(*batch, n, dtype=torch.bool)
        mask[..., 0] = False  # the first action of every (sub-)space is forbidden
        if sid in ("mult-one-hot", "multi-categorical"):
            mask[..., 2] = False
        td["mask"] = mask
    QValueModule(spec=spec, action_mask_key="mask" if masked else None)(td)
    return spec, td


# --- EGreedyModule ------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", BATCHES, ids=["0d", "1d", "2d"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("sid", list(SPECS))
def test_egreedy_random_action_has_greedy_dtype_shape_and_is_valid(sid, masked, batch):
    spec, td = _greedy_td(sid, batch, masked)
    greedy = td["action"].clone()
    module = EGreedyModule(spec, eps_init=1.0, action_mask_key="mask" if masked else None)
    with set_exploration_type(RANDOM):
        module(td)
    action = td["action"]
    assert action.dtype == greedy.dtype and action.shape == greedy.shape
    assert spec.is_in(action.to(spec.dtype))
    if masked and sid in ("one-hot", "mult-one-hot", "binary"):
        assert not (action.bool() & ~td["mask"]).any()
    if masked and sid in ("categorical", "categorical-1"):
        assert (action != 0).all()
    if masked and sid == "multi-categorical":
        assert (action[..., 0] == 1).all() and (action[..., 1] != 0).all()


def test_egreedy_eps_one_is_uniform_and_eps_zero_is_greedy():
    torch.manual_seed(0)
    spec = OneHot(4)
    greedy = torch.zeros(4000, 4, dtype=torch.int64)
    greedy[:, 2] = 1
    module = EGreedyModule(spec, eps_init=1.0, eps_end=1.0)
    td = module(TensorDict(action=greedy.clone(), batch_size=[4000]))  # no context: explores
    freq = td["action"].float().mean(0)
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.03), freq
    module = EGreedyModule(spec, eps_init=0.0, eps_end=0.0)
    with set_exploration_type(RANDOM):
        td = module(TensorDict(action=greedy.clone(), batch_size=[4000]))
    assert torch.equal(td["action"], greedy)


def test_egreedy_frequency_at_half_eps_and_with_mask():
    torch.manual_seed(1)
    greedy = torch.zeros(8000, dtype=torch.int64)
    module = EGreedyModule(Categorical(4), eps_init=0.5, eps_end=0.5)
    with set_exploration_type(RANDOM):
        action = module(TensorDict(action=greedy.clone(), batch_size=[8000]))["action"]
    # changed with probability eps * (1 - 1/n) = 0.375
    assert abs((action != 0).float().mean().item() - 0.375) < 0.03
    mask = torch.tensor([True, False, True, False]).expand(8000, 4)
    module = EGreedyModule(Categorical(4), eps_init=1.0, action_mask_key="mask")
    action = module(TensorDict(action=greedy.clone(), mask=mask, batch_size=[8000]))["action"]
    counts = torch.bincount(action, minlength=4).float() / 8000
    assert counts[1] == 0 and counts[3] == 0
    assert abs(counts[0].item() - 0.5) < 0.03


def test_egreedy_deterministic_leaves_the_action():
    greedy = torch.zeros(100, dtype=torch.int64)
    module = EGreedyModule(Categorical(4), eps_init=1.0)
    for kind in (DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN):
        with set_exploration_type(kind):
            td = module(TensorDict(action=greedy.clone(), batch_size=[100]))
        assert torch.equal(td["action"], greedy)


def test_egreedy_annealing_and_state_dict():
    module = EGreedyModule(OneHot(3), eps_init=1.0, eps_end=0.1, annealing_num_steps=10)
    assert module.eps.item() == pytest.approx(1.0)
    module.step()
    assert module.eps.item() == pytest.approx(0.91)
    module.step(4)
    assert module.eps.item() == pytest.approx(0.55)
    module.step(100)
    assert module.eps.item() == pytest.approx(0.1)  # clamped at eps_end
    state = module.state_dict()
    assert set(state) >= {"eps", "eps_init", "eps_end"}
    fresh = EGreedyModule(OneHot(3), eps_init=1.0, eps_end=0.1, annealing_num_steps=10)
    fresh.load_state_dict(state)
    assert fresh.eps.item() == pytest.approx(0.1)
    # an increasing schedule is clamped at its end too
    up = EGreedyModule(OneHot(3), eps_init=0.0, eps_end=0.5, annealing_num_steps=2)
    up.step(5)
    assert up.eps.item() == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_annealing_equals_the_tensor_arithmetic(dtype):
    # step() computes on host scalars where it can: bit for bit the buffers' tensor arithmetic
    # (rounding slips of a near miss, e.g. float64 host math, show up in ~1 step of 1,000)
    rng = random.Random(0)
    for _ in range(200):
        init, end, steps = rng.random(), rng.random(), rng.randint(1, 100_000)
        module = EGreedyModule(Categorical(3), eps_init=init, eps_end=end,
                               annealing_num_steps=steps).to(dtype)
        i, e, v = (module.eps_init.clone(), module.eps_end.clone(), module.eps.clone())
        for _ in range(30):
            frames = rng.randint(1, 64)
            module.step(frames)
            new = v + (e - i) * (frames / steps)
            v = torch.maximum(new, e) if bool(e <= i) else torch.minimum(new, e)
            assert module.eps.dtype == dtype and torch.equal(module.eps, v), (init, end, steps)


def test_egreedy_errors():
    with pytest.raises(ValueError, match="eps_init must be in \\[0, 1\\], got 1.5"):
        EGreedyModule(OneHot(3), eps_init=1.5)
    with pytest.raises(ValueError, match="annealing_num_steps must be a positive int"):
        EGreedyModule(OneHot(3), annealing_num_steps=0)
    with pytest.raises(ValueError, match="action_mask_key needs a discrete action spec.*Bounded"):
        EGreedyModule(Bounded(-1.0, 1.0, shape=(2,)), action_mask_key="mask")
    with pytest.raises(KeyError, match=r"no entry for the action key 'action'.*\['other'\]"):
        EGreedyModule(Composite(other=OneHot(3)))
    module = EGreedyModule(OneHot(3), action_mask_key="mask")
    with pytest.raises(KeyError, match="'action'.*keys present"):
        module(TensorDict(obs=torch.zeros(2), batch_size=[2]))
    with pytest.raises(KeyError, match="'mask'.*keys present"):
        module(TensorDict(action=torch.zeros(2, 3, dtype=torch.int64), batch_size=[2]))
    td = TensorDict(
        action=torch.zeros(2, 3, dtype=torch.int64),
        mask=torch.tensor([[True, False, False], [False, False, False]]),
        batch_size=[2],
    )
    # the error names the module the user built, not its internal picker
    with pytest.raises(ValueError, match="^EGreedyModule: the action mask 'mask' has a row where"):
        module(td)
    with pytest.raises(
        ValueError,
        match=r"^Action spec shape does not match the action shape: .*\(2, 5\), which does not "
        r"end with .*\(3,\)",
    ):
        module(TensorDict(action=torch.zeros(2, 5), batch_size=[2]))
    with pytest.raises(KeyError, match="Action mask key mask not found in TensorDict.*keys present"):
        module(TensorDict(action=torch.zeros(2, 3, dtype=torch.int64), batch_size=[2]))


def test_egreedy_spec_can_be_set_after_construction():
    module = EGreedyModule(spec=None, eps_init=1.0)
    assert module.spec is None and module._spec is None
    td = TensorDict(action=torch.zeros(4, 3, dtype=torch.int64), batch_size=[4])
    with pytest.raises(RuntimeError, match="spec must be provided.*set module.spec"):
        module(td)
    assert torch.equal(td["action"], torch.zeros(4, 3, dtype=torch.int64))  # nothing written
    module.spec = OneHot(3)
    assert module.spec["action"] == OneHot(3)
    out = module(td)["action"]
    assert torch.equal(out.sum(-1), torch.ones(4, dtype=torch.int64))


def test_additive_gaussian_add_noise_and_ou_process_handle():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    noise = AdditiveGaussianModule(spec, sigma_init=0.0, sigma_end=0.0)
    action = torch.tensor([[0.5, 3.0]])
    # sigma 0: the noisy action is the action, projected into the spec
    assert torch.equal(noise._add_noise(action), torch.tensor([[0.5, 1.0]]))
    ou = OrnsteinUhlenbeckProcessModule(spec)
    assert ou.ou.steps_key == ou.steps_key and ou.ou.noise_key == ou.noise_key


def test_egreedy_continuous_spec_and_nested_key():
    spec = Bounded(-2.0, 2.0, shape=(3,))
    module = EGreedyModule(spec, eps_init=1.0)
    td = module(TensorDict(action=torch.full((50, 3), 7.0), batch_size=[50]))
    assert (td["action"].abs() <= 2).all()
    key = ("agent", "action")
    module = EGreedyModule(Composite({key: OneHot(3)}), eps_init=1.0, action_key=key)
    assert module.in_keys == [key] and module.out_keys == [key]
    td = TensorDict({key: torch.zeros(5, 2, 3, dtype=torch.int64)}, batch_size=[5])
    module(td)
    assert (td[key].sum(-1) == 1).all()


def test_egreedy_after_qvalue_actor():
    torch.manual_seed(0)
    actor = QValueActor(nn.Linear(4, 3), spec=Categorical(3), action_mask_key="mask")
    explore = EGreedyModule(Categorical(3), eps_init=1.0, action_mask_key="mask")
    mask = torch.tensor([[True, True, False]]).expand(500, 3)
    for policy in (SafeSequential(actor, explore), TensorDictSequential(actor, explore)):
        td = TensorDict(observation=torch.randn(500, 4), mask=mask, batch_size=[500])
        with set_exploration_type(RANDOM):
            action = policy(td)["action"]
        assert set(action.unique().tolist()) == {0, 1}
    clone = copy.deepcopy(explore)
    clone.step(10)
    assert clone.eps.item() < explore.eps.item()


def test_module_names_importable_from_exploration_module():
    for name in ("EGreedyModule", "AdditiveGaussianModule", "OrnsteinUhlenbeckProcessModule"):
        assert getattr(exploration_mod, name) is globals()[name]


# --- AdditiveGaussianModule --------------------------------------------------------------------
def test_additive_gaussian_statistics_and_clipping():
    torch.manual_seed(0)
    noise = AdditiveGaussianModule(
        Unbounded(shape=(2,)), sigma_init=0.5, mean=1.0, std=2.0, safe=True
    )
    td = noise(TensorDict(action=torch.zeros(20000, 2), batch_size=[20000]))
    a = td["action"]
    assert abs(a.mean().item() - 0.5) < 0.03  # sigma * mean
    assert abs(a.std().item() - 1.0) < 0.03  # sigma * std
    clipped = AdditiveGaussianModule(Bounded(-0.1, 0.1, shape=(2,)), sigma_init=5.0)
    td = clipped(TensorDict(action=torch.zeros(1000, 2), batch_size=[1000]))
    assert (td["action"].abs() <= 0.1).all()
    unsafe = AdditiveGaussianModule(Bounded(-0.1, 0.1, shape=(2,)), sigma_init=5.0, safe=False)
    td = unsafe(TensorDict(action=torch.zeros(1000, 2), batch_size=[1000]))
    assert (td["action"].abs() > 0.1).any()


def test_additive_gaussian_annealing_deterministic_and_errors():
    noise = AdditiveGaussianModule(
        Bounded(-1.0, 1.0, shape=(2,)), sigma_init=1.0, sigma_end=0.2, annealing_num_steps=4
    )
    noise.step(2)
    assert noise.sigma.item() == pytest.approx(0.6)
    noise.step(10)
    assert noise.sigma.item() == pytest.approx(0.2)
    assert "sigma" in noise.state_dict()
    action = torch.full((3, 2), 0.5)
    with set_exploration_type(DETERMINISTIC):
        td = noise(TensorDict(action=action.clone(), batch_size=[3]))
    assert torch.equal(td["action"], action)
    unset = AdditiveGaussianModule()  # the spec may be set later (module.spec = ...)
    with pytest.raises(RuntimeError, match=r"spec has not been set.*safe=True\) needs"):
        unset(TensorDict(action=torch.zeros(3, 2), batch_size=[3]))
    unset.spec = Bounded(-1.0, 1.0, shape=(2,))
    out = unset(TensorDict(action=torch.full((3, 2), 5.0), batch_size=[3]))["action"]
    assert torch.equal(out, torch.ones(3, 2))
    with pytest.raises(ValueError, match="std must be >= 0"):
        AdditiveGaussianModule(Unbounded(shape=(1,)), std=-1.0)


# --- OrnsteinUhlenbeckProcessModule ------------------------------------------------------------
def test_ou_matches_its_equation():
    spec = Unbounded(shape=(2,))
    ou = OrnsteinUhlenbeckProcessModule(
        spec, eps_init=0.5, theta=0.3, mu=0.1, sigma=0.4, dt=0.05, sigma_min=0.1,
        n_steps_annealing=4, safe=False,
    )
    td = TensorDict(action=torch.zeros(3, 2), batch_size=[3])
    prev = torch.zeros(3, 2)
    for n in range(6):
        torch.manual_seed(n)
        td.set("action", torch.ones(3, 2))
        ou(td)
        torch.manual_seed(n)
        w = torch.randn(3, 2)
        sigma_n = max(0.1, 0.4 - (0.4 - 0.1) / 4 * n)
        expected = prev + 0.3 * (0.1 - prev) * 0.05 + sigma_n * math.sqrt(0.05) * w
        torch.testing.assert_close(td[ou.noise_key], expected)
        torch.testing.assert_close(td["action"], 1.0 + 0.5 * expected)
        prev = expected
    assert td[ou.steps_key].tolist() == [6, 6, 6]


def test_ou_reset_clip_and_deterministic():
    spec = Bounded(-1.0, 1.0, shape=(3,))
    ou = OrnsteinUhlenbeckProcessModule(spec, sigma=50.0, x0=0.25)
    assert ou.out_keys == ["action", ou.noise_key, ou.steps_key]
    td = TensorDict(action=torch.zeros(4, 3), batch_size=[4])
    for _ in range(3):
        td = ou(td.set("action", torch.zeros(4, 3)))
    assert (td["action"].abs() <= 1).all()
    td["is_init"] = torch.tensor([[True], [False], [False], [True]])
    ou(td.set("action", torch.zeros(4, 3)))
    assert td[ou.steps_key].tolist() == [1, 4, 4, 1]
    before = td["action"].clone()
    with set_exploration_type(DETERMINISTIC):
        ou(td)
    assert torch.equal(td["action"], before)
    assert td[ou.steps_key].tolist() == [1, 4, 4, 1]
    # two modules keep separate state
    other = OrnsteinUhlenbeckProcessModule(spec)
    assert other.noise_key != ou.noise_key
    with pytest.raises(RuntimeError, match="spec cannot be None.*needs the action spec"):
        OrnsteinUhlenbeckProcessModule()
    with pytest.raises(ValueError, match="dt must be > 0"):
        OrnsteinUhlenbeckProcessModule(spec, dt=0.0)


def test_ou_is_autocorrelated_and_annealed():
    torch.manual_seed(0)
    ou = OrnsteinUhlenbeckProcessModule(Unbounded(shape=(1,)), sigma=1.0, dt=0.01, safe=False)
    td = TensorDict(action=torch.zeros(2000, 1), batch_size=[2000])
    noises = []
    for _ in range(20):
        ou(td.set("action", torch.zeros(2000, 1)))
        noises.append(td[ou.noise_key].clone())
    a, b = noises[-2].flatten(), noises[-1].flatten()
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert corr > 0.9  # consecutive noises are strongly correlated
    ou.step(1000)
    assert ou.eps.item() == pytest.approx(0.1)
