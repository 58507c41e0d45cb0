"""Preparing a run: check a new or resumed run before its directory is touched.

:func:`plan_run` checks everything that does not need the run directory
(flags, env, action space, device) and writes nothing; :func:`read_run_dir`
does the checks that read the directory (a previous run, the checkpoint to
resume) once :func:`tdrl.recipes.loop.train` holds its lock.

Examples:
    >>> from tdrl.recipes import get_recipe
    >>> plan = plan_run(get_recipe("dqn"), {"seed": 2})
    >>> str(plan.run_dir), plan.cfg.seed, plan.env.action_space
    ('runs/dqn-CartPole-v1-s2', 2, Discrete(2))
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tdrl.recipes import get_recipe, recipe_names
from tdrl.recipes.config import (
    RESUME_OVERRIDABLE,
    TrainError,
    check_device,
    config_from_dict,
    flag,
    resolve_config,
)
from tdrl.recipes.env_ids import PYTHON_PREFIX
from tdrl.recipes.envpool_vec import check_vec
from tdrl.recipes.envs import (
    EnvInfo,
    action_kind,
    check_action_space,
    check_network_size,
    probe_env,
)
from tdrl.recipes.loggers import check_loggers
from tdrl.recipes.protocol import Recipe
from tdrl.recipes.runfiles import existing_run_files, load_checkpoint
from tdrl.recipes.user_module import restore_from_checkpoint

__all__ = ["RunPlan", "default_run_dir", "plan_run", "read_run_dir"]


@dataclasses.dataclass
class RunPlan:
    """A run checked as far as it can be without reading its directory (nothing written yet).

    A new run has its configuration and env here already; a resumed one gets
    them from its checkpoint, which :func:`train` reads only once it holds the
    directory's lock (``cfg``, ``env`` and ``resume_state`` are filled in then).
    """

    recipe: Recipe
    run_dir: Path
    explicit: dict[str, Any]
    resume: bool = False
    force: bool = False
    cfg: Any = None
    env: EnvInfo | None = None
    resume_state: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        """A resumed run that already reached ``total_steps`` and wrote its (successful) summary."""
        if self.resume_state is None or self.resume_state["global_step"] < self.cfg.total_steps:
            return False
        try:
            summary = json.loads((self.run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(summary, dict) and summary.get("status", "finished") == "finished"


def default_run_dir(recipe: Recipe, explicit: dict[str, Any]) -> Path:
    """``runs/<algo>-<env>-s<seed>`` from the explicit flags or the config defaults.

    Examples:
        >>> from tdrl.recipes import get_recipe
        >>> str(default_run_dir(get_recipe("dqn"), {"seed": 3}))
        'runs/dqn-CartPole-v1-s3'
    """
    defaults = recipe.config()
    env_id = explicit.get("env")
    env_id = defaults.env if env_id is None else env_id
    seed = explicit.get("seed")
    seed = defaults.seed if seed is None else seed
    return Path("runs") / f"{recipe.name}-{env_id}-s{seed}"


def _check_env(recipe: Recipe, env_id: str) -> EnvInfo:
    env = probe_env(env_id)
    kind = action_kind(env.action_space)
    alternatives = []
    if kind not in recipe.action_spaces:  # the hint names the recipes that fit
        alternatives = [n for n in recipe_names() if kind in get_recipe(n).action_spaces]
    check_action_space(env_id, env.action_space, recipe.name, recipe.action_spaces, alternatives)
    return env


def plan_run(
    recipe: Recipe,
    explicit: dict[str, Any],
    out: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
) -> RunPlan:
    """Check a new run's flags, env and device; raises :class:`TrainError`, writes nothing.

    ``explicit`` maps config fields to the values given on the command line
    (``None`` = not given). A new run takes the dataclass defaults, then the
    recipe's per-env defaults, then ``explicit``. Nothing here reads the run
    directory: what is in it (a previous run, the checkpoint to ``resume``) is
    read by :func:`train` under the directory's lock.

    Examples:
        >>> from tdrl.recipes import get_recipe
        >>> plan = plan_run(get_recipe("ppo"), {"env": "Pendulum-v1"}, out="/tmp/x")
        >>> plan.cfg.num_envs, plan.resume_state is None
        (4, True)
    """
    run_dir = Path(out) if out else default_run_dir(recipe, explicit)
    plan = RunPlan(recipe, run_dir, dict(explicit), resume, force)
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainError(f"--out {run_dir} exists and is not a directory")
    if resume:
        return plan  # the configuration is the checkpoint's: read under the lock
    env_id = explicit["env"] if explicit.get("env") is not None else recipe.config().env
    env = _check_env(recipe, env_id)
    defaults = recipe.defaults_for(env_id, env.action_space)
    cfg = resolve_config(recipe.config, explicit, defaults)
    cfg.validate()
    _check_config(recipe, cfg, env)
    plan.cfg, plan.env = cfg, env
    return plan


def _check_config(recipe: Recipe, cfg: Any, env: EnvInfo) -> None:
    """The checks of a resolved configuration against its env (new or resumed run)."""
    check_network_size(cfg, env.observation_space, env.action_space)
    check_device(cfg.device)
    check_loggers(cfg.logger)
    if recipe.prepare is not None:
        recipe.prepare(cfg, env)
    check_vec(cfg)  # --vec envpool: an Atari id, no --workers, the extra installed
    if getattr(cfg, "workers", 0) and cfg.env.startswith(PYTHON_PREFIX):
        raise TrainError(
            f"--workers: env {cfg.env!r} is a Python object of this process, which Ray workers "
            "cannot make; pass an importable env (an id, or package.module:EnvClass)"
        )


def read_run_dir(plan: RunPlan) -> None:
    """The checks that read the run directory; the caller holds its lock (raises TrainError).

    A new run needs an empty directory (or ``force``); a resumed one gets its
    configuration, env and state from the checkpoint, with only the flags of
    ``RESUME_OVERRIDABLE`` allowed to differ from it.

    Examples:
        >>> import tempfile
        >>> from tdrl.recipes import get_recipe
        >>> out = tempfile.mkdtemp()
        >>> read_run_dir(plan_run(get_recipe("dqn"), {}, out=out))  # a new run, empty directory
        >>> read_run_dir(plan_run(get_recipe("dqn"), {}, out=out, resume=True))
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: no checkpoint at .../checkpoint.pt; start the run over ...
    """
    recipe, run_dir, explicit = plan.recipe, plan.run_dir, plan.explicit
    if not plan.resume:
        existing = existing_run_files(run_dir)
        if existing and not plan.force:
            raise TrainError(
                f"{run_dir} already holds a run ({', '.join(existing)}); pass --resume to "
                "continue it, --force to overwrite it, or --out to choose another directory"
            )
        return
    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        raise TrainError(
            f"no checkpoint at {ckpt}; start the run over with --force instead of --resume"
        )
    state = load_checkpoint(ckpt)
    if state.get("algo") != recipe.name:
        raise TrainError(
            f"{run_dir} holds a {state.get('algo')} run; resume it with "
            f"`tdrl train {state.get('algo')} --out {run_dir} --resume`"
        )
    cfg = config_from_dict(recipe.config, state["config"])
    restore_from_checkpoint(getattr(cfg, "module", ""), state)
    conflicts = [
        f"{flag(k)} {v} (run has {getattr(cfg, k)})"
        for k, v in explicit.items()
        if v is not None and k not in RESUME_OVERRIDABLE and v != getattr(cfg, k)
    ]
    if conflicts:
        raise TrainError(
            "cannot change these options when resuming: "
            + ", ".join(conflicts)
            + f"; only {', '.join(flag(k) for k in RESUME_OVERRIDABLE)} may change"
        )
    for key in RESUME_OVERRIDABLE:
        if explicit.get(key) is not None:
            setattr(cfg, key, explicit[key])
    cfg.validate()
    plan.env = _check_env(recipe, cfg.env)
    _check_config(recipe, cfg, plan.env)
    plan.cfg, plan.resume_state = cfg, state
