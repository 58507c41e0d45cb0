"""Shared cases for the Q-value tests: the action spaces, random values and masks, a brute-force reference."""
from __future__ import annotations

import torch

from tdrl.data import (
    Binary,
    Categorical,
    MultiCategorical,
    MultiOneHot,
    OneHot,
)

# space id -> (spec factory, block sizes, action values' last dim)
SPACES = {
    "one-hot": (lambda: OneHot(4), [4]),
    "categorical": (lambda: Categorical(4), [4]),
    "categorical-1": (lambda: Categorical(4, shape=(1,)), [4]),
    "mult-one-hot": (lambda: MultiOneHot([2, 3]), [2, 3]),
    "multi-categorical": (lambda: MultiCategorical([2, 3]), [2, 3]),
    "binary": (lambda: Binary(4), [1, 1, 1, 1]),
}
BATCHES = [(), (3,), (2, 3)]


def _values(batch, sid, gen=None):
    n = sum(SPACES[sid][1])
    return torch.randn(*batch, n, generator=gen)


def _mask(batch, sid, gen=None):
    """A random mask with at least one allowed action per row / sub-space."""
    nvec = SPACES[sid][1]
    n = sum(nvec)
    mask = torch.rand(*batch, n, generator=gen) < 0.5
    if sid == "binary":
        return mask
    start = 0
    for size in nvec:
        blk = mask[..., start : start + size]
        keep = torch.randint(size, (*batch, 1), generator=gen)
        blk.scatter_(-1, keep, True)
        start += size
    return mask


def _reference(sid, values, mask):
    """Brute force: per sub-space, the lowest index of the best allowed value; and its value."""
    nvec = SPACES[sid][1]
    if sid == "binary":
        on = values > 0
        if mask is not None:
            on &= mask
        return on.long(), torch.where(on, values, 0.0).sum(-1, keepdim=True)
    scores = values if mask is None else values.masked_fill(~mask, float("-inf"))
    idx, total, start = [], 0.0, 0
    for size in nvec:
        blk = scores[..., start : start + size]
        best = blk.max(-1, keepdim=True).values
        first = torch.where(blk == best, torch.arange(size), size).min(-1, keepdim=True).values
        idx.append(first)
        total = total + values[..., start : start + size].gather(-1, first)
        start += size
    return torch.cat(idx, -1), total


def _as_block_indices(sid, action):
    """The chosen index of every sub-space, from an action of any space."""
    nvec = SPACES[sid][1]
    if sid in ("one-hot", "mult-one-hot"):
        out, start = [], 0
        for size in nvec:
            blk = action[..., start : start + size]
            assert (blk.sum(-1) == 1).all(), "one-hot blocks must have exactly one hot entry"
            out.append(blk.argmax(-1, keepdim=True))
            start += size
        return torch.cat(out, -1)
    if sid == "categorical":
        return action.unsqueeze(-1)
    return action  # categorical-1, multi-categorical


def _check(sid, spec, values, mask, td):
    action = td["action"]
    batch = values.shape[:-1]
    assert action.shape == batch + spec.shape
    expected_dtype = torch.int8 if sid == "binary" else torch.int64
    assert action.dtype == expected_dtype
    assert spec.is_in(action.to(spec.dtype))
    ref_idx, ref_value = _reference(sid, values, mask)
    chosen = td["chosen_action_value"]
    assert chosen.shape == batch + (1,)
    torch.testing.assert_close(chosen, ref_value)
    if sid == "binary":
        assert torch.equal(action.long(), ref_idx)
        if mask is not None:
            assert not (action.bool() & ~mask).any()
        return
    idx = _as_block_indices(sid, action)
    assert torch.equal(idx, ref_idx)
    if mask is not None:
        offsets = torch.tensor([0] + list(torch.tensor(SPACES[sid][1]).cumsum(0)[:-1]))
        assert mask.gather(-1, idx + offsets).all(), "a masked action was chosen"
