"""Metric loggers beside ``metrics.csv``: TensorBoard, Weights & Biases, MLflow.

``--logger csv,tensorboard,wandb,mlflow`` (``logger=`` in :func:`tdrl.train`)
picks any combination; ``csv`` (``metrics.csv`` and the PNG curve) is always
written, as every run directory has it. Each logger receives the run
configuration once and, after every iteration, the same row ``metrics.csv``
gets, at the same step. A resumed run continues the same logged run: the W&B
and MLflow run ids are kept in ``RUN_DIR/loggers.json``.

- ``tensorboard``: event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``).
- ``wandb``: project ``tdrl``, files under ``RUN_DIR/wandb``; offline unless
  ``WANDB_MODE`` says otherwise or ``WANDB_API_KEY`` is set (sync later with
  ``wandb sync RUN_DIR/wandb/offline-run-*``).
- ``mlflow``: the store named by ``MLFLOW_TRACKING_URI``, else a local ``./mlruns``
  file store (MLflow keeps it behind ``MLFLOW_ALLOW_FILE_STORE``, which tdrl
  sets for file stores); experiment ``tdrl``, one MLflow run per run directory.

Each is an extra (``pip install "tdrl[loggers]"``), imported only when chosen.

Examples:
    >>> parse_loggers("csv,tensorboard")
    ('csv', 'tensorboard')
    >>> parse_loggers("csv,neptune")
    Traceback (most recent call last):
    ...
    tdrl.recipes.config.TrainError: --logger: unknown logger 'neptune'; choose from csv, tensorboard, wandb, mlflow
"""

from __future__ import annotations

import importlib.util
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tdrl.recipes.config import TrainError
from tdrl.recipes.runfiles import write_json

__all__ = ["LOGGERS", "MetricLogger", "check_loggers", "open_loggers", "parse_loggers"]

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
# logger -> (module that must import, pip requirement)
_NEEDS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow-skinny"),
}
IDS_FILE = "loggers.json"


class MetricLogger(Protocol):
    """A logger: called with ``(step, row)`` after each iteration, closed at the end."""

    def __call__(self, step: int, row: Mapping[str, float | None]) -> None: ...

    def close(self) -> None: ...


def parse_loggers(text: str | Sequence[str]) -> tuple[str, ...]:
    """Normalise ``"csv,tensorboard"`` or ``["wandb"]`` to a tuple of known logger names.

    Examples:
        >>> parse_loggers(["wandb", "csv", "wandb"])
        ('wandb', 'csv')
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in LOGGERS:
            raise TrainError(
                f"--logger: unknown logger {item!r}; choose from {', '.join(LOGGERS)}"
            )
        if name not in out:
            out.append(name)
    return tuple(out) or ("csv",)


def check_loggers(text: str | Sequence[str]) -> tuple[str, ...]:
    """:func:`parse_loggers`, then make sure each chosen logger's package is installed.

    Examples:
        >>> check_loggers("csv")
        ('csv',)
    """
    names = parse_loggers(text)
    missing = [n for n in names if n in _NEEDS and importlib.util.find_spec(_NEEDS[n][0]) is None]
    if missing:
        pkgs = " ".join(_NEEDS[n][1] for n in missing)
        raise TrainError(
            f"--logger {','.join(missing)} needs {pkgs}: pip install \"tdrl[loggers]\" "
            f"(or pip install {pkgs})"
        )
    return names


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if v is not None and k != "step"}


class TensorBoardLogger:
    """Scalars under ``RUN_DIR/tensorboard``, one tag per column, the config as text."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if not resumed:
            self.writer.add_text("config", "```\n" + json.dumps(dict(config), indent=2) + "\n```")

    def __call__(self, step: int, row: Mapping[str, Any]) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run (offline by default) that a resumed run continues (same id)."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        import wandb

        if "WANDB_MODE" in os.environ:
            mode = os.environ["WANDB_MODE"]
        else:
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        (run_dir / "wandb").mkdir(exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "tdrl"),
            name=run_dir.name,
            dir=str(run_dir),
            config=dict(config),
            id=run_id or uuid.uuid4().hex[:8],
            resume="allow",
            mode=mode,
            reinit="create_new",
        )
        self.run_id = self.run.id

    def __call__(self, step: int, row: Mapping[str, Any]) -> None:
        self.run.log(_scalars(row), step=step)

    def close(self) -> None:
        self.run.finish()


class MLflowLogger:
    """An MLflow run in experiment ``tdrl`` (``MLFLOW_TRACKING_URI`` or ``./mlruns``)."""

    def __init__(self, run_dir: Path, config: Mapping[str, Any], run_id: str | None) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:  # MLflow's opt-in for its file store
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is None:
            exp = self.client.get_experiment_by_name("tdrl")
            exp_id = exp.experiment_id if exp else self.client.create_experiment("tdrl")
            run = self.client.create_run(exp_id, run_name=run_dir.name)
            run_id = run.info.run_id
            for key, value in config.items():
                self.client.log_param(run_id, key, str(value)[:500])
        self.run_id = run_id

    def __call__(self, step: int, row: Mapping[str, Any]) -> None:
        for key, value in _scalars(row).items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def open_loggers(
    names: Sequence[str], run_dir: Path, config: Mapping[str, Any], resumed: bool
) -> list[MetricLogger]:
    """The loggers ``names`` (``csv`` needs none: ``metrics.csv`` is always written).

    Run ids of W&B and MLflow go to ``RUN_DIR/loggers.json`` so that a resumed
    run logs into the same run.

    Examples:
        >>> import tempfile
        >>> open_loggers(["csv"], Path(tempfile.mkdtemp()), {}, resumed=False)
        []
    """
    ids_path = run_dir / IDS_FILE
    ids: dict[str, str] = {}
    if resumed and ids_path.exists():
        try:
            ids = dict(json.loads(ids_path.read_text()))
        except (OSError, ValueError, TypeError):
            ids = {}
    out: list[Any] = []
    try:
        for name in names:
            if name == "tensorboard":
                out.append(TensorBoardLogger(run_dir, config, resumed))
            elif name == "wandb":
                out.append(WandbLogger(run_dir, config, ids.get("wandb")))
            elif name == "mlflow":
                out.append(MLflowLogger(run_dir, config, ids.get("mlflow")))
    except BaseException:
        for logger in out:
            logger.close()
        raise
    new_ids = {n: lg.run_id for n, lg in zip([n for n in names if n != "csv"], out)
               if hasattr(lg, "run_id")}
    if new_ids and new_ids != ids:
        write_json(ids_path, {**ids, **new_ids})
    return out
