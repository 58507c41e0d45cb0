"""Ordinal / OneHotOrdinal: the ordinal construction, its properties and its failure modes."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.modules import OneHotCategorical, OneHotOrdinal, Ordinal
from tdrl.modules.distributions.discrete import Ordinal as OrdinalAtTorchRLPath
from tdrl.modules.distributions.discrete import _generate_ordinal_logits

scores_st = st.lists(
    st.floats(-30, 30, allow_nan=False, width=32), min_size=1, max_size=12
).map(lambda xs: torch.tensor(xs, dtype=torch.float64))


def reference_logits(s: torch.Tensor) -> torch.Tensor:
    """Eq. 4 written out term by term (float64, no cumsum)."""
    n = s.shape[-1]
    out = []
    for k in range(n):
        up = sum(math.log(torch.sigmoid(s[j]).item()) for j in range(k + 1))
        down = sum(math.log(torch.sigmoid(-s[j]).item()) for j in range(k + 1, n))
        out.append(up + down)
    return torch.tensor(out, dtype=torch.float64)


def test_torchrl_path_is_the_same_class():
    assert OrdinalAtTorchRLPath is Ordinal


@settings(max_examples=60, deadline=None)
@given(scores_st)
def test_logits_match_the_equation(s):
    torch.testing.assert_close(_generate_ordinal_logits(s), reference_logits(s))


@settings(max_examples=60, deadline=None)
@given(scores_st)
def test_probs_sum_to_one_and_consecutive_ratio_is_exp_score(s):
    p = Ordinal(scores=s).probs
    assert torch.isclose(p.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (p >= 0).all()
    if s.numel() > 1:
        # log p_{k+1} - log p_k == s_{k+1}: raising a score moves mass upwards only
        torch.testing.assert_close(p[1:].log() - p[:-1].log(), s[1:], atol=1e-8, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 8), st.floats(0.1, 5.0))
def test_positive_scores_give_increasing_probabilities(n, c):
    p = Ordinal(scores=torch.full((n,), c)).probs
    assert (p[1:] > p[:-1]).all()
    q = Ordinal(scores=torch.full((n,), -c)).probs
    assert (q[1:] < q[:-1]).all()


def test_first_score_does_not_change_the_distribution():
    # s_0 only multiplies every atom's probability by the same factor
    base = torch.tensor([0.0, 0.5, -1.0])
    shifted = base.clone()
    shifted[0] = 7.0
    torch.testing.assert_close(Ordinal(scores=base).probs, Ordinal(scores=shifted).probs)


def test_extreme_scores_give_valid_probabilities_and_finite_gradients():
    big = torch.finfo(torch.float32).max
    s = torch.tensor([[big, big, big], [-big, -big, -big], [big, -big, big]], requires_grad=True)
    d = Ordinal(scores=s)
    # atoms two saturated sigmoids away get a -inf logit (probability exactly 0), never NaN
    assert not torch.isnan(d.logits).any()
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(3))
    torch.testing.assert_close(d.probs[:2].argmax(-1), torch.tensor([2, 0]))
    d.log_prob(d.sample()).sum().backward()
    assert torch.isfinite(s.grad).all()


def test_one_hot_matches_index_version():
    s = torch.randn(4, 6)
    idx = Ordinal(scores=s)
    hot = OneHotOrdinal(scores=s)
    assert isinstance(hot, OneHotCategorical)
    sample = hot.sample()
    assert sample.shape == (4, 6) and (sample.sum(-1) == 1).all()
    torch.testing.assert_close(hot.log_prob(sample), idx.log_prob(sample.argmax(-1)))
    torch.testing.assert_close(idx.deterministic_sample, idx.probs.argmax(-1))


def test_gradient_reaches_the_scores():
    s = torch.zeros(5, requires_grad=True)
    Ordinal(scores=s).log_prob(torch.tensor(4)).backward()
    # log p_4 = sum_j log sigmoid(s_j): every score pushes towards the top atom
    assert (s.grad[1:] > 0).all()


@pytest.mark.parametrize("cls", [Ordinal, OneHotOrdinal])
def test_bad_scores_raise(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: scores contain NaN \(1 of 3 entries\)"):
        cls(scores=torch.tensor([0.0, float("nan"), 1.0]))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., N\] with N >= 1 atoms, got shape \(\)"):
        cls(scores=torch.tensor(1.0))
    with pytest.raises(TypeError, match="must be a floating tensor, got dtype torch.int64"):
        cls(scores=torch.tensor([1, 2]))
