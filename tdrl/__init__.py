"""tdrl: TorchRL's actor/value module system, re-implemented on tensordict.

``import tdrl`` loads nothing but this file: the subpackages (``tdrl.data``,
``tdrl.envs``, ``tdrl.modules``) load on first use (``tdrl.modules``, or
``from tdrl.modules import ...``), and ``tdrl.train`` / ``tdrl.load`` import
:mod:`tdrl.api`. gymnasium, matplotlib, rich and the loggers are imported by the
training commands only (``benchmarks/import_time.py`` measures what each costs).

Examples:
    >>> import tdrl
    >>> from tdrl.modules import QValueActor, ActorValueOperator  # noqa: F401
    >>> tdrl.__version__
    '0.1.0'
"""
from __future__ import annotations

__version__ = "0.1.0"

import importlib  # noqa: E402
from typing import Any  # noqa: E402

__all__ = ["__version__", "data", "envs", "load", "modules", "train"]
_SUBPACKAGES = ("data", "envs", "modules")


def __getattr__(name: str) -> Any:
    """The subpackages and ``tdrl.train`` / ``tdrl.load`` (:mod:`tdrl.api`), imported on first use."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"tdrl.{name}")
    if name in ("train", "load"):
        from tdrl import api

        return getattr(api, name)
    raise AttributeError(f"module 'tdrl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
