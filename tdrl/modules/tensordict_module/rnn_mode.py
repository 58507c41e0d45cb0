"""The recurrent-mode switch read by :class:`LSTMModule` and :class:`GRUModule`.

A recurrent module runs in one of two modes:

- **sequential** (``False``, ``"sequential"``): each call is one time step; the
  recurrent state comes in with the input and the next state goes out under
  ``("next", ...)``. This is how a policy acts in an environment.
- **recurrent** (``True``, ``"recurrent"``): each call is a whole ``[B, T]``
  batch of sequences (time is the last batch dimension), run by one
  ``nn.LSTM`` / ``nn.GRU`` call per trajectory. This is how a loss replays
  stored rollouts.

:class:`set_recurrent_mode` picks the mode for a block of code (context
manager) or a function (decorator). The choice is per thread (a
:class:`contextvars.ContextVar`): a thread started inside the block sees no
override. Blocks nest; leaving one restores the mode that was set before it.
Outside any block, :func:`recurrent_mode` is ``None`` and each module uses its
``default_recurrent_mode``.

Examples:
    >>> print(recurrent_mode())
    None
    >>> with set_recurrent_mode(True):
    ...     with set_recurrent_mode("sequential"):
    ...         print(recurrent_mode())
    ...     print(recurrent_mode())
    False
    True
    >>> @set_recurrent_mode("recurrent")
    ... def replay():
    ...     return recurrent_mode()
    >>> replay(), recurrent_mode()
    (True, None)
"""
from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from tdrl._compat import is_compiling

__all__ = ["recurrent_mode", "set_recurrent_mode"]

_F = TypeVar("_F", bound=Callable[..., Any])
_MODE: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "tdrl_recurrent_mode", default=None
)
# torch.compile cannot trace ContextVar.get: while compiling, this mirror is read instead
_TRACED: list[bool | None] = [None]
_NAMES = {"recurrent": True, "sequential": False}


def recurrent_mode() -> bool | None:
    """The mode set by the innermost active :class:`set_recurrent_mode`, or ``None``.

    Examples:
        >>> with set_recurrent_mode(False):
        ...     recurrent_mode()
        False
    """
    if is_compiling():
        return _TRACED[0]
    return _MODE.get()


def _parse(mode: bool | str | None) -> bool | None:
    if mode is None or isinstance(mode, bool):
        return mode
    if isinstance(mode, str) and mode.lower() in _NAMES:
        return _NAMES[mode.lower()]
    raise ValueError(
        f"set_recurrent_mode: unknown mode {mode!r}; expected True, False, None, "
        f"'recurrent' or 'sequential'"
    )


class set_recurrent_mode:  # noqa: N801 - TorchRL's name
    """Sets the recurrent mode inside a ``with`` block or a decorated function.

    Args:
        mode: ``True`` / ``"recurrent"`` (whole ``[B, T]`` sequences per call),
            ``False`` / ``"sequential"`` (one step per call), or ``None`` (each
            module's ``default_recurrent_mode``). Defaults to ``True``.

    Examples:
        >>> from tdrl.modules import LSTMModule
        >>> lstm = LSTMModule(3, 4, in_key="obs", out_key="feat")
        >>> lstm.recurrent_mode
        False
        >>> with set_recurrent_mode():
        ...     lstm.recurrent_mode
        True
        >>> set_recurrent_mode("forwards")
        Traceback (most recent call last):
        ...
        ValueError: set_recurrent_mode: unknown mode 'forwards'; expected True, False, None, 'recurrent' or 'sequential'
    """

    def __init__(self, mode: bool | str | None = True) -> None:
        self.mode = _parse(mode)
        self._tokens: list[tuple[contextvars.Token | None, bool | None]] = []

    def clone(self) -> set_recurrent_mode:
        """A fresh manager with the same mode (what the decorator enters on each call)."""
        return type(self)(self.mode)

    def __enter__(self) -> None:
        prev = _TRACED[0]
        token = None if is_compiling() else _MODE.set(self.mode)
        _TRACED[0] = self.mode
        self._tokens.append((token, prev))

    def __exit__(self, *exc: Any) -> None:
        token, prev = self._tokens.pop()
        if token is not None:
            _MODE.reset(token)
        _TRACED[0] = prev

    def __call__(self, fn: _F) -> _F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.clone():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"set_recurrent_mode({self.mode!r})"
