"""The ``tdrl`` command line: ``tdrl train ppo|dqn ...`` and ``tdrl eval RUN_DIR``.

Run ``tdrl train ppo`` to train PPO on CartPole-v1 (about 15 s on one core),
``tdrl train ppo --env Pendulum-v1`` for a continuous-action run, ``tdrl train
dqn`` for DQN, and ``tdrl eval runs/ppo-CartPole-v1-s0`` to replay the saved
policy deterministically. ``tdrl train ppo --help`` lists every option with its
default. Errors the user can fix print one line and exit with status 2.

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

from tdrl.recipes import ALGOS, get_recipe

__all__ = ["build_parser", "main"]

_EPILOG_TRAIN = """\
Flags left out take the algorithm's defaults, then the per-env defaults
({envs}); the resolved configuration is saved in RUN_DIR/config.json.
Same seed + same machine + same --threads = same metrics.csv (except the
wall_s and steps_per_s columns). Ctrl-C or SIGTERM saves a checkpoint and
exits; continue with --resume.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``tdrl`` argument parser (subcommands ``train`` and ``eval``).

    Examples:
        >>> args = build_parser().parse_args(["eval", "runs/x", "--episodes", "3"])
        >>> args.command, args.run_dir, args.episodes
        ('eval', 'runs/x', 3)
    """
    from tdrl.recipes.common import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="tdrl", description="Train and evaluate agents built from tdrl operators."
    )
    commands = parser.add_subparsers(dest="command", metavar="{train,eval}", required=True)

    train = commands.add_parser("train", help="train an agent (ppo or dqn)")
    algos = train.add_subparsers(dest="algo", metavar="{" + ",".join(ALGOS) + "}", required=True)
    for name in ALGOS:
        recipe = get_recipe(name)
        envs = ", ".join(k for k in recipe.ENV_DEFAULTS if k != "box")
        title = recipe.__doc__.splitlines()[0].replace("``", "")
        sub = algos.add_parser(
            name,
            help=title,
            description=title,
            epilog=_EPILOG_TRAIN.format(envs=envs),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_config_arguments(sub, recipe.Config)
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
    return parser


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from tdrl.recipes.common import (
        RESUME_OVERRIDABLE,
        TrainError,
        check_action_space,
        check_device,
        clear_run_dir,
        config_from_dict,
        config_to_dict,
        existing_run_files,
        load_checkpoint,
        probe_env,
        resolve_config,
        run_training,
        seed_everything,
        write_json,
    )

    recipe = get_recipe(args.algo)
    explicit = {f.name: getattr(args, f.name) for f in dataclasses.fields(recipe.Config)}
    defaults = recipe.Config()
    env_id = explicit["env"] or defaults.env
    seed = explicit["seed"] if explicit["seed"] is not None else defaults.seed
    run_dir = Path(args.out) if args.out else Path("runs") / f"{args.algo}-{env_id}-s{seed}"

    resume_state = None
    if args.resume:
        resume_state = load_checkpoint(run_dir / "checkpoint.pt")
        if resume_state.get("algo") != args.algo:
            raise TrainError(
                f"{run_dir} holds a {resume_state.get('algo')} run; resume it with "
                f"`tdrl train {resume_state.get('algo')} --out {run_dir} --resume`"
            )
        cfg = config_from_dict(recipe.Config, resume_state["config"])
        conflicts = [
            f"--{k.replace('_', '-')} {v} (run has {getattr(cfg, k)})"
            for k, v in explicit.items()
            if v is not None and k not in RESUME_OVERRIDABLE and v != getattr(cfg, k)
        ]
        if conflicts:
            raise TrainError(
                "cannot change these options when resuming: "
                + ", ".join(conflicts)
                + f"; only {', '.join('--' + k.replace('_', '-') for k in RESUME_OVERRIDABLE)} "
                "may change"
            )
        for key in RESUME_OVERRIDABLE:
            if explicit[key] is not None:
                setattr(cfg, key, explicit[key])
        recipe.validate(cfg)
        obs_space, act_space, threshold = probe_env(cfg.env)
        check_action_space(cfg.env, act_space, args.algo, recipe.ACTION_SPACES)
        check_device(cfg.device)
        finished = resume_state["global_step"] >= cfg.total_steps
        if finished and (run_dir / "summary.json").exists():
            print(
                f"{run_dir} already finished at step {resume_state['global_step']:,} "
                f"(total steps {cfg.total_steps:,}); pass a larger --total-steps to train on"
            )
            return 0
    else:
        existing = existing_run_files(run_dir)
        if existing and not args.force:
            raise TrainError(
                f"{run_dir} already holds a run ({', '.join(existing)}); pass --resume to "
                "continue it, --force to overwrite it, or --out to choose another directory"
            )
        if run_dir.exists() and not run_dir.is_dir():
            raise TrainError(f"--out {run_dir} exists and is not a directory")
        obs_space, act_space, threshold = probe_env(env_id)
        check_action_space(env_id, act_space, args.algo, recipe.ACTION_SPACES)
        cfg = resolve_config(recipe.Config, explicit, recipe.env_defaults(env_id, act_space))
        recipe.validate(cfg)
        check_device(cfg.device)

    torch.set_num_threads(cfg.threads)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrainError(f"cannot create {run_dir}: {err}") from None
    if resume_state is None:
        if args.force:
            clear_run_dir(run_dir)
        write_json(run_dir / "config.json", {"algo": args.algo, **config_to_dict(cfg)})
        print(f"training {args.algo} on {cfg.env} (seed {cfg.seed}) -> {run_dir}")
    else:
        print(f"resuming {args.algo} on {cfg.env} from step {resume_state['global_step']:,}")
    seed_everything(cfg.seed)
    algo = recipe.Algorithm(cfg, obs_space, act_space, threshold, clock=None)
    return run_training(
        args.algo, algo, cfg, run_dir, threshold, resume_state=resume_state, progress=args.progress
    )


def _eval(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from tdrl.recipes.common import (
        EVAL_SEED_OFFSET,
        TrainError,
        check_device,
        config_from_dict,
        evaluate,
        load_checkpoint,
        probe_env,
        render_gif,
    )

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise TrainError(f"{run_dir} is not a directory (expected a run written by `tdrl train`)")
    state = load_checkpoint(run_dir / "checkpoint.pt")
    algo = state.get("algo")
    if algo not in ALGOS:
        raise TrainError(f"{run_dir}/checkpoint.pt is for unknown algorithm {algo!r}")
    recipe = get_recipe(algo)
    cfg = config_from_dict(recipe.Config, state["config"])
    episodes = args.episodes if args.episodes is not None else cfg.eval_episodes
    if episodes <= 0:
        raise TrainError(f"--episodes must be > 0, got {episodes}")
    threads = args.threads if args.threads is not None else cfg.threads
    if threads <= 0:
        raise TrainError(f"--threads must be > 0, got {threads}")
    device = check_device(args.device or cfg.device)
    torch.set_num_threads(threads)
    obs_space, act_space, _ = probe_env(cfg.env)
    act = recipe.make_act(cfg, obs_space, act_space, state["algo_state"]["model"], device)
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
    if args.render_gif:
        ret, frames = render_gif(act, cfg.env, Path(args.render_gif), seed=seed)
        result["gif"] = {"path": args.render_gif, "return": ret, "frames": frames}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{algo} {cfg.env} at step {result['step']:,}: deterministic return "
        f"{result['mean_return']:.1f} +- {result['std_return']:.1f} over {episodes} episodes"
    )
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        try:
            final = json.loads(summary_path.read_text()).get("final_eval_return")
        except (OSError, ValueError):
            final = None
        if final is not None:
            print(f"(summary.json final_eval_return: {final:.1f})")
    if args.render_gif:
        print(f"wrote {args.render_gif} ({frames} frames, episode return {ret:.1f})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tdrl`` console script and ``python -m tdrl``; returns the exit status.

    Examples:
        >>> main(["train", "ppo", "--env", "CartPol-v1"])
        2
    """
    from tdrl.recipes.common import TrainError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _eval(args)
    except TrainError as err:
        print(f"tdrl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C, or one outside the training loop
        print("tdrl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
