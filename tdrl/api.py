"""Training from Python: :func:`train` and :func:`load`, the same runs as ``tdrl train`` / ``tdrl eval``.

``tdrl.train("ppo", env="CartPole-v1", total_steps=50_000)`` takes every
``tdrl train ppo`` flag as a keyword (``--n-steps`` is ``n_steps=``), checks
the values the same way, writes the same run directory with the same
guarantees (lock, step-0 checkpoint, atomic files, ``--resume``) and returns a
:class:`TrainResult`. The command line is a thin layer over it: the same seed
gives the same ``metrics.csv`` from both. ``tdrl.load(run_dir)`` gives back the
trained policy as a TensorDict module that acts deterministically.

gymnasium and the recipes are imported on call, so ``import tdrl`` stays light.

Examples:
    >>> import tempfile, tdrl
    >>> out = tempfile.mkdtemp() + "/run"
    >>> result = tdrl.train("ppo", env="CartPole-v1", total_steps=512, n_steps=64, epochs=1,
    ...                     eval_episodes=2, out=out, log=None)
    >>> result.status, result.summary["total_steps"]
    ('finished', 512)
    >>> policy = tdrl.load(out)
    >>> policy.act([[0.0, 0.0, 0.0, 0.0]]).shape
    (1,)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from tdrl.envs.utils import ExplorationType, set_exploration_type

__all__ = ["TrainResult", "TrainedPolicy", "load", "load_run", "train"]


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the run directory, its ``summary.json`` and the exit status.

    ``exit_status`` is the command line's: 0 when the run finished (or had
    already finished), 128 + the signal number when Ctrl-C / SIGTERM stopped it
    after a checkpoint (``summary`` is then empty and ``status`` is ``"stopped"``).
    ``policy`` loads the trained policy (:func:`load`) on first use.
    """

    run_dir: Path
    summary: dict[str, Any]
    exit_status: int = 0
    _policy: Any = dataclasses.field(default=None, repr=False)

    @property
    def status(self) -> str:
        """``"finished"`` or ``"stopped"`` (a failed run raises instead of returning)."""
        return "stopped" if self.exit_status else str(self.summary.get("status", "finished"))

    @property
    def policy(self) -> TrainedPolicy:
        """The trained deterministic policy (:func:`load` of ``run_dir``)."""
        if self._policy is None:
            self._policy = load(self.run_dir)
        return self._policy


def _coerce(field: dataclasses.Field, value: Any, algo: str) -> Any:
    """``value`` for config field ``field``, checked as the command line's argument types do."""
    from tdrl.recipes.config import TrainError, flag

    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    where = f"{field.name}= ({flag(field.name)} of tdrl train {algo})"
    if isinstance(default, bool):
        if not isinstance(value, bool | np.bool_):
            raise TrainError(f"{where} must be True or False, got {value!r}")
        return bool(value)
    if isinstance(default, tuple):
        items = value.split(",") if isinstance(value, str) else value
        try:
            sizes = tuple(int(v) for v in items)
        except (TypeError, ValueError):
            raise TrainError(f"{where} must be layer sizes such as (64, 64), got {value!r}") from None
        if any(s <= 0 for s in sizes) or any(
            isinstance(v, float) and not float(v).is_integer() for v in items
        ):
            raise TrainError(f"{where} must be positive layer sizes such as (64, 64), got {value!r}")
        return sizes
    if "choices" in field.metadata:
        if value not in field.metadata["choices"]:
            raise TrainError(
                f"{where} must be one of {', '.join(map(str, field.metadata['choices']))}, "
                f"got {value!r}"
            )
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TrainError(f"{where} must be an integer, got {value!r}")
        return int(value)
    if isinstance(default, float) or default is None:
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            raise TrainError(f"{where} must be a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise TrainError(f"{where} must be a string, got {value!r}")
    return value


def explicit_flags(algo: str, flags: Mapping[str, Any]) -> dict[str, Any]:
    """Check keyword flags against recipe ``algo``'s config: ``{field: value}`` (``None``: unset).

    Examples:
        >>> explicit_flags("ppo", {"lr": 1e-3, "hidden": "32,32"})["hidden"]
        (32, 32)
        >>> explicit_flags("ppo", {"nsteps": 64})
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: tdrl.train('ppo'): unknown option 'nsteps' (did you mean: n_steps?)
    """
    from tdrl.recipes import get_recipe
    from tdrl.recipes.config import TrainError

    fields = {f.name: f for f in dataclasses.fields(get_recipe(algo).config)}
    out: dict[str, Any] = dict.fromkeys(fields)
    for name, value in flags.items():
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.75)
            hint = f" (did you mean: {', '.join(close)}?)" if close else (
                f"; options: {', '.join(fields)}")
            raise TrainError(f"tdrl.train({algo!r}): unknown option {name!r}{hint}")
        if value is not None:
            out[name] = _coerce(fields[name], value, algo)
    return out


def run_training(
    algo: str,
    explicit: dict[str, Any],
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    progress: bool | None = False,
    log: Callable[[str], None] | None = print,
    callbacks: Sequence[Callable[[int, dict[str, Any]], Any]] = (),
) -> tuple[int, Path]:
    """Plan and run one training run; ``(exit status, run directory)``. The CLI's ``train``.

    Raises ``TrainError`` (bad input, nothing written) or ``RunFailure`` (the
    run started and failed; the last good checkpoint is kept).
    """
    from tdrl.recipes import get_recipe
    from tdrl.recipes.loop import train as run_plan
    from tdrl.recipes.plan import plan_run

    plan = plan_run(get_recipe(algo), explicit, out=out, resume=resume, force=force)
    status = run_plan(plan, progress=progress, log=log or (lambda _: None), callbacks=callbacks)
    return status, plan.run_dir


def train(
    algo: str,
    env: Any = None,
    module: Any = None,
    total_steps: int | None = None,
    logger: str | Iterable[str] | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    *,
    env_module: str | None = None,
    resume: bool = False,
    force: bool = False,
    callbacks: Sequence[Callable[[int, dict[str, Any]], Any]] = (),
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    **flags: Any,
) -> TrainResult:
    """Train recipe ``algo`` (``"ppo"``, ``"dqn"``, ``"sac"``) as ``tdrl train ALGO`` would.

    Args:
        algo: the recipe name.
        env: an env id (``"CartPole-v1"``, ``"package.module:EnvClass"``,
            ``"package:EnvId-v0"``), a ``gymnasium.Env`` subclass or instance, or a
            factory returning an env (default: the recipe's env). Objects that
            another process cannot import (instances, lambdas, classes from
            ``__main__``) are registered in this process only: pass them again
            to resume, and they cannot go to Ray workers.
        module: the network to train instead of the recipe's (PPO: an
            ``ActorValueOperator`` reading ``observation`` and writing ``action``,
            its log-prob and ``state_value``, or a ``(policy, value)`` pair; DQN: a ``QValueActor`` or a
            ``DistributionalQValueActor``; SAC: an ``ActorCriticOperator``, an
            ``ActorCriticWrapper`` or an ``(actor, critic)`` pair, see
            :mod:`tdrl.recipes.sac_user`), or an importable factory
            ``(observation_space, action_space) -> module``. Checked on a probe
            batch before anything is written. A module object is pickled into
            the checkpoints, so resume, eval, export and :func:`load` rebuild it.
        total_steps, seed: as the flags (default: the recipe's).
        logger: any of ``csv, tensorboard, wandb, mlflow`` (a comma-separated
            string or a list; default ``"csv"``, or the resumed run's own).
        out: the run directory (default ``runs/<algo>-<env>-s<seed>``).
        env_module: import this module first (it registers ``env``).
        resume, force: as ``--resume`` / ``--force``.
        callbacks: ``callback(step, row)`` after every iteration with the
            ``metrics.csv`` row; returning ``False`` stops the run early (then
            checkpoint, final evaluation and ``summary.json`` as at the end).
        progress: show the progress bar.
        log: where the run's messages go (``None``: nowhere).
        **flags: any other ``tdrl train ALGO`` flag, ``--n-steps 64`` as ``n_steps=64``.

    Raises ``TrainError`` for bad input (nothing is written) and ``RunFailure``
    when a started run fails (the last good checkpoint is kept; ``summary.json``
    says why).

    Examples:
        >>> import tempfile
        >>> keep_going = lambda step, row: step < 512  # PPO: 256 env steps per iteration
        >>> r = train("ppo", total_steps=4096, epochs=1, out=tempfile.mkdtemp() + "/p",
        ...           eval_episodes=1, callbacks=[keep_going], log=None)
        >>> r.summary["stopped_early_at_step"], r.summary["total_steps"]
        (512, 512)
    """
    from tdrl.recipes.config import TrainError
    from tdrl.recipes.env_ids import env_id_for, resolve_env_id

    given = dict(flags, total_steps=total_steps, seed=seed)
    if module is not None:
        from tdrl.recipes import get_recipe
        from tdrl.recipes.user_module import module_id_for

        if "module" not in {f.name for f in dataclasses.fields(get_recipe(algo).config)}:
            raise TrainError(f"module= is not supported by {algo}")
        given["module"] = module_id_for(module)
    if logger is not None:
        given["logger"] = logger if isinstance(logger, str) else ",".join(logger)
    if env is not None or env_module:
        base = env_id_for(env) if env is not None else None
        if env_module and base is None:
            raise TrainError("env_module= needs env= (the id its import registers)")
        given["env"] = resolve_env_id(base, env_module)
    explicit = explicit_flags(algo, given)
    status, run_dir = run_training(algo, explicit, out=out, resume=resume, force=force,
                                   progress=progress, log=log, callbacks=callbacks)
    summary: dict[str, Any] = {}
    if status == 0:
        summary = json.loads((run_dir / "summary.json").read_text())
    return TrainResult(Path(run_dir), summary, status)


class TrainedPolicy(TensorDictModuleBase):
    """A run's trained policy: a TensorDict module acting under ``exploration_type``.

    Calls the recipe's policy module (``observation`` in, ``action`` out) under
    ``ExplorationType.DETERMINISTIC`` by default (set ``exploration_type`` to
    ``ExplorationType.RANDOM`` to sample). ``act(obs)`` maps a batch of numpy
    observations to env actions, exactly as the run's final evaluation does.
    ``config`` is the run's configuration (a dict), ``run_dir`` its directory.
    """

    def __init__(self, module: Any, act: Callable, config: dict[str, Any], run_dir: Path,
                 step: int) -> None:
        super().__init__()
        self.module = module
        self.in_keys, self.out_keys = list(module.in_keys), list(module.out_keys)
        self._act = act
        self.config, self.run_dir, self.step = config, run_dir, step
        self.exploration_type = ExplorationType.DETERMINISTIC

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        with set_exploration_type(self.exploration_type):
            return self.module(tensordict)

    @torch.no_grad()
    def act(self, obs: Any) -> np.ndarray:
        """Deterministic env actions for a batch of observations (as the final evaluation)."""
        return self._act(np.asarray(obs, dtype=np.float32))

    def reset(self, done: Any = None) -> None:
        """A recurrent policy (``--recurrent``) carries its state across :meth:`act` calls: forget
        the envs marked in ``done`` (a bool per env), or all with ``None``; no-op otherwise."""
        getattr(self._act, "reset", lambda done=None: None)(done)


def load_run(run_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """``(recipe, config, checkpoint state)`` of a run directory (raises ``TrainError``).

    Examples:
        >>> load_run(Path("no/such/run"))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: no/such/run is not a directory (expected a run written by `tdrl train`)
    """
    from tdrl.recipes import get_recipe, recipe_names
    from tdrl.recipes.config import TrainError, config_from_dict
    from tdrl.recipes.runfiles import load_checkpoint
    from tdrl.recipes.user_module import restore_from_checkpoint

    if not run_dir.is_dir():
        raise TrainError(f"{run_dir} is not a directory (expected a run written by `tdrl train`)")
    state = load_checkpoint(run_dir / "checkpoint.pt")
    if state.get("algo") not in recipe_names():
        raise TrainError(f"{run_dir}/checkpoint.pt is for unknown algorithm {state.get('algo')!r}")
    recipe = get_recipe(state["algo"])
    cfg = config_from_dict(recipe.config, state["config"])
    restore_from_checkpoint(getattr(cfg, "module", ""), state)
    return recipe, cfg, state


def load(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedPolicy:
    """The trained policy of ``run_dir`` (its checkpoint), acting deterministically.

    The checkpoint is a pickle: load only run directories you wrote.

    Examples:
        >>> load("no/such/run")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: no/such/run is not a directory (expected a run written by `tdrl train`)
    """
    from tdrl.recipes.config import check_device, config_to_dict
    from tdrl.recipes.envs import probe_env
    from tdrl.recipes.eval_act import eval_act

    run_dir = Path(run_dir)
    recipe, cfg, state = load_run(run_dir)
    dev = check_device(str(device))
    env = probe_env(cfg.env)
    model = state["algo_state"]["model"]
    module = recipe.make_policy(cfg, env, model, dev)
    act = eval_act(recipe, cfg, env, model, dev)
    return TrainedPolicy(module, act, {"algo": recipe.name, **config_to_dict(cfg)}, run_dir,
                         int(state["global_step"]))
