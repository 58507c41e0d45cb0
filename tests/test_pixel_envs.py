"""Pixel envs (issue 20): each Atari wrapper on a real ALE game, MinAtar's frames, the extras."""

from __future__ import annotations

import functools
import importlib.util
import pickle
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from tdrl.recipes.atari import (
    ClipReward,
    EpisodicLife,
    FireReset,
    GameScore,
    MaxAndSkip,
    NoopReset,
    ResizeFrame,
    StackFrames,
    import_ale,
    make_atari_env,
)
from tdrl.recipes.config import TrainError
from tdrl.recipes.minatar_env import ChannelsFirst, make_minatar_env
from tdrl.recipes.pixels import make_pixel_env

needs_ale = pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None,
    reason="ale-py not installed: the atari extra, pip install 'tdrl[atari]'",
)
needs_minatar = pytest.mark.skipif(
    importlib.util.find_spec("minatar") is None,
    reason="minatar not installed: the minatar extra, pip install 'tdrl[minatar]'",
)


class Recorder(gym.Wrapper):
    """Records every raw frame, action and reward that passes through (directly above ALE)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.frames: list[np.ndarray] = []
        self.actions: list[int | str] = []
        self.rewards: list[float] = []

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.frames.append(obs)
        self.actions.append("reset")
        return obs, info

    def step(self, action):
        obs, reward, term, trunc, info = self.env.step(action)
        self.frames.append(obs)
        self.actions.append(int(action))
        self.rewards.append(float(reward))
        return obs, reward, term, trunc, info


def raw_ale(game: str = "Breakout", **kwargs: Any) -> Recorder:
    import_ale()
    env = gym.make(f"ALE/{game}-v5", frameskip=1, obs_type="grayscale", **kwargs)
    return Recorder(env)


def layer(env: gym.Env, cls: type) -> Any:
    """The wrapper of type ``cls`` in ``env``'s chain."""
    while not isinstance(env, cls):
        env = env.env
    return env


def chain(env: gym.Env) -> list[str]:
    names = []
    while isinstance(env, gym.Wrapper):
        names.append(type(env).__name__)
        env = env.env
    return names[::-1]


# ----------------------------------------------------------------------------- Atari wrappers
@needs_ale
def test_wrapper_order_train_and_eval():
    inner = ["PassiveEnvChecker", "OrderEnforcing", "PickleGameState", "NoopReset", "MaxAndSkip",
             "GameScore"]  # fmt: skip
    train = chain(make_atari_env("ALE/Breakout-v5"))
    assert train == [*inner, "EpisodicLife", "FireReset", "ClipReward", "ResizeFrame",
                     "StackFrames"]  # fmt: skip
    assert chain(make_atari_env("ALE/Breakout-v5", train=False)) == [
        *inner, "FireReset", "ResizeFrame", "StackFrames"]  # fmt: skip
    # Freeway has no FIRE action: no FireReset
    assert "FireReset" not in chain(make_atari_env("ALE/Freeway-v5"))
    raw = make_atari_env("ALE/Breakout-v5").unwrapped
    assert raw._frameskip == 1 and raw._obs_type == "grayscale"
    assert raw.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)


@needs_ale
def test_max_pool_is_elementwise_max_of_last_two_raw_frames():
    rec = raw_ale()
    env = MaxAndSkip(rec, skip=4)
    env.reset(seed=1)
    env.step(1)  # serve
    rng = np.random.default_rng(0)
    pooled_differs_from_last = 0
    for _ in range(60):
        n = len(rec.frames)
        obs, reward, term, trunc, _ = env.step(int(rng.integers(4)))
        new = rec.frames[n:]
        assert len(new) == 4 or term or trunc
        assert set(rec.actions[n:]) == {rec.actions[-1]}  # the action repeated on every frame
        np.testing.assert_array_equal(obs, np.maximum(new[-2], new[-1]))
        assert reward == sum(rec.rewards[-len(new) :])
        pooled_differs_from_last += int((obs != new[-1]).any())
        if term or trunc:
            break
    assert pooled_differs_from_last > 0  # the ball moves: pooling changes the frame


@needs_ale
def test_noop_starts_are_between_1_and_30_noops():
    rec = raw_ale()
    env = NoopReset(rec, noop_max=30)
    counts = []
    for seed in range(25):
        n = len(rec.actions)
        env.reset(seed=seed)
        after = rec.actions[n:]
        assert after[0] == "reset" and set(after[1:]) == {0}
        assert len(after) - 1 == env.noops
        counts.append(env.noops)
    assert min(counts) >= 1 and max(counts) <= 30 and len(set(counts)) > 5
    # seeded: the same seed gives the same number of no-ops
    env.reset(seed=3)
    assert env.noops == counts[3]


@needs_ale
def test_fire_on_reset_serves_the_ball():
    rec = raw_ale()
    env = FireReset(MaxAndSkip(NoopReset(rec)))
    env.reset(seed=0)
    reset_at = rec.actions.index("reset")
    noops = layer(env, NoopReset).noops
    fired = rec.actions[reset_at + 1 + noops :]
    assert fired == [1] * 4 + [2] * 4  # FIRE then RIGHT, each for 4 frames

    def lives_lost_doing_nothing(fire: bool) -> int:
        e = MaxAndSkip(NoopReset(raw_ale()))
        e = FireReset(e) if fire else e
        _, info = e.reset(seed=0)
        start = info["lives"]
        for _ in range(200):
            _, _, term, _, info = e.step(0)
            if term:
                break
        return start - info["lives"]

    assert lives_lost_doing_nothing(fire=True) >= 1  # the ball was served and missed
    assert lives_lost_doing_nothing(fire=False) == 0  # Breakout waits for FIRE forever


def play_noop(env: gym.Env, steps: int) -> list[tuple[float, bool, bool, dict]]:
    out = []
    for _ in range(steps):
        _, reward, term, trunc, info = env.step(0)
        out.append((reward, term, trunc, info))
        if term or trunc:
            break
    return out


@needs_ale
def test_life_loss_ends_training_episodes_only():
    train = make_atari_env("ALE/Breakout-v5", train=True)
    _, info = train.reset(seed=0)
    assert info["lives"] == 5
    episodes = []
    for i in range(5):
        steps = play_noop(train, 400)
        _, term, trunc, last = steps[-1]
        assert term and not trunc
        episodes.append((last["lives"], "episode_score" in last))
        if i < 4:
            _, info = train.reset()  # continues the game after a life loss
            assert info["lives"] == 4 - i
    # one life per training episode; the game's score only at the real game end
    assert episodes == [(4, False), (3, False), (2, False), (1, False), (0, True)]
    assert layer(train, EpisodicLife).game_over
    _, info = train.reset()
    assert info["lives"] == 5  # a new game

    evaluation = make_atari_env("ALE/Breakout-v5", train=False)
    _, info = evaluation.reset(seed=0)
    steps = play_noop(evaluation, 2000)
    lives = [info["lives"] for *_, info in steps]
    assert [t for _, t, _, _ in steps].count(True) == 1 and steps[-1][1]  # one episode: the game
    assert lives[0] == 5 and lives[-1] == 0 and sorted(set(lives)) == [0, 1, 2, 3, 4, 5]
    assert "episode_score" in steps[-1][3]


@needs_ale
def test_clipped_training_rewards_unclipped_eval_rewards_and_game_score():
    # SpaceInvaders pays 5 to 30 points per alien: clipping is visible at once
    train = make_atari_env("ALE/SpaceInvaders-v5", train=True)
    score = layer(train, GameScore)
    train.reset(seed=0)
    train.action_space.seed(0)
    raw_rewards, clipped = [], []
    for _ in range(300):
        before = score.score
        _, reward, term, trunc, _ = train.step(train.action_space.sample())
        raw_rewards.append(score.score - before)
        clipped.append(reward)
        if term or trunc:
            break
    assert max(raw_rewards) > 1
    np.testing.assert_array_equal(clipped, np.sign(raw_rewards))
    assert set(clipped) <= {0.0, 1.0, -1.0}

    evaluation = make_atari_env("ALE/SpaceInvaders-v5", train=False)
    evaluation.reset(seed=0)
    evaluation.action_space.seed(0)
    total, info, done = 0.0, {}, False
    for _ in range(3000):
        _, reward, term, trunc, info = evaluation.step(evaluation.action_space.sample())
        total += reward
        if term or trunc:
            done = True
            break
    assert done, "a random SpaceInvaders game lasts fewer than 3000 agent steps"
    assert total == info["episode_score"] > 30 and info["episode_steps"] > 0


@needs_ale
def test_clip_reward_wrapper_is_the_sign():
    env = ClipReward(gym.make("Pendulum-v1"))
    assert [env.reward(r) for r in (-7.5, 0.0, 0.2, 30.0)] == [-1.0, 0.0, 1.0, 1.0]


@needs_ale
def test_stacked_frames_shift_and_last_frame_is_the_resized_max_pool():
    rec = raw_ale()
    env = StackFrames(ResizeFrame(MaxAndSkip(FireReset(NoopReset(rec))), 84), 4)
    obs, _ = env.reset(seed=2)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert all((obs[i] == obs[0]).all() for i in range(4))  # reset fills the stack
    np.testing.assert_array_equal(obs[-1], ResizeFrame.resize(rec.frames[-1], 84))
    rng = np.random.default_rng(1)
    for _ in range(40):
        nxt, *_ = env.step(int(rng.integers(4)))
        np.testing.assert_array_equal(nxt[:3], obs[1:])
        pooled = np.maximum(rec.frames[-2], rec.frames[-1])
        np.testing.assert_array_equal(nxt[-1], ResizeFrame.resize(pooled, 84))
        obs = nxt


@needs_ale
@pytest.mark.parametrize("train", [True, False])
def test_uint8_4x84x84_end_to_end_and_vectorized(train):
    envs = gym.vector.SyncVectorEnv(
        [functools.partial(make_atari_env, "ALE/Breakout-v5", train=train) for _ in range(2)]
    )
    assert envs.single_observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    obs, _ = envs.reset(seed=0)
    envs.action_space.seed(0)
    for _ in range(50):
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert envs.single_observation_space.contains(obs[0])
        obs, *_ = envs.step(envs.action_space.sample())
    assert obs.max() > obs.min()  # real frames, not blank
    envs.close()


@needs_ale
def test_game_score_reaches_the_recipes_same_step_vector_env():
    """The recipes' vector env (same-step autoreset) moves the last step's info to final_info."""
    fns = [functools.partial(make_atari_env, "ALE/Breakout-v5", train=True)] * 2
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    envs.reset(seed=0)
    life_ends = 0
    for _ in range(1000):
        _, _, term, _, info = envs.step(np.zeros(2, dtype=np.int64))
        life_ends += int(term.sum())
        final = info.get("final_info", {})
        if final.get("_episode_score", np.zeros(2, bool)).any():
            break
    assert final["_episode_score"].any() and life_ends >= 5  # the game ended after 5 lives
    assert np.all(final["episode_score"][final["_episode_score"]] >= 0)
    assert np.all(final["lives"][final["_episode_score"]] == 0)
    envs.close()


def continues_identically(env: gym.Env, actions: int, steps: int) -> tuple[bool, int]:
    """Pickle ``env`` mid-game; play the copy and the original with the same actions."""
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(30):
        env.step(int(rng.integers(actions)))
    clone = pickle.loads(pickle.dumps(env))
    same, ends = True, 0
    for _ in range(steps):
        a = int(rng.integers(actions))
        x, y = env.step(a), clone.step(a)
        same &= bool((x[0] == y[0]).all()) and x[1:4] == y[1:4]
        if x[2] or x[3]:
            ends += 1
            same &= bool((env.reset()[0] == clone.reset()[0]).all())
    return same, ends


@needs_ale
@pytest.mark.parametrize("train", [True, False])
def test_pickled_atari_env_continues_the_same_game(train):
    same, ends = continues_identically(make_atari_env("ALE/Breakout-v5", train=train), 4, 400)
    assert same and ends >= 1  # through resets too (no-op counts, sticky actions: same RNGs)


@needs_ale
def test_plain_ale_env_does_not_pickle_its_game():
    """Why PickleGameState exists: without it the copy restarts (checks the test can fail)."""
    import_ale()
    raw = gym.make("ALE/Breakout-v5", frameskip=1, obs_type="grayscale")
    same, _ = continues_identically(MaxAndSkip(raw, 4), 4, 100)
    assert not same


@needs_minatar
def test_pickled_minatar_env_continues_the_same_game():
    same, ends = continues_identically(make_minatar_env("MinAtar/Breakout-v1"), 3, 300)
    assert same and ends >= 1


@needs_ale
def test_resize_is_area_average():
    frame = np.arange(210 * 160).reshape(210, 160).astype(np.uint8)
    small = ResizeFrame.resize(frame, 84)
    assert small.shape == (84, 84) and small.dtype == np.uint8
    # an output pixel covers 2.5 x ~1.905 input pixels: for a constant frame it is exact
    np.testing.assert_array_equal(ResizeFrame.resize(np.full((210, 160), 77, np.uint8), 84), 77)
    # integer factor: a plain block mean
    block = np.random.default_rng(0).integers(0, 256, (168, 168)).astype(np.uint8)
    expected = np.rint(block.reshape(84, 2, 84, 2).astype(np.float64).mean(axis=(1, 3)))
    np.testing.assert_array_equal(ResizeFrame.resize(block, 84), expected.astype(np.uint8))


@needs_ale
def test_atari_bad_ids():
    with pytest.raises(TrainError, match="needs an ALE/<Game>-v5 id, got 'Breakout-v5'"):
        make_atari_env("Breakout-v5")
    with pytest.raises(TrainError, match="unknown Atari game 'ALE/NoSuchGame-v5'"):
        make_atari_env("ALE/NoSuchGame-v5")
    with pytest.raises(ValueError, match="FireReset needs action 1 = FIRE"):
        FireReset(gym.make("ALE/Freeway-v5"))


# ----------------------------------------------------------------------------- MinAtar
@needs_minatar
@pytest.mark.parametrize("game", ["Breakout", "SpaceInvaders"])
def test_minatar_frames_are_channels_first_uint8_of_the_state(game):
    env = make_minatar_env(f"MinAtar/{game}-v1")
    state = env.unwrapped.game.state
    obs, _ = env.reset(seed=0)
    c = state().shape[-1]
    assert env.observation_space == gym.spaces.Box(0, 1, (c, 10, 10), np.uint8)
    env.action_space.seed(0)
    seen_objects = 0
    for _ in range(300):
        assert obs.shape == (c, 10, 10) and obs.dtype == np.uint8
        assert obs.flags["C_CONTIGUOUS"] and env.observation_space.contains(obs)
        np.testing.assert_array_equal(obs, np.moveaxis(state(), -1, 0).astype(np.uint8))
        seen_objects += int(obs.sum())
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    assert seen_objects > 0


@needs_minatar
def test_minatar_seeded_and_pixel_dispatch():
    a, b = make_pixel_env("MinAtar/Breakout-v1"), make_minatar_env("MinAtar/Breakout-v1")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    for t in range(100):
        np.testing.assert_array_equal(oa, ob)
        oa, ra, ta, _, _ = a.step(t % 3)
        ob, rb, tb, _, _ = b.step(t % 3)
        assert (ra, ta) == (rb, tb)
        if ta:
            break
    with pytest.raises(TrainError, match="unknown MinAtar game 'MinAtar/Pong-v1'; choose from"):
        make_minatar_env("MinAtar/Pong-v1")


@needs_minatar
def test_minatar_render_is_uint8_rgb_upscaled():
    env = make_minatar_env("MinAtar/Breakout-v1", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    raw = np.asarray(env.unwrapped.render())  # minatar's own: float (10, 10, 3) in [0, 1]
    assert raw.shape == (10, 10, 3) and raw.dtype != np.uint8
    assert frame.shape == (100, 100, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame[::10, ::10], np.rint(raw * 255).astype(np.uint8))
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 1  # objects drawn, not blank


def test_channels_first_refuses_flat_spaces():
    with pytest.raises(ValueError, match=r"needs a \(H, W, C\) Box"):
        ChannelsFirst(gym.make("CartPole-v1"))


# ----------------------------------------------------------------------------- missing extras
@pytest.mark.parametrize(
    ("module", "make", "message"),
    [
        ("ale_py", lambda: make_atari_env("ALE/Breakout-v5"), "pip install 'tdrl[atari]'"),
        ("ale_py", lambda: make_pixel_env("ALE/Pong-v5"), "pip install 'tdrl[atari]'"),
        ("minatar", lambda: make_minatar_env(), "pip install 'tdrl[minatar]'"),
    ],
)
def test_missing_extra_is_a_train_error_with_the_install_command(
    monkeypatch, module, make, message
):
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    if module == "minatar":
        monkeypatch.setitem(sys.modules, "minatar.gym", None)
    with pytest.raises(TrainError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_extras_declared_in_pyproject():
    text = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    extras = text.split("[project.optional-dependencies]")[1].split("\n[")[0].splitlines()
    assert 'atari = ["ale-py>=0.9"]' in extras and 'minatar = ["minatar"]' in extras
