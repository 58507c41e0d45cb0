"""Networks and layers of tdrl.modules.models: MLP, ConvNet / Conv3dNet, the Q / DDPG nets,
the TorchRL bugs they avoid (#686 leading batch dims, #875 / #3069 noise by exploration type,
#1963 resampling), BatchRenorm1d, gSDE and consistent dropout."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from torch import nn

from tdrl.envs.utils import ExplorationType, set_exploration_type
from tdrl.modules import (
    MLP,
    BatchRenorm1d,
    ConsistentDropout,
    ConsistentDropoutModule,
    Conv3dNet,
    ConvNet,
    DdpgCnnActor,
    DdpgMlpActor,
    DdpgMlpQNet,
    DistributionalDQNnet,
    DuelingCnnDQNet,
    DuelingMlpDQNet,
    LazygSDEModule,
    NoisyLazyLinear,
    NoisyLinear,
    SquashDims,
    Squeeze2dLayer,
    SqueezeLayer,
    gSDEModule,
    reset_noise,
)
from tdrl.modules.models.utils import ModelConfigError, create_on_device


# ---------------------------------------------------------------- MLP
class TestMLP:
    def test_block_order_and_state_dict_keys_follow_torchrl(self):
        mlp = MLP(
            in_features=3, out_features=2, num_cells=[4, 5], dropout=0.0,
            norm_class=nn.BatchNorm1d, norm_kwargs=[{"num_features": 4}, {"num_features": 5}],
        )
        names = [type(m).__name__ for m in mlp]
        assert names == ["Linear", "Dropout", "BatchNorm1d", "Tanh"] * 2 + ["Linear"]
        assert list(mlp.state_dict())[:2] == ["0.weight", "0.bias"]
        assert "4.weight" in mlp.state_dict() and "8.bias" in mlp.state_dict()

    def test_defaults_are_torchrl_heads(self):
        assert [type(m) for m in MLP(in_features=3, out_features=6)] == [nn.Linear]
        assert [m.out_features for m in MLP(in_features=3, out_features=1, depth=2)[::2]] == [32, 32, 1]
        with pytest.raises(ModelConfigError, match="without a depth"):
            MLP(in_features=3, out_features=1, num_cells=8)
        with pytest.raises(RuntimeError, match="depth=3 disagrees"):
            MLP(in_features=3, out_features=1, depth=3, num_cells=[4, 4])

    def test_per_layer_kwargs_and_bias_override(self):
        mlp = MLP(
            in_features=4, out_features=4, num_cells=[4, 4],
            activation_class=nn.LeakyReLU,
            activation_kwargs=[{"negative_slope": 0.1}, {"negative_slope": 0.2}],
            layer_kwargs=[{"bias": False}, {}, {"bias": False}],
        )
        assert [m.negative_slope for m in mlp if isinstance(m, nn.LeakyReLU)] == [0.1, 0.2]
        assert [m.bias is None for m in mlp if isinstance(m, nn.Linear)] == [True, False, True]
        with pytest.raises(ModelConfigError, match="layer_kwargs has 2 entries, expected 3"):
            MLP(in_features=4, out_features=4, num_cells=[4, 4], layer_kwargs=[{}, {}])

    def test_function_activation_and_concatenated_inputs(self):
        mlp = MLP(in_features=3, out_features=(2, 2), num_cells=[4],
                  activation_class=lambda: (lambda x: x * 0))
        y = mlp(torch.ones(5, 1), torch.ones(5, 2))
        assert y.shape == (5, 2, 2)
        assert torch.allclose(y, mlp[-1].bias.reshape(2, 2).expand(5, 2, 2))

    def test_lazy_noisy_and_unknown_lazy(self):
        mlp = MLP(out_features=3, num_cells=[4], layer_class=NoisyLinear)
        assert isinstance(mlp[0], NoisyLazyLinear)
        assert mlp(torch.zeros(2, 7)).shape == (2, 3)
        assert type(mlp[0]) is NoisyLinear and mlp[0].in_features == 7

        def my_linear(i, o, bias=True):
            return nn.Linear(i, o, bias=bias)

        with pytest.raises(ModelConfigError, match="needs a lazy version of my_linear"):
            MLP(out_features=3, layer_class=my_linear)
        with pytest.raises(NotImplementedError, match="single_bias_last_layer"):
            MLP(in_features=3, out_features=3, single_bias_last_layer=True)

    def test_same_init_order_as_hand_built_layers(self):
        # the recipes' seeded runs depend on MLP drawing its weights layer by layer
        torch.manual_seed(3)
        mlp = MLP(in_features=4, out_features=2, num_cells=[8, 8], activation_class=nn.ReLU)
        torch.manual_seed(3)
        hand = [nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2)]
        for a, b in zip([m for m in mlp if isinstance(m, nn.Linear)], hand):
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_create_on_device_builds_there_or_moves():
    assert create_on_device(nn.Linear, "meta", 2, 3).weight.device.type == "meta"

    class NoDevice(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

    assert create_on_device(NoDevice, "meta").w.device.type == "meta"
    with pytest.raises(TypeError, match="returned a int"):
        create_on_device(lambda: 3, None)


def test_squeeze_and_squash_layers():
    assert SquashDims(2)(torch.zeros(2, 3, 4, 5)).shape == (2, 3, 20)
    assert Squeeze2dLayer()(torch.zeros(2, 3, 1, 1)).shape == (2, 3)
    with pytest.raises(RuntimeError, match=r"cannot squeeze dim -1 of an input of shape \(2, 3\)"):
        SqueezeLayer()(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="every dim must be < 0"):
        SqueezeLayer((0,))


# ---------------------------------------------------------------- ConvNet (TorchRL #686)
@settings(max_examples=15, deadline=None)
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=3))
def test_convnet_any_leading_batch_dims_686(batch):
    """#686: a [B, T, C, H, W] input must give [B, T, features], each sample as if alone."""
    torch.manual_seed(0)
    net = ConvNet(in_features=2, num_cells=[3, 4], kernel_sizes=3, strides=[1, 2])
    x = torch.randn(*batch, 2, 9, 9)
    y = net(x)
    assert y.shape == (*batch, 4 * 3 * 3)
    flat = x.reshape(-1, 2, 9, 9)
    expected = torch.stack([net(s.unsqueeze(0))[0] for s in flat]).reshape(*batch, -1)
    torch.testing.assert_close(y, expected)


def test_conv3dnet_leading_dims_and_errors():
    net = Conv3dNet(in_features=1, num_cells=[2], kernel_sizes=3)
    assert net(torch.zeros(2, 3, 1, 5, 5, 5)).shape == (2, 3, 2 * 27)
    with pytest.raises(ValueError, match="must have at least 4 dimensions"):
        net(torch.zeros(1, 5, 5))
    with pytest.raises(ValueError, match="Null depth is not permitted with ConvNet"):
        ConvNet(num_cells=8, depth=0)
    with pytest.raises(RuntimeError, match="consider matching or specifying a constant num_cells"):
        ConvNet(num_cells=[8], kernel_sizes=[3, 3])
    with pytest.raises(ValueError, match="depth=None requires one of the input args"):
        ConvNet(num_cells=8)


def test_convnet_bias_last_layer_and_squeeze():
    net = ConvNet(in_features=3, num_cells=[4, 5], bias_last_layer=False,
                  aggregator_class=nn.AdaptiveAvgPool2d, aggregator_kwargs={"output_size": (1, 1)},
                  squeeze_output=True)
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    assert convs[0].bias is not None and convs[1].bias is None
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 5)
    assert ConvNet.default_atari_dqn(4)(torch.zeros(1, 4, 84, 84)).shape == (1, 4)


# ---------------------------------------------------------------- NoisyLinear (#875 / #3069 / #1963)
def _outputs(layer, x):
    y1 = layer(x)
    layer.reset_noise()
    return y1, layer(x)


def test_noise_follows_exploration_type_not_training_875_3069():
    """#875 / #3069: eval() must not switch exploration off, train() must not switch it on."""
    torch.manual_seed(0)
    layer, x = NoisyLinear(6, 3), torch.randn(4, 6)
    mean = x @ layer.weight_mu.T + layer.bias_mu
    layer.eval()
    with set_exploration_type(ExplorationType.RANDOM):
        a, b = _outputs(layer, x)
    assert not torch.allclose(a, mean) and not torch.allclose(a, b)
    layer.train()
    for kind in (ExplorationType.DETERMINISTIC, ExplorationType.MODE, ExplorationType.MEAN):
        with set_exploration_type(kind):
            a, b = _outputs(layer, x)
        torch.testing.assert_close(a, mean)
        torch.testing.assert_close(b, mean)


def test_noise_on_without_a_context_so_sigma_learns():
    """A loss computed outside any exploration context trains the noise scales."""
    torch.manual_seed(0)
    layer = NoisyLinear(5, 2).eval()
    layer(torch.randn(8, 5)).pow(2).sum().backward()
    assert layer.weight_sigma.grad is not None and layer.weight_sigma.grad.abs().sum() > 0
    assert layer.bias_sigma.grad.abs().sum() > 0


def test_legacy_training_switch():
    layer, x = NoisyLinear(4, 2, use_exploration_type=False), torch.randn(3, 4)
    mean = x @ layer.weight_mu.T + layer.bias_mu
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert not torch.allclose(layer.train()(x), mean)
    with set_exploration_type(ExplorationType.RANDOM):
        torch.testing.assert_close(layer.eval()(x), mean)


def test_noise_resampled_only_by_reset_noise_1963():
    """#1963: the noise is a fixed sample between reset_noise() calls, documented as such."""
    torch.manual_seed(0)
    net = nn.Sequential(NoisyLinear(4, 8), nn.ReLU(), nn.Sequential(NoisyLinear(8, 2)))
    x = torch.randn(3, 4)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    eps = [m.weight_epsilon.clone() for m in net.modules() if isinstance(m, NoisyLinear)]
    with set_exploration_type(ExplorationType.RANDOM):
        y = net(x)
        assert all(torch.equal(net(x), y) for _ in range(3))
        y.sum().backward()
        opt.step()   # an optimiser step alone does not resample
        assert all(torch.equal(e, m.weight_epsilon) for e, m in zip(
            eps, [m for m in net.modules() if isinstance(m, NoisyLinear)]))
        reset_noise(net)   # nested layers included
        assert all(not torch.equal(e, m.weight_epsilon) for e, m in zip(
            eps, [m for m in net.modules() if isinstance(m, NoisyLinear)]))
    assert "reset_noise" in NoisyLinear.__doc__ and "Only on ``reset_noise()``" in (
        __import__("tdrl.modules.models.noisy", fromlist=["x"]).__doc__
    )


def test_noisy_init_is_the_papers():
    layer = NoisyLinear(16, 4)
    assert layer.std_init == 0.5 and layer._use_exploration_type is True
    torch.testing.assert_close(layer.weight_sigma, torch.full((4, 16), 0.5 / 4))
    torch.testing.assert_close(layer.bias_sigma, torch.full((4,), 0.5 / 4))
    assert layer.weight_mu.abs().max() <= 0.25 and layer.bias_mu.abs().max() <= 0.25
    # factorised: weight noise is the outer product of f(eps_out) and f(eps_in), bias noise f(eps_out)
    w, b = layer.weight_epsilon, layer.bias_epsilon
    eps_in = w[0] / b[0]
    torch.testing.assert_close(w, torch.outer(b, eps_in))


def test_noisy_lazy_and_state_dict_roundtrip():
    lazy = NoisyLazyLinear(3, bias=False)
    assert lazy.weight is None and lazy(torch.zeros(2, 5)).shape == (2, 3)
    assert type(lazy) is NoisyLinear and lazy.bias is None
    a, b = NoisyLinear(5, 3), NoisyLinear(5, 3)
    b.load_state_dict(a.state_dict())
    with set_exploration_type(ExplorationType.RANDOM):
        torch.testing.assert_close(a(torch.ones(5)), b(torch.ones(5)))
    with pytest.raises(ValueError, match="std_init must be a finite number"):
        NoisyLinear(2, 2, std_init=math.nan)


# ---------------------------------------------------------------- BatchRenorm1d
def test_batchrenorm_warmup_phase_in_never_exceeds_one():
    torch.manual_seed(0)
    brn = BatchRenorm1d(2, momentum=0.5, warmup_steps=1, smooth=True, max_r=100, max_d=100)
    brn(torch.randn(10, 2))   # the one warm-up step
    for _ in range(3):   # past the warm-up: factor 1 (TorchRL's smooth factor grows to 2, 3, ...)
        x = torch.randn(10, 2) * 3 + 1
        rm, rv = brn.running_mean.clone(), brn.running_var.clone()
        y = brn(x)
        mean, std = x.mean(0), (x.var(0, unbiased=False) + brn.eps).sqrt()
        run_std = (rv + brn.eps).sqrt()
        r, d = std / run_std, (mean - rm) / run_std
        torch.testing.assert_close(y, (x - mean) / std * r + d)   # full correction, factor 1


def test_batchrenorm_3d_input_matches_batchnorm_in_warmup_and_eval():
    torch.manual_seed(0)
    brn, bn = BatchRenorm1d(3, momentum=0.1, warmup_steps=5), nn.BatchNorm1d(3)
    for _ in range(3):
        x = torch.randn(4, 3, 6)
        torch.testing.assert_close(brn(x), bn(x))
    brn.eval(), bn.eval()
    x = torch.randn(4, 3, 6)
    torch.testing.assert_close(brn(x), bn(x))
    with pytest.raises(ValueError, match=r"expects inputs \[N, 3, \.\.\.\]"):
        brn(torch.zeros(4, 2))


# ---------------------------------------------------------------- gSDE
def test_gsde_deterministic_gives_mu_and_zero_eps_resamples():
    torch.manual_seed(0)
    m = gSDEModule(action_dim=2, state_dim=3)
    mu, state = torch.randn(5, 2), torch.randn(5, 3)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        assert torch.equal(m(mu, state, None)[2], mu)
    with set_exploration_type(ExplorationType.RANDOM):
        _, scale, action, eps = m(mu, state, torch.zeros(5, 1))
    assert eps.shape == (5, 2, 3) and eps.abs().sum() > 0
    sigma = m.sigma
    torch.testing.assert_close(action, mu + ((sigma * eps) @ state.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(scale, (sigma * state.unsqueeze(-2)).pow(2).sum(-1).sqrt())
    torch.testing.assert_close(sigma, torch.full((2, 3), 1 / math.sqrt(3)))
    with pytest.raises(RuntimeError, match="matching batch size"):
        m(mu, torch.randn(4, 3), None)


@pytest.mark.parametrize("learn_sigma", [True, False])
def test_lazy_gsde_scales_to_the_states(learn_sigma):
    torch.manual_seed(0)
    m = LazygSDEModule(sigma_init=0.7, learn_sigma=learn_sigma)
    state = torch.randn(5000, 4) * torch.tensor([0.1, 1.0, 3.0, 10.0])
    with set_exploration_type(ExplorationType.RANDOM):
        _, scale, _, _ = m(torch.zeros(5000, 2), state, None)
    assert type(m) is gSDEModule
    assert abs(scale.mean().item() - 0.7) < 0.1


# ---------------------------------------------------------------- consistent dropout
def test_consistent_dropout_reuses_masks():
    torch.manual_seed(0)
    drop = ConsistentDropout(0.5)
    y, mask = drop(torch.ones(100))
    assert set(mask.unique().tolist()) <= {0.0, 2.0} and torch.equal(y, mask)
    assert torch.equal(drop(torch.full((100,), 3.0), mask=mask)[0], 3 * mask)
    with pytest.raises(ValueError, match="does not fit the input"):
        drop(torch.ones(4), mask=torch.ones(5))
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        ConsistentDropoutModule(1.0, in_keys="x")
    m = ConsistentDropoutModule(0.5, in_keys="x")
    td = m(TensorDict(x=torch.ones(2, 8), batch_size=[2]))
    assert m.in_keys[1] == f"mask_{id(m)}" and m.in_keys[1] in td.keys()
    m.eval()
    assert torch.equal(m(TensorDict(x=torch.ones(2, 8), batch_size=[2]))["x"], torch.ones(2, 8))


# ---------------------------------------------------------------- Q and DDPG networks
def test_dueling_is_value_plus_centred_advantage_with_zero_biases():
    torch.manual_seed(0)
    net = DuelingMlpDQNet(3, mlp_kwargs_feature={"num_cells": [8], "out_features": 8},
                          mlp_kwargs_output={"num_cells": 8})
    x = torch.randn(4, 5)
    h = net.features(x)
    adv, v = net.advantage(h), net.value(h)
    torch.testing.assert_close(net(x), v + adv - adv.mean(-1, keepdim=True))
    cnn = DuelingCnnDQNet(2, cnn_kwargs={"num_cells": [4], "kernel_sizes": [3], "strides": [1]},
                          mlp_kwargs={"num_cells": 8})
    assert cnn(torch.randn(2, 3, 5, 5)).shape == (2, 2)
    biases = [m.bias for m in list(net.modules()) + list(cnn.modules())
              if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert all(torch.equal(b, torch.zeros_like(b)) for b in biases)   # lazy ones too


def test_ddpg_nets_start_small():
    torch.manual_seed(0)
    actor = DdpgMlpActor(2, mlp_net_kwargs={"num_cells": [16, 16]})
    assert actor(torch.randn(3, 4)).abs().max() < 0.1
    assert actor.mlp[-1].weight.abs().max() <= 3e-3
    q = DdpgMlpQNet(mlp_net_kwargs_net1={"out_features": 8}, mlp_net_kwargs_net2={"num_cells": [8]})
    assert q(torch.randn(3, 4), torch.randn(3, 2)).shape == (3, 1)
    a, h = DdpgCnnActor(2, conv_net_kwargs={"num_cells": [4, 4, 4]},
                        mlp_net_kwargs={"num_cells": 8})(torch.randn(2, 3, 32, 32))
    assert a.shape == (2, 2) and h.shape == (2, 4 * 2 * 2)   # 32 -> 7 -> 2 -> 2


def test_distributional_dqn_net():
    q = torch.randn(4, 5, 3)
    td = DistributionalDQNnet()(TensorDict(action_value=q, batch_size=[4]))
    torch.testing.assert_close(td["action_value"], torch.log_softmax(q, -2))
    with pytest.raises(RuntimeError, match="at least 2 dims"):
        DistributionalDQNnet()(TensorDict(action_value=torch.zeros(4), batch_size=[4]))


def test_convnet_honours_hooks_on_its_layers():
    net = ConvNet(in_features=1, num_cells=[2], kernel_sizes=3)
    x = torch.randn(2, 1, 5, 5)
    plain = net(x)
    handle = net[0].register_forward_hook(lambda m, args, out: out * 0)
    assert torch.equal(net(x), net[2](net[1](torch.zeros(2, 2, 3, 3))))
    handle.remove()
    assert torch.equal(net(x), plain)
    handle = net.register_forward_hook(lambda m, args, out: out + 1)   # on the network itself
    assert torch.equal(net(x), plain + 1)
    handle.remove()
    assert torch.equal(net(x), plain)


@settings(max_examples=20, deadline=None)
@given(
    cells=st.lists(st.integers(1, 6), max_size=3),
    out=st.one_of(st.integers(1, 4), st.lists(st.integers(1, 3), min_size=1, max_size=3)),
    batch=st.lists(st.integers(1, 3), max_size=2),
    lazy=st.booleans(),
)
def test_mlp_shapes_and_layer_count(cells, out, batch, lazy):
    mlp = MLP(in_features=None if lazy else 5, out_features=out, num_cells=cells)
    y = mlp(torch.randn(*batch, 5))
    shape = (out,) if isinstance(out, int) else tuple(out)
    assert y.shape == (*batch, *shape)
    assert sum(isinstance(m, nn.Linear) for m in mlp) == len(cells) + 1
