"""Run configuration: the options every recipe shares, flags, checks and the user-facing errors.

A recipe's configuration is a dataclass deriving from :class:`CommonConfig`;
every field becomes one ``--flag`` (help text from ``metadata["help"]``,
choices from ``metadata["choices"]``), and ``validate()`` checks the values
before anything is written.

Examples:
    >>> cfg = resolve_config(CommonConfig, {"seed": 5, "env": None}, {"num_envs": 4})
    >>> cfg.seed, cfg.num_envs, cfg.env
    (5, 4, 'CartPole-v1')
    >>> cfg.validate()
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "CommonConfig",
    "NonFiniteError",
    "RESUME_OVERRIDABLE",
    "RunFailure",
    "TrainError",
    "WriteError",
    "add_config_arguments",
    "check_device",
    "check_positive",
    "check_range",
    "config_from_dict",
    "config_to_dict",
    "flag",
    "option",
    "resolve_config",
]


class TrainError(Exception):
    """A problem the user can fix (bad flag, unknown env, existing run...).

    The command line prints the message (no traceback) and exits with
    ``exit_status`` (2).

    Examples:
        >>> str(TrainError("unknown environment id 'Foo-v0'"))
        "unknown environment id 'Foo-v0'"
    """

    exit_status = 2


class CheckpointError(TrainError):
    """A checkpoint file cannot be read; the file is left untouched.

    Examples:
        >>> issubclass(CheckpointError, TrainError)
        True
    """


class RunFailure(TrainError):
    """A run that started cannot go on (a file cannot be written, a value went non-finite).

    The command line prints the message and exits with status 1; the run
    directory keeps its last good checkpoint. ``step`` is where it happened.

    Examples:
        >>> err = RunFailure("disk full", step=512)
        >>> err.exit_status, err.step
        (1, 512)
    """

    exit_status = 1

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class WriteError(RunFailure):
    """A run file (or a GIF) cannot be written; the previous version of the file is intact.

    Examples:
        >>> str(WriteError.from_os_error("runs/x/checkpoint.pt", OSError(28, "No space left")))
        'cannot write runs/x/checkpoint.pt: No space left (errno 28)'
    """

    @classmethod
    def from_os_error(cls, path: Any, err: OSError, step: int | None = None) -> WriteError:
        reason = err.strerror or str(err) or type(err).__name__
        code = f" (errno {err.errno})" if err.errno is not None else ""
        return cls(f"cannot write {path}: {reason}{code}", step)


class NonFiniteError(RunFailure):
    """A loss, an observation or a reward became NaN or infinite during training.

    Examples:
        >>> str(NonFiniteError("observation", step=64))
        'non-finite observation at step 64'
    """

    def __init__(self, what: str, step: int | None = None) -> None:
        where = "" if step is None else f" at step {step:,}"
        super().__init__(f"non-finite {what}{where}", step)
        self.what = what


def flag(name: str) -> str:
    """The command-line spelling of config field ``name``.

    Examples:
        >>> flag("total_steps")
        '--total-steps'
    """
    return "--" + name.replace("_", "-")


def check_positive(cfg: Any, names: Iterable[str]) -> None:
    """Raise :class:`TrainError` naming the first field of ``names`` that is not > 0.

    Examples:
        >>> check_positive(CommonConfig(num_envs=0), ["num_envs"])
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --num-envs must be > 0, got 0
    """
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise TrainError(f"{flag(name)} must be > 0, got {value}")


def check_range(cfg: Any, names: Iterable[str], low: float, high: float) -> None:
    """Raise :class:`TrainError` naming the first field of ``names`` outside ``[low, high]``.

    Examples:
        >>> check_range(CommonConfig(), ["seed"], 1, 2)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: --seed must be in [1, 2], got 0
    """
    for name in names:
        value = getattr(cfg, name)
        if not low <= value <= high:
            raise TrainError(f"{flag(name)} must be in [{low:g}, {high:g}], got {value}")


def option(default: Any, help: str, choices: Iterable[str] | None = None) -> Any:
    """A config field in one line: its default, its ``--help`` text and optional choices.

    Examples:
        >>> import dataclasses
        >>> @dataclasses.dataclass
        ... class C:
        ...     gamma: float = option(0.99, "discount factor")
        >>> dataclasses.fields(C)[0].metadata["help"], C().gamma
        ('discount factor', 0.99)
    """
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = list(choices)
    return dataclasses.field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------- the shared options
@dataclasses.dataclass
class CommonConfig:
    """Options every algorithm shares (one command-line flag per field).

    Examples:
        >>> cfg = CommonConfig(env="CartPole-v1", seed=3)
        >>> cfg.seed, cfg.threads
        (3, 1)
    """

    env: str = option("CartPole-v1", "gymnasium environment id")
    seed: int = option(0, "random seed (envs, torch, numpy)")
    total_steps: int = option(
        100_000, "environment steps to train for (rounded up to a whole iteration)"
    )
    num_envs: int = option(8, "parallel environments (gymnasium SyncVectorEnv)")
    vec: str = option(
        "sync",
        "vector env of the training envs: sync (gymnasium's SyncVectorEnv, every env) or "
        "envpool (Atari ALE/<Game>-v5 only, the envpool extra; evaluation stays on gymnasium)",
        choices=("sync", "envpool"),
    )
    device: str = option("cpu", "torch device for the networks")
    threads: int = option(1, "torch CPU threads (small networks run fastest on 1)")
    eval_episodes: int = option(10, "episodes of the final deterministic evaluation")
    checkpoint_every: int = option(10_000, "environment steps between checkpoints")
    logger: str = option(
        "csv",
        "metric loggers, comma-separated: csv (always written), tensorboard, wandb, mlflow",
    )

    def validate(self) -> None:
        """Check the values before anything is created (raises :class:`TrainError`).

        Every float field must be finite (NaN fails every range check below it
        silently otherwise). Subclasses extend it (call ``super().validate()`` first).

        Examples:
            >>> CommonConfig(seed=-1).validate()
            Traceback (most recent call last):
            ...
            tdrl.recipes.config.TrainError: --seed must be in [0, 4294967295], got -1
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise TrainError(f"{flag(f.name)} must be a finite number, got {value}")
            choices = f.metadata.get("choices")
            if choices is not None and value not in choices:
                shown = ", ".join(c if c else "'' (none)" for c in choices)
                raise TrainError(f"invalid {flag(f.name)} {value!r}; valid choices: {shown}")
        if not 0 <= self.seed < 2**32:
            raise TrainError(f"--seed must be in [0, {2**32 - 1}], got {self.seed}")
        check_positive(self, ["total_steps", "num_envs", "threads", "eval_episodes",
                              "checkpoint_every"])
        from tdrl.recipes.loggers import parse_loggers  # loggers.py imports this module

        self.logger = ",".join(parse_loggers(self.logger))


# Fields that may differ from the saved configuration when resuming a run.
RESUME_OVERRIDABLE = (
    "total_steps", "device", "threads", "eval_episodes", "checkpoint_every", "logger"
)


# ----------------------------------------------------------------------------- flags
def _parse_ints(text: str) -> tuple[int, ...]:
    from argparse import ArgumentTypeError  # argparse prints its message as is

    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ArgumentTypeError(
            f"expected comma-separated integers such as 64,64, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise ArgumentTypeError(f"expected positive layer sizes such as 64,64, got {text!r}")
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
        parser.add_argument(flag(f.name), **kwargs)


def resolve_config(
    config_cls: type, explicit: dict[str, Any], env_defaults: dict[str, Any] | None = None
) -> Any:
    """Dataclass defaults, then per-env defaults, then explicit flags (``None`` = not given).

    Examples:
        >>> resolve_config(CommonConfig, {"threads": 2}, {"threads": 4, "bogus": 1}).threads
        2
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


def check_device(device: str) -> torch.device:
    """Parse ``device`` and make sure it is usable here.

    Examples:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("gpu0")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: invalid --device 'gpu0' (expected e.g. cpu, cuda, cuda:0, mps)
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise TrainError(
            f"invalid --device {device!r} (expected e.g. cpu, cuda, cuda:0, mps)"
        ) from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise TrainError(
            f"unsupported --device {device!r}: the recipes train on cpu, cuda[:N] or mps"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {device} requested but CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise TrainError(f"--device {device} requested but MPS is not available on this machine")
    return dev

