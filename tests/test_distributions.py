"""Tests of tdrl.modules.distributions: values, shapes, numerics, gradients, errors, properties."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import ProbabilisticTensorDictModule
from tensordict.nn.probabilistic import InteractionType
from torch import distributions as D

from tdrl.modules.distributions import (
    Delta,
    IndependentNormal,
    IndexCategorical,
    MaskedCategorical,
    MaskedOneHotCategorical,
    NormalParamExtractor,
    OneHotCategorical,
    ReparamGradientStrategy,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _formula(loc, low, high):
    return low + (high - low) * (torch.tanh(loc) + 1) / 2


# =====================================================================================
# IndependentNormal
# =====================================================================================
class TestIndependentNormal:
    def test_matches_torch(self):
        loc, scale = torch.randn(4, 3, dtype=F64), torch.rand(4, 3, dtype=F64) + 0.1
        d = IndependentNormal(loc, scale)
        ref = D.Independent(D.Normal(loc, scale), 1)
        x = torch.randn(5, 4, 3, dtype=F64)
        torch.testing.assert_close(d.log_prob(x), ref.log_prob(x))
        torch.testing.assert_close(d.entropy(), ref.entropy())
        assert isinstance(d, D.Independent) and d.batch_shape == (4,) and d.event_shape == (3,)
        assert d.log_prob(x).dtype == F64

    def test_values_and_tanh_loc(self):
        loc = torch.randn(4, 3) * 10
        d = IndependentNormal(loc, torch.ones(4, 3), upscale=2.0, tanh_loc=True)
        torch.testing.assert_close(d.mode, 2.0 * torch.tanh(loc / 2.0))
        torch.testing.assert_close(d.deterministic_sample, d.mode)
        torch.testing.assert_close(d.mean, d.mode)

    def test_event_dim_and_joint(self):
        d = IndependentNormal(torch.zeros(2, 3, 4), torch.ones(2, 3, 4), event_dim=2)
        assert d.batch_shape == (2,) and d.event_shape == (3, 4)
        x, lp = d.rsample_and_log_prob((5,))
        assert x.shape == (5, 2, 3, 4)
        torch.testing.assert_close(lp, d.log_prob(x))
        d0 = IndependentNormal(torch.zeros(()), torch.ones(()))
        assert d0.batch_shape == () and d0.event_shape == ()

    def test_rsample_gradients_and_expand(self):
        loc = torch.zeros(3, requires_grad=True)
        scale = torch.ones(3, requires_grad=True)
        d = IndependentNormal(loc, scale)
        d.rsample().pow(2).sum().backward()
        assert torch.isfinite(scale.grad).all() and (scale.grad != 0).all()
        assert d.expand([2]).batch_shape == (2,)

    def test_bad_scale(self):
        with pytest.raises(ValueError, match=r"IndependentNormal: scale must be > 0 .*\[-2.0\]"):
            IndependentNormal(torch.zeros(2), torch.tensor([1.0, -2.0]), validate_args=True)


# =====================================================================================
# TruncatedNormal
# =====================================================================================
class TestTruncatedNormal:
    def test_log_prob_matches_reference(self):
        loc = torch.tensor([[0.0], [0.5], [-0.3]], dtype=F64)
        scale = torch.tensor([[1.0], [0.2], [3.0]], dtype=F64)
        low, high = -1.0, 2.0
        d = TruncatedNormal(loc, scale, low=low, high=high)
        x = torch.tensor([[-1.0], [0.3], [2.0]], dtype=F64)
        n = D.Normal(loc, scale)
        z = n.cdf(torch.tensor(high, dtype=F64)) - n.cdf(torch.tensor(low, dtype=F64))
        ref = (n.log_prob(x) - z.log()).squeeze(-1)
        torch.testing.assert_close(d.log_prob(x), ref)

    def test_density_integrates_to_one_in_the_tail(self):
        d = TruncatedNormal(torch.tensor([12.0], dtype=F64), torch.tensor([0.7], dtype=F64),
                            low=-1.0, high=1.0)
        y = torch.linspace(-1.0, 1.0, 400_001, dtype=F64)
        area = torch.trapezoid(d.log_prob(y.unsqueeze(-1)).exp(), y)
        assert abs(area.item() - 1.0) < 1e-3
        x = d.sample((1000,))
        assert ((x >= -1) & (x <= 1)).all() and torch.isfinite(d.log_prob(x)).all()
        assert d.mean.item() > 0.9

    def test_moments_and_entropy_match_monte_carlo(self):
        loc = torch.tensor([[0.0], [5.0], [-0.5]], dtype=F64)
        scale = torch.tensor([[1.0], [0.5], [0.1]], dtype=F64)
        d = TruncatedNormal(loc, scale)
        s = d.sample((200_000,))
        torch.testing.assert_close(d.mean, s.mean(0), atol=0.01, rtol=0)
        torch.testing.assert_close(d.variance, s.var(0), atol=0.005, rtol=0.02)
        torch.testing.assert_close(d.entropy(), -d.log_prob(s).mean(0), atol=0.02, rtol=0)

    def test_support_bounds_mode(self):
        d = TruncatedNormal(torch.tensor([[3.0, -0.2]]), torch.ones(1, 2), low=-1.0, high=1.0)
        torch.testing.assert_close(d.mode, torch.tensor([[1.0, -0.2]]))
        torch.testing.assert_close(d.deterministic_sample, d.mean)
        assert torch.isfinite(d.log_prob(torch.tensor([[1.0, -1.0]]))).all()
        assert d.log_prob(torch.tensor([[1.01, 0.0]])).item() == -math.inf
        assert d.support.check(d.sample((20,))).all()

    def test_rsample_gradients(self):
        loc = torch.zeros(4, requires_grad=True)
        scale = torch.ones(4, requires_grad=True)
        d = TruncatedNormal(loc, scale, low=-0.5, high=2.0)
        x = d.rsample((16,))
        x.sum().backward()
        assert torch.isfinite(loc.grad).all() and (loc.grad != 0).all()
        assert torch.isfinite(scale.grad).all() and (scale.grad != 0).all()

    def test_dtype_tensor_bounds_and_errors(self):
        d = TruncatedNormal(torch.zeros(2, 3, dtype=F64), torch.ones(2, 3, dtype=F64),
                            low=torch.tensor([-1.0, 0.0, 1.0]), high=torch.tensor([0.0, 1.0, 2.0]))
        x = d.sample()
        assert x.dtype == F64 and d.log_prob(x).dtype == F64
        assert ((x >= d.low) & (x <= d.high)).all()
        with pytest.raises(ValueError, match="low=3.0 and high=2.0"):
            TruncatedNormal(torch.zeros(2), torch.ones(2), low=3.0, high=2.0)


# =====================================================================================
# Delta / TanhDelta
# =====================================================================================
class TestDelta:
    def test_values_and_log_prob(self):
        p = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        d = Delta(p)
        assert d.batch_shape == (2,) and d.event_shape == (2,)
        for v in (d.sample(), d.rsample(), d.mode, d.mean, d.deterministic_sample):
            torch.testing.assert_close(v, p)
        torch.testing.assert_close(d.log_prob(p + 1e-8), torch.zeros(2))
        assert d.log_prob(p + torch.tensor([[0.0, 0.0], [0.0, 1e-3]])).tolist() == [0.0, -math.inf]
        assert d.sample((3,)).shape == (3, 2, 2)
        assert d.entropy().shape == (2,)

    def test_shapes_args(self):
        p = torch.zeros(2, 3, 4)
        assert Delta(p, batch_shape=[2]).event_shape == (3, 4)
        assert Delta(p, event_shape=[]).batch_shape == (2, 3, 4)
        with pytest.raises(ValueError, match=r"batch_shape \(2,\) \+ event_shape \(5,\)"):
            Delta(p, batch_shape=[2], event_shape=[5])

    def test_rsample_gradient(self):
        p = torch.zeros(3, requires_grad=True)
        Delta(p).rsample().mul(2).sum().backward()
        torch.testing.assert_close(p.grad, torch.full((3,), 2.0))
        assert not Delta(p).sample().requires_grad


class TestTanhDelta:
    def test_values(self):
        param = torch.randn(3, 2) * 3
        d = TanhDelta(param, low=-1.0, high=3.0)
        expected = _formula(param, -1.0, 3.0)
        for v in (d.sample(), d.rsample(), d.mode, d.mean, d.deterministic_sample):
            torch.testing.assert_close(v, expected)
        torch.testing.assert_close(d.log_prob(d.sample()), torch.zeros(3))
        assert (d.log_prob(d.sample() + 0.1) == -math.inf).all()
        assert d.batch_shape == (3,) and d.event_shape == (2,)

    def test_safe_and_support(self):
        d = TanhDelta(torch.full((2,), 50.0), low=0.0, high=1.0)
        assert (d.sample() < 1.0).all()
        assert d.support.check(d.sample())
        assert (TanhDelta(torch.full((2,), 50.0), safe=False).sample() == 1.0).all()

    def test_gradient_and_errors(self):
        p = torch.zeros(2, requires_grad=True)
        TanhDelta(p, low=-2.0, high=2.0).rsample().sum().backward()
        torch.testing.assert_close(p.grad, torch.full((2,), 2.0))
        with pytest.raises(ValueError, match="low=1.0 and high=-1.0"):
            TanhDelta(torch.zeros(2), low=1.0, high=-1.0)


# =====================================================================================
# NormalParamExtractor
# =====================================================================================
def test_normal_param_extractor_biased_softplus():
    ext = NormalParamExtractor()
    loc, scale = ext(torch.zeros(3, 4))
    assert loc.shape == scale.shape == (3, 2)
    torch.testing.assert_close(scale, torch.ones(3, 2))  # biased softplus: 0 -> 1
    x = torch.tensor([[1.0, -2.0, -5.0, 5.0]])
    loc, scale = ext(x)
    torch.testing.assert_close(loc, x[:, :2])
    assert (scale > 0).all() and scale[0, 1] > scale[0, 0]


# =====================================================================================
# Discrete
# =====================================================================================
class TestIndexCategorical:
    @settings(max_examples=30, deadline=None)
    @given(batch=st.integers(1, 6), n=st.integers(1, 7), seed=st.integers(0, 2**16))
    def test_matches_torch_categorical(self, batch, n, seed):
        logits = torch.randn(batch, n, generator=torch.Generator().manual_seed(seed)) * 5
        d, ref = IndexCategorical(logits=logits), D.Categorical(logits=logits)
        assert isinstance(d, D.Categorical) and d.batch_shape == (batch,) and d.event_shape == ()
        torch.testing.assert_close(d.logits, ref.logits)  # log_softmax vs logits - logsumexp
        assert torch.equal(d.logits, logits.log_softmax(-1))
        x = torch.arange(batch) % n
        torch.testing.assert_close(d.log_prob(x), ref.log_prob(x))
        torch.testing.assert_close(d.entropy(), ref.entropy())
        assert torch.equal(d.deterministic_sample, logits.argmax(-1))
        torch.manual_seed(seed)
        draw = d.sample((3,))
        torch.manual_seed(seed)
        assert torch.equal(draw, D.Categorical(probs=d.probs).sample((3,)))  # the same draws

    def test_gradient_probs_expand_and_errors(self):
        logits = torch.randn(2, 3, requires_grad=True)
        d = IndexCategorical(logits=logits)
        (g,) = torch.autograd.grad(d.log_prob(torch.tensor([0, 2])).sum(), logits)
        (ref,) = torch.autograd.grad(
            D.Categorical(logits=logits).log_prob(torch.tensor([0, 2])).sum(), logits)
        torch.testing.assert_close(g, ref)
        probs = torch.tensor([0.2, 0.8])
        torch.testing.assert_close(IndexCategorical(probs=probs).log_prob(torch.tensor(1)),
                                   torch.tensor(0.8).log())
        assert IndexCategorical(logits=torch.zeros(3)).expand((4,)).batch_shape == (4,)
        with pytest.raises(ValueError, match="IndexCategorical: Either `probs` or `logits`"):
            IndexCategorical()
        with pytest.raises(ValueError, match="need at least one dim"):
            IndexCategorical(logits=torch.tensor(1.0))


class TestOneHotCategorical:
    def test_mode_sample_log_prob(self):
        logits = torch.randn(4, 5)
        d = OneHotCategorical(logits=logits)
        assert isinstance(d, D.Categorical)
        assert d.batch_shape == (4,) and d.event_shape == (5,)
        torch.testing.assert_close(d.mode, F.one_hot(logits.argmax(-1), 5))
        torch.testing.assert_close(d.deterministic_sample, d.mode)
        x = d.sample((3,))
        assert x.shape == (3, 4, 5) and x.dtype == torch.long and (x.sum(-1) == 1).all()
        ref = D.Categorical(logits=logits).log_prob(x.argmax(-1))
        torch.testing.assert_close(d.log_prob(x), ref)
        torch.testing.assert_close(d.entropy(), D.Categorical(logits=logits).entropy())
        assert d.support.check(d.mode).all()

    def test_frequencies(self):
        probs = torch.tensor([0.1, 0.6, 0.3])
        x = OneHotCategorical(probs=probs).sample((20_000,))
        torch.testing.assert_close(x.float().mean(0), probs, atol=0.015, rtol=0)

    @pytest.mark.parametrize(
        "grad_method", [None, ReparamGradientStrategy.PassThrough, "RelaxedOneHot"]
    )
    def test_rsample_straight_through(self, grad_method):
        logits = torch.randn(3, 4, requires_grad=True)
        d = OneHotCategorical(logits=logits, grad_method=grad_method)
        x = d.rsample()
        assert x.dtype == torch.float32
        torch.testing.assert_close(x.detach().sum(-1), torch.ones(3))
        assert ((x.detach() == 0) | (x.detach() == 1)).all()
        (x * torch.arange(4.0)).sum().backward()
        assert torch.isfinite(logits.grad).all() and (logits.grad != 0).any()
        y, lp = d.rsample_and_log_prob()
        torch.testing.assert_close(lp, d.log_prob(y))

    def test_errors_and_enumerate(self):
        with pytest.raises(ValueError, match=r"Either `probs` or `logits` must be specified, but not both \(got both\)"):
            OneHotCategorical(logits=torch.zeros(3), probs=torch.ones(3) / 3)
        with pytest.raises(ValueError, match="got neither"):
            OneHotCategorical()
        with pytest.raises(ValueError, match="grad_method must be one of"):
            OneHotCategorical(logits=torch.zeros(3), grad_method="Nope")
        d = OneHotCategorical(logits=torch.zeros(2, 3))
        with pytest.raises(ValueError, match="last dim 3"):
            d.log_prob(torch.zeros(2, 4))
        sup = d.enumerate_support()
        assert sup.shape == (3, 2, 3)
        assert torch.isfinite(d.log_prob(sup)).all()
        assert d.expand([5, 2]).batch_shape == (5, 2)


class TestMaskedCategorical:
    def test_never_samples_masked(self):
        logits = torch.tensor([[10.0, 0.0, 0.0, -1.0], [0.0, 0.0, 10.0, 10.0]])
        mask = torch.tensor([[False, True, False, True], [True, False, False, False]])
        d = MaskedCategorical(logits=logits, mask=mask)
        s = d.sample((20_000,))
        assert mask.gather(-1, s.T).all()
        assert (s[:, 1] == 0).all()
        # the mode ignores the (larger) masked logits
        assert d.mode.tolist() == [1, 0]
        torch.testing.assert_close(
            d.mode, logits.masked_fill(~mask, -math.inf).argmax(-1)
        )
        assert d.support.check(d.mode).all()

    def test_log_prob_masked(self):
        logits = torch.zeros(2, 3)
        mask = torch.tensor([[True, True, False], [True, True, True]])
        d = MaskedCategorical(logits=logits, mask=mask)
        lp = d.log_prob(torch.tensor([2, 2]))
        assert lp[0].item() == -math.inf
        assert lp[1].item() == pytest.approx(-math.log(3))
        d2 = MaskedCategorical(logits=logits, mask=mask, neg_inf=-1e9)
        assert d2.log_prob(torch.tensor([2, 0])).tolist() == [-1e9, pytest.approx(-math.log(3))]
        assert torch.isfinite(d.log_prob(d.sample())).all()
        assert torch.isfinite(d.entropy()).all()

    def test_probs_are_renormalized(self):
        probs = torch.tensor([0.5, 0.25, 0.25])
        d = MaskedCategorical(probs=probs, mask=torch.tensor([False, True, True]))
        torch.testing.assert_close(d.probs, torch.tensor([0.0, 0.5, 0.5]))

    def test_indices_with_padding(self):
        logits = torch.randn(2, 5)
        indices = torch.tensor([[0, 3, -1], [4, -1, -1]])
        d = MaskedCategorical(logits=logits, indices=indices, padding_value=-1)
        expected = torch.tensor([[True, False, False, True, False],
                                 [False, False, False, False, True]])
        assert torch.equal(d.mask, expected)
        assert expected.gather(-1, d.sample((500,)).T).all()

    def test_gradient_through_log_prob(self):
        logits = torch.randn(3, 4, requires_grad=True)
        mask = torch.tensor([[True, True, False, False]] * 3)
        d = MaskedCategorical(logits=logits, mask=mask)
        x, lp = d.sample_and_log_prob()
        lp.sum().backward()
        assert torch.isfinite(logits.grad).all()
        assert (logits.grad[:, 2:] == 0).all() and (logits.grad[:, :2] != 0).all()

    def test_errors(self):
        logits = torch.zeros(2, 3)
        with pytest.raises(ValueError, match=r"mask must have the shape of logits/probs \(2, 3\)"
                                             r".*got \(2, 4\)"):
            MaskedCategorical(logits=logits, mask=torch.ones(2, 4, dtype=torch.bool))
        with pytest.raises(ValueError, match=r"got \(3, 3\)"):
            MaskedCategorical(logits=logits, mask=torch.ones(3, 3, dtype=torch.bool))
        with pytest.raises(TypeError, match="mask must be a boolean tensor, got torch.int64"):
            MaskedCategorical(logits=logits, mask=torch.ones(2, 3, dtype=torch.long))
        with pytest.raises(ValueError, match=r"A `mask` or some `indices` must be provided, but not both \(got neither\)"):
            MaskedCategorical(logits=logits)
        with pytest.raises(ValueError, match="all categories masked"):
            MaskedCategorical(logits=logits, mask=torch.tensor([[True, False, False]] * 1
                                                               + [[False] * 3]))
        with pytest.raises(ValueError, match=r"indices must be in \[0, 3\).*\[7\]"):
            MaskedCategorical(logits=logits, indices=torch.tensor([[0], [7]]))

    def test_broadcast_mask_and_shapes(self):
        d = MaskedCategorical(logits=torch.zeros(4, 3), mask=torch.tensor([True, False, True]))
        assert d.batch_shape == (4,) and d.event_shape == ()
        assert d.sample((2,)).shape == (2, 4)
        assert d.expand([2, 4]).batch_shape == (2, 4)
        d0 = MaskedCategorical(logits=torch.zeros(3), mask=torch.tensor([False, True, False]))
        assert d0.batch_shape == () and d0.sample().item() == 1


class TestMaskedOneHotCategorical:
    def test_never_samples_masked_and_rsample(self):
        logits = torch.randn(3, 4, requires_grad=True)
        mask = torch.tensor([[True, False, True, False], [False] * 3 + [True], [True] * 4])
        d = MaskedOneHotCategorical(logits=logits, mask=mask)
        assert d.event_shape == (4,)
        s = d.sample((5000,))
        assert s.dtype == torch.long and not (s.bool() & ~mask).any()
        x = d.rsample()
        assert not (x.detach().bool() & ~mask).any()
        (x * torch.arange(4.0)).sum().backward()
        assert torch.isfinite(logits.grad).all()
        torch.testing.assert_close(
            d.mode, F.one_hot(logits.masked_fill(~mask, -math.inf).argmax(-1), 4)
        )
        assert d.log_prob(F.one_hot(torch.tensor([1, 0, 0]), 4))[:2].eq(-math.inf).all()
        r = MaskedOneHotCategorical(logits=logits, mask=mask, grad_method="RelaxedOneHot")
        for _ in range(50):
            assert not (r.rsample().detach().bool() & ~mask).any()


# =====================================================================================
# Integration with tensordict's probabilistic module
# =====================================================================================
@pytest.mark.parametrize("cls,kw", [
    (TanhNormal, {"loc": torch.zeros(3, 2), "scale": torch.ones(3, 2)}),
    (IndependentNormal, {"loc": torch.zeros(3, 2), "scale": torch.ones(3, 2)}),
    (OneHotCategorical, {"logits": torch.zeros(3, 2)}),
])
def test_probabilistic_module_joint_sample_and_log_prob(cls, kw):
    mod = ProbabilisticTensorDictModule(
        in_keys=list(kw), out_keys=["action"], distribution_class=cls, return_log_prob=True,
        default_interaction_type=InteractionType.RANDOM,
    )
    td = mod(TensorDict(kw, batch_size=[3]))
    lp = td["action_log_prob"]
    assert lp.shape == (3,) and torch.isfinite(lp).all()
    torch.testing.assert_close(lp, mod.get_dist(td).log_prob(td["action"]))


# =====================================================================================
# Hypothesis properties: log_prob(sample) finite, mode in the support, for every class
# =====================================================================================
_floats = st.floats(-12.0, 12.0, allow_nan=False)
_scales = st.floats(0.001, 8.0, allow_nan=False)


def _draw_shape(draw, max_n):
    """``(n,)`` or ``(b, n)``: ``n`` in ``[1, max_n]``, ``b`` in ``[0, 3]`` (0: no batch dim)."""
    n = draw(st.integers(1, max_n))
    b = draw(st.integers(0, 3))
    return (b, n) if b else (n,)


def _draw_tensor(draw, elements, shape):
    numel = math.prod(shape)
    return torch.tensor(draw(st.lists(elements, min_size=numel, max_size=numel))).reshape(shape)


@st.composite
def _continuous_params(draw):
    shape = _draw_shape(draw, 4)
    loc = _draw_tensor(draw, _floats, shape)
    scale = _draw_tensor(draw, _scales, shape)
    low = draw(st.floats(-5.0, 4.0, allow_nan=False))
    high = low + draw(st.floats(0.01, 6.0, allow_nan=False))
    dtype = draw(st.sampled_from([torch.float32, F64]))
    return loc.to(dtype), scale.to(dtype), low, high


@settings(max_examples=40, deadline=None)
@given(_continuous_params(), st.booleans())
def test_property_tanh_normal(params, tanh_loc):
    loc, scale, low, high = params
    d = TanhNormal(loc, scale, low=low, high=high, tanh_loc=tanh_loc)
    for x in (d.sample(), d.rsample((2,))):
        assert torch.isfinite(d.log_prob(x)).all()
        assert torch.isfinite(d.log_prob(x.clone())).all()
        assert d.support.check(x).all()
    mode = d.mode
    assert ((mode > low) & (mode < high)).all()
    assert torch.isfinite(d.log_prob(mode)).all()
    assert d.support.check(d.deterministic_sample).all()


@settings(max_examples=40, deadline=None)
@given(_continuous_params())
def test_property_truncated_and_independent_normal(params):
    loc, scale, low, high = params
    d = TruncatedNormal(loc, scale, low=low, high=high)
    x = d.sample((3,))
    assert torch.isfinite(d.log_prob(x)).all() and d.support.check(x).all()
    assert d.support.check(d.mode).all() and torch.isfinite(d.log_prob(d.mode)).all()
    assert d.support.check(d.deterministic_sample).all()
    n = IndependentNormal(loc, scale)
    assert torch.isfinite(n.log_prob(n.sample())).all()
    assert torch.isfinite(n.log_prob(n.mode)).all()


@settings(max_examples=30, deadline=None)
@given(_continuous_params())
def test_property_deltas(params):
    loc, _, low, high = params
    for d in (Delta(loc), TanhDelta(loc, low=low, high=high)):
        assert (d.log_prob(d.sample()) == 0).all()
        assert d.support.check(d.mode).all()


@st.composite
def _categorical_params(draw):
    shape = _draw_shape(draw, 6)
    logits = _draw_tensor(draw, st.floats(-30, 30, width=32), shape)
    mask = _draw_tensor(draw, st.booleans(), shape)
    # at least one allowed category per row
    first = draw(st.integers(0, shape[-1] - 1))
    mask[..., first] = True
    return logits, mask


@settings(max_examples=40, deadline=None)
@given(_categorical_params())
def test_property_categoricals(params):
    logits, mask = params
    dists = [
        OneHotCategorical(logits=logits),
        MaskedCategorical(logits=logits, mask=mask),
        MaskedOneHotCategorical(logits=logits, mask=mask),
    ]
    for d in dists:
        x = d.sample((4,))
        assert torch.isfinite(d.log_prob(x)).all()
        assert d.support.check(d.mode).all()
        assert torch.isfinite(d.log_prob(d.mode)).all()
    masked, masked_oh = dists[1], dists[2]
    assert mask.gather(-1, masked.mode.unsqueeze(-1)).all()
    assert not (masked_oh.sample((4,)).bool() & ~mask).any()
    assert (masked.mode == logits.masked_fill(~mask, -math.inf).argmax(-1)).all()


def test_compile_fullgraph_tensor_bounds_and_mask():
    low, high = torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 3.0])

    def tanh_normal(loc, scale):
        d = TanhNormal(loc, scale, low=low, high=high)
        a = d.rsample()
        return a, d.log_prob(a), d.deterministic_sample

    def masked(logits, mask):
        d = MaskedCategorical(logits=logits, mask=mask)
        x = d.sample()
        return x, d.log_prob(x), d.mode

    torch._dynamo.reset()
    a, lp, det = torch.compile(tanh_normal, fullgraph=True)(torch.zeros(3, 2), torch.ones(3, 2))
    assert a.shape == (3, 2) and lp.shape == (3,) and torch.isfinite(lp).all()
    assert ((a >= low) & (a <= high)).all()
    torch.testing.assert_close(det, _formula(torch.zeros(3, 2), low, high))
    mask = torch.tensor([[False, True, True], [True, False, False]])
    x, lp, mode = torch.compile(masked, fullgraph=True)(torch.randn(2, 3), mask)
    assert mask.gather(-1, x.unsqueeze(-1)).all() and torch.isfinite(lp).all()
    assert mask.gather(-1, mode.unsqueeze(-1)).all()


def test_event_dim_errors_for_independent_normal_and_tanh_delta():
    with pytest.raises(ValueError, match=r"event_dim must be an int in \[0, 2\].*got 3"):
        IndependentNormal(torch.zeros(2, 3), torch.ones(2, 3), event_dim=3)
    with pytest.raises(ValueError, match=r"event_dims must be an int in \[0, 1\].*got 2"):
        TanhDelta(torch.zeros(3), event_dims=2)
    assert TanhDelta(torch.zeros(()), event_dims=1).event_shape == ()
