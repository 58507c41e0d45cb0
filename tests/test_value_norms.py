"""Value transforms (symlog, signed hyperbolic) and value normalisers."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl.modules import (
    ComposeValueTransform,
    PercentileValueNorm,
    PopArtValueNorm,
    RunningValueNorm,
    SignedHyperbolicValueTransform,
    SymLogValueTransform,
)
from tdrl.modules import functional as F

finite = st.floats(-1e8, 1e8, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(values=st.lists(finite, min_size=1, max_size=20), eps=st.floats(1e-4, 1.0))
def test_transforms_invert(values, eps):
    x = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(F.symexp(F.symlog(x)), x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        F.signed_parabolic(F.signed_hyperbolic(x, eps), eps), x, rtol=1e-9, atol=1e-9
    )


def test_derivatives_at_zero():
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(F.symlog(x).sum(), x)
    assert g.item() == 1.0
    (g,) = torch.autograd.grad(F.signed_hyperbolic(x, 0.01).sum(), x)
    assert g.item() == pytest.approx(0.51)
    (g,) = torch.autograd.grad(F.signed_parabolic(x, 0.01).sum(), x)
    assert g.item() == pytest.approx(1 / 0.51)


def test_small_values_keep_precision():
    x = torch.tensor([1e-12, -3e-9], dtype=torch.float64)
    # no cancellation: the relative error stays at machine precision for tiny inputs
    torch.testing.assert_close(F.signed_parabolic(F.signed_hyperbolic(x)), x, rtol=1e-14, atol=0)


def test_compose_order_and_nan_passes_as_nan():
    t = ComposeValueTransform(SignedHyperbolicValueTransform(), SymLogValueTransform())
    x = torch.tensor([3.0, float("nan")])
    out = t(x)
    assert out[0] == F.symlog(F.signed_hyperbolic(x[:1]))[0]
    assert torch.isnan(out[1])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 60), cut=st.integers(1, 59))
def test_running_norm_is_split_invariant(n, cut):
    cut = min(cut, n - 1)
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(n)) * 3 + 1
    whole, parts = RunningValueNorm(shape=2), RunningValueNorm(shape=2)
    whole.update(x)
    parts.update(x[:cut])
    parts.update(x[cut:])
    torch.testing.assert_close(parts.mean, x.mean(0))
    torch.testing.assert_close(parts._var(), x.var(0, correction=0))
    torch.testing.assert_close(parts.mean, whole.mean)


@pytest.mark.parametrize("cls", [PopArtValueNorm, RunningValueNorm, PercentileValueNorm])
def test_nan_target_is_refused_and_stats_kept(cls):
    vn = cls(shape=1)
    vn.update(torch.randn(16, 1))
    state = {k: v.clone() for k, v in vn.state_dict().items()}
    with pytest.raises(ValueError, match="NaN or inf"):
        vn.update(torch.tensor([[1.0], [float("nan")]]))
    for k, v in vn.state_dict().items():
        torch.testing.assert_close(v, state[k])
    with pytest.raises(ValueError, match=r"shape=\(1,\), got a value_target of shape \(4, 3\)"):
        vn.update(torch.zeros(4, 3))


@pytest.mark.parametrize("cls", [PopArtValueNorm, RunningValueNorm, PercentileValueNorm])
def test_denormalize_inverts_normalize(cls):
    vn = cls(shape=(2,))
    for _ in range(5):
        vn.update(torch.randn(32, 2) * 7 + 3)
    y = torch.randn(5, 2) * 7
    torch.testing.assert_close(vn.denormalize(vn.normalize(y)), y, rtol=1e-5, atol=1e-5)


def test_percentile_norm_scales_by_the_range_never_up():
    vn = PercentileValueNorm(shape=1, low=0.0, high=1.0, decay=0.0)
    vn.update(torch.tensor([[-10.0], [30.0]]))
    assert vn.scale().item() == 40.0
    vn.update(torch.tensor([[0.1], [0.2]]))
    assert vn.scale().item() == 1.0  # the limit: small returns are not blown up
    with pytest.raises(ValueError, match="need 0 <= low < high <= 1"):
        PercentileValueNorm(low=0.9, high=0.1)


def test_popart_tracks_a_moving_target():
    vn = PopArtValueNorm(shape=1, beta=0.5)
    for _ in range(30):
        vn.update(torch.full((8, 1), 10.0))
    mean, _ = vn._running_stats()
    assert mean.item() == pytest.approx(10.0, rel=1e-5)
