"""The files of a run directory: atomic writes, checkpoints, ``metrics.csv``, ``summary.json``.

Every file is written to a temp file next to its target, fsynced and renamed
over it, so a crash leaves either the old or the new version, never half of one.

Examples:
    >>> import tempfile
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> write_json(run_dir / "summary.json", {"a": 1})
    >>> existing_run_files(run_dir)
    ['summary.json']
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdrl.recipes.config import CheckpointError, TrainError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "RUN_FILES",
    "WALL_COLUMNS",
    "MetricsLog",
    "atomic_write_bytes",
    "clear_run_dir",
    "existing_run_files",
    "load_checkpoint",
    "read_metrics",
    "save_checkpoint",
    "write_json",
]

CHECKPOINT_FORMAT = "tdrl-checkpoint"
CHECKPOINT_VERSION = 1
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.pt", "summary.json", "learning_curve.png")
# Columns that depend on the clock; everything else in metrics.csv is reproducible.
WALL_COLUMNS = ("wall_s", "steps_per_s")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file next to ``path``, fsync, then rename over ``path``.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x.txt"
        >>> atomic_write_bytes(p, b"hi"); p.read_bytes()
        b'hi'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON (NaN written as null).

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "s.json"
        >>> write_json(p, {"a": float("nan"), "b": 1}); json.loads(p.read_text())
        {'a': None, 'b': 1}
    """

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    atomic_write_bytes(Path(path), (json.dumps(clean(data), indent=2) + "\n").encode())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` atomically (temp file + rename) with a format tag.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "checkpoint.pt"
        >>> save_checkpoint(p, {"global_step": 7})
        >>> load_checkpoint(p)["global_step"]
        7
    """
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, or raise :class:`CheckpointError`.

    The checkpoint holds pickled python objects (RNG states, the vector env),
    so only load files you wrote yourself.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "checkpoint.pt"
        >>> _ = p.write_bytes(b"garbage")
        >>> load_checkpoint(p)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.CheckpointError: checkpoint .../checkpoint.pt is corrupt or unreadable ...
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no details'}); it was left untouched. "
            "Delete it, or start the run over with --force"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable (not a tdrl checkpoint); it was left "
            "untouched. Delete it, or start the run over with --force"
        )
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {state.get('version')}, expected "
            f"{CHECKPOINT_VERSION}"
        )
    return state


def existing_run_files(run_dir: Path) -> list[str]:
    """Names of run files already present in ``run_dir``.

    Examples:
        >>> existing_run_files(Path("/nonexistent-dir"))
        []
    """
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


def clear_run_dir(run_dir: Path) -> None:
    """Remove the run files (only those) from ``run_dir`` (``--force``).

    Examples:
        >>> clear_run_dir(Path("/nonexistent-dir"))
    """
    for name in RUN_FILES:
        p = Path(run_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


class MetricsLog:
    """Append-only ``metrics.csv`` writer; on resume, drops rows after the checkpoint step.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> log = MetricsLog(p, ["step", "loss"])
        >>> log.write({"step": 1, "loss": 0.5}); log.write({"step": 2, "loss": float("nan")})
        >>> log.close(); print(p.read_text().strip())
        step,loss
        1,0.5
        2,
        >>> log = MetricsLog(p, ["step", "loss"], resume_step=1); log.close()
        >>> print(p.read_text().strip())
        step,loss
        1,0.5
    """

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
            if rows and rows[0] != self.columns:
                raise TrainError(
                    f"{self.path} has columns {rows[0]}, expected {self.columns}; "
                    "was it written by another algorithm?"
                )
            kept = [r for r in rows[1:] if r and int(r[0]) <= resume_step]
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows(kept)
            atomic_write_bytes(self.path, buf.getvalue().encode())
            self._file = open(self.path, "a", newline="")
        else:
            self._file = open(self.path, "w", newline="")
            self._file.write(",".join(self.columns) + "\n")
            self._file.flush()
        self._writer = csv.writer(self._file, lineterminator="\n")

    @staticmethod
    def _fmt(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool | np.bool_):
            return str(int(value))
        if isinstance(value, int | np.integer):
            return str(int(value))
        value = float(value)
        return "" if not math.isfinite(value) else f"{value:.6g}"

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow([self._fmt(row.get(c)) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """Columns of a ``metrics.csv`` as float arrays (empty cells become NaN).

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "m.csv"
        >>> _ = p.write_text("step,x\\n1,2\\n2,\\n")
        >>> read_metrics(p)["x"]
        array([ 2., nan])
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {
        name: np.array([float(r[i]) if r[i] != "" else np.nan for r in body], dtype=np.float64)
        for i, name in enumerate(header)
    }
