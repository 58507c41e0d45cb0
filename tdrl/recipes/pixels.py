"""Which pixel-env family an id belongs to, and one factory for both (Atari, MinAtar).

``ALE/<Game>-v5`` ids go to :func:`~tdrl.recipes.atari.make_atari_env` (the
standard preprocessing; ``train=False`` for full, unclipped games) and
``MinAtar/<Game>-v0|v1`` ids to :func:`~tdrl.recipes.minatar_env.make_minatar_env`.
Both give ``uint8`` channels-first observations: ``(4, 84, 84)`` and ``(C, 10, 10)``.

Examples:
    >>> pixel_family("ALE/Breakout-v5"), pixel_family("MinAtar/Breakout-v1"), pixel_family("CartPole-v1")
    ('atari', 'minatar', None)
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_pixel_env", "pixel_family", "reports_game_score"]


def pixel_family(env_id: str) -> str | None:
    """``"atari"`` for ``ALE/...`` ids, ``"minatar"`` for ``MinAtar/...`` ids, else ``None``.

    Examples:
        >>> pixel_family("ALE/Pong-v5")
        'atari'
    """
    if env_id.startswith("ALE/"):
        return "atari"
    if env_id.startswith("MinAtar/"):
        return "minatar"
    return None


def reports_game_score(env_id: str) -> bool:
    """Whether training episodes differ from games (Atari: lives, clipped rewards), so the
    training statistics read the game score from ``info["final_info"]["episode_score"]``.

    Examples:
        >>> reports_game_score("ALE/Breakout-v5"), reports_game_score("MinAtar/Breakout-v1")
        (True, False)
    """
    return pixel_family(env_id) == "atari"


def make_pixel_env(env_id: str, *, train: bool = True, **kwargs: Any) -> Any:
    """One preprocessed pixel env for ``env_id`` (raises ``TrainError`` for other ids).

    ``train`` only matters for Atari (life loss ends episodes and rewards are
    clipped when True); MinAtar's training and evaluation envs are the same.

    Examples:
        >>> import pytest; _ = pytest.importorskip("minatar", reason="the minatar extra")
        >>> make_pixel_env("MinAtar/Freeway-v1", train=False).observation_space.shape
        (7, 10, 10)
        >>> make_pixel_env("CartPole-v1")
        Traceback (most recent call last):
        ...
        tdrl.recipes.config.TrainError: 'CartPole-v1' is not a pixel env id (ALE/<Game>-v5 or MinAtar/<Game>-v1)
    """
    from tdrl.recipes.config import TrainError

    family = pixel_family(env_id)
    if family == "atari":
        from tdrl.recipes.atari import make_atari_env

        return make_atari_env(env_id, train=train, **kwargs)
    if family == "minatar":
        from tdrl.recipes.minatar_env import make_minatar_env

        return make_minatar_env(env_id, **kwargs)
    raise TrainError(f"{env_id!r} is not a pixel env id (ALE/<Game>-v5 or MinAtar/<Game>-v1)")
