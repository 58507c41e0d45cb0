"""Seeding and the RNG snapshot stored in checkpoints (python, numpy, torch, cuda).

Examples:
    >>> seed_everything(0); a = torch.rand(1)
    >>> seed_everything(0); bool(torch.equal(a, torch.rand(1)))
    True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["get_rng_state", "seed_everything", "set_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices).

    Examples:
        >>> seed_everything(0); a = torch.rand(1)
        >>> seed_everything(0); bool(torch.equal(a, torch.rand(1)))
        True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Snapshot of the python, numpy and torch RNGs (restore with :func:`set_rng_state`).

    Examples:
        >>> state = get_rng_state(); a = torch.rand(2)
        >>> set_rng_state(state); bool(torch.equal(a, torch.rand(2)))
        True
    """
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`get_rng_state`.

    Examples:
        >>> set_rng_state(get_rng_state())
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
