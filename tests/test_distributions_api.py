"""TorchRL-facing API of the distributions: safe tanh helpers, joint sample/log-prob,
``update``/``get_mode``/``device``, argument validation and the masked-categorical options."""
from __future__ import annotations

import importlib
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from tensordict.nn import CompositeDistribution, set_composite_lp_aggregate
from torch import distributions as D

from tdrl.modules.distributions import (
    Delta,
    IndependentNormal,
    MaskedCategorical,
    MaskedOneHotCategorical,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)
from tdrl.modules.distributions.safe_tanh import log1m_tanh_sq
from tdrl.modules.distributions.utils import (
    SafeTanhTransform,
    composite_entropy,
    rsample_and_log_prob,
    safeatanh,
    safetanh,
    sample_and_log_prob,
)

F64 = torch.float64


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("tdrl.modules.distributions.utils",
         ["safetanh", "safeatanh", "safetanh_noeps", "safeatanh_noeps", "sample_and_log_prob",
          "rsample_and_log_prob", "composite_entropy"]),
        ("tdrl.modules.distributions.continuous",
         ["SafeTanhTransform", "TORCH_VERSION_PRE_2_6", "TanhNormal", "TruncatedNormal", "Delta"]),
        ("tdrl.modules", ["ReparamGradientStrategy"]),
    ],
)
def test_torchrl_paths(module, names):
    mod = importlib.import_module(module)
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"
    assert importlib.import_module("tdrl.modules.distributions.continuous").SafeTanhTransform \
        is SafeTanhTransform


# --------------------------------------------------------------------------------------
# safetanh / safeatanh / SafeTanhTransform
# --------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    xs=st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=8),
    eps=st.sampled_from([1e-6, 1e-9, None]),
)
def test_safe_tanh_round_trip_has_unit_gradient(xs, eps):
    x = torch.tensor(xs, dtype=F64, requires_grad=True)
    y = safetanh(x, eps)
    lim = 1.0 - (eps if eps is not None else torch.finfo(F64).resolution)
    assert (y.abs() <= lim).all()
    inside = x.detach().tanh().abs() < lim
    torch.testing.assert_close(y.detach()[inside], x.detach()[inside].tanh())
    safeatanh(y, eps).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_safe_tanh_under_vmap_and_errors():
    x = torch.randn(5, dtype=F64) * 20
    y = torch.vmap(safetanh, (0, None))(x, 1e-6)
    torch.testing.assert_close(y, safetanh(x, 1e-6))
    torch.testing.assert_close(torch.vmap(safeatanh, (0, None))(y, 1e-6), safeatanh(y, 1e-6))
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\), got 2"):
        safetanh(x, 2)


def test_safe_tanh_transform():
    t = SafeTanhTransform()
    for dtype in (torch.float32, F64):
        big = torch.tensor([-1e6, -30.0, 30.0, 1e6], dtype=dtype)
        y = t(big)
        assert (y.abs() < 1).all() and (y.sign() == big.sign()).all()
        back = t.inv(torch.tensor([-1.0, 1.0], dtype=dtype))
        assert torch.isfinite(back).all() and (back.sign() == torch.tensor([-1.0, 1.0])).all()
    x = torch.randn(10, dtype=F64)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, t(x)), log1m_tanh_sq(x))
    x.requires_grad_()
    (g,) = torch.autograd.grad(t(x).sum(), x)
    torch.testing.assert_close(g, 1 - x.detach().tanh() ** 2)


# --------------------------------------------------------------------------------------
# joint sample / log-prob
# --------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(
    loc=st.floats(-3, 3), scale=st.floats(0.05, 2.0),
    bounds=st.sampled_from([(-1.0, 1.0), (-2.0, 3.0), (0.0, 0.5)]),
)
def test_joint_log_prob_matches_log_prob_of_a_copy_away_from_saturation(loc, scale, bounds):
    d = TanhNormal(torch.full((3, 2), loc, dtype=F64), torch.full((3, 2), scale, dtype=F64),
                   low=bounds[0], high=bounds[1])
    for joint in (d.rsample_and_log_prob, d.sample_and_log_prob):
        y, lp = joint((4,))
        assert y.shape == (4, 3, 2) and lp.shape == (4, 3)
        u = (y - (bounds[0] + bounds[1]) / 2) / ((bounds[1] - bounds[0]) / 2)
        interior = (u.abs() < 0.999).all(-1)
        torch.testing.assert_close(lp[interior], d.log_prob(y.clone())[interior])


def test_joint_helpers_never_inverse_score_tanh_normal(monkeypatch):
    loc = torch.tensor([[20.0], [-20.0]], requires_grad=True)
    dist = TanhNormal(loc, torch.full_like(loc, 0.1))

    def fail(*args, **kwargs):
        raise AssertionError("inverse-scored")

    monkeypatch.setattr(TanhNormal, "log_prob", fail)
    y, lp = rsample_and_log_prob(dist, (3,))
    assert y.requires_grad and lp.shape == (3, 2) and torch.isfinite(lp).all()
    y, lp = sample_and_log_prob(dist)
    assert not y.requires_grad and lp.requires_grad


def test_joint_helpers_fall_back_to_sample_and_log_prob():
    d = D.Normal(torch.zeros(3), torch.ones(3))
    x, lp = sample_and_log_prob(d, (2,))
    torch.testing.assert_close(lp, d.log_prob(x))
    x, lp = rsample_and_log_prob(D.Normal(torch.zeros(3, requires_grad=True), torch.ones(3)))
    assert x.requires_grad


def _composite():
    loc = torch.tensor([[20.0], [-20.0]], requires_grad=True)
    params = TensorDict(
        {"sq": TensorDict({"loc": loc, "scale": torch.full_like(loc, 0.1)}, batch_size=[2]),
         "n": TensorDict({"loc": torch.zeros(2, 1), "scale": torch.ones(2, 1)}, batch_size=[2])},
        batch_size=[2],
    )
    return CompositeDistribution(
        params, distribution_map={"sq": TanhNormal, "n": D.Normal},
        name_map={"sq": ("agent", "action"), "n": ("agent", "aux")},
        extra_kwargs={"sq": {"event_dims": 1}},
    )


def test_joint_helpers_on_a_composite_distribution():
    dist = _composite()
    torch.manual_seed(0)
    with set_composite_lp_aggregate(False):
        sample, lps = rsample_and_log_prob(dist, (3,))
    torch.manual_seed(0)
    with set_composite_lp_aggregate(True):
        sample2, total = rsample_and_log_prob(dist, (3,))
    assert sample.batch_size == (3, 2)
    torch.testing.assert_close(sample, sample2)
    assert set(lps.keys(True, True)) == {("agent", "action_log_prob"), ("agent", "aux_log_prob")}
    assert lps["agent", "action_log_prob"].shape == (3, 2)
    assert lps["agent", "aux_log_prob"].shape == (3, 2, 1)
    torch.testing.assert_close(
        total, lps["agent", "action_log_prob"] + lps["agent", "aux_log_prob"].sum(-1)
    )
    with set_composite_lp_aggregate(False):
        h = composite_entropy(dist, 2)
    assert set(h.keys(True, True)) == {("agent", "action_entropy"), ("agent", "aux_entropy")}
    torch.testing.assert_close(h["agent", "aux_entropy"], D.Normal(0.0, 1.0).entropy().expand(2, 1))


# --------------------------------------------------------------------------------------
# update / get_mode / device
# --------------------------------------------------------------------------------------
def test_tanh_normal_update_reapplies_tanh_loc_and_drops_the_cache():
    d = TanhNormal(torch.zeros(2, 3), torch.ones_like, tanh_loc=True, upscale=2.0,
                   low=-2.0, high=2.0)
    x = d.rsample()
    d.update(torch.full((2, 3), 100.0), 0.5)
    torch.testing.assert_close(d.loc, torch.full((2, 3), 2.0 * math.tanh(50.0)))
    torch.testing.assert_close(d.scale, torch.full((2, 3), 0.5))
    assert d._cache is None and d.log_prob(x).shape == (2,)
    assert d.low.item() == -2.0 and d.batch_shape == (2,)
    with pytest.raises(ValueError, match="TanhNormal: scale must be > 0"):
        d.update(torch.zeros(2, 3), torch.zeros(2, 3))


def test_update_get_mode_device_of_the_other_distributions():
    n = IndependentNormal(torch.zeros(4, 2), 1.0)
    n.update(torch.ones(4, 2), torch.full((4, 2), 2.0))
    torch.testing.assert_close(n.base_dist.scale, torch.full((4, 2), 2.0))
    assert n.device == torch.device("cpu") and n.batch_shape == (4,)
    t = TruncatedNormal(torch.zeros(3), torch.ones(3), low=-1.0, high=1.0)
    m0 = t.mean
    t.update(torch.full((3,), 0.5), torch.ones(3))
    assert t.device == torch.device("cpu") and (t.mean > m0).all()
    d = TanhNormal(torch.tensor([0.3, -2.0]), torch.tensor([0.4, 1.5]), event_dims=0)
    torch.testing.assert_close(d.get_mode(), d.mode)
    assert d.device == torch.device("cpu")
    delta = Delta(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"Delta.update: param must be a tensor of shape \(2, 3\)"):
        delta.update(torch.zeros(3))


@settings(max_examples=30, deadline=None)
@given(p=st.lists(st.floats(-8, 8), min_size=2, max_size=2),
       bounds=st.sampled_from([(-1.0, 1.0), (-0.5, 2.0)]))
def test_tanh_delta_transformed_view(p, bounds):
    d = TanhDelta(torch.tensor([p], dtype=F64), *bounds, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(d.transforms[0](d.param), d.mode)
    assert d.base_dist._is_equal(d.transforms[0].inv(d.mode)).all()
    assert d.log_prob(d.mode).item() == 0.0
    d.update(torch.tensor([p], dtype=F64) + 1)
    torch.testing.assert_close(d.transforms[0](d.param), d.mode)


# --------------------------------------------------------------------------------------
# validation of loc / scale
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [TanhNormal, IndependentNormal, TruncatedNormal])
@pytest.mark.parametrize(
    ("scale", "match"),
    [
        ([1.0, 0.0, 1.0], r"scale must be > 0 \(and not NaN\) everywhere, got 1 bad entry of 3: "
                          r"values \[0.0\], first at index \[1\]"),
        ([-1.0, 1.0, -2.0], r"got 2 bad entries of 3: values \[-2.0, -1.0\], first at index \[0\]"),
        ([1.0, 1.0, math.nan], r"values \[nan\], first at index \[2\]"),
    ],
)
def test_bad_scale_raises_by_default(cls, scale, match):
    with pytest.raises(ValueError, match=f"{cls.__name__}: .*{match}"):
        cls(torch.zeros(3), torch.tensor(scale))
    d = cls(torch.zeros(3), torch.tensor(scale), validate_args=False)  # opted out
    assert d.loc.shape == (3,)


def test_nan_loc_raises_and_no_grad_skips_the_default_check():
    loc = torch.tensor([[0.0, math.nan], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"TanhNormal: loc must not be NaN, got 1 NaN entry of 4, "
                                         r"first at index \[0, 1\] \(pass validate_args=False"):
        TanhNormal(loc, torch.ones(2, 2))
    TanhNormal(torch.tensor([math.inf, -math.inf]), torch.ones(2))  # infinite loc is allowed
    with torch.no_grad():  # the default skips the check while collecting data
        assert torch.isnan(TanhNormal(loc, torch.ones(2, 2)).sample()).any()
        with pytest.raises(ValueError, match="loc must not be NaN"):
            TanhNormal(loc, torch.ones(2, 2), validate_args=True)
    # torch's global switch (which torch.compile turns off) does not change tdrl's default
    before = D.Distribution._validate_args
    D.Distribution.set_default_validate_args(False)
    try:
        with pytest.raises(ValueError, match="loc must not be NaN"):
            TanhNormal(loc, torch.ones(2, 2))
    finally:
        D.Distribution.set_default_validate_args(before)


# --------------------------------------------------------------------------------------
# MaskedCategorical options
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparse", [False, True])
def test_masked_categorical_torchrl_options(sparse):
    logits = torch.randn(2, 5)
    kw = ({"indices": torch.tensor([[0, 2], [1, 4]])} if sparse
          else {"mask": torch.tensor([[True, False, True, False, False]] * 2)})
    d_ce = MaskedCategorical(logits=logits, use_cross_entropy=True, padding_side="right", **kw)
    d = MaskedCategorical(logits=logits, use_cross_entropy=False, **kw)
    value = torch.tensor([0, 1])
    torch.testing.assert_close(d_ce.log_prob(value), d.log_prob(value))
    assert d_ce.sparse_mask is sparse and d_ce.padding_side == "right"
    assert d_ce.expand((3, 2)).use_cross_entropy is True
    with pytest.raises(ValueError, match="padding_side must be 'left' or 'right', got 'up'"):
        MaskedCategorical(logits=logits, padding_side="up", **kw)


def test_masked_error_phrases_match_torchrl():
    for cls in (MaskedCategorical, MaskedOneHotCategorical):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: Either `probs` or `logits` must "
                                             r"be specified, but not both \(got both\)"):
            cls(logits=torch.zeros(3), probs=torch.ones(3) / 3, mask=torch.ones(3, dtype=bool))
        with pytest.raises(ValueError, match=r"A `mask` or some `indices` must be provided, but "
                                             r"not both \(got both\)"):
            cls(probs=torch.ones(3) / 3, mask=torch.ones(3, dtype=bool),
                indices=torch.tensor([0]))
