"""C51's projection and loss (tdrl.recipes.dqn_distributional) on hand-computed values."""
from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.recipes.config import TrainError
from tdrl.recipes.dqn_distributional import check_support, project_onto_support

SUPPORT = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
PROBS = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.0])


@pytest.mark.parametrize(
    ("support", "reward", "discount", "probs", "expected"),
    [
        # 0.5 + 0.5 z = [0.5, 1, 1.5, 2, 2.5]: halves of 0.1 and 0.3 to each neighbour
        (SUPPORT, 0.5, 0.5, PROBS, [0.05, 0.4, 0.55, 0.0, 0.0]),
        # -3 + z is below v_min everywhere but the last atom: clamped onto 0
        (SUPPORT, -3.0, 1.0, PROBS, [1.0, 0.0, 0.0, 0.0, 0.0]),
        # a termination (discount 0): all mass on the reward, 2.25 -> 3/4 on 2, 1/4 on 3
        (SUPPORT, 2.25, 0.0, PROBS, [0.0, 0.0, 0.75, 0.25, 0.0]),
        # beyond v_max: clamped onto 4
        (SUPPORT, 10.0, 0.9, PROBS, [0.0, 0.0, 0.0, 0.0, 1.0]),
        # spacing 0.5 around 0: 0.1 lands 1/5 of the way from 0 to 0.5
        (torch.linspace(-1.0, 1.0, 5), 0.1, 1.0, torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]),
         [0.0, 0.0, 0.8, 0.2, 0.0]),
    ],
)
def test_projection_on_fixed_values(support, reward, discount, probs, expected):
    out = project_onto_support(support, torch.tensor([reward]), torch.tensor([discount]),
                               probs.unsqueeze(0))
    torch.testing.assert_close(out, torch.tensor([expected]), atol=1e-6, rtol=0)


def test_projection_is_per_row():
    rewards, discounts = torch.tensor([0.5, 2.25]), torch.tensor([0.5, 0.0])
    out = project_onto_support(SUPPORT, rewards, discounts, PROBS.expand(2, 5))
    torch.testing.assert_close(out, torch.tensor([[0.05, 0.4, 0.55, 0.0, 0.0],
                                                  [0.0, 0.0, 0.75, 0.25, 0.0]]))


@settings(max_examples=60, deadline=None)
@given(
    logits=st.lists(st.floats(-5, 5), min_size=11, max_size=11),
    reward=st.floats(-2, 2),
    discount=st.floats(0, 0.8),
)
def test_projection_keeps_mass_and_mean_inside_the_support(logits, reward, discount):
    """On [-10, 10] the shifted atoms r + d z stay inside for |r| <= 2, d <= 0.8: nothing is
    clamped, and the hat-function split keeps both the mass and the mean exactly."""
    support = torch.linspace(-10.0, 10.0, 11, dtype=torch.float64)
    probs = torch.softmax(torch.tensor(logits, dtype=torch.float64), 0).unsqueeze(0)
    out = project_onto_support(support, torch.tensor([reward], dtype=torch.float64),
                               torch.tensor([discount], dtype=torch.float64), probs)
    assert bool((out >= 0).all())
    torch.testing.assert_close(out.sum(), torch.tensor(1.0, dtype=torch.float64))
    mean = (probs * support).sum()
    torch.testing.assert_close((out * support).sum(), reward + discount * mean)


@pytest.mark.parametrize("support", [torch.tensor([0.0, 1.0, 3.0]), torch.tensor([2.0, 1.0, 0.0]),
                                     torch.tensor([1.0])])
def test_supports_c51_cannot_project_onto_are_refused(support):
    with pytest.raises(TrainError, match=re.escape(
            "the DistributionalQValueActor's support must be evenly spaced and increasing")):
        check_support(support)


class _Logits(torch.nn.Module):
    """Fixed logits ``[atoms, actions]`` whatever the observation (a bias-only network)."""

    def __init__(self, probs: list[list[float]]) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor(probs).log())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(obs.shape[0], *self.bias.shape)


def _c51_step(double_dqn: bool, terminated: bool):
    """One C51Update step on a 2-atom, 2-action problem whose loss is computed by hand below."""
    from types import SimpleNamespace

    from tdrl.recipes.dqn_distributional import C51Update

    # columns are actions: online a0 = [.5, .5] (E 0.5), a1 = [.25, .75] (E 0.75);
    # target a0 = [.2, .8] (E 0.8), a1 = [.6, .4] (E 0.4)
    online = _Logits([[0.5, 0.25], [0.5, 0.75]])
    target = _Logits([[0.2, 0.6], [0.8, 0.4]])
    online.qvalue_module = SimpleNamespace(support=torch.tensor([0.0, 1.0]))
    batch = {"observation": torch.zeros(1, 3), "next_observation": torch.ones(1, 3),
             "action": torch.tensor([1]), "reward": torch.tensor([0.5]),
             "discount": torch.tensor([0.9]), "terminated": torch.tensor([terminated])}
    algo = SimpleNamespace(
        qnet=online, q_values=online, target=target, target_q_values=target, device="cpu",
        cfg=SimpleNamespace(batch_size=1, double_dqn=double_dqn, max_grad_norm=100.0, tau=1.0),
        buffer=SimpleNamespace(sample=lambda n: batch), grad_norms=[], updates=0,
        optimizer=torch.optim.SGD(online.parameters(), lr=1.0),
    )
    before = online.bias.detach().clone()
    loss, q = C51Update(algo)()
    return loss, q, online.bias.detach() - before, algo


@pytest.mark.parametrize(
    ("double_dqn", "terminated", "target"),
    [
        # a* = argmax of the target's E (a0): 0.5 + 0.9 * [0, 1] = [0.5, 1.4 -> 1.0];
        # 0.2 at 0.5 splits in halves, 0.8 lands on 1.0
        (False, False, [0.1, 0.9]),
        # Double DQN: a* = argmax of the online E on s' (a1), valued by the target's [.6, .4]
        (True, False, [0.3, 0.7]),
        # terminated: all mass on the reward 0.5, halves to 0 and 1
        (False, True, [0.5, 0.5]),
    ],
)
def test_c51_step_loss_gradient_and_q_on_fixed_values(double_dqn, terminated, target):
    loss, q, change, algo = _c51_step(double_dqn, terminated)
    online_a1 = torch.tensor([0.25, 0.75])  # the replayed action's distribution
    expected = -(torch.tensor(target) * online_a1.log()).sum()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    assert q.item() == pytest.approx(0.75, abs=1e-6)  # E of the replayed action's atoms
    # cross-entropy's gradient w.r.t. the logits is softmax - target, here only in column a1;
    # SGD at lr 1 moves the bias by minus it
    grad_a1 = online_a1 - torch.tensor(target)
    torch.testing.assert_close(change[:, 1], -grad_a1, atol=1e-6, rtol=0)
    torch.testing.assert_close(change[:, 0], torch.zeros(2), atol=0, rtol=0)
    assert algo.updates == 1 and len(algo.grad_norms) == 1
