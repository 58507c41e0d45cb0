"""TorchRL's losses, value estimators and collector run on tdrl modules.

torchrl is a test-only dependency: this file skips where it is absent (the
main venv) and runs in the tensordict-0.14 venv of ``make test-td014``, which
installs torchrl 0.14.1 and asserts that it imports. Each case builds the
TorchRL object on tdrl modules, runs one optimisation step and checks that
the losses are finite and that gradients reach the tdrl modules' parameters.
"""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

torchrl = pytest.importorskip("torchrl")

from torchrl.collectors import Collector  # noqa: E402
from torchrl.envs import GymEnv  # noqa: E402
from torchrl.objectives import (  # noqa: E402
    A2CLoss,
    ClipPPOLoss,
    DDPGLoss,
    DiscreteSACLoss,
    DQNLoss,
    SACLoss,
    TD3Loss,
)
from torchrl.objectives.value import GAE  # noqa: E402

from tdrl.data import Bounded, Composite, OneHot  # noqa: E402
from tdrl.envs.utils import ExplorationType, set_exploration_type  # noqa: E402
from tdrl.modules import (  # noqa: E402
    MLP,
    Actor,
    ActorValueOperator,
    NormalParamExtractor,
    OneHotCategorical,
    ProbabilisticActor,
    QValueActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
)

OBS, ACT, B = 3, 2, 8


def _transitions(action: torch.Tensor, batch: int = B) -> TensorDict:
    """A batch of random transitions in TorchRL's layout (``next`` sub-TensorDict)."""
    return TensorDict(
        {
            "observation": torch.randn(batch, OBS),
            "action": action,
            "next": {
                "observation": torch.randn(batch, OBS),
                "reward": torch.randn(batch, 1),
                "done": torch.zeros(batch, 1, dtype=torch.bool),
                "terminated": torch.zeros(batch, 1, dtype=torch.bool),
            },
        },
        batch_size=[batch],
    )


def _step(loss_module: nn.Module, td: TensorDict, params: list[nn.Parameter]) -> dict:
    """One optimisation step: finite losses, finite gradients on every trained parameter.

    ``params`` are the tdrl modules' own parameters that the loss trains as
    they are (TorchRL copies the Q-networks of SAC / TD3 into stacked
    parameters of the loss; those are covered through ``loss_module``).
    """
    out = loss_module(td)
    terms = {k: v for k, v in out.items() if k.startswith("loss")}
    assert terms, f"no loss entry in {list(out.keys())}"
    for name, value in terms.items():
        assert torch.isfinite(value).all(), (name, value)
    trained = [p for p in loss_module.parameters() if p.requires_grad]
    ids = {id(p) for p in trained}
    assert all(id(p) in ids for p in params), "the loss does not train the tdrl module's parameters"
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(trained, lr=1e-2)
    opt.zero_grad()
    sum(v.sum() for v in terms.values()).backward()
    for p in trained:
        assert p.grad is not None and torch.isfinite(p.grad).all(), p.shape
    assert all(p.grad.abs().sum() > 0 for p in params)
    opt.step()
    assert all(not torch.equal(a, p) for a, p in zip(before, params))
    return terms


def _tanh_normal_actor() -> ProbabilisticActor:
    net = nn.Sequential(nn.Linear(OBS, 2 * ACT), NormalParamExtractor())
    return ProbabilisticActor(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        return_log_prob=True,
        spec=Bounded(-1.0, 1.0, shape=(ACT,)),
    )


def _qvalue() -> ValueOperator:
    class Q(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(OBS + ACT, 1)

        def forward(self, obs, act):
            return self.lin(torch.cat([obs, act], -1))

    return ValueOperator(Q(), in_keys=["observation", "action"])


def test_dqn_loss_on_qvalue_actor():
    qnet = nn.Linear(OBS, 4)
    actor = QValueActor(qnet, in_keys=["observation"], spec=OneHot(4))
    loss = DQNLoss(actor, action_space="one-hot")
    action = torch.nn.functional.one_hot(torch.randint(4, (B,)), 4)
    _step(loss, _transitions(action), list(qnet.parameters()))


@pytest.mark.parametrize("loss_cls", [ClipPPOLoss, A2CLoss])
def test_on_policy_losses_with_gae(loss_cls):
    actor = _tanh_normal_actor()
    critic = ValueOperator(nn.Linear(OBS, 1), in_keys=["observation"])
    loss = loss_cls(actor, critic)
    gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        td = actor(_transitions(torch.zeros(B, ACT)))
    td = gae(td)
    assert torch.isfinite(td["advantage"]).all()
    params = list(actor.parameters()) + list(critic.parameters())
    _step(loss, td, params)


def test_ppo_on_actor_value_operator():
    op = ActorValueOperator(
        SafeModule(nn.Linear(OBS, 8), ["observation"], ["hidden"]),
        ProbabilisticActor(
            TensorDictModule(
                nn.Sequential(nn.Linear(8, 2 * ACT), NormalParamExtractor()),
                ["hidden"],
                ["loc", "scale"],
            ),
            in_keys=["loc", "scale"],
            distribution_class=TanhNormal,
            return_log_prob=True,
        ),
        ValueOperator(nn.Linear(8, 1), in_keys=["hidden"]),
    )
    actor, critic = op.get_policy_operator(), op.get_value_operator()
    loss = ClipPPOLoss(actor, critic)
    gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    with set_exploration_type(ExplorationType.RANDOM), torch.no_grad():
        td = gae(actor(_transitions(torch.zeros(B, ACT))))
    _step(loss, td, list(op.parameters()))


def test_sac_loss_on_tanh_normal_actor():
    actor, qvalue = _tanh_normal_actor(), _qvalue()
    loss = SACLoss(actor, qvalue, action_spec=None)
    td = _transitions(torch.rand(B, ACT) * 2 - 1)
    _step(loss, td, list(actor.parameters()))


def test_discrete_sac_loss_on_one_hot_actor():
    """TorchRL's discrete-SAC example, built on tdrl: MLP -> logits, a ProbabilisticActor over
    OneHotCategorical with a one-hot spec and RANDOM by default; its int64 one-hot actions
    feed DiscreteSACLoss, which runs a step."""
    n = 4
    actor = ProbabilisticActor(
        spec=Composite(action=OneHot(n, dtype=torch.int64)),
        module=SafeModule(MLP(in_features=OBS, out_features=n, num_cells=[16, 16]),
                          in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], out_keys=["action"], distribution_class=OneHotCategorical,
        distribution_kwargs={}, default_interaction_type=ExplorationType.RANDOM,
        return_log_prob=False,
    )
    qvalue = TensorDictModule(MLP(in_features=OBS, out_features=n, num_cells=[16, 16]),
                              in_keys=["observation"], out_keys=["action_value"])
    with torch.no_grad():
        td = actor(_transitions(torch.zeros(B, n, dtype=torch.int64)))
    action = td["action"]
    assert action.dtype == torch.int64 and actor.spec["action"].is_in(action)
    loss = DiscreteSACLoss(actor, qvalue, action_space="one-hot", num_actions=n,
                           num_qvalue_nets=2, delay_qvalue=True)
    loss.make_value_estimator(gamma=0.99)
    terms = _step(loss, td, list(actor.parameters()))
    assert {"loss_actor", "loss_qvalue", "loss_alpha"} <= set(terms)


@pytest.mark.parametrize("loss_cls", [DDPGLoss, TD3Loss])
def test_deterministic_actor_losses(loss_cls):
    actor = Actor(
        nn.Sequential(nn.Linear(OBS, ACT), nn.Tanh()), spec=Bounded(-1.0, 1.0, shape=(ACT,))
    )
    qvalue = _qvalue()
    kwargs = {"bounds": (-1.0, 1.0)} if loss_cls is TD3Loss else {}
    loss = loss_cls(actor, qvalue, **kwargs)
    td = _transitions(torch.rand(B, ACT) * 2 - 1)
    # DDPG trains the Q-network's own parameters; TD3 trains stacked copies of them
    own = list(qvalue.parameters()) if loss_cls is DDPGLoss else []
    _step(loss, td, list(actor.parameters()) + own)


def test_collector_runs_a_tdrl_policy():
    pytest.importorskip("gymnasium")
    env = GymEnv("Pendulum-v1")
    net = nn.Sequential(nn.Linear(3, 2), NormalParamExtractor())
    actor = ProbabilisticActor(
        TensorDictModule(net, ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        return_log_prob=True,
    )
    critic = ValueOperator(nn.Linear(3, 1), in_keys=["observation"])
    collector = Collector(env, actor, frames_per_batch=16, total_frames=16)
    loss = ClipPPOLoss(actor, critic)
    gae = GAE(gamma=0.99, lmbda=0.95, value_network=critic)
    for batch in collector:
        assert batch["action"].shape == (16, 1)
        assert batch["action"].abs().max() <= 1
        with torch.no_grad():
            batch = gae(batch)
        _step(loss, batch, list(actor.parameters()) + list(critic.parameters()))
    collector.shutdown()


def _atari_qnet(dueling: bool) -> QValueActor:
    """TorchRL's Atari DQN network, built with the calls of its script with the prefix swapped.

    sota-implementations/dqn/utils_atari.py (``make_dqn_modules_pixels``): a ReLU
    ``ConvNet`` (32/64/64 channels, kernels 8/4/3, strides 4/2/1) sized on one
    observation, an ``MLP`` head of 512, a ``QValueActor`` on ``"pixels"`` with a
    ``Composite(action=...)`` spec. ``dueling=True`` swaps in ``DuelingCnnDQNet``.
    """
    from tdrl.data import Categorical, Composite
    from tdrl.modules import MLP, ConvNet, DuelingCnnDQNet

    input_shape, num_actions = (4, 84, 84), 6
    action_spec = Categorical(num_actions)
    if dueling:
        module = DuelingCnnDQNet(out_features=num_actions)
        module(torch.ones(input_shape))   # materialise the lazy layers
    else:
        cnn = ConvNet(
            activation_class=torch.nn.ReLU,
            num_cells=[32, 64, 64],
            kernel_sizes=[8, 4, 3],
            strides=[4, 2, 1],
            device="cpu",
        )
        cnn_output = cnn(torch.ones(input_shape))
        mlp = MLP(
            in_features=cnn_output.shape[-1],
            activation_class=torch.nn.ReLU,
            out_features=num_actions,
            num_cells=[512],
            device="cpu",
        )
        module = torch.nn.Sequential(cnn, mlp)
    return QValueActor(module=module, spec=Composite(action=action_spec), in_keys=["pixels"])


@pytest.mark.parametrize("dueling", [False, True])
def test_atari_dqn_network_forward_and_dqn_loss(dueling):
    torch.manual_seed(0)
    actor = _atari_qnet(dueling)
    pixels = torch.rand(B, 4, 84, 84)
    td = actor(TensorDict(pixels=pixels, batch_size=[B]))
    assert td["action"].shape == (B,) and td["action_value"].shape == (B, 6)
    seq = TensorDict(pixels=torch.rand(2, 3, 4, 84, 84), batch_size=[2, 3])   # batch x time
    assert actor(seq)["action_value"].shape == (2, 3, 6)
    loss = DQNLoss(actor, action_space="categorical", delay_value=True)
    batch = TensorDict(
        {
            "pixels": pixels,
            "action": torch.randint(6, (B,)),
            "next": {
                "pixels": torch.rand(B, 4, 84, 84),
                "reward": torch.randn(B, 1),
                "done": torch.zeros(B, 1, dtype=torch.bool),
                "terminated": torch.zeros(B, 1, dtype=torch.bool),
            },
        },
        batch_size=[B],
    )
    _step(loss, batch, list(actor.parameters()))
