"""A replay buffer that keeps each image frame once: stacked Atari observations by reference.

A DQN transition of stacked frames (``uint8 [4, 84, 84]``) holds its
observation and next observation: 8 frames, of which 7 it shares with its
neighbours (the stack shifts by one frame a step). Stored as they come, 100k
transitions take 5.6 GB. :class:`FrameReplay` stores every distinct frame
once, in a ring of ``frames`` slots, and each transition as the ids of its
frames (``4 + 4`` int64); 100k Atari transitions take about 0.9 GB.

Frames are found again by content: each frame of an added observation is
looked up by a 128-bit BLAKE2 digest of its bytes among the frames in the ring;
only unseen frames are written. So nothing depends on the env's frame
stacking, the vector env's order or n-step returns: a transition always gets
back exactly the arrays it was given. A frame whose slot is old is written
again rather than referenced, so a new transition never points at a slot
about to be overwritten. A transition whose oldest frame has been overwritten
(only when episodes are a few steps long: each reset writes new frames) is no
longer sampled: :meth:`FrameReplay.sample` draws among the valid ones.

Examples:
    >>> import torch
    >>> from tensordict import TensorDict
    >>> rb = FrameReplay(capacity=100)
    >>> stack = torch.arange(5 * 4, dtype=torch.uint8).reshape(5, 2, 2)  # 5 frames of 2x2
    >>> batch = TensorDict(observation=torch.stack([stack[0:4], stack[1:5]]),
    ...                    next_observation=torch.stack([stack[1:5], stack[1:5]]),
    ...                    action=torch.tensor([0, 1]), batch_size=[2])
    >>> rb.add(batch)
    >>> len(rb), rb.frames_written  # 2 transitions, 5 distinct frames
    (2, 5)
    >>> out = rb.sample(8)
    >>> out["observation"].shape, out["observation"].dtype
    (torch.Size([8, 4, 2, 2]), torch.uint8)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from tdrl.recipes.replay import ReplayBuffer

__all__ = ["FRAME_KEYS", "FrameReplay", "stores_frames"]

# The keys stored as frame ids; every other key is stored as given.
FRAME_KEYS = ("observation", "next_observation")


def stores_frames(obs_space: Any) -> bool:
    """Whether a replay of ``obs_space`` observations should be a :class:`FrameReplay`.

    Yes for ``uint8 (C, H, W)`` frames of at least 32x32 pixels (Atari's stacks);
    small frames (MinAtar's 10x10 planes) cost less stored as they are.

    Examples:
        >>> import gymnasium as gym
        >>> stores_frames(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))
        True
        >>> stores_frames(gym.spaces.Box(0, 1, (4, 10, 10), np.uint8))
        False
    """
    from tdrl.recipes.trunks import image_layout, obs_kind

    if obs_kind(obs_space) != "image":
        return False
    channels_last, (_, h, w) = image_layout(obs_space.shape)
    return not channels_last and h * w >= 32 * 32


class FrameReplay:
    """Uniform replay of transitions whose observations are stacks of ``uint8`` frames.

    ``capacity`` transitions; ``frames`` frame slots (default ``capacity * 5 // 4 + 64``:
    one new frame per step and a few more at resets). Observations are
    ``[C, H, W]``: the ``C`` planes are the frames. The interface is
    :class:`~tdrl.recipes.replay.ReplayBuffer`'s (``add``, ``sample``,
    ``state_dict``, ``len``); sampled observations come back as ``uint8 [B, C, H, W]``.

    Examples:
        >>> from tensordict import TensorDict
        >>> rb = FrameReplay(capacity=2)
        >>> obs = torch.zeros(1, 4, 3, 3, dtype=torch.uint8)
        >>> rb.add(TensorDict(observation=obs, next_observation=obs + 1, batch_size=[1]))
        >>> rb.frames_written, torch.equal(rb.sample(1)["next_observation"], obs + 1)
        (2, True)
    """

    def __init__(self, capacity: int, device: Any = "cpu", frames: int | None = None) -> None:
        self.transitions = ReplayBuffer(capacity, device)
        self.capacity = capacity
        self.device = torch.device(device)
        self.num_frames = int(frames) if frames is not None else capacity * 5 // 4 + 64
        if self.num_frames <= 0:
            raise ValueError(f"frames must be > 0, got {frames}")
        self.frames: torch.Tensor | None = None  # uint8 [num_frames, H, W], on the first add
        self.frames_written = 0  # frame ids are 0, 1, 2, ...; id i lives in slot i % num_frames
        self._slot_key: list[bytes | None] = [None] * self.num_frames
        self._ids: dict[bytes, int] = {}  # frame digest -> the id of its newest copy

    def __len__(self) -> int:
        return len(self.transitions)

    # -- frames ---------------------------------------------------------------------------
    def _frame_id(self, frame: np.ndarray) -> int:
        """The id of ``frame`` (an unseen or old one is written to the next slot first)."""
        key = hashlib.blake2b(frame.data, digest_size=16).digest()
        found = self._ids.get(key)
        # reuse only frames in the newer half of the ring (an old one will be overwritten soon)
        if found is not None and found >= self.frames_written - self.num_frames // 2:
            return found
        fid = self.frames_written
        slot = fid % self.num_frames
        old = self._slot_key[slot]
        if old is not None and self._ids.get(old) == fid - self.num_frames:
            del self._ids[old]
        self._slot_key[slot] = key
        self._ids[key] = fid
        self.frames[slot] = torch.from_numpy(frame)
        self.frames_written += 1
        return fid

    def _stack_ids(self, stacks: np.ndarray) -> torch.Tensor:
        """``[B, C, H, W]`` frames -> ``int64 [B, C]`` frame ids."""
        ids = [[self._frame_id(plane) for plane in stack] for stack in stacks]
        return torch.tensor(ids, dtype=torch.int64)

    # -- the buffer interface -------------------------------------------------------------
    def add(self, batch: TensorDict | Mapping[str, torch.Tensor]) -> None:
        """Append a batch of transitions (``observation`` / ``next_observation``: ``uint8 [B, C, H, W]``)."""
        missing = [k for k in FRAME_KEYS if k not in batch.keys()]
        if missing:
            raise KeyError(f"FrameReplay needs {list(FRAME_KEYS)}; the batch has {sorted(batch.keys())}")
        rest = {k: v for k, v in batch.items() if k not in FRAME_KEYS}
        arrays = {k: np.ascontiguousarray(torch.as_tensor(batch[k]).cpu().numpy()) for k in FRAME_KEYS}
        for key, value in arrays.items():
            if value.dtype != np.uint8 or value.ndim != 4:
                raise ValueError(
                    f"FrameReplay stores uint8 [batch, C, H, W] frames; {key!r} is "
                    f"{value.dtype} of shape {value.shape}"
                )
        if self.frames is None:
            h, w = arrays["observation"].shape[-2:]
            self.frames = torch.zeros((self.num_frames, h, w), dtype=torch.uint8, device=self.device)
        for key, value in arrays.items():
            rest[f"{key}_ids"] = self._stack_ids(value)
        n = arrays["observation"].shape[0]
        self.transitions.add(TensorDict(rest, batch_size=[n], device=self.device))

    def _valid(self, idx: torch.Tensor) -> torch.Tensor:
        """Whether the transitions at ``idx`` still have all their frames in the ring."""
        storage = self.transitions.storage
        oldest = torch.minimum(storage["observation_ids"][idx].amin(-1),
                               storage["next_observation_ids"][idx].amin(-1))
        return oldest >= self.frames_written - self.num_frames

    def sample(self, batch_size: int) -> TensorDict:
        """``batch_size`` transitions drawn uniformly (with replacement) among the valid ones."""
        size = len(self.transitions)
        if size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        storage = self.transitions.storage
        idx = torch.randint(0, size, (batch_size,))
        for _ in range(100):  # rejection sampling: uniform over the valid transitions
            bad = ~self._valid(idx)
            if not bad.any():
                break
            idx[bad] = torch.randint(0, size, (int(bad.sum()),))
        else:
            raise RuntimeError(
                "FrameReplay: almost no stored transition still has its frames; give it more "
                "frame slots (frames=) for such short episodes"
            )
        out = storage[idx]
        for key in FRAME_KEYS:
            ids = out.pop(f"{key}_ids")
            out[key] = self.frames[ids % self.num_frames]
        return out

    def sample_tensors(self, batch_size: int) -> dict[str, torch.Tensor]:
        """:meth:`sample` as a plain ``{key: tensor}`` dict (the same draw), as
        :meth:`~tdrl.recipes.replay.ReplayBuffer.sample_tensors`."""
        return dict(self.sample(batch_size).items())

    def state_dict(self) -> dict[str, Any]:
        kept = min(self.frames_written, self.num_frames)
        return {
            "transitions": self.transitions.state_dict(),
            "frames": None if self.frames is None else self.frames[:kept].clone(),
            "frames_written": self.frames_written,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.transitions.load_state_dict(state["transitions"])
        self.frames_written = int(state["frames_written"])
        self._slot_key = [None] * self.num_frames
        self._ids = {}
        if state["frames"] is None:
            self.frames = None
            return
        kept = state["frames"]
        self.frames = torch.zeros((self.num_frames, *kept.shape[1:]), dtype=torch.uint8,
                                  device=self.device)
        self.frames[: len(kept)] = kept.to(self.device)
        first = self.frames_written - len(kept)
        for fid in range(first, self.frames_written):  # the index, as it was built
            slot = fid % self.num_frames
            key = hashlib.blake2b(self.frames[slot].cpu().numpy().data, digest_size=16).digest()
            self._slot_key[slot] = key
            self._ids[key] = fid
