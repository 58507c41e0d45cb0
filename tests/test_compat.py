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
