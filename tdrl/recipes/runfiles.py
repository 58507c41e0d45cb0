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
import pickle
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

from tdrl.recipes.config import CheckpointError, RunFailure, TrainError, WriteError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "RUN_FILES",
    "WALL_COLUMNS",
    "MetricsLog",
    "RunLock",
    "atomic_write_bytes",
    "clean_stale_temp",
    "clear_run_dir",
    "existing_run_files",
    "load_checkpoint",
    "read_metrics",
    "save_checkpoint",
    "write_json",
]

CHECKPOINT_FORMAT = "tdrl-checkpoint"
CHECKPOINT_VERSION = 1
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.pt", "summary.json", "learning_curve.png",
             "loggers.json", "tensorboard", "wandb")
# What every checkpoint holds (the policy weights are algo_state["model"]).
CHECKPOINT_KEYS = ("algo", "config", "global_step", "wall_s", "rng", "algo_state")
# Columns that depend on the clock; everything else in metrics.csv is reproducible.
WALL_COLUMNS = ("wall_s", "steps_per_s")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file next to ``path``, fsync, then rename over ``path``.

    Every run file goes through here. On any ``OSError`` (disk full, read-only
    file system, permissions) the previous ``path`` is left intact, the temp
    file removed, and a :class:`~tdrl.recipes.config.WriteError` naming the file
    and the cause is raised.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "x.txt"
        >>> atomic_write_bytes(p, b"hi"); p.read_bytes()
        b'hi'
        >>> atomic_write_bytes(p / "sub", b"no")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.WriteError: cannot write .../x.txt/sub: Not a directory (errno 20)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise WriteError.from_os_error(path, err) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # read-only or vanished directory: nothing was created there
            pass


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # an earlier process with our pid: it is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temp(run_dir: Path) -> list[str]:
    """Remove the temp files of :func:`atomic_write_bytes` whose writer process is dead.

    A ``kill -9`` during a write leaves ``.NAME.tmp-PID`` behind; the run lock
    calls this once taken. Files of live processes (``tdrl export`` into the
    run directory) are kept. Returns the names removed.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / f".checkpoint.pt.tmp-{os.getpid()}").write_bytes(b"half")
        >>> clean_stale_temp(d), sorted(p.name for p in d.iterdir())
        ([...'.checkpoint.pt.tmp-...'], [])
    """
    removed = []
    try:
        entries = list(os.scandir(run_dir))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False) or _pid_alive(int(m["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


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
        >>> save_checkpoint(p, {"algo": "ppo", "config": {}, "global_step": 7, "wall_s": 0.0,
        ...                     "rng": {}, "algo_state": {"model": {}}})
        >>> load_checkpoint(p)["global_step"]
        7
    """
    buf = io.BytesIO()
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, buf)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise RunFailure(
            f"cannot save {path}: part of the run cannot be pickled ({err}); an env class or "
            "factory must be importable (defined in a module, or in the __main__ script)",
            state.get("global_step"),
        ) from None
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
    except (ImportError, AttributeError) as err:  # the pickled env's code, not the file
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded here: it holds the run's environment, whose "
            f"code is missing ({type(err).__name__}: {str(err).splitlines()[0]}). The file "
            "looks intact and was left untouched: make the module that defines the env "
            "importable (install it, or set PYTHONPATH), then retry"
        ) from None
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
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    algo_state = state.get("algo_state")
    if not missing and not (isinstance(algo_state, dict) and "model" in algo_state):
        missing = ["algo_state['model']"]
    if missing:
        present = sorted(algo_state) if missing[0].startswith("algo_state[") else sorted(state)
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)} (present: {', '.join(map(str, present))})"
            "; it was left untouched. Delete it, or start the run over with --force"
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
        try:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        except OSError as err:
            raise WriteError.from_os_error(p, err) from None


def _csv_rows(path: Path) -> list[list[str]]:
    """The rows of a CSV file; bytes that are not UTF-8 (binary garbage) and NULs become
    cells no row parse accepts, so they count as torn rows instead of stopping the reader."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace").replace("\0", "\ufffd")
    return list(csv.reader(io.StringIO(text, newline="")))


def _parse_row(row: list[str], width: int) -> list[float] | None:
    """The cells of a well-formed ``metrics.csv`` row as floats (empty = NaN); ``None`` if torn."""
    if len(row) != width:
        return None
    try:
        values = [float(c) if c != "" else math.nan for c in row]
    except ValueError:
        return None
    return values if math.isfinite(values[0]) else None


class MetricsLog:
    """Append-only ``metrics.csv`` writer; on resume, drops rows after the checkpoint step.

    Resuming also drops torn or garbage rows (a crash mid-write, a hand edit);
    ``dropped`` counts them. Write failures raise
    :class:`~tdrl.recipes.config.WriteError`.

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> log = MetricsLog(p, ["step", "loss"])
        >>> log.write({"step": 1, "loss": 0.5}); log.write({"step": 2, "loss": float("nan")})
        >>> log.close(); print(p.read_text().strip())
        step,loss
        1,0.5
        2,
        >>> with open(p, "a") as f:
        ...     _ = f.write("3,0.25,junk\\n")
        >>> log = MetricsLog(p, ["step", "loss"], resume_step=2); log.close()
        >>> print(p.read_text().strip()); log.dropped
        step,loss
        1,0.5
        2,
        1
    """

    def __init__(self, path: Path, columns: list[str], resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.dropped = 0
        try:
            if resume_step is not None and self.path.exists():
                self._truncate(resume_step)
                self._file = open(self.path, "a", newline="")
            else:
                self._file = open(self.path, "w", newline="")
                self._file.write(",".join(self.columns) + "\n")
                self._file.flush()
        except OSError as err:
            raise WriteError.from_os_error(self.path, err) from None
        self._writer = csv.writer(self._file, lineterminator="\n")

    def _truncate(self, resume_step: int) -> None:
        rows = _csv_rows(self.path)
        if rows and rows[0] != self.columns:
            raise TrainError(
                f"{self.path} has columns {rows[0]}, expected {self.columns}; "
                "was it written by another algorithm?"
            )
        kept = []
        for row in rows[1:]:
            values = _parse_row(row, len(self.columns))
            if values is None:
                self.dropped += 1
            elif values[0] <= resume_step:
                kept.append(row)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(kept)
        atomic_write_bytes(self.path, buf.getvalue().encode())

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
        """Append one row (missing or non-finite values are written as empty cells)."""
        try:
            self._writer.writerow([self._fmt(row.get(c)) for c in self.columns])
            self._file.flush()
        except OSError as err:
            raise WriteError.from_os_error(self.path, err, step=row.get("step")) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # the failed flush was reported by write()
            pass


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    """Columns of a ``metrics.csv`` as float arrays (empty cells become NaN, torn rows skipped).

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "m.csv"
        >>> _ = p.write_text("step,x\\n1,2\\n2,\\n3\\nx,y\\n")
        >>> read_metrics(p)["x"]
        array([ 2., nan])
    """
    rows = _csv_rows(path)
    header = rows[0]
    body = [v for v in (_parse_row(r, len(header)) for r in rows[1:]) if v is not None]
    table = np.array(body, dtype=np.float64).reshape(len(body), len(header))
    return {name: table[:, i] for i, name in enumerate(header)}


# ----------------------------------------------------------------------------- ownership
class RunLock:
    """Exclusive ownership of a run directory: an OS lock on ``RUN_DIR/.lock`` (``flock``).

    Held for the life of a run and released by the OS on any exit, kill -9
    included; the file holds the owner's pid for the error message (emptied when
    the owner lets go). Where
    ``fcntl`` does not exist (Windows) the lock is a no-op.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> with RunLock(d):
        ...     RunLock.check(d)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: ... is in use by another run (pid ...); ...
        >>> RunLock.check(d)  # released
    """

    NAME = ".lock"

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / self.NAME
        self._file: Any = None
        self.created = False  # this lock created the lock file (a new run directory)

    @classmethod
    def check(cls, run_dir: Path) -> None:
        """Raise :class:`TrainError` if a live run holds ``run_dir`` (writes nothing).

        Only a hint for commands that merely read a run (``tdrl eval``): the answer may be
        stale at once, so a run that reads or writes the directory takes the lock instead.
        """
        path = Path(run_dir) / cls.NAME
        if fcntl is None or not path.is_file():
            return
        try:
            f = open(path)
        except OSError:
            return  # unreadable: acquire() reports it
        with f:
            cls._try_lock(f, Path(run_dir))
            fcntl.flock(f, fcntl.LOCK_UN)

    @staticmethod
    def _try_lock(f: Any, run_dir: Path) -> None:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            # the owner writes its pid just after taking the lock (and empties the file when it
            # lets go): an empty file is an owner between the two, so read again for a moment
            for _ in range(100):
                f.seek(0)
                owner = f.read().strip()
                if owner:
                    break
                time.sleep(0.01)
            owner = owner or "unknown"
            raise TrainError(
                f"{run_dir} is in use by another run (pid {owner}); wait for it to finish, stop "
                "it, or choose another --out (--force never overrides a live run)"
            ) from None

    def _open(self) -> Any:
        """Open (creating it if needed) the lock file; records whether this call created it."""
        try:
            f = open(self.path, "x+")
            self.created = True
        except FileExistsError:
            f = open(self.path, "r+")
        return f

    def acquire(self) -> RunLock:
        """Take the lock (or raise :class:`TrainError` naming the owner's pid), then remove the
        temp files that writers which died mid-write left behind (see :func:`clean_stale_temp`)."""
        if fcntl is None:
            return self
        while True:
            try:
                f = self._open()
            except OSError as err:
                raise WriteError.from_os_error(self.path, err) from None
            try:
                self._try_lock(f, self.run_dir)
                # the lock file may have been removed (by an owner that gave the directory
                # back) between our open and our lock: then we hold a lock nobody sees, retry
                try:
                    same = os.path.samestat(os.fstat(f.fileno()), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    f.close()
                    self.created = False
                    continue
                f.seek(0)
                f.truncate()
                f.write(f"{os.getpid()}\n")
                f.flush()
            except OSError as err:
                f.close()
                raise WriteError.from_os_error(self.path, err) from None
            except BaseException:
                f.close()
                raise
            break
        self._file = f
        clean_stale_temp(self.run_dir)
        return self

    def release(self, remove: bool = False) -> None:
        """Release the lock; ``remove`` also deletes the lock file (while still holding it)."""
        if self._file is not None:
            try:  # (still holding the lock) no stale pid for the next owner's rivals to read
                if remove:
                    self.path.unlink()
                else:
                    self._file.seek(0)
                    self._file.truncate()
            except OSError:
                pass
            self._file.close()  # closing the descriptor releases the lock
            self._file = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
