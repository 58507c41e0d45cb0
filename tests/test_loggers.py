"""Loggers read back with their own readers: TensorBoard, W&B (offline), MLflow (local store)."""
from __future__ import annotations

import csv
import glob
import importlib.util
import json
import re
import struct
from pathlib import Path

import pytest

import tdrl
from tdrl.recipes.config import TrainError

RUN = {"total_steps": 512, "n_steps": 32, "epochs": 1, "eval_episodes": 1, "log": None}


def _metrics(run_dir: Path) -> dict[str, dict[int, float]]:
    """``{column: {step: value}}`` of metrics.csv (empty cells left out)."""
    out: dict[str, dict[int, float]] = {}
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            step = int(row.pop("step"))
            for key, value in row.items():
                if value != "":
                    out.setdefault(key, {})[step] = float(value)
    return out


def _assert_same(logged: dict[str, dict[int, float]], expected: dict[str, dict[int, float]],
                 rel: float) -> None:
    assert set(expected) <= set(logged), set(expected) - set(logged)
    for key, series in expected.items():
        assert sorted(logged[key]) == sorted(series), key
        for step, value in series.items():
            assert logged[key][step] == pytest.approx(value, rel=rel, abs=1e-6), (key, step)


def test_tensorboard_holds_every_metric_at_every_step_and_resume_continues(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    tdrl.train("ppo", out=run, logger="csv,tensorboard", **RUN)
    tdrl.train("ppo", out=run, resume=True, **{**RUN, "total_steps": 1024})
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    logged = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    expected = _metrics(run)
    assert sorted(expected["return_mean"]) == [256, 512, 768, 1024]
    _assert_same(logged, expected, rel=1e-5)  # 6 digits in csv, float32 in TB
    assert all(len(acc.Scalars(tag)) == 4 for tag in expected)  # no step logged twice
    assert json.loads(acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode().strip("`\n"))[
        "n_steps"] == 32


def _wandb_history(run_dir: Path) -> tuple[set[str], dict[str, dict[int, float]]]:
    """Run ids and ``{key: {step: value}}`` from the offline ``.wandb`` files (W&B's protobuf)."""
    from wandb.proto import wandb_internal_pb2 as pb

    ids, out = set(), {}
    for path in sorted(glob.glob(str(run_dir / "wandb/offline-run-*/run-*.wandb"))):
        data, pos, pending = Path(path).read_bytes(), 7, b""  # W&B header, then LevelDB-log blocks
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:
                pos += 32768 - pos % 32768
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
            pending = chunk if kind in (1, 2) else pending + chunk
            if kind not in (1, 4):
                continue
            record = pb.Record()
            record.ParseFromString(pending)
            which = record.WhichOneof("record_type")
            if which == "run":
                ids.add(record.run.run_id)
            elif which == "history":
                items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json)
                         for i in record.history.item}
                step = int(items.pop("_step"))
                for key, value in items.items():
                    if not key.startswith("_"):
                        out.setdefault(key, {})[step] = float(value)
    return ids, out


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="the loggers extra")
def test_wandb_offline_run_holds_the_metrics_and_resume_continues_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    tdrl.train("ppo", out=run, logger="wandb", **RUN)
    run_id = json.loads((run / "loggers.json").read_text())["wandb"]
    tdrl.train("ppo", out=run, resume=True, **{**RUN, "total_steps": 1024})
    assert json.loads((run / "loggers.json").read_text())["wandb"] == run_id
    ids, logged = _wandb_history(run)
    assert ids == {run_id}
    expected = _metrics(run)
    assert sorted(expected["policy_loss"]) == [256, 512, 768, 1024]
    _assert_same(logged, expected, rel=1e-5)  # metrics.csv keeps 6 digits


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="the loggers extra")
def test_mlflow_store_holds_the_metrics_and_resume_continues_the_run(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run = tmp_path / "run"
    tdrl.train("ppo", out=run, logger=["csv", "mlflow"], **RUN)
    run_id = json.loads((run / "loggers.json").read_text())["mlflow"]
    tdrl.train("ppo", out=run, resume=True, **{**RUN, "total_steps": 1024})
    client = MlflowClient(tracking_uri=uri)
    info = client.get_run(run_id)
    assert info.info.status == "FINISHED" and info.data.params["n_steps"] == "32"
    expected = _metrics(run)
    logged = {key: {m.step: m.value for m in client.get_metric_history(run_id, key)}
              for key in expected}
    _assert_same(logged, expected, rel=1e-5)  # metrics.csv keeps 6 digits
    runs = client.search_runs([client.get_experiment_by_name("tdrl").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # resume continued the same run


def test_missing_logger_package_names_the_install_command(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrainError, match=re.escape(
            '--logger wandb needs wandb: pip install "tdrl[loggers]" (or pip install wandb)')):
        tdrl.train("ppo", out=tmp_path / "run", logger="csv,wandb", **RUN)
    assert not (tmp_path / "run").exists()
