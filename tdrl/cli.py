"""The ``tdrl`` command line: ``tdrl train ppo|dqn ...``, ``tdrl eval RUN_DIR``, ``tdrl export``.

Run ``tdrl train ppo`` to train PPO on CartPole-v1 (about 15 s on one core),
``tdrl train ppo --env Pendulum-v1`` for a continuous-action run, ``tdrl train
dqn`` for DQN, and ``tdrl eval runs/ppo-CartPole-v1-s0`` to replay the saved
policy deterministically. ``tdrl export RUN_DIR --format onnx`` writes the
policy as a plain tensor model (``RUN_DIR/policy.onnx`` + ``.json`` sidecar) and
``tdrl eval RUN_DIR --policy RUN_DIR/policy.onnx`` replays that file (onnxruntime)
on the same episodes. ``tdrl train ppo --help`` lists every option with its
default. Errors the user can fix print one line and exit with status 2 before
anything is written; a run that fails once started (a file that cannot be
written, a non-finite loss, observation or reward) prints what was kept and
exits with status 1.

Examples:
    >>> from tdrl.cli import build_parser
    >>> args = build_parser().parse_args(["train", "ppo", "--seed", "3", "--lr", "3e-4"])
    >>> args.algo, args.seed, args.lr, args.env
    ('ppo', 3, 0.0003, None)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tdrl.recipes import get_recipe, recipe_names

__all__ = ["build_parser", "main"]

_EPILOG_TRAIN = """\
Flags left out take the algorithm's defaults, then the per-env defaults
({envs}); the resolved configuration is saved in RUN_DIR/config.json.
Same seed + same machine + same --threads = same metrics.csv (except the
wall_s and steps_per_s columns). Ctrl-C or SIGTERM saves a checkpoint and
exits; continue with --resume. One run owns RUN_DIR at a time (RUN_DIR/.lock);
a checkpoint exists from step 0, so a killed run can always --resume.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``tdrl`` argument parser (subcommands ``train``, ``eval`` and ``export``).

    Examples:
        >>> args = build_parser().parse_args(["eval", "runs/x", "--episodes", "3"])
        >>> args.command, args.run_dir, args.episodes
        ('eval', 'runs/x', 3)
    """
    from tdrl.recipes.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="tdrl", description="Train and evaluate agents built from tdrl operators."
    )
    commands = parser.add_subparsers(dest="command", metavar="{train,eval,export}", required=True)

    names = recipe_names()
    train = commands.add_parser("train", help=f"train an agent ({', '.join(names)})")
    algos = train.add_subparsers(dest="algo", metavar="{" + ",".join(names) + "}", required=True)
    for name in names:
        recipe = get_recipe(name)
        sub = algos.add_parser(
            name,
            help=recipe.summary,
            description=recipe.summary,
            epilog=_EPILOG_TRAIN.format(envs=", ".join(recipe.tuned_envs()) or "none"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_config_arguments(sub, recipe.config)
        sub.add_argument(
            "--out",
            metavar="RUN_DIR",
            default=None,
            help="output directory (default: runs/<algo>-<env>-s<seed>)",
        )
        group = sub.add_mutually_exclusive_group()
        group.add_argument(
            "--resume", action="store_true", help="continue the run saved in RUN_DIR/checkpoint.pt"
        )
        group.add_argument(
            "--force", action="store_true", help="overwrite a previous run in RUN_DIR"
        )
        sub.add_argument(
            "--env-module",
            metavar="MODULE",
            default=None,
            help="import MODULE first: it registers --env with gymnasium (same as --env "
            "MODULE:ID); --env package.module:EnvClass also works",
        )
        sub.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="live progress bar (default: only when stderr is a terminal)",
        )

    ev = commands.add_parser(
        "eval",
        help="evaluate a saved run deterministically",
        description="Load RUN_DIR/checkpoint.pt and report the mean and std of the "
        "deterministic return (the same episodes as the run's final evaluation).",
    )
    ev.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `tdrl train`")
    ev.add_argument("--episodes", type=int, default=None, help="episodes (default: as in training)")
    ev.add_argument("--render-gif", metavar="PATH", default=None, help="save one episode as a GIF")
    ev.add_argument("--device", default=None, help="torch device (default: the run's)")
    ev.add_argument("--threads", type=int, default=None, help="torch threads (default: the run's)")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.add_argument(
        "--policy",
        metavar="FILE",
        default=None,
        help="evaluate this file written by `tdrl export` (.onnx on onnxruntime, or .pt2) "
        "instead of the checkpoint's module",
    )

    ex = commands.add_parser(
        "export",
        help="export a run's policy to ONNX or torch.export (.pt2)",
        description="Write the run's deterministic policy as a plain tensor-in / tensor-out "
        "model (observation -> action, dynamic batch) plus a JSON sidecar <file>.json. "
        "ONNX needs the export extra: pip install \"tdrl[export]\".",
    )
    ex.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `tdrl train`")
    ex.add_argument("--format", choices=["onnx", "pt2"], default="onnx", help="(default: onnx)")
    ex.add_argument("--out", metavar="PATH", default=None, help="(default: RUN_DIR/policy.FORMAT)")
    ex.add_argument(
        "--dtype",
        choices=["auto", "float32", "float64"],
        default="auto",
        help="compute dtype inside the model; inputs and outputs stay float32 (default: auto, "
        "as the run's final evaluation: float64 for continuous actions, which replays it exactly)",
    )
    return parser


def _load_run(run_dir: Path) -> tuple[Any, Any, dict]:
    """``(recipe, config, checkpoint state)`` of a run directory (raises ``TrainError``)."""
    from tdrl.api import load_run

    return load_run(run_dir)


def _from_checkpoint(run_dir: Path, build: Any) -> Any:
    """``build()`` (the run's policy from the checkpoint's weights), or a clear error naming it."""
    from tdrl.recipes.config import CheckpointError

    try:
        return build()
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
        lines = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in lines[:3]) or type(err).__name__
        raise CheckpointError(
            f"{run_dir}/checkpoint.pt: its weights do not fit the run's policy ({detail[:300]}); "
            "it was left untouched"
        ) from None


def _export(args: argparse.Namespace) -> int:
    from tdrl.export.policy import check_target
    from tdrl.export.runs import export_run, run_policy

    run_dir = Path(args.run_dir)
    recipe, cfg, state = _load_run(run_dir)
    out = Path(args.out) if args.out else run_dir / f"policy.{args.format}"
    check_target(out, args.format)  # before the (slow) export
    policy = _from_checkpoint(run_dir, lambda: run_policy(recipe, cfg, state))
    path = export_run(recipe, cfg, state, args.format, out, args.dtype, policy=policy)
    print(f"wrote {path} and {path.name}.json")
    return 0


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from tdrl.api import run_training
    from tdrl.recipes.env_ids import resolve_env_id

    recipe = get_recipe(args.algo)
    explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(recipe.config)}
    if args.env_module:
        explicit["env"] = resolve_env_id(explicit["env"] or recipe.config().env, args.env_module)
    status, _ = run_training(args.algo, explicit, out=args.out, resume=args.resume,
                             force=args.force, progress=args.progress)
    return status


def _eval(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from tdrl.recipes.config import TrainError, WriteError, check_device
    from tdrl.recipes.envs import EVAL_SEED_OFFSET, evaluate, probe_env
    from tdrl.recipes.eval_act import eval_act
    from tdrl.recipes.report import render_gif

    run_dir = Path(args.run_dir)
    recipe, cfg, state = _load_run(run_dir)
    algo = recipe.name
    episodes = args.episodes if args.episodes is not None else cfg.eval_episodes
    if episodes <= 0:
        raise TrainError(f"--episodes must be > 0, got {episodes}")
    threads = args.threads if args.threads is not None else cfg.threads
    if threads <= 0:
        raise TrainError(f"--threads must be > 0, got {threads}")
    device = check_device(args.device or cfg.device)
    torch.set_num_threads(threads)
    env = probe_env(cfg.env)
    if args.policy:
        from tdrl.export.runs import policy_act

        act = policy_act(args.policy, env.action_space, threads, env_id=cfg.env, env=env)
    else:
        act = _from_checkpoint(
            run_dir, lambda: eval_act(recipe, cfg, env, state["algo_state"]["model"], device)
        )
    seed = cfg.seed + EVAL_SEED_OFFSET
    returns = evaluate(act, cfg.env, episodes, seed)
    result = {
        "run_dir": str(run_dir),
        "algo": algo,
        "env": cfg.env,
        "step": int(state["global_step"]),
        "episodes": episodes,
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": [float(r) for r in returns],
    }
    if args.policy:
        result["policy"] = args.policy
    gif_error = None
    if args.render_gif:
        try:
            ret, frames = render_gif(act, cfg.env, Path(args.render_gif), seed=seed)
            result["gif"] = {"path": args.render_gif, "return": ret, "frames": frames}
        except WriteError as err:  # report the evaluation anyway, then fail
            gif_error = err
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_eval(result, run_dir)
    if gif_error is not None:
        raise gif_error
    if args.render_gif and not args.json:
        print(f"wrote {args.render_gif} ({frames} frames, episode return {ret:.1f})")
    return 0


def _print_eval(result: dict, run_dir: Path) -> None:
    print(
        f"{result['algo']} {result['env']} at step {result['step']:,}: deterministic return "
        f"{result['mean_return']:.1f} +- {result['std_return']:.1f} over {result['episodes']} "
        "episodes"
    )
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError):  # unreadable, binary, not JSON
            summary = None
        final = summary.get("final_eval_return") if isinstance(summary, dict) else None
        if isinstance(final, int | float) and not isinstance(final, bool):
            print(f"(summary.json final_eval_return: {final:.1f})")
        else:
            print(f"({summary_path} holds no final_eval_return to compare with)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tdrl`` console script and ``python -m tdrl``; returns the exit status.

    Examples:
        >>> main(["train", "ppo", "--env", "CartPol-v1"])
        2
    """
    from tdrl.export.onnx import MissingExtraError
    from tdrl.export.trace import ExportError
    from tdrl.recipes.config import TrainError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "export":
            return _export(args)
        return _eval(args)
    except TrainError as err:  # RunFailure (status 1): the run started, what was kept is named
        print(f"tdrl: error: {err}", file=sys.stderr)
        return err.exit_status
    except (ExportError, MissingExtraError) as err:  # nothing written
        print(f"tdrl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
        print("tdrl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
