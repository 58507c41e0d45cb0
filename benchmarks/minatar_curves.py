"""Learning curves and the bars of the 1M-step MinAtar Breakout runs (benchmarks/minatar_runs.sh).

Reads ``<runs>/<algo>-minatar-breakout-s<seed>/metrics.csv`` (and ``summary.json`` when the
run finished), writes one PNG per algorithm (mean game score of the last 10 training
episodes against env steps, one line per seed, random play and the bar of 5 drawn) and
prints a table: steps reached, final evaluation (10 games), mean of the last 100 training
episodes, whether both bars (>= 5) hold. SB3's PPO at the same settings
(``benchmarks/minatar_sb3.py``; ``sb3-ppo-...``: linear heads, ``sb3heads-ppo-...``: SB3's
default 64x64 MLP per head, as tdrl's MinAtar default now), where its run directory exists,
is drawn and listed beside them, and so are tdrl's PPO runs at the earlier default (linear
heads: ``ppo-linearheads-minatar-breakout-s<seed>``).

    PYTHONPATH=. python benchmarks/minatar_curves.py [--runs /work/runs/pixels] [--out docs/pixels]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np

RANDOM_PLAY = 0.38  # MinAtar Breakout, uniform random actions (issue 20)
BAR = 5.0
# earlier defaults' runs, drawn thin beside the current ones: (run-name prefix, line style)
EARLIER = {"ppo": (("ppo-linearheads", {"color": "tab:gray", "linewidth": 0.6, "alpha": 0.7,
                                        "label": "earlier default (linear heads)"}),)}


def _tdrl_run(ax, run: Path, name: str, seed: str, style: dict) -> dict | None:
    """Draw one tdrl run's curve; its table row (bars when it finished), or None if absent."""
    from tdrl.recipes.runfiles import read_metrics

    if not (run / "metrics.csv").exists():
        return None
    m = read_metrics(run / "metrics.csv")
    label = style.get("label", "")
    # an earlier default's seeds share one legend entry
    line = {**style, "label": f"seed {seed}" if not label else
            (f"{label}, seeds 0-2" if seed == "0" else "_nolegend_")}
    ax.plot(m["step"], m["return_mean"], **line)
    row: dict = {"algo": name, "seed": int(seed), "steps": int(m["step"][-1])}
    if (run / "summary.json").exists():
        s = json.loads((run / "summary.json").read_text())
        row.update(final_eval=s["final_eval_return"],
                   train_last100=round(s["train_return_last100"], 2), wall_s=round(s["wall_s"]))
        row["bars"] = row["final_eval"] >= BAR and row["train_last100"] >= BAR
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="/work/runs/pixels")
    p.add_argument("--out", default="docs/pixels")
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for algo in ("ppo", "dqn"):
        fig = Figure(figsize=(7, 4), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        # the defaults' runs, then (PPO) the earlier linear-head default's runs as thin lines
        for name, style in ((algo, {}), *EARLIER.get(algo, ())):
            for seed in args.seeds.split(","):
                row = _tdrl_run(ax, Path(args.runs) / f"{name}-minatar-breakout-s{seed}",
                                name, seed, style)
                if row is not None:
                    rows.append(row)
        for name, label, color in (("sb3", "SB3, linear heads", "black"),
                                   ("sb3heads", "SB3, its 64x64 MLP per head", "tab:purple")):
            sb3 = Path(args.runs) / f"{name}-{algo}-minatar-breakout-s0"
            if not (sb3 / "episodes.csv").exists():  # benchmarks/minatar_sb3.py
                continue
            steps, scores = np.loadtxt(sb3 / "episodes.csv", delimiter=",", skiprows=1,
                                       ndmin=2).T
            # the same statistic as tdrl's return_mean: mean of the last 10 episodes
            means = np.convolve(scores, np.ones(10) / 10, mode="valid")
            ax.plot(steps[9:], means, color=color, linewidth=0.6, alpha=0.8,
                    label=f"{label}, seed 0")
            if (sb3 / "summary.json").exists():
                s = json.loads((sb3 / "summary.json").read_text())
                rows.append({"algo": f"{name}-{algo}", "seed": 0, "steps": s["steps"],
                             "final_eval": s["final_eval_deterministic"],
                             "final_eval_sampled": s["final_eval_sampled"],
                             "train_last100": round(s["train_return_last100"], 2),
                             "wall_s": round(s["seconds"])})
        ax.axhline(RANDOM_PLAY, color="gray", linestyle=":", label="random play")
        ax.axhline(BAR, color="tab:green", linestyle="--", label=f"bar {BAR:g}")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("game score, mean of the last 10 episodes")
        ax.set_title(f"tdrl train {algo} --env MinAtar/Breakout-v1 (defaults)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        (out / f"minatar_breakout_{algo}.png").write_bytes(buf.getvalue())
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
