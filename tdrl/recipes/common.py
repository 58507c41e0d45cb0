"""Plumbing shared by the training recipes (everything that is not the algorithm).

The algorithm files (:mod:`tdrl.recipes.ppo`, :mod:`tdrl.recipes.dqn`) only
describe how to collect data and how to update the networks; this module owns
the rest of a run: configuration and per-env defaults, environment checks,
vectorized gymnasium envs, seeding and RNG state, episode statistics and the
"solved" criterion, ``metrics.csv``, ``summary.json``, atomic checkpoints,
SIGINT/SIGTERM handling, the progress bar, deterministic evaluation, GIFs and
the learning-curve plot.

gymnasium, matplotlib and rich are imported inside the functions that need
them, so importing this module stays cheap.

Examples:
    >>> from tdrl.recipes.common import EpisodeStats
    >>> import numpy as np
    >>> stats = EpisodeStats(num_envs=2, threshold=2.0, window=2)
    >>> stats.update(np.array([1.0, 1.0]), np.array([False, True]), step=2, wall_s=0.1)
    >>> stats.update(np.array([1.0, 1.0]), np.array([True, True]), step=4, wall_s=0.2)
    >>> stats.episodes, list(stats.recent), stats.solved_at_step
    (3, [2.0, 1.0], None)
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import io
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = "tdrl-checkpoint"
CHECKPOINT_VERSION = 1
RUN_FILES = ("config.json", "metrics.csv", "checkpoint.pt", "summary.json", "learning_curve.png")
# Columns that depend on the clock; everything else in metrics.csv is reproducible.
WALL_COLUMNS = ("wall_s", "steps_per_s")
EVAL_SEED_OFFSET = 1_000_003


class TrainError(Exception):
    """A problem the user can fix (bad flag, unknown env, existing run...).

    The command line prints the message (no traceback) and exits with status 2.

    Examples:
        >>> str(TrainError("unknown environment id 'Foo-v0'"))
        "unknown environment id 'Foo-v0'"
    """


class CheckpointError(TrainError):
    """A checkpoint file cannot be read; the file is left untouched.

    Examples:
        >>> issubclass(CheckpointError, TrainError)
        True
    """


# ----------------------------------------------------------------------------- configuration
@dataclasses.dataclass
class CommonConfig:
    """Options every algorithm shares (one command-line flag per field).

    Examples:
        >>> cfg = CommonConfig(env="CartPole-v1", seed=3)
        >>> cfg.seed, cfg.threads
        (3, 1)
    """

    env: str = dataclasses.field(
        default="CartPole-v1", metadata={"help": "gymnasium environment id"}
    )
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed (envs, torch, numpy)"})
    total_steps: int = dataclasses.field(
        default=100_000,
        metadata={"help": "environment steps to train for (rounded up to a whole iteration)"},
    )
    num_envs: int = dataclasses.field(
        default=8, metadata={"help": "parallel environments (gymnasium SyncVectorEnv)"}
    )
    device: str = dataclasses.field(
        default="cpu", metadata={"help": "torch device for the networks"}
    )
    threads: int = dataclasses.field(
        default=1, metadata={"help": "torch CPU threads (small networks run fastest on 1)"}
    )
    eval_episodes: int = dataclasses.field(
        default=10, metadata={"help": "episodes of the final deterministic evaluation"}
    )
    checkpoint_every: int = dataclasses.field(
        default=10_000, metadata={"help": "environment steps between checkpoints"}
    )


# Fields that may differ from the saved configuration when resuming a run.
RESUME_OVERRIDABLE = ("total_steps", "device", "threads", "eval_episodes", "checkpoint_every")


def _parse_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ValueError(f"expected comma-separated integers such as 64,64, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"expected positive layer sizes such as 64,64, got {text!r}")
    return values


def add_config_arguments(parser: Any, config_cls: type, skip: Iterable[str] = ()) -> None:
    """Add one ``--flag`` per dataclass field, with ``default=None`` to spot explicit flags.

    Examples:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> add_config_arguments(p, CommonConfig)
        >>> vars(p.parse_args(["--seed", "4"]))["seed"], vars(p.parse_args([]))["seed"]
        (4, None)
    """
    import argparse

    skip = set(skip)
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f.metadata.get("help", "")
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{text} (default: {shown})" if text else f"(default: {shown})"
        kwargs: dict[str, Any] = {"default": None, "help": text, "dest": f.name}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, tuple):
            kwargs["type"] = _parse_ints
            kwargs["metavar"] = "N,N"
        elif "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        elif default is None:
            kwargs["type"] = float
            kwargs["metavar"] = "X"
        else:
            kwargs["type"] = type(default)
            kwargs["metavar"] = {int: "N", float: "X"}.get(type(default), f.name.upper())
        parser.add_argument(flag, **kwargs)


def resolve_config(
    config_cls: type, explicit: dict[str, Any], env_defaults: dict[str, Any] | None = None
) -> Any:
    """Dataclass defaults, then per-env defaults, then explicit flags (``None`` = not given).

    Examples:
        >>> cfg = resolve_config(CommonConfig, {"seed": 5, "env": None}, {"num_envs": 4})
        >>> cfg.seed, cfg.num_envs, cfg.env
        (5, 4, 'CartPole-v1')
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    for source in (env_defaults or {}, explicit):
        for key, value in source.items():
            if key in names and value is not None:
                values[key] = value
    return config_cls(**values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-friendly dict of a config dataclass (tuples become lists).

    Examples:
        >>> config_to_dict(CommonConfig())["env"]
        'CartPole-v1'
    """
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(config_cls: type, data: dict[str, Any]) -> Any:
    """Inverse of :func:`config_to_dict`, ignoring unknown keys.

    Examples:
        >>> config_from_dict(CommonConfig, {"seed": 2, "bogus": 1}).seed
        2
    """
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.name in data:
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(value)
            out[f.name] = value
    return config_cls(**out)


def check_positive(cfg: Any, names: Iterable[str]) -> None:
    """Raise :class:`TrainError` naming the first field of ``names`` that is not > 0.

    Examples:
        >>> check_positive(CommonConfig(num_envs=0), ["num_envs"])
        Traceback (most recent call last):
        ...
        tdrl.recipes.common.TrainError: --num-envs must be > 0, got 0
    """
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise TrainError(f"--{name.replace('_', '-')} must be > 0, got {value}")


def check_device(device: str) -> torch.device:
    """Parse ``device`` and make sure it is usable here.

    Examples:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("gpu0")
        Traceback (most recent call last):
        ...
        tdrl.recipes.common.TrainError: invalid --device 'gpu0' (expected e.g. cpu, cuda, cuda:0, mps)
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise TrainError(
            f"invalid --device {device!r} (expected e.g. cpu, cuda, cuda:0, mps)"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {device} requested but CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TrainError(f"--device {device} requested but MPS is not available on this machine")
    return dev


# ----------------------------------------------------------------------------- environments
def check_env_id(env_id: str) -> None:
    """Raise :class:`TrainError` with close matches when ``env_id`` is not registered.

    Examples:
        >>> check_env_id("CartPole-v1")
        >>> check_env_id("CartPol-v1")
        Traceback (most recent call last):
        ...
        tdrl.recipes.common.TrainError: unknown environment id 'CartPol-v1'; close matches: CartPole-v1, ...
    """
    import gymnasium as gym

    if env_id in gym.registry:
        return
    ids = sorted(gym.registry)
    lowered = {i.lower(): i for i in ids}
    matches = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.6)
    for m in difflib.get_close_matches(env_id.lower(), list(lowered), n=5, cutoff=0.6):
        if lowered[m] not in matches:
            matches.append(lowered[m])
    hint = (
        f"close matches: {', '.join(matches[:5])}"
        if matches
        else "list the ids with: python -c 'import gymnasium; gymnasium.pprint_registry()'"
    )
    raise TrainError(f"unknown environment id {env_id!r}; {hint}")


def probe_env(env_id: str) -> tuple[Any, Any, float | None]:
    """Make one env to read its spaces and reward threshold (raises :class:`TrainError`).

    Examples:
        >>> obs_space, act_space, threshold = probe_env("CartPole-v1")
        >>> obs_space.shape, act_space.n, threshold
        ((4,), np.int64(2), 475.0)
    """
    import gymnasium as gym

    check_env_id(env_id)
    try:
        env = gym.make(env_id)
    except Exception as err:  # missing extras (box2d, mujoco...) and the like
        raise TrainError(f"cannot create environment {env_id!r}: {err}") from None
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise TrainError(
            f"{env_id} has observation space {obs_space}; the recipes need a flat Box "
            "observation (vector of floats)"
        )
    return obs_space, act_space, gym.spec(env_id).reward_threshold


def is_discrete(space: Any) -> bool:
    """True for a gymnasium ``Discrete`` space.

    Examples:
        >>> import gymnasium as gym
        >>> is_discrete(gym.spaces.Discrete(3)), is_discrete(gym.spaces.Box(-1, 1, (2,)))
        (True, False)
    """
    import gymnasium as gym

    return isinstance(space, gym.spaces.Discrete)


def check_action_space(env_id: str, space: Any, algo: str, allowed: str) -> None:
    """Check ``space`` is ``"discrete"`` or ``"discrete|box"`` compatible for ``algo``.

    Examples:
        >>> import gymnasium as gym
        >>> check_action_space("Pendulum-v1", gym.spaces.Box(-2, 2, (1,)), "dqn", "discrete")
        Traceback (most recent call last):
        ...
        tdrl.recipes.common.TrainError: dqn needs a discrete action space, but Pendulum-v1 has ...
    """
    import gymnasium as gym

    if is_discrete(space) and space.start != 0:
        raise TrainError(f"{env_id} has a Discrete action space starting at {space.start}; only 0")
    if is_discrete(space):
        if "discrete" in allowed:
            return
        raise TrainError(
            f"{algo} needs a continuous (Box) action space, but {env_id} has {space}; "
            f"use `tdrl train dqn --env {env_id}` or `tdrl train ppo --env {env_id}` instead"
        )
    if "box" in allowed and isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise TrainError(
                f"{env_id} has an unbounded Box action space {space}; need finite bounds"
            )
        return
    if allowed == "discrete":
        raise TrainError(
            f"{algo} needs a discrete action space, but {env_id} has {space} (continuous); "
            f"use `tdrl train ppo --env {env_id}` instead"
        )
    raise TrainError(
        f"{algo} supports Discrete and 1-D Box action spaces, but {env_id} has {space}"
    )


def make_vec_env(env_id: str, num_envs: int, **make_kwargs: Any) -> Any:
    """A gymnasium ``SyncVectorEnv`` in same-step autoreset mode.

    When a sub-env ends, ``step`` returns the first observation of the next
    episode and puts the last one in ``info["final_obs"]`` (masked by
    ``info["_final_obs"]``), which the recipes use to bootstrap truncated
    episodes. The env factories are ``functools.partial`` objects, so the whole
    vector env pickles (checkpoints store it to resume exactly).

    Examples:
        >>> envs = make_vec_env("CartPole-v1", 3)
        >>> obs, _ = envs.reset(seed=0)
        >>> obs.shape, envs.single_action_space
        ((3, 4), Discrete(2))
        >>> envs.close()
    """
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    fns = [functools.partial(gym.make, env_id, **make_kwargs) for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def final_observations(info: dict, done: np.ndarray) -> np.ndarray:
    """Stack ``info["final_obs"]`` for the envs flagged in ``done`` (same-step autoreset).

    Examples:
        >>> info = {"final_obs": np.array([None, np.ones(2)], dtype=object)}
        >>> final_observations(info, np.array([False, True]))
        array([[1., 1.]])
    """
    return np.stack([info["final_obs"][i] for i in np.flatnonzero(done)])


# ----------------------------------------------------------------------------- RNG
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices).

    Examples:
        >>> seed_everything(0); a = torch.rand(1)
        >>> seed_everything(0); bool(torch.equal(a, torch.rand(1)))
        True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Snapshot of the python, numpy and torch RNGs (restore with :func:`set_rng_state`).

    Examples:
        >>> state = get_rng_state(); a = torch.rand(2)
        >>> set_rng_state(state); bool(torch.equal(a, torch.rand(2)))
        True
    """
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`get_rng_state`.

    Examples:
        >>> set_rng_state(get_rng_state())
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- episode stats
class EpisodeStats:
    """Running returns per sub-env, the last ``window`` finished episodes, and "solved".

    A run is solved at the first step where the mean return of the last
    ``window`` (10) finished episodes reaches ``threshold`` (the env's
    ``reward_threshold``); ``solved_at_step``/``solved_at_s`` stay ``None``
    otherwise or when the env has no threshold.

    Examples:
        >>> stats = EpisodeStats(num_envs=1, threshold=1.0, window=1)
        >>> stats.update(np.array([1.0]), np.array([True]), step=1, wall_s=0.5)
        >>> stats.solved_at_step, stats.solved_at_s, stats.summary()["return_mean"]
        (1, 0.5, 1.0)
    """

    def __init__(self, num_envs: int, threshold: float | None, window: int = 10) -> None:
        self.threshold = threshold
        self.window = window
        self.running_return = np.zeros(num_envs, dtype=np.float64)
        self.running_length = np.zeros(num_envs, dtype=np.int64)
        self.recent: deque[float] = deque(maxlen=window)
        self.recent_length: deque[int] = deque(maxlen=window)
        self.episodes = 0
        self.solved_at_step: int | None = None
        self.solved_at_s: float | None = None

    def update(self, reward: np.ndarray, done: np.ndarray, step: int, wall_s: float) -> None:
        """Add one vector step of rewards; ``done`` = terminated | truncated."""
        self.running_return += reward
        self.running_length += 1
        if not done.any():
            return
        for i in np.flatnonzero(done):  # episodes ending together count in env order
            self.recent.append(float(self.running_return[i]))
            self.recent_length.append(int(self.running_length[i]))
            self.episodes += 1
            if (
                self.solved_at_step is None
                and self.threshold is not None
                and len(self.recent) == self.window
                and float(np.mean(self.recent)) >= self.threshold
            ):
                self.solved_at_step = int(step)
                self.solved_at_s = float(wall_s)
        self.running_return[done] = 0.0
        self.running_length[done] = 0

    def summary(self) -> dict[str, float]:
        """Stats of the last ``window`` finished episodes (NaN before the first one)."""
        if not self.recent:
            nan = float("nan")
            return {"return_mean": nan, "return_std": nan, "length_mean": nan}
        r = np.asarray(self.recent)
        return {
            "return_mean": float(r.mean()),
            "return_std": float(r.std()),
            "length_mean": float(np.mean(self.recent_length)),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "running_return": self.running_return.copy(),
            "running_length": self.running_length.copy(),
            "recent": list(self.recent),
            "recent_length": list(self.recent_length),
            "episodes": self.episodes,
            "solved_at_step": self.solved_at_step,
            "solved_at_s": self.solved_at_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running_return = np.asarray(state["running_return"], dtype=np.float64).copy()
        self.running_length = np.asarray(state["running_length"], dtype=np.int64).copy()
        self.recent = deque(state["recent"], maxlen=self.window)
        self.recent_length = deque(state["recent_length"], maxlen=self.window)
        self.episodes = int(state["episodes"])
        self.solved_at_step = state["solved_at_step"]
        self.solved_at_s = state["solved_at_s"]


# ----------------------------------------------------------------------------- files
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
        tdrl.recipes.common.CheckpointError: checkpoint .../checkpoint.pt is corrupt or unreadable ...
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


# ----------------------------------------------------------------------------- signals
class StopSignal:
    """Turn SIGINT / SIGTERM into a flag that the training loop polls.

    The loop finishes its current iteration, saves a checkpoint and exits; a
    second Ctrl-C aborts at once (the last checkpoint on disk stays valid,
    since checkpoints are written atomically).

    Examples:
        >>> with StopSignal() as stop:
        ...     stop.signum is None
        True
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name} received: saving a checkpoint after this iteration"
            " (Ctrl-C again to quit without saving)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


# ----------------------------------------------------------------------------- progress bar
class ProgressBar:
    """A rich progress bar on a terminal; silent when stderr is not a TTY.

    Examples:
        >>> bar = ProgressBar(total=100, start=0, enabled=False)
        >>> bar.update(50, float("nan"), 1000.0); bar.close()
    """

    def __init__(
        self, total: int, start: int, description: str = "", enabled: bool | None = None
    ) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress = None
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = total
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[steps]} steps"),
            TextColumn("return [bold]{task.fields[ret]}"),
            TextColumn("{task.fields[sps]} steps/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            auto_refresh=False,  # refreshed from update(), no background thread
        )
        self._progress.start()
        self._task = self._progress.add_task(
            description, total=total, completed=start, steps="", ret="n/a", sps="n/a"
        )
        self._last_refresh = 0.0
        self.update(start, float("nan"), float("nan"))

    def update(self, step: int, ret: float, sps: float) -> None:
        if self._progress is None:
            return
        self._progress.update(
            self._task,
            completed=step,
            steps=f"{step:,}/{self.total:,}",
            ret=f"{ret:.1f}" if math.isfinite(ret) else "n/a",
            sps=f"{sps:,.0f}" if math.isfinite(sps) else "n/a",
        )
        now = time.perf_counter()
        if now - self._last_refresh >= 0.1 or step >= self.total:
            self._progress.refresh()
            self._last_refresh = now

    def close(self) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()
            self._progress = None


# ----------------------------------------------------------------------------- evaluation
def evaluate(
    act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int, seed: int
) -> np.ndarray:
    """Returns of ``episodes`` episodes (one per sub-env, env ``i`` reset with ``seed + i``).

    ``act`` maps a batch of observations to a batch of env actions; the
    recipes pass their deterministic policy.

    Examples:
        >>> rets = evaluate(lambda obs: np.zeros(len(obs), dtype=np.int64), "CartPole-v1", 3, 0)
        >>> rets.shape, bool((rets > 0).all())
        ((3,), True)
    """
    envs = make_vec_env(env_id, episodes)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes, dtype=np.float64)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = envs.step(act(obs))
            returns[running] += reward[running]
            running &= ~(terminated | truncated)
        return returns
    finally:
        envs.close()


def render_gif(
    act: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    path: Path,
    seed: int,
    fps: int = 30,
    max_frames: int = 1000,
) -> tuple[float, int]:
    """Play one episode (reset with ``seed``), save it as an animated GIF at ``path``.

    Returns the episode return and the number of frames written. Needs the
    env's render extra (pygame for the classic-control envs).

    Examples:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "ep.gif"
        >>> ret, frames = render_gif(lambda o: np.zeros(len(o), dtype=np.int64),
        ...                          "CartPole-v1", p, seed=0)  # doctest: +SKIP
    """
    import gymnasium as gym
    from PIL import Image

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless pygame, no display needed
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as err:
        raise TrainError(f"cannot render {env_id}: {err}") from None
    total, done = 0.0, False
    try:
        while not done:
            action = act(obs[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
            if len(frames) < max_frames:
                frames.append(env.render())
    finally:
        env.close()
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), buf.getvalue())
    return total, len(images)


# ----------------------------------------------------------------------------- plot
def plot_learning_curve(
    metrics_path: Path, png_path: Path, title: str, threshold: float | None = None
) -> None:
    """Return (mean +- std of the last 10 episodes) against env steps and wall time.

    Uses matplotlib's Agg canvas directly, so it works headless and leaves the
    global backend alone.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "m.csv").write_text("step,wall_s,return_mean,return_std\\n8,0.1,9,1\\n16,0.2,12,2\\n")
        >>> plot_learning_curve(d / "m.csv", d / "c.png", "demo", threshold=10)
        >>> (d / "c.png").read_bytes()[:4]
        b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = read_metrics(metrics_path)
    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    mean, std = m["return_mean"], m["return_std"]
    for ax, xkey, xlabel in (
        (axes[0], "step", "environment steps"),
        (axes[1], "wall_s", "wall time (s)"),
    ):
        x = m[xkey]
        ax.plot(x, mean, color="tab:blue", label="mean return, last 10 episodes")
        ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.2, linewidth=0)
        if threshold is not None:
            ax.axhline(
                threshold, color="tab:green", linestyle="--", label=f"threshold {threshold:g}"
            )
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("episode return")
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(Path(png_path), buf.getvalue())


# ----------------------------------------------------------------------------- misc
class Clock:
    """Training wall time that accumulates across resumes.

    Examples:
        >>> clock = Clock(offset=10.0)
        >>> clock() >= 10.0
        True
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return self.offset + (time.perf_counter() - self.start)


def make_adam(
    params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8
) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one for the device (same math, fewer ops).

    Examples:
        >>> opt = make_adam(torch.nn.Linear(2, 2).parameters(), 1e-3)
        >>> opt.param_groups[0]["lr"]
        0.001
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.Adam(params, lr=lr, eps=eps)


def linear_schedule(initial: float, step: int, total: int) -> float:
    """``initial`` decayed linearly to 0 at ``total`` steps (SB3's ``lin_`` schedules).

    Examples:
        >>> linear_schedule(1e-3, 250, 1000)
        0.00075
    """
    return initial * max(0.0, 1.0 - step / total)


# ----------------------------------------------------------------------------- the run loop
def run_training(
    algo_name: str,
    algo: Any,
    cfg: Any,
    run_dir: Path,
    threshold: float | None,
    resume_state: dict[str, Any] | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Drive ``algo`` to ``cfg.total_steps``: metrics, checkpoints, signals, final eval.

    ``algo`` exposes ``iterate() -> dict`` (one rollout/update chunk, returning
    its ``loss_columns``), ``global_step``, ``stats`` (:class:`EpisodeStats`),
    ``act(obs)`` (deterministic), ``state_dict()``/``load_state_dict()`` and
    ``close()``. Returns the process exit status: 0 when finished, 128 + the
    signal number when stopped by SIGINT/SIGTERM (after saving a checkpoint).

    Examples:
        >>> import tempfile
        >>> from tdrl.recipes import ppo
        >>> cfg = ppo.PPOConfig(total_steps=256, epochs=1, eval_episodes=1)
        >>> obs_space, act_space, threshold = probe_env(cfg.env)
        >>> algo = ppo.PPO(cfg, obs_space, act_space, threshold, clock=None)
        >>> run_dir = Path(tempfile.mkdtemp())
        >>> run_training("ppo", algo, cfg, run_dir, threshold, progress=False, log=lambda s: None)
        0
        >>> sorted(p.name for p in run_dir.iterdir())
        ['checkpoint.pt', 'learning_curve.png', 'metrics.csv', 'summary.json']
    """
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    columns = [
        "step",
        "wall_s",
        "episodes",
        "return_mean",
        "return_std",
        "length_mean",
        *algo.loss_columns,
        "steps_per_s",
    ]
    if resume_state is not None:
        algo.load_state_dict(resume_state["algo_state"])
        set_rng_state(resume_state["rng"])
        clock = Clock(offset=float(resume_state["wall_s"]))
    else:
        clock = Clock()
    algo.clock = clock
    start_step = algo.global_step
    metrics = MetricsLog(
        run_dir / "metrics.csv", columns, resume_step=start_step if resume_state else None
    )

    def save(finished: bool = False) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "algo": algo_name,
                "config": config_to_dict(cfg),
                "global_step": algo.global_step,
                "wall_s": clock(),
                "rng": get_rng_state(),
                "algo_state": algo.state_dict(),
                "finished": finished,
            },
        )

    bar = ProgressBar(cfg.total_steps, start_step, f"{algo_name} {cfg.env}", enabled=progress)
    last_step, last_wall = start_step, clock()
    next_ckpt = (start_step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
    stopped: int | None = None
    try:
        with StopSignal() as stop:
            while algo.global_step < cfg.total_steps:
                losses = algo.iterate()
                step, wall = algo.global_step, clock()
                sps = (step - last_step) / max(wall - last_wall, 1e-9)
                last_step, last_wall = step, wall
                ep = algo.stats.summary()
                metrics.write(
                    {
                        "step": step,
                        "wall_s": wall,
                        "episodes": algo.stats.episodes,
                        **ep,
                        **losses,
                        "steps_per_s": sps,
                    }
                )
                bar.update(step, ep["return_mean"], sps)
                if stop.signum is not None:
                    stopped = stop.signum
                    break
                if step >= next_ckpt:
                    save()
                    next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
            train_wall = clock()
            save(finished=stopped is None)
    finally:
        bar.close()
        metrics.close()
    if stopped is not None:
        algo.close()
        log(
            f"stopped by {signal.Signals(stopped).name} at step {algo.global_step:,}; checkpoint "
            f"saved to {ckpt_path}\nresume with: tdrl train {algo_name} --out {run_dir} --resume"
        )
        return 128 + stopped
    algo.close()
    returns = evaluate(algo.act, cfg.env, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET)
    summary = {
        "algo": algo_name,
        "env": cfg.env,
        "seed": cfg.seed,
        "total_steps": algo.global_step,
        "wall_s": round(train_wall, 3),
        "steps_per_s": round(algo.global_step / max(train_wall, 1e-9), 1),
        "reward_threshold": threshold,
        "solved_at_step": algo.stats.solved_at_step,
        "solved_at_s": (
            None if algo.stats.solved_at_s is None else round(algo.stats.solved_at_s, 3)
        ),
        "final_eval_return": float(returns.mean()),
        "final_eval_std": float(returns.std()),
        "final_eval_episodes": int(len(returns)),
        "final_eval_returns": [float(r) for r in returns],
        "train_return_last10": algo.stats.summary()["return_mean"],
        "episodes": algo.stats.episodes,
        "threads": torch.get_num_threads(),
        "versions": _versions(),
        "config": config_to_dict(cfg),
    }
    write_json(run_dir / "summary.json", summary)
    plot_learning_curve(
        run_dir / "metrics.csv",
        run_dir / "learning_curve.png",
        f"{algo_name.upper()} on {cfg.env} (seed {cfg.seed})",
        threshold,
    )
    solved = (
        f"solved at step {summary['solved_at_step']:,} ({summary['solved_at_s']:.1f} s)"
        if summary["solved_at_step"] is not None
        else "not solved"
        if threshold is not None
        else "no reward threshold"
    )
    log(
        f"{algo_name} {cfg.env} seed {cfg.seed}: {algo.global_step:,} steps in {train_wall:.1f} s "
        f"({summary['steps_per_s']:,.0f} steps/s), {solved}; final eval return "
        f"{returns.mean():.1f} +- {returns.std():.1f} over {len(returns)} episodes\n"
        f"wrote {run_dir}/(metrics.csv, summary.json, checkpoint.pt, learning_curve.png)"
    )
    return 0


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "tensordict", "gymnasium", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:  # pragma: no cover
            pass
    return out
