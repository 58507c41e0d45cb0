"""Reporting: the progress bar, the learning-curve plot, episode GIFs, library versions.

matplotlib, rich, PIL and gymnasium are imported inside the functions that
need them, so importing this module stays cheap.

Examples:
    >>> bar = ProgressBar(total=10, start=0, enabled=False)
    >>> bar.update(5, 1.0, 100.0); bar.close()
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from tdrl.recipes.config import TrainError, WriteError
from tdrl.recipes.envs import ActFn, env_factory
from tdrl.recipes.runfiles import atomic_write_bytes, read_metrics

__all__ = ["ProgressBar", "plot_learning_curve", "render_gif", "versions"]


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


def render_gif(
    act: ActFn,
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
    from PIL import Image

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless pygame, no display needed
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        env = env_factory(env_id, train=False, render_mode="rgb_array")()  # pixels: game frames
        obs, _ = env.reset(seed=seed)
        frames = [env.render()]
    except Exception as err:
        raise TrainError(f"cannot render {env_id}: {err}") from None
    total, done = 0.0, False
    getattr(act, "reset", lambda done=None: None)(None)  # a recurrent policy starts fresh
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
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError.from_os_error(Path(path).parent, err) from None
    atomic_write_bytes(Path(path), buf.getvalue())
    return total, len(images)


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


def versions() -> dict[str, str]:
    """Versions of the libraries a run depends on (stored in ``summary.json``).

    Examples:
        >>> "torch" in versions()
        True
    """
    import importlib.metadata as md

    out = {}
    for name in ("torch", "tensordict", "gymnasium", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:  # pragma: no cover
            pass
    return out
