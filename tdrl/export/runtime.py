"""Run an exported policy file (``.pt2`` with torch, ``.onnx`` with onnxruntime)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdrl.export.onnx import onnx_session
from tdrl.export.policy import FORMATS, ProgramRunner, sidecar_path

__all__ = ["LoadedPolicy", "load_policy"]


class LoadedPolicy:
    """An exported policy file, callable on numpy arrays: ``policy(obs[, mask]) -> outputs``.

    Returns the outputs in sidecar order as numpy arrays (one array when there
    is one output). ``metadata`` is the JSON sidecar (or ``{}`` if absent).
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = path
        suffix = path.suffix
        fmt = next((f for f, s in FORMATS.items() if s == suffix), None)
        if fmt is None:
            raise ValueError(
                f"cannot load {path.name!r}: unknown suffix {suffix!r}; expected one of "
                f"{', '.join(FORMATS.values())}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"no exported policy at {path}")
        side = sidecar_path(path)
        self.metadata: dict[str, Any] = json.loads(side.read_text()) if side.is_file() else {}
        self.format = fmt
        if fmt == "onnx":
            self._session = onnx_session(path, threads)
            self.input_names = [i.name for i in self._session.get_inputs()]
            self.output_names = [o.name for o in self._session.get_outputs()]
        else:
            self._run = ProgramRunner(torch.export.load(str(path)))
            self.input_names = [i["name"] for i in self.metadata.get("inputs", [])]
            self.output_names = [o["name"] for o in self.metadata.get("outputs", [])]
        self._dtypes = [
            np.dtype(i["dtype"]) if i["dtype"] != "bool" else np.dtype(bool)
            for i in self.metadata.get("inputs", [])
        ]

    def __call__(self, *inputs: Any) -> Any:
        if self._dtypes and len(inputs) != len(self._dtypes):
            raise TypeError(
                f"{self.path.name} takes {len(self._dtypes)} inputs "
                f"({', '.join(self.input_names)}), got {len(inputs)}"
            )
        arrays = [
            np.asarray(x, dtype=d) for x, d in zip(inputs, self._dtypes or [None] * len(inputs))
        ]
        if self.format == "onnx":
            outs = self._session.run(None, dict(zip(self.input_names, arrays)))
        else:
            res = self._run(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
            outs = [r.numpy() for r in res]
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_policy(path: str | Path, threads: int | None = None) -> LoadedPolicy:
    """Loads a ``.pt2`` or ``.onnx`` file written by :meth:`ExportedPolicy.save`.

    ``.onnx`` runs on onnxruntime (the ``export`` extra) with ``threads`` threads.

    Examples:
        >>> import tempfile, torch
        >>> from tdrl.data import Categorical
        >>> from tdrl.export import export_policy
        >>> from tdrl.modules import QValueActor
        >>> q = QValueActor(torch.nn.Linear(4, 3), spec=Categorical(3))
        >>> path = export_policy(q, torch.zeros(1, 4)).save(tempfile.mkdtemp() + "/q.pt2")
        >>> policy = load_policy(path)
        >>> policy(np.zeros((5, 4), dtype=np.float32)).shape, policy.metadata["action_space"]["n"]
        ((5,), 3)
    """
    return LoadedPolicy(Path(path), threads)
