"""``VmapModule``: runs a TensorDict module under ``torch.vmap`` over one batch dimension."""
from __future__ import annotations

import operator

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from tdrl.modules.tensordict_module.core import TDRLModuleBase

__all__ = ["VmapModule"]


class VmapModule(TDRLModuleBase):
    """Hides one batch dimension from a module by mapping it with :func:`torch.vmap`.

    The wrapped module sees TensorDicts with the dimension ``vmap_dim`` removed (as if it
    were called once per slice); its outputs are stacked back along the same dimension and
    written into the input TensorDict, which is returned. ``vmap_dim=None`` maps over the
    last batch dimension of each input. ``mock=True`` (or :meth:`mock_`) gives the same
    result with a Python loop over ``unbind`` and ``torch.stack`` (for modules that
    ``vmap`` cannot trace, or to debug). The input needs a batch dimension to map over.

    Args:
        module: a TensorDict module (``in_keys`` / ``out_keys``).
        vmap_dim: the batch dimension to map over (default: the last one).
        mock: loop instead of ``vmap``.

    Examples:
        >>> import torch
        >>> from tensordict import TensorDict
        >>> from tensordict.nn import TensorDictModule
        >>> from tdrl.modules import VmapModule
        >>> first_row = TensorDictModule(lambda x: x[0], in_keys=["x"], out_keys=["y"])
        >>> td = TensorDict(x=torch.arange(12.0).view(2, 3, 2), batch_size=[2])
        >>> VmapModule(first_row, 0)(td)["y"]   # x[i][0] for every i
        tensor([[0., 1.],
                [6., 7.]])
        >>> VmapModule(first_row, 0, mock=True)(td)["y"].shape
        torch.Size([2, 2])
        >>> VmapModule(first_row, 1)(td)
        Traceback (most recent call last):
        ...
        ValueError: VmapModule: vmap_dim=1 is not a batch dimension of the input (batch_size=torch.Size([2]))
    """

    def __init__(
        self, module: TensorDictModuleBase, vmap_dim: int | None = None, mock: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(module, TensorDictModuleBase):
            raise TypeError(
                "VmapModule wraps a TensorDict module (tensordict.nn.TensorDictModuleBase), got "
                f"{type(module).__name__}"
            )
        self.module = module
        self.in_keys = list(module.in_keys)
        self.out_keys = list(module.out_keys)
        self.vmap_dim = None if vmap_dim is None else operator.index(vmap_dim)
        self.mock = bool(mock)

    def mock_(self, value: bool = True) -> VmapModule:
        """Switch between ``torch.vmap`` (False) and a Python loop (True); returns self."""
        self.mock = bool(value)
        return self

    def _dim(self, td: TensorDictBase) -> int:
        if td.batch_dims == 0:
            raise ValueError(
                "VmapModule: the input has no batch dimension to map over (batch_size=[])"
            )
        dim = td.batch_dims - 1 if self.vmap_dim is None else self.vmap_dim
        if not -td.batch_dims <= dim < td.batch_dims:
            raise ValueError(
                f"VmapModule: vmap_dim={dim} is not a batch dimension of the input "
                f"(batch_size={td.batch_size})"
            )
        return dim % td.batch_dims

    def _run(self, td: TensorDictBase) -> TensorDictBase:
        dim = self._dim(td)
        if self.mock:
            out = torch.stack([self.module(part) for part in td.unbind(dim)], dim)
        else:
            out = torch.vmap(self.module, (dim,), (dim,))(td)
        return td.update(out)
