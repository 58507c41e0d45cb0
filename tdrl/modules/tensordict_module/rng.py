"""Sampling with a chosen ``torch.Generator``: the ``generator=`` argument of the probabilistic modules.

``torch.distributions`` sample from the global generator of the parameters'
device. :func:`using_generator` runs a block on a given generator instead: the
generator's state is swapped into the global one for the block, then the
advanced state is copied back to the generator and the global state restored,
so the global stream is untouched and the generator advances in place.

:class:`GeneratorSource` resolves the ``generator`` argument once at
construction (``None``, a ``torch.Generator``, an ``int`` seed or a TensorDict
key) and, per call, the generator to use and what to write back.

Examples:
    >>> import torch
    >>> gen = torch.Generator().manual_seed(0)
    >>> before = torch.get_rng_state()
    >>> with using_generator(gen):
    ...     a = torch.randn(2)
    >>> torch.equal(before, torch.get_rng_state())
    True
    >>> _ = torch.manual_seed(0)
    >>> torch.equal(a, torch.randn(2))
    True
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from tensordict import NonTensorData, TensorDictBase
from tensordict.utils import NestedKey

from tdrl.modules.tensordict_module.core import get_or_none, normalize_keys

__all__ = ["using_generator", "GeneratorSource"]


@contextlib.contextmanager
def using_generator(gen: torch.Generator | None) -> Iterator[None]:
    """Routes the global RNG of ``gen``'s device through ``gen`` for the block (no-op for ``None``)."""
    if gen is None:
        yield
        return
    device = gen.device
    if device.type == "cpu":
        get_state, set_state = torch.get_rng_state, torch.set_rng_state
    elif device.type == "cuda":  # pragma: no cover - no GPU in CI
        index = device.index if device.index is not None else torch.cuda.current_device()
        def get_state() -> torch.Tensor:
            return torch.cuda.get_rng_state(index)

        def set_state(state: torch.Tensor) -> None:
            torch.cuda.set_rng_state(state, index)
    else:  # pragma: no cover - depends on the hardware
        raise NotImplementedError(
            f"generator= on a {device.type!r} device is not supported (cpu and cuda are)"
        )
    saved = get_state()
    set_state(gen.get_state())
    try:
        yield
    finally:
        gen.set_state(get_state())
        set_state(saved)


class GeneratorSource:
    """The ``generator`` argument of a probabilistic module, resolved once.

    - ``None``: the global generator;
    - a ``torch.Generator``: used (and advanced) at every call;
    - an ``int``: the seed of a CPU generator created here, then as above;
    - a key: read from the input at every call. The entry holds a generator
      (used in place) or an integer seed (a scalar tensor or an ``int``): a seed
      gives a fresh generator, and after sampling a new seed drawn from it is
      written back at the key, so a trajectory replays from its first seed. A
      missing entry means the global generator.

    Examples:
        >>> import torch
        >>> from tensordict import NonTensorData, TensorDict
        >>> src = GeneratorSource("rng", owner="M")
        >>> td = TensorDict(rng=NonTensorData(3))
        >>> gen, done = src.resolve(td)
        >>> done(td)  # writes the next seed
        >>> isinstance(td.get("rng").data, int) and td.get("rng").data != 3
        True
    """

    __slots__ = ("generator", "key", "owner")

    def __init__(self, generator: torch.Generator | int | NestedKey | None, owner: str) -> None:
        self.owner = owner
        self.generator: torch.Generator | None = None
        self.key: NestedKey | None = None
        if generator is None or isinstance(generator, torch.Generator):
            self.generator = generator
        elif isinstance(generator, int) and not isinstance(generator, bool):
            self.generator = torch.Generator().manual_seed(generator)
        elif isinstance(generator, (str, tuple)):
            self.key = normalize_keys(generator, "generator")[0]
        else:
            raise TypeError(
                f"{owner}: generator must be a torch.Generator, an int seed, a TensorDict key "
                f"or None, got {type(generator).__name__}"
            )

    def resolve(self, td: TensorDictBase) -> tuple[torch.Generator | None, Any]:
        """``(generator, finish)``: ``finish(td)`` writes the next seed back when one was read."""
        if self.key is None:
            return self.generator, _nothing
        value = get_or_none(td, self.key)
        boxed = isinstance(value, NonTensorData)
        if boxed:
            value = value.data
        if value is None:
            return None, _nothing
        if isinstance(value, torch.Generator):
            return value, _nothing
        is_int_tensor = (
            isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point()
        )
        if not (is_int_tensor or (isinstance(value, int) and not isinstance(value, bool))):
            raise TypeError(
                f"{self.owner}: the generator entry {self.key!r} holds a {type(value).__name__}; "
                "expected a torch.Generator or an integer seed (an int or a scalar int tensor)"
            )
        device = value.device if isinstance(value, torch.Tensor) else torch.device("cpu")
        gen = torch.Generator(device=device).manual_seed(int(value))
        key = self.key

        def finish(out: TensorDictBase) -> None:
            seed = torch.randint(0, 2**62, (), generator=gen, device=device)
            out.set(key, seed if isinstance(value, torch.Tensor) else NonTensorData(int(seed)))

        return gen, finish


def _nothing(td: TensorDictBase) -> None:
    return None
