"""tdrl._compat's helpers behave the same on the fast path and on the public fallback.

``make test-fallback`` runs this file again with ``TDRL_COMPAT_FALLBACK=1``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tdrl import _compat
from tdrl._compat import is_compiling, lerp_all_


@settings(max_examples=25, deadline=None)
@given(
    weight=st.floats(0.0, 1.0),
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
)
def test_lerp_all_matches_lerp_per_tensor(weight, shapes):
    g = torch.Generator().manual_seed(len(shapes))
    targets = [torch.randn(s, generator=g) for s in shapes]
    sources = [torch.randn(s, generator=g, requires_grad=True) for s in shapes]
    expected = [t + weight * (s.detach() - t) for t, s in zip(targets, sources)]
    lerp_all_(targets, sources, weight)
    for got, want in zip(targets, expected):
        torch.testing.assert_close(got, want)
        assert got.grad_fn is None  # a target update never enters the autograd graph


def test_lerp_all_moves_targets_by_tau_towards_sources():
    target, source = torch.zeros(3), torch.full((3,), 2.0)
    lerp_all_([target], [source], 0.005)
    assert target.tolist() == pytest.approx([0.01, 0.01, 0.01])
    assert source.tolist() == [2.0, 2.0, 2.0]


def test_lerp_all_refuses_mismatched_lists_before_writing():
    targets = [torch.zeros(2), torch.zeros(2)]
    with pytest.raises(ValueError, match="2 targets but 1 sources"):
        lerp_all_(targets, [torch.ones(2)], 0.5)
    assert all(t.tolist() == [0.0, 0.0] for t in targets)


def test_fast_path_is_chosen_unless_the_fallback_is_forced():
    assert (_compat._FOREACH_LERP is None) == _compat.FORCE_FALLBACK
    assert is_compiling() is False


@settings(max_examples=25, deadline=None)
@given(
    max_norm=st.floats(1e-3, 10.0),
    scale=st.floats(1e-3, 1e3),
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=0, max_size=3), min_size=1, max_size=4),
)
def test_clip_grad_norm_matches_torch(max_norm, scale, shapes):
    g = torch.Generator().manual_seed(len(shapes))
    grads = [torch.randn(s, generator=g) * scale for s in shapes]
    mine = [torch.zeros(s, requires_grad=True) for s in shapes]
    ref = [torch.zeros(s, requires_grad=True) for s in shapes]
    for p, q, grad in zip(mine, ref, grads):
        p.grad, q.grad = grad.clone(), grad.clone()
    extra = torch.zeros(2, requires_grad=True)  # a parameter without a gradient is skipped
    total = _compat.clip_grad_norm_([*mine, extra], max_norm)
    want = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    torch.testing.assert_close(total, want)
    for p, q in zip(mine, ref):
        torch.testing.assert_close(p.grad, q.grad)
    assert extra.grad is None


def test_clip_grad_norm_scales_to_max_norm_and_keeps_small_gradients():
    w = torch.zeros(2, requires_grad=True)
    w.grad = torch.tensor([3.0, 4.0])
    assert _compat.clip_grad_norm_([w], 1.0).item() == pytest.approx(5.0)
    assert w.grad.tolist() == pytest.approx([0.6, 0.8], abs=1e-6)
    w.grad = torch.tensor([0.3, 0.4])
    _compat.clip_grad_norm_([w], 1.0)
    assert w.grad.tolist() == pytest.approx([0.3, 0.4])


def test_copy_all_copies_every_pair_and_refuses_mismatched_lists():
    targets = [torch.zeros(2), torch.zeros(1, dtype=torch.long)]
    with pytest.raises(ValueError, match="2 targets but 1 sources"):
        _compat.copy_all_(targets, [torch.ones(2)])
    assert targets[0].tolist() == [0.0, 0.0]
    source = torch.ones(2, requires_grad=True)
    _compat.copy_all_(targets, [source, torch.tensor([7])])
    assert targets[0].tolist() == [1.0, 1.0] and targets[1].tolist() == [7]
    assert targets[0].grad_fn is None


def test_foreach_helpers_follow_the_fallback_switch():
    for name in ("_FOREACH_COPY", "_FOREACH_NORM", "_FOREACH_MUL"):
        assert (getattr(_compat, name) is None) == _compat.FORCE_FALLBACK
