"""Run an exported policy file (``.pt2`` with torch, ``.onnx`` with onnxruntime)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdrl.export.onnx import MissingExtraError, onnx_session
from tdrl.export.policy import FORMATS, ProgramRunner, sidecar_path

__all__ = ["LoadedPolicy", "load_policy", "read_sidecar"]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _dtype(name: Any) -> np.dtype:
    return np.dtype(bool) if name == "bool" else np.dtype(name)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar at ``path``, checked: a JSON object whose ``inputs`` / ``outputs``
    are lists of ``{"name", "shape", "dtype"}``; ``ValueError`` naming the file otherwise.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "policy.onnx.json"
        >>> _ = p.write_text("[1, 2]")
        >>> read_sidecar(p)
        Traceback (most recent call last):
        ...
        ValueError: sidecar .../policy.onnx.json is not a JSON object (a list); re-export the policy with `tdrl export`
    """
    path = Path(path)
    redo = "re-export the policy with `tdrl export`"
    try:
        meta = json.loads(path.read_text())
    except OSError as err:
        raise ValueError(f"cannot read sidecar {path}: {err.strerror or err}") from None
    except ValueError as err:  # JSON and UTF-8 errors
        raise ValueError(f"sidecar {path} is not valid JSON ({_first_line(err)}); {redo}") from None
    if not isinstance(meta, dict):
        raise ValueError(
            f"sidecar {path} is not a JSON object (a {type(meta).__name__}); {redo}"
        )
    for field in ("inputs", "outputs"):
        entries = meta.get(field)
        ok = isinstance(entries, list) and entries and all(
            isinstance(e, dict) and isinstance(e.get("name"), str)
            and isinstance(e.get("shape"), list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in e["shape"])
            for e in entries
        )
        if ok:
            try:
                [_dtype(e.get("dtype")) for e in entries]
            except TypeError:
                ok = False
        if not ok:
            raise ValueError(
                f"sidecar {path} has no valid {field!r} (a list of {{name, shape, dtype}}, got "
                f"{json.dumps(entries)[:80]}); {redo}"
            )
    return meta


class LoadedPolicy:
    """An exported policy file, callable on numpy arrays: ``policy(obs[, mask]) -> outputs``.

    Returns the outputs in sidecar order as numpy arrays (one array when there
    is one output). ``metadata`` is the JSON sidecar (or ``{}`` if absent). A
    file that cannot be loaded (truncated, not an exported policy) or a
    sidecar that is not valid or does not match the file's inputs raises
    ``ValueError`` naming the file.
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
        self.metadata: dict[str, Any] = read_sidecar(side) if side.exists() else {}
        self.format = fmt
        try:
            if fmt == "onnx":
                self._session = onnx_session(path, threads)
                inputs = self._session.get_inputs()
                self.input_names = [i.name for i in inputs]
                self.output_names = [o.name for o in self._session.get_outputs()]
                shapes = [list(i.shape[1:]) for i in inputs]
            else:
                program = torch.export.load(str(path))
                self._run = ProgramRunner(program)
                holders = [n for n in program.graph.nodes if n.op == "placeholder"]
                shapes = [list(n.meta["val"].shape[1:]) for n in holders[-self._run.n_inputs:]]
                self.input_names = [i["name"] for i in self.metadata.get("inputs", [])]
                self.output_names = [o["name"] for o in self.metadata.get("outputs", [])]
        except MissingExtraError:
            raise
        except Exception as err:  # noqa: BLE001 - onnxruntime / torch raise many kinds
            raise ValueError(
                f"cannot load {path}: {_first_line(err)} (a truncated file, or not one written "
                "by `tdrl export`?)"
            ) from None
        if self.metadata:
            self._check_sidecar(side, shapes)
        self._dtypes = [_dtype(i["dtype"]) for i in self.metadata.get("inputs", [])]

    def _check_sidecar(self, side: Path, shapes: list[list[Any]]) -> None:
        """The sidecar's inputs must be the file's: same count, names (ONNX), shapes."""
        described = self.metadata["inputs"]
        problem = None
        if len(described) != len(shapes):
            problem = f"{len(described)} inputs in the sidecar, {len(shapes)} in the file"
        for entry, name, shape in zip(described, self.input_names, shapes):
            fixed = [int(d) if isinstance(d, int) else None for d in shape]
            if self.format == "onnx" and entry["name"] != name:
                problem = f"input {name!r} is named {entry['name']!r} in the sidecar"
            elif len(fixed) != len(entry["shape"]) or any(
                d is not None and d != e for d, e in zip(fixed, entry["shape"])
            ):
                problem = (
                    f"input {entry['name']!r} has shape {fixed} in the file, "
                    f"{entry['shape']} in the sidecar"
                )
            if problem:
                break
        if problem:
            raise ValueError(
                f"sidecar {side} does not match {self.path.name}: {problem} (edited, or from "
                "another export?); re-export the policy with `tdrl export`"
            )

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
