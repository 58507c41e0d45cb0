"""Multi-agent networks: the TorchRL bugs they must not have, and their own behaviour."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from tdrl.modules import (
    CrossCriticGroupSpec,
    CrossGroupCritic,
    MultiAgentConvNet,
    MultiAgentMLP,
    MultiAgentNetBase,
    QMixer,
    VDNMixer,
)


class PerAgentLinear(MultiAgentNetBase):
    """One Linear per agent on inputs whose agents sit at a chosen dim."""

    def __init__(self, n_agents, share_params, agent_dim, **kwargs):
        super().__init__(
            n_agents=n_agents, centralized=False, share_params=share_params,
            agent_dim=agent_dim, **kwargs,
        )

    def _build_single_net(self, *, device, **kwargs):
        return nn.Linear(5, 4, device=device)

    def _pre_forward_check(self, inputs):
        return inputs


# --- TorchRL #3288: agent_dim must decide which dimension is mapped over agents ---------
@pytest.mark.parametrize("agent_dim", [1, -3])
def test_agent_dim_selects_the_agent_dimension(agent_dim):
    torch.manual_seed(0)
    net = PerAgentLinear(3, share_params=False, agent_dim=agent_dim)
    x = torch.randn(2, 3, 6, 5)  # [batch, agents, time, features]: agents are not at -2
    out = net(x)
    assert out.shape == (2, 3, 6, 4)
    w, b = net.params["weight"], net.params["bias"]
    for i in range(3):  # agent i's own weights applied to agent i's inputs (dim 1)
        torch.testing.assert_close(out[:, i], x[:, i] @ w[i].T + b[i])


def test_agent_dim_out_of_range_is_named():
    net = PerAgentLinear(3, share_params=False, agent_dim=4)
    with pytest.raises(ValueError, match=r"agent_dim=4 is out of range for an input of shape \(2, 3, 5\)"):
        net(torch.randn(2, 3, 5))


# --- TorchRL #1971: no keyword argument may be silently dropped ------------------------
def test_convnet_kwargs_reach_the_agent_networks():
    cnn = MultiAgentConvNet(
        2, centralized=False, share_params=False, in_features=3, num_cells=[4, 4],
        kernel_sizes=3, strides=1, activation_kwargs={"alpha": 0.5},
        norm_class=nn.BatchNorm2d, norm_kwargs={"num_features": 4},
    )
    net = cnn.get_stateful_net()
    elus = [m for m in net.modules() if isinstance(m, nn.ELU)]
    assert len(elus) == 2 and all(m.alpha == 0.5 for m in elus)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 2


def test_mlp_kwargs_reach_the_agent_networks():
    mlp = MultiAgentMLP(3, 2, 4, centralized=False, share_params=False, depth=1,
                        num_cells=8, activate_last_layer=True, bias_last_layer=False)
    out = mlp(torch.randn(5, 4, 3) * 100)
    assert out.abs().max() < 1  # the last Tanh is there
    assert ("2", "bias") not in mlp.params.keys(True, True)


@pytest.mark.parametrize("cls, args", [(MultiAgentMLP, (3, 2, 4)), (MultiAgentConvNet, (4,))])
def test_unknown_kwargs_raise(cls, args):
    with pytest.raises(TypeError, match="not_an_argument"):
        cls(*args, centralized=False, share_params=False, not_an_argument=1)


# --- TorchRL #1967: reset_parameters must really reset ----------------------------------
@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("lazy", [True, False])
def test_reset_parameters_redraws_in_place(share_params, lazy):
    torch.manual_seed(0)
    mlp = MultiAgentMLP(None if lazy else 4, 2, 3, centralized=False, share_params=share_params,
                        num_cells=[8, 8])
    x = torch.randn(6, 3, 4)
    before_out = mlp(x)
    params = list(mlp.parameters())
    before = [p.detach().clone() for p in params]
    mlp.reset_parameters()
    after = list(mlp.parameters())
    assert all(a is p for a, p in zip(after, params))  # optimisers keep their tensors
    for old, new in zip(before, after):
        assert not torch.isclose(old, new).any()
    assert not torch.allclose(mlp(x), before_out)
    if not share_params:  # each agent its own draw
        w = mlp.params["0", "weight"]
        assert not torch.isclose(w[0], w[1]).any()


# --- TorchRL #2902: torch.export of per-agent networks -----------------------------------
@pytest.mark.parametrize("use_td_params", [True, False])
@pytest.mark.parametrize("centralized", [True, False])
def test_export_lifts_parameters(use_td_params, centralized):
    torch.manual_seed(0)
    mlp = MultiAgentMLP(6, 2, 3, centralized=centralized, share_params=False, depth=1,
                        use_td_params=use_td_params)
    module = TensorDictModule(mlp, in_keys=["obs"], out_keys=["out"])
    x = torch.randn(4, 3, 6)
    exported = torch.export.export(module, args=(), kwargs={"obs": x}, strict=True)
    assert not exported.constants
    assert len(list(exported.parameters())) == len(list(mlp.parameters()))
    torch.testing.assert_close(exported.module()(obs=x), mlp(x))


def test_export_convnet_through_vmap():
    torch.manual_seed(0)
    cnn = MultiAgentConvNet(2, centralized=False, share_params=False, in_features=1,
                            num_cells=[2], kernel_sizes=3)
    module = TensorDictModule(cnn, in_keys=["obs"], out_keys=["out"])
    x = torch.randn(3, 2, 1, 7, 7)
    exported = torch.export.export(module, args=(), kwargs={"obs": x}, strict=True)
    assert not exported.constants
    torch.testing.assert_close(exported.module()(obs=x), cnn(x))


# --- the batched-matmul path is the vmap path ---------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    batch=st.lists(st.integers(0, 3), max_size=2),
    n_agents=st.integers(1, 4),
    share=st.booleans(),
    central=st.booleans(),
    bias=st.booleans(),
)
def test_fast_path_equals_vmap(batch, n_agents, share, central, bias):
    torch.manual_seed(0)
    mlp = MultiAgentMLP(3, 2, n_agents, centralized=central, share_params=share, depth=2,
                        num_cells=5, bias_last_layer=bias, activation_class=nn.ELU)
    assert mlp._plan is not None
    x = torch.randn(*batch, n_agents, 3)
    adim = len(batch)
    generic = mlp._run_generic(mlp._pre_forward_check(x), adim)
    if share and central:
        generic = generic.unsqueeze(adim).expand(*batch, n_agents, 2)
    torch.testing.assert_close(mlp(x), generic)


def test_other_layers_take_the_vmap_path():
    mlp = MultiAgentMLP(3, 2, 2, centralized=False, share_params=False, depth=1,
                        norm_class=nn.LayerNorm, norm_kwargs={"normalized_shape": 32})
    assert mlp._plan is None
    out = mlp(torch.randn(4, 2, 3))
    assert out.shape == (4, 2, 2)


def test_functional_swap_is_honoured():
    mlp = MultiAgentMLP(3, 2, 2, centralized=False, share_params=False, depth=1)
    x = torch.randn(4, 2, 3)
    zeros = TensorDict.from_module(mlp).data.clone().zero_()
    with zeros.to_module(mlp):
        assert (mlp(x) == 0).all()
    assert not (mlp(x) == 0).all()


def test_stateful_net_shares_the_tensors():
    mlp = MultiAgentMLP(3, 2, 2, centralized=False, share_params=False, depth=1)
    snet = mlp.get_stateful_net()
    with torch.no_grad():
        snet[0].weight.zero_()
    assert (mlp.params["0", "weight"] == 0).all()
    snet[0].bias = nn.Parameter(torch.ones_like(snet[0].bias))
    mlp.from_stateful_net(snet)
    assert (mlp.params["0", "bias"] == 1).all()
    with pytest.raises(RuntimeError, match="keys differ"):
        mlp.from_stateful_net(nn.Sequential(nn.Linear(3, 2)))


def test_bad_inputs_are_named():
    mlp = MultiAgentMLP(3, 2, 4, centralized=False, share_params=True)
    with pytest.raises(ValueError, match=r"expected 4 agents at dim -2 of the input, got shape \(5, 3, 3\)"):
        mlp(torch.randn(5, 3, 3))
    with pytest.raises(ValueError, match=r"expected 3 features per agent"):
        mlp(torch.randn(5, 4, 2))
    with pytest.raises(TypeError, match="needs the share_params argument"):
        MultiAgentMLP(3, 2, 4, centralized=False)
    with pytest.raises(ValueError, match="n_agents must be a positive int"):
        MultiAgentMLP(3, 2, 0, centralized=False, share_params=True)


def test_centralised_alias_and_training_step():
    mlp = MultiAgentMLP(3, 1, 2, centralised=True, share_params=False, depth=1)
    assert mlp.centralized
    opt = torch.optim.SGD(mlp.parameters(), lr=0.1)
    x = torch.randn(8, 2, 3)
    loss0 = mlp(x).square().mean()
    loss0.backward()
    opt.step()
    assert mlp(x).square().mean() < loss0


# --- mixers and the cross-group critic ----------------------------------------------------
def test_vdn_sums_and_qmix_is_monotonic():
    q = torch.randn(5, 3, 1, requires_grad=True)
    torch.testing.assert_close(VDNMixer(3, device=None)(q), q.sum(-2))
    mixer = QMixer(state_shape=(2, 3), mixing_embed_dim=4, n_agents=3, device=None)
    mixer(q, torch.randn(5, 2, 3)).sum().backward()
    assert q.grad is not None and (q.grad >= 0).all()
    with pytest.raises(ValueError, match=r"state batch dims \(4,\) differ"):
        mixer(q, torch.randn(4, 2, 3))


def test_cross_group_critic_rejects_unknown_detach_group():
    spec = CrossCriticGroupSpec(obs_dim=2, n_agents=1, obs_key=("a", "o"), value_key=("a", "v"))
    with pytest.raises(ValueError, match=r"detach_groups names \['b'\]"):
        CrossGroupCritic({"a": spec}, d_model=4, trunk_depth=1, trunk_cells=8, detach_groups=["b"])
