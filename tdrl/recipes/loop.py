"""The run loop: drive the algorithm of a prepared run and write the run files.

:func:`~tdrl.recipes.plan.plan_run` (:mod:`tdrl.recipes.plan`, re-exported
here) checks a new or resumed run and writes nothing; :func:`train` then owns
the run directory: it takes its lock, reads what is in it (a previous run, the
checkpoint to resume), builds the algorithm through its
:class:`~tdrl.recipes.protocol.Recipe`, calls ``iterate()`` until
``total_steps``, appends ``metrics.csv``, checkpoints every
``checkpoint_every`` steps and on SIGINT/SIGTERM, and finally evaluates the
deterministic policy and writes ``summary.json`` and the learning curve.

Examples:
    >>> import tempfile
    >>> from tdrl.recipes import get_recipe
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> plan = plan_run(get_recipe("ppo"), {"total_steps": 256, "epochs": 1, "eval_episodes": 1},
    ...                 out=out)
    >>> train(plan, progress=False, log=lambda s: None)
    0
    >>> sorted(p.name for p in out.iterdir())
    ['.lock', 'checkpoint.pt', 'config.json', 'learning_curve.png', 'metrics.csv', 'summary.json']
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from tdrl.collectors import CollectorError
from tdrl.recipes.blocks import Clock
from tdrl.recipes.config import (
    NonFiniteError,
    RunFailure,
    TrainError,
    WriteError,
    check_device,
    config_to_dict,
)
from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate
from tdrl.recipes.eval_act import eval_act
from tdrl.recipes.finite import check_state, diagnose
from tdrl.recipes.loggers import open_loggers
from tdrl.recipes.plan import RunPlan, default_run_dir, plan_run, read_run_dir
from tdrl.recipes.protocol import Algorithm
from tdrl.recipes.remote import WorkerFailure
from tdrl.recipes.report import ProgressBar, plot_learning_curve, versions
from tdrl.recipes.rng import get_rng_state, seed_everything, set_rng_state
from tdrl.recipes.runfiles import (
    MetricsLog,
    RunLock,
    clear_run_dir,
    save_checkpoint,
    write_json,
)
from tdrl.recipes.user_module import checkpoint_entry

# RunPlan, default_run_dir and plan_run live in tdrl.recipes.plan; imported from here too
__all__ = ["Callback", "RunPlan", "StopSignal", "check_losses", "default_run_dir", "plan_run",
           "train"]

# Called after every iteration with the step and the ``metrics.csv`` row; returning ``False``
# stops the run early (checkpoint, final evaluation and summary as at the end).
Callback = Callable[[int, dict[str, Any]], Any]


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


# ----------------------------------------------------------------------------- the loop
def train(
    plan: RunPlan,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    callbacks: Sequence[Callback] = (),
) -> int:
    """Run ``plan`` to ``cfg.total_steps``: metrics, checkpoints, signals, final evaluation.

    After each iteration the ``metrics.csv`` row goes to the configured loggers
    (``cfg.logger``) and to each of ``callbacks`` as ``callback(step, row)``; a
    callback returning ``False`` ends the run there as if it had reached
    ``total_steps`` (``summary.json`` then records ``stopped_early_at_step``).

    The run takes its directory's lock (:class:`~tdrl.recipes.runfiles.RunLock`)
    before reading anything in it (a previous run, the checkpoint to resume) and
    keeps it to the end; a check that fails there gives the directory back as it
    was. A new run saves a checkpoint at step 0, so every run directory can be
    resumed. Returns the process exit status: 0 when finished (or already
    finished), 128 + the signal number when stopped by SIGINT/SIGTERM (after
    saving a checkpoint). A :class:`~tdrl.recipes.config.RunFailure` (a file
    that cannot be written, a non-finite value) keeps the last good checkpoint,
    records the failure in ``summary.json`` where it can, and is raised with a
    message saying what was kept.
    """
    run_dir = plan.run_dir
    if plan.resume and not run_dir.is_dir():  # nothing to read, nothing to create
        raise TrainError(
            f"no checkpoint at {run_dir / 'checkpoint.pt'}; start the run over with --force "
            "instead of --resume"
        )
    created_dir = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError.from_os_error(run_dir, err) from None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except TrainError:
        if created_dir:
            _remove_empty_dir(run_dir)
        raise
    try:
        try:
            read_run_dir(plan)
        except TrainError:  # give the directory back as it was
            lock.release(remove=lock.created)
            if created_dir:
                _remove_empty_dir(run_dir)
            raise
        return _train_locked(plan, progress, log, callbacks)
    finally:
        lock.release()


def _remove_empty_dir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty (another run got there first), or gone
        pass


def _train_locked(
    plan: RunPlan, progress: bool | None, log: Callable[[str], None], callbacks: Sequence[Any]
) -> int:
    recipe, cfg, run_dir, state = plan.recipe, plan.cfg, plan.run_dir, plan.resume_state
    if plan.finished:
        log(
            f"{run_dir} already finished at step {state['global_step']:,} "
            f"(total steps {cfg.total_steps:,}); pass a larger --total-steps to train on"
        )
        return 0
    torch.set_num_threads(cfg.threads)
    if state is None:
        if plan.force:
            clear_run_dir(run_dir)
        write_json(run_dir / "config.json", {"algo": recipe.name, **config_to_dict(cfg)})
        log(f"training {recipe.name} on {cfg.env} (seed {cfg.seed}) -> {run_dir}")
    else:
        log(f"resuming {recipe.name} on {cfg.env} from step {state['global_step']:,}")
    seed_everything(cfg.seed)
    clock = Clock(offset=float(state["wall_s"]) if state is not None else 0.0)
    run = _Run(plan, clock)
    try:
        algo = recipe.algorithm(cfg, plan.env, clock)
        if state is not None:
            try:
                algo.load_state_dict(state["algo_state"])
            except (RuntimeError, KeyError, ValueError, TypeError) as err:
                raise _unfit_checkpoint(run.ckpt_path, err) from None
            set_rng_state(state["rng"])
        return run.loop(algo, progress, log, callbacks)
    except RunFailure as failure:
        run.record_failure(failure)
        raise


def _unfit_checkpoint(path: Path, err: Exception) -> TrainError:
    """A checkpoint whose weights or state do not fit the run's algorithm (exit 2, untouched)."""
    from tdrl.recipes.config import CheckpointError

    lines = str(err).strip().splitlines()
    detail = " ".join(line.strip() for line in lines[:3]) or type(err).__name__
    return CheckpointError(
        f"{path}: its state does not fit the run's algorithm ({detail[:300]}); it was left "
        "untouched"
    )


def check_losses(losses: dict[str, Any], step: int) -> None:
    """Raise :class:`~tdrl.recipes.config.NonFiniteError` naming a NaN/inf value of ``losses``.

    ``None`` means "no value this iteration" (e.g. before learning starts).

    Examples:
        >>> check_losses({"loss": None, "lr": 1e-3}, step=8)
        >>> check_losses({"loss": float("nan")}, step=8)
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.NonFiniteError: non-finite loss (nan) at step 8
    """
    for key, value in losses.items():
        if value is not None and not math.isfinite(value):
            raise NonFiniteError(f"{key} ({value})", step)


class _Run:
    """One training session in a locked run directory: the loop and what it saved."""

    def __init__(self, plan: RunPlan, clock: Clock) -> None:
        self.plan, self.clock = plan, clock
        self.ckpt_path = plan.run_dir / "checkpoint.pt"
        state = plan.resume_state
        self.saved_step: int | None = None if state is None else int(state["global_step"])
        self.stopped_early: int | None = None

    def save(self, algo: Algorithm, finished: bool = False) -> None:
        """Write the checkpoint, unless the state holds a NaN/inf (then the last one stays)."""
        plan = self.plan
        algo_state = algo.state_dict()
        check_state(algo_state, algo.global_step, " in the state to checkpoint")
        save_checkpoint(
            self.ckpt_path,
            {
                "algo": plan.recipe.name,
                "config": config_to_dict(plan.cfg),
                "global_step": algo.global_step,
                "wall_s": self.clock(),
                "rng": get_rng_state(),
                "algo_state": algo_state,
                "finished": finished,
                "user_module": checkpoint_entry(getattr(plan.cfg, "module", "")),
            },
        )
        self.saved_step = algo.global_step
        self.saved_model = algo_state["model"]  # what the final evaluation (and tdrl eval) runs

    def loop(
        self,
        algo: Algorithm,
        progress: bool | None,
        log: Callable[[str], None],
        callbacks: Sequence[Callback] = (),
    ) -> int:
        plan, cfg, clock = self.plan, self.plan.cfg, self.clock
        name, run_dir = plan.recipe.name, plan.run_dir
        columns = ["step", "wall_s", "episodes", "return_mean", "return_std", "length_mean",
                   *algo.loss_columns, "steps_per_s"]
        start_step = algo.global_step
        resumed = plan.resume_state is not None
        metrics = MetricsLog(
            run_dir / "metrics.csv", columns, resume_step=start_step if resumed else None
        )
        if metrics.dropped:
            log(f"dropped {metrics.dropped} torn or malformed row(s) from {metrics.path}")
        bar = ProgressBar(cfg.total_steps, start_step, f"{name} {cfg.env}", enabled=progress)
        last_step, last_wall = start_step, clock()
        next_ckpt = (start_step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        stopped: int | None = None
        loggers = open_loggers(
            cfg.logger.split(","), run_dir, {"algo": name, **config_to_dict(cfg)}, resumed
        )
        listeners = [*loggers, *callbacks]
        try:
            if not resumed:
                self.save(algo)  # step 0: any run directory that exists can be resumed
            with StopSignal() as stop:
                while algo.global_step < cfg.total_steps:
                    try:
                        losses = algo.iterate()
                    except CollectorError as err:  # --workers: a worker kept failing
                        raise self.worker_failure(algo, err) from None
                    except RunFailure:
                        raise
                    except Exception as err:  # a library check refusing NaN/inf: name it
                        raise self.non_finite(algo, err) from None
                    step, wall = algo.global_step, clock()
                    check_losses(losses, step)
                    sps = (step - last_step) / max(wall - last_wall, 1e-9)
                    last_step, last_wall = step, wall
                    ep = algo.stats.summary()
                    if algo.stats.episodes and not math.isfinite(ep["return_mean"]):
                        raise NonFiniteError("episode return (the env's rewards)", step)
                    row = {"step": step, "wall_s": wall, "episodes": algo.stats.episodes,
                           **ep, **losses, "steps_per_s": sps}
                    metrics.write(row)
                    bar.update(step, ep["return_mean"], sps)
                    if any([listener(step, dict(row)) is False for listener in listeners]):
                        self.stopped_early = step
                        log(f"stopped early by a callback at step {step:,}")
                        break
                    if stop.signum is not None:
                        stopped = stop.signum
                        break
                    if step >= next_ckpt:
                        self.save(algo)
                        next_ckpt = (step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
                train_wall = clock()
                self.save(algo, finished=stopped is None)
        finally:
            bar.close()
            metrics.close()
            for logger in loggers:
                logger.close()
            algo.close()
        if stopped is not None:
            log(
                f"stopped by {signal.Signals(stopped).name} at step {algo.global_step:,}; "
                f"checkpoint saved to {self.ckpt_path}\nresume with: tdrl train {name} --out "
                f"{run_dir} --resume"
            )
            return 128 + stopped
        self.finish(algo, train_wall, log)
        return 0

    @staticmethod
    def non_finite(algo: Algorithm, err: Exception) -> Exception:
        """The documented failure behind ``err`` (raised inside ``iterate``), or ``err`` itself."""
        try:
            state = algo.state_dict()
        except Exception:  # noqa: BLE001 - the diagnosis must not hide the error
            state = None
        found = diagnose(err, state, algo.global_step)
        return err if found is None else found

    def worker_failure(self, algo: Algorithm, err: CollectorError) -> WorkerFailure:
        """Save a checkpoint where the workers still allow it; the error to stop the run with."""
        try:
            self.save(algo)
        except Exception:  # noqa: BLE001 - a dead worker cannot hand over its envs
            pass  # the last periodic checkpoint stays
        return WorkerFailure(str(err), algo.global_step)

    def finish(self, algo: Algorithm, train_wall: float, log: Callable[[str], None]) -> None:
        """Final deterministic evaluation, ``summary.json``, the learning curve, the last message."""
        plan = self.plan
        name, cfg, run_dir, threshold = (
            plan.recipe.name, plan.cfg, plan.run_dir, plan.env.reward_threshold
        )
        act = eval_act(plan.recipe, cfg, plan.env, self.saved_model, check_device(cfg.device),
                       fallback=algo.act)
        returns = evaluate(act, cfg.env, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET)
        stats = algo.stats
        summary = {
            "algo": name,
            "env": cfg.env,
            "seed": cfg.seed,
            "status": "finished",
            "total_steps": algo.global_step,
            "wall_s": round(train_wall, 3),
            "steps_per_s": round(algo.global_step / max(train_wall, 1e-9), 1),
            "reward_threshold": threshold,
            "solved_at_step": stats.solved_at_step,
            "solved_at_s": None if stats.solved_at_s is None else round(stats.solved_at_s, 3),
            "final_eval_return": float(returns.mean()),
            "final_eval_std": float(returns.std()),
            "final_eval_episodes": int(len(returns)),
            "final_eval_returns": [float(r) for r in returns],
            "train_return_last10": stats.summary()["return_mean"],
            "train_return_last100": stats.last(100),
            "stopped_early_at_step": self.stopped_early,
            "episodes": stats.episodes,
            "threads": torch.get_num_threads(),
            "versions": versions(),
            "config": config_to_dict(cfg),
        }
        write_json(run_dir / "summary.json", summary)
        self.final_summary = summary  # a later failure keeps these results (record_failure)
        plot_learning_curve(
            run_dir / "metrics.csv",
            run_dir / "learning_curve.png",
            f"{name.upper()} on {cfg.env} (seed {cfg.seed})",
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
            f"{name} {cfg.env} seed {cfg.seed}: {algo.global_step:,} steps in {train_wall:.1f} s "
            f"({summary['steps_per_s']:,.0f} steps/s), {solved}; final eval return "
            f"{returns.mean():.1f} +- {returns.std():.1f} over {len(returns)} episodes\n"
            f"wrote {run_dir}/(metrics.csv, summary.json, checkpoint.pt, learning_curve.png)"
        )

    def record_failure(self, failure: RunFailure) -> None:
        """Write ``summary.json`` for a failed run (where possible); extend the error message."""
        plan, cfg = self.plan, self.plan.cfg
        if self.saved_step is None:
            kept = "no checkpoint was saved"
        else:
            kept = (
                f"{self.ckpt_path} holds the last good checkpoint (step {self.saved_step:,}); "
                f"resume with: tdrl train {plan.recipe.name} --out {plan.run_dir} --resume"
            )
        summary = {
            **getattr(self, "final_summary", {}),  # results written before the failure stay
            "algo": plan.recipe.name,
            "env": cfg.env,
            "seed": cfg.seed,
            "status": "failed",
            "failure": {"error": type(failure).__name__, "message": str(failure),
                        "step": failure.step},
            "last_checkpoint_step": self.saved_step,
            "config": config_to_dict(cfg),
        }
        try:
            write_json(plan.run_dir / "summary.json", summary)
            recorded = "summary.json records the failure"
        except WriteError:
            recorded = "summary.json could not be written either"
        failure.args = (f"{failure}; {kept}; {recorded}",)
