"""Small cross-version helpers."""
from __future__ import annotations

from typing import Any

from tensordict import get_printoptions, set_printoptions

__all__ = ["detailed_repr"]


class detailed_repr:
    """TensorDicts print in the detailed form TorchRL's pages show, inside a block or until unset.

    tensordict 0.15 prints ``TensorDict(batch_size=[3], fields={a: f32[4]})``
    by default; 0.14 (and TorchRL's documentation) print every field with its
    shape, device, dtype and ``is_shared``. tdrl never changes the printing
    globally on import: use this when you want the documentation's form.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> with detailed_repr():
        ...     print(TensorDict(a=torch.zeros(3, 4), batch_size=[3]))
        TensorDict(
            fields={
                a: Tensor(shape=torch.Size([3, 4]), device=cpu, dtype=torch.float32, is_shared=False)},
            batch_size=torch.Size([3]),
            device=None,
            is_shared=False)
        >>> printing = detailed_repr().set()   # the same, without a block
        >>> printing.unset()
    """

    def __init__(self) -> None:
        self._saved: dict[str, Any] | None = None

    def set(self) -> detailed_repr:
        """Switches to the detailed form; returns ``self``."""
        options = get_printoptions()
        if "compact" in options:  # tensordict >= 0.15; older versions are always detailed
            self._saved = dict(options)
            set_printoptions(compact=False).set()
        return self

    def unset(self) -> None:
        """Restores the printing options that were in force before :meth:`set`."""
        if self._saved is not None:
            set_printoptions(**self._saved).set()
            self._saved = None

    def __enter__(self) -> detailed_repr:
        return self.set()

    def __exit__(self, *exc: object) -> None:
        self.unset()
