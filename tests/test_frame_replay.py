"""FrameReplay: stacked frames stored once, transitions given back exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tdrl.recipes.frame_replay import FrameReplay, stores_frames
from tdrl.recipes.replay import ReplayBuffer


def _stream(rng: np.random.Generator, steps: int, num_envs: int, episode: int, stack: int = 4):
    """Transitions of stacked 6x6 frames: each env's stack shifts by one fresh frame a step,
    and starts over (its first frame repeated) every ``episode`` steps."""
    def fresh():
        return rng.integers(0, 256, (6, 6), dtype=np.uint8)

    stacks = [np.stack([fresh()] * stack) for _ in range(num_envs)]
    out = []
    for t in range(steps):
        obs = np.stack(stacks)
        nxt = np.stack([np.concatenate([s[1:], fresh()[None]]) for s in stacks])
        out.append((obs, nxt, np.full(num_envs, t)))
        for i in range(num_envs):
            stacks[i] = nxt[i] if (t + 1) % episode else np.stack([fresh()] * stack)
    return out


def _add(rb, obs, nxt, tag):
    rb.add(TensorDict(observation=torch.from_numpy(obs), next_observation=torch.from_numpy(nxt),
                      tag=torch.from_numpy(tag), batch_size=[len(obs)]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 40), num_envs=st.integers(1, 3),
       episode=st.integers(1, 9), capacity=st.integers(4, 60))
def test_samples_are_exactly_added_transitions(seed, steps, num_envs, episode, capacity):
    rng = np.random.default_rng(seed)
    rb = FrameReplay(capacity=capacity)
    added = {}
    for obs, nxt, tag in _stream(rng, steps, num_envs, episode):
        _add(rb, obs, nxt, tag)
        for i in range(num_envs):
            added[(int(tag[i]), obs[i].tobytes())] = nxt[i].tobytes()
    assert len(rb) == min(capacity, steps * num_envs)
    torch.manual_seed(seed)
    out = rb.sample(32)
    assert out["observation"].dtype == torch.uint8
    for o, n, t in zip(out["observation"], out["next_observation"], out["tag"]):
        assert added[(int(t), o.numpy().tobytes())] == n.numpy().tobytes()
    # valid transitions only: every sampled one is among the last `capacity` added
    assert int(out["tag"].min()) >= steps - 1 - (capacity - 1) // num_envs - 1


def test_each_frame_is_stored_once_per_step():
    rng = np.random.default_rng(0)
    rb = FrameReplay(capacity=1000)
    for obs, nxt, tag in _stream(rng, steps=100, num_envs=2, episode=50):
        _add(rb, obs, nxt, tag)
    # per env: 1 reset frame (repeated 4 times in the stack) + 1 new frame per step; 2 episodes
    assert rb.frames_written == 2 * (2 * 1 + 100)


def test_short_ring_never_gives_back_overwritten_frames():
    rng = np.random.default_rng(1)
    rb = FrameReplay(capacity=50, frames=20)  # far too few slots for episodes of 1 step
    stream = _stream(rng, steps=60, num_envs=1, episode=1)
    for obs, nxt, tag in stream:
        _add(rb, obs, nxt, tag)
    truth = {int(t[0]): (o[0].tobytes(), n[0].tobytes()) for o, n, t in stream}
    out = rb.sample(64)
    for o, n, t in zip(out["observation"], out["next_observation"], out["tag"]):
        assert truth[int(t)] == (o.numpy().tobytes(), n.numpy().tobytes())


def test_state_dict_round_trip_samples_the_same():
    rng = np.random.default_rng(2)
    rb = FrameReplay(capacity=30)
    for obs, nxt, tag in _stream(rng, steps=25, num_envs=2, episode=7):
        _add(rb, obs, nxt, tag)
    copy = FrameReplay(capacity=30)
    copy.load_state_dict(rb.state_dict())
    torch.manual_seed(3)
    a = rb.sample(16)
    torch.manual_seed(3)
    b = copy.sample(16)
    assert (a == b).all()
    # and both go on identically: the rebuilt index finds the same frames
    more = _stream(np.random.default_rng(4), steps=5, num_envs=2, episode=7)
    for obs, nxt, tag in more:
        _add(rb, obs, nxt, tag)
        _add(copy, obs, nxt, tag)
    assert rb.frames_written == copy.frames_written


def test_bad_batches_are_refused():
    rb = FrameReplay(capacity=4)
    with pytest.raises(KeyError, match="needs \\['observation', 'next_observation'\\]"):
        rb.add(TensorDict(observation=torch.zeros(1, 4, 2, 2, dtype=torch.uint8), batch_size=[1]))
    with pytest.raises(ValueError, match="uint8 \\[batch, C, H, W\\] frames; 'observation' is float32"):
        rb.add(TensorDict(observation=torch.zeros(1, 4, 2, 2),
                          next_observation=torch.zeros(1, 4, 2, 2), batch_size=[1]))
    with pytest.raises(RuntimeError, match="empty"):
        rb.sample(1)


def test_plain_replay_keeps_uint8():
    rb = ReplayBuffer(capacity=4)
    rb.add(TensorDict(observation=torch.ones(2, 4, 10, 10, dtype=torch.uint8), batch_size=[2]))
    assert rb.storage["observation"].dtype == torch.uint8


def test_which_spaces_store_frames():
    import gymnasium as gym

    assert stores_frames(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))
    assert not stores_frames(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8))
    assert not stores_frames(gym.spaces.Box(0, 255, (84, 84, 3), np.uint8))  # channels last
    assert not stores_frames(gym.spaces.Box(-1, 1, (4,)))
