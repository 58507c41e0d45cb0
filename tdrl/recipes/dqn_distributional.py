"""Distributional DQN (C51) for a user's ``DistributionalQValueActor`` (``tdrl train dqn --module``).

The actor's network gives ``[B, n_atoms, n_actions]`` logits over the fixed,
evenly spaced ``support`` of its ``DistributionalQValueModule`` (``v_min ..
v_max``). The update is C51's (Bellemare et al., 2017): the target distribution
of ``r + discount * Z(s', a*)`` (``a*`` maximises the expected value: the online
network's choice with Double DQN, the target network's without), projected back
onto the support by :func:`project_onto_support`, against the online
log-probabilities of the replayed action, by cross-entropy. Everything else
(replay, n-step returns, epsilon-greedy acting, target updates, learning-rate
decay, gradient clipping, checkpoints, ``--workers``) is :class:`~tdrl.recipes.dqn.DQN`'s,
which uses :class:`C51Update` as its ``train_step`` for such a network.

Examples:
    >>> support = torch.tensor([0.0, 1.0, 2.0])
    >>> probs = torch.tensor([[0.0, 1.0, 0.0]])  # all mass on 1.0
    >>> project_onto_support(support, torch.tensor([0.5]), torch.tensor([1.0]), probs)
    tensor([[0.0000, 0.5000, 0.5000]])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tdrl._compat import lerp_all_
from tdrl.recipes.config import TrainError

__all__ = ["C51Update", "check_support", "project_onto_support"]


def check_support(support: torch.Tensor) -> None:
    """Refuse a support C51 cannot project onto: fewer than 2 atoms, or not evenly increasing.

    Examples:
        >>> check_support(torch.linspace(-10, 10, 51))
        >>> check_support(torch.tensor([0.0, 1.0, 3.0]))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: module=: the DistributionalQValueActor's support must be evenly spaced and increasing (C51 projects onto it), got [0.0, 1.0, 3.0]
    """
    steps = support[1:] - support[:-1]
    if support.numel() < 2 or not bool((steps > 0).all()) or not torch.allclose(
        steps, steps[0].expand_as(steps), rtol=1e-4, atol=1e-6
    ):
        shown = [round(v, 4) for v in support.tolist()[:8]]
        more = ", ..." if support.numel() > 8 else ""
        raise TrainError(
            "module=: the DistributionalQValueActor's support must be evenly spaced and "
            f"increasing (C51 projects onto it), got {str(shown)[:-1]}{more}]"
        )


def project_onto_support(
    support: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor, probs: torch.Tensor
) -> torch.Tensor:
    """C51's projection of ``reward + discount * Z`` (``Z ~ probs`` on ``support``) onto ``support``.

    Each shifted atom ``tz = clamp(reward + discount * z_i, v_min, v_max)`` gives its
    probability to its two neighbours on the support, in proportion to closeness
    (all of it to an atom it lands on exactly). ``support`` is ``[n_atoms]`` (evenly
    spaced), ``reward`` and ``discount`` are ``[B]`` (``discount`` is 0 after a
    termination), ``probs`` is ``[B, n_atoms]``; returns ``[B, n_atoms]``, rows
    summing to the rows of ``probs``.

    Examples:
        >>> support = torch.tensor([-1.0, 0.0, 1.0])
        >>> probs = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
        >>> project_onto_support(support, torch.tensor([0.0, 5.0]), torch.tensor([0.0, 0.9]),
        ...                      probs)  # terminal: all mass on 0.0; beyond v_max: all on 1.0
        tensor([[0., 1., 0.],
                [0., 0., 1.]])
    """
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (support.numel() - 1)
    shifted = (reward.unsqueeze(-1) + discount.unsqueeze(-1) * support).clamp(v_min, v_max)
    # weight of shifted atom i on support atom j: the hat function max(0, 1 - |tz_i - z_j| / dz)
    weights = (1.0 - (shifted.unsqueeze(-1) - support).abs() / delta).clamp_min(0.0)
    return torch.einsum("bi,bij->bj", probs, weights)


class C51Update:
    """C51's gradient step for a :class:`~tdrl.recipes.dqn.DQN` run on a ``DistributionalQValueActor``.

    ``DQN`` puts it in place of its ``train_step`` when the Q-network is
    distributional; it reads the run's replay buffer, networks, optimizer and
    config. ``q_mean`` in ``metrics.csv`` is then the mean expected value of the
    replayed actions and ``loss`` the cross-entropy to the projected target.
    """

    def __init__(self, algo: Any) -> None:
        self.algo = algo
        self.support = algo.qnet.qvalue_module.support.to(algo.device)

    @staticmethod
    def _log_probs(net: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        # [B, atoms, n]; log_softmax of log-probabilities (make_log_softmax=False) is a no-op
        return torch.log_softmax(net(obs), dim=-2)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One C51 gradient step on a replay minibatch; returns (loss, mean Q) detached."""
        algo, support = self.algo, self.support
        cfg = algo.cfg
        batch = algo.buffer.sample(cfg.batch_size)
        obs, next_obs = batch["observation"], batch["next_observation"]
        b, atoms = obs.shape[0], support.numel()
        if cfg.double_dqn:
            log_both = self._log_probs(algo.q_values, torch.cat([obs, next_obs]))
            log_p = log_both[:b]
            with torch.no_grad():
                next_q = (log_both[b:].exp() * support.unsqueeze(-1)).sum(-2)
        else:
            log_p = self._log_probs(algo.q_values, obs)
        with torch.no_grad():
            next_p = self._log_probs(algo.target_q_values, next_obs).exp()
            if not cfg.double_dqn:
                next_q = (next_p * support.unsqueeze(-1)).sum(-2)
            best = next_q.argmax(-1).view(b, 1, 1).expand(b, atoms, 1)
            next_p = next_p.gather(-1, best).squeeze(-1)  # [B, atoms] of a*
            not_done = (~batch["terminated"]).float()
            target = project_onto_support(
                support, batch["reward"], batch["discount"] * not_done, next_p
            )
        action = batch["action"].view(b, 1, 1).expand(b, atoms, 1)
        log_p_action = log_p.gather(-1, action).squeeze(-1)  # [B, atoms]
        loss = -(target * log_p_action).sum(-1).mean()
        algo.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        algo.grad_norms.append(
            nn.utils.clip_grad_norm_(algo.qnet.parameters(), cfg.max_grad_norm)
        )
        algo.optimizer.step()
        algo.updates += 1
        if cfg.tau < 1.0:
            lerp_all_(list(algo.target.parameters()), list(algo.qnet.parameters()), cfg.tau)
        q = (log_p_action.detach().exp() * support).sum(-1)
        return loss.detach(), q.mean()
