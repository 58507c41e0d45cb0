"""tdrl: TorchRL's actor/value module system, re-implemented on tensordict.

``import tdrl`` loads only torch, tensordict and the module stack; gymnasium,
matplotlib and rich are imported by the training commands only.

Examples:
    >>> import tdrl
    >>> from tdrl.modules import QValueActor, ActorValueOperator  # noqa: F401
    >>> tdrl.__version__
    '0.1.0'
"""
from __future__ import annotations

__version__ = "0.1.0"

from typing import Any  # noqa: E402

from tdrl import data, envs, modules  # noqa: E402

__all__ = ["__version__", "data", "envs", "load", "modules", "train"]


def __getattr__(name: str) -> Any:
    """``tdrl.train`` / ``tdrl.load`` (:mod:`tdrl.api`), imported on first use."""
    if name in ("train", "load"):
        from tdrl import api

        return getattr(api, name)
    raise AttributeError(f"module 'tdrl' has no attribute {name!r}")
