"""The collector interface and the env runner every collector steps its envs with.

A collector turns a policy and a gymnasium vector env into a stream of
rollout batches. Every batch is a :class:`~tensordict.TensorDict` of batch
size ``[T, N]`` (``T = steps_per_batch`` vector steps of ``N`` sub-envs,
time first; a Ray collector concatenates its workers along ``N`` in worker
order) holding:

- ``"observation"``: the observation the policy acted on;
- the keys the policy wrote (``policy_keys``, e.g. ``"action"``,
  ``"sample_log_prob"``, ``"state_value"``);
- ``("next", "observation")``: the observation after the step -- for a
  sub-env whose episode ended it is the episode's *final* observation (the
  next row's ``"observation"`` is then the first one of the new episode);
- ``("next", "reward")`` (float32), ``("next", "terminated")``,
  ``("next", "truncated")`` and ``("next", "done")`` (bool), all ``[T, N]``.

Examples:
    >>> import functools, torch
    >>> from tdrl.collectors import LocalCollector, gym_vector_env
    >>> from tdrl.modules import MLP, QValueActor
    >>> qnet = QValueActor(MLP(in_features=4, out_features=2, num_cells=[8]),
    ...                    in_keys=["observation"], action_space="categorical")
    >>> env_fn = functools.partial(gym_vector_env, "CartPole-v1", 3)
    >>> with LocalCollector(env_fn, qnet, steps_per_batch=5, policy_keys=["action"]) as c:
    ...     batch = next(iter(c))
    >>> batch.batch_size, batch["next", "reward"].dtype, batch["action"].shape
    (torch.Size([5, 3]), torch.float32, torch.Size([5, 3]))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from tdrl.envs.utils import ExplorationType, set_exploration_type

__all__ = [
    "Collector",
    "CollectorError",
    "EnvDataError",
    "EnvRunner",
    "WorkerError",
    "gym_vector_env",
]

NEXT_KEYS = ("observation", "reward", "terminated", "truncated", "done")


class CollectorError(RuntimeError):
    """A collector cannot produce its batch (bad env, bad policy output...).

    Examples:
        >>> issubclass(WorkerError, CollectorError)
        True
    """


class WorkerError(CollectorError):
    """A worker kept failing; ``worker`` is its index, ``cause`` the last exception text.

    Examples:
        >>> err = WorkerError(1, 3, "ValueError: boom")
        >>> str(err)
        'collector worker 1 failed 3 times in a row; last error: ValueError: boom'
    """

    def __init__(self, worker: int, failures: int, cause: str) -> None:
        super().__init__(
            f"collector worker {worker} failed {failures} times in a row; last error: {cause}"
        )
        self.worker, self.failures, self.cause = worker, failures, cause


class EnvDataError(CollectorError):
    """The env returned a NaN or infinite value: its data, not a crash (never retried).

    ``what`` is ``"observation"``, ``"final observation"`` or ``"reward"``; ``worker``
    the runner's worker index, ``env`` the sub-env and ``row`` the batch row
    whose vector step produced the value (``-1``: the observation the batch
    started from, from the previous batch or the reset). A collector fills in
    ``step``, the env step of the whole fleet at which the value came.

    Examples:
        >>> err = EnvDataError("reward", worker=1, env=0, row=4)
        >>> str(err)
        'non-finite reward from the env on collector worker 1 (sub-env 0)'
        >>> err.step = 96; str(err)
        'non-finite reward from the env on collector worker 1 (sub-env 0) at step 96'
    """

    def __init__(self, what: str, worker: int, env: int, row: int) -> None:
        super().__init__(what, worker, env, row)
        self.what, self.worker, self.env, self.row = what, worker, env, row
        self.step: int | None = None

    @property
    def where(self) -> str:
        """What and where, without the step: ``"reward from the env on collector worker 1 ..."``."""
        return f"{self.what} from the env on collector worker {self.worker} (sub-env {self.env})"

    def __str__(self) -> str:
        step = "" if self.step is None else f" at step {self.step:,}"
        return f"non-finite {self.where}{step}"


def _first_non_finite(arrays: dict[str, np.ndarray]) -> tuple[str, int, int] | None:
    """``(key, row, env)`` of the earliest non-finite value (by row) in ``arrays``, or None."""
    found = None
    for key, value in arrays.items():
        bad = ~np.isfinite(value.reshape(value.shape[0], value.shape[1], -1)).all(-1)
        if bad.any():
            row, env = (int(i[0]) for i in np.nonzero(bad))
            if found is None or row < found[1]:
                found = (key, row, env)
    return found


def gym_vector_env(env_id: str, num_envs: int, **make_kwargs: Any) -> Any:
    """A gymnasium ``SyncVectorEnv`` of ``num_envs`` copies of ``env_id`` (same-step autoreset).

    Collectors need same-step autoreset (the final observation of an episode
    comes in ``info["final_obs"]``); pass ``functools.partial(gym_vector_env,
    ...)`` as ``create_env_fn`` so that it pickles for remote workers.

    Examples:
        >>> envs = gym_vector_env("CartPole-v1", 2)
        >>> envs.num_envs, envs.metadata["autoreset_mode"].name
        (2, 'SAME_STEP')
        >>> envs.close()
    """
    import functools

    import gymnasium as gym
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    fns = [functools.partial(gym.make, env_id, **make_kwargs) for _ in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def default_action_to_env(action: torch.Tensor) -> np.ndarray:
    """Policy action tensor -> numpy array for ``envs.step`` (index or continuous actions).

    Examples:
        >>> default_action_to_env(torch.tensor([1, 0]))
        array([1, 0])
    """
    return action.detach().cpu().numpy()


class EnvRunner:
    """Steps one vector env with one policy; the single rollout loop of every collector.

    ``run(steps)`` returns a dict of numpy arrays ``[steps, num_envs, ...]``
    keyed by ``"observation"``, the ``policy_keys`` and ``"next.<key>"``
    (see the module docstring for the layout). The env is reset once:
    sub-env ``j`` of the runner of worker ``worker_index`` gets seed
    ``seed + worker_index * num_envs + j``. A NaN or infinite observation
    (reset, step or final) or reward raises :class:`EnvDataError` naming it
    (checked once per batch; a policy that fails on such an observation gets
    the same error instead of its own).

    Examples:
        >>> import functools
        >>> from tdrl.modules import MLP, QValueActor
        >>> qnet = QValueActor(MLP(in_features=4, out_features=2), in_keys=["observation"],
        ...                    action_space="categorical")
        >>> runner = EnvRunner(functools.partial(gym_vector_env, "CartPole-v1", 2), qnet,
        ...                    policy_keys=["action"], seed=0)
        >>> out = runner.run(3)
        >>> sorted(out), out["next.observation"].shape
        (['action', 'next.done', 'next.observation', 'next.reward', 'next.terminated', 'next.truncated', 'observation'], (3, 2, 4))
        >>> runner.close()
    """

    def __init__(
        self,
        create_env_fn: Callable[[], Any],
        policy: Callable[[TensorDict], TensorDict],
        *,
        policy_keys: Sequence[str] | None = None,
        action_to_env: Callable[[torch.Tensor], np.ndarray] | None = None,
        exploration_type: Any = ExplorationType.RANDOM,
        seed: int | None = 0,
        device: Any = None,
        worker_index: int = 0,
    ) -> None:
        self.envs = create_env_fn()
        mode = getattr(self.envs.metadata.get("autoreset_mode"), "name", None)
        if mode != "SAME_STEP":
            self.envs.close()
            raise CollectorError(
                f"collectors need a vector env with autoreset_mode=SAME_STEP, got {mode}; "
                "build it with tdrl.collectors.gym_vector_env"
            )
        self.policy = policy
        self.policy_keys = None if policy_keys is None else list(policy_keys)
        self.action_to_env = action_to_env or default_action_to_env
        self.exploration_type = exploration_type
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.num_envs = int(self.envs.num_envs)
        self.worker_index = worker_index
        self.reset(seed)

    def reset(self, seed: int | None) -> None:
        """Reset every sub-env (seeds as described above; ``None``: unseeded)."""
        if seed is not None:
            seed = seed + self.worker_index * self.num_envs
        self.obs, _ = self.envs.reset(seed=seed)
        if seed is not None:
            self.envs.action_space.seed(seed)

    @torch.no_grad()
    def run(self, steps: int) -> dict[str, np.ndarray]:
        """``steps`` vector steps under ``exploration_type``; arrays ``[steps, num_envs, ...]``."""
        n = self.num_envs
        rows: dict[str, list[np.ndarray]] = {}

        def put(key: str, value: np.ndarray) -> None:
            rows.setdefault(key, []).append(value)

        with set_exploration_type(self.exploration_type):
            for t in range(steps):
                # uint8 image frames stay uint8 (image networks scale them); the rest float32
                dtype = np.uint8 if np.asarray(self.obs).dtype == np.uint8 else np.float32
                obs_t = torch.as_tensor(np.asarray(self.obs, dtype=dtype), device=self.device)
                try:
                    td = self.policy(TensorDict({"observation": obs_t}, batch_size=[n]))
                except Exception:  # the env's data, or the policy's own failure?
                    self._check({"observation": np.asarray(self.obs)[None]}, first_row=t)
                    raise
                keys = self.policy_keys
                if keys is None:
                    keys = [k for k in td.keys() if k != "observation"]
                    self.policy_keys = keys
                missing = [k for k in keys if k not in td.keys()]
                if missing:
                    raise CollectorError(
                        f"the policy did not write {missing}; it wrote {sorted(td.keys())}"
                    )
                put("observation", np.asarray(self.obs, dtype=dtype))
                for k in keys:
                    put(k, td.get(k).cpu().numpy())
                next_obs, reward, terminated, truncated, info = self.envs.step(
                    self.action_to_env(td.get("action"))
                )
                done = terminated | truncated
                true_next = np.array(next_obs, dtype=dtype)
                if done.any():  # same-step autoreset: the episode's last obs is in info
                    for i in np.flatnonzero(done):
                        true_next[i] = info["final_obs"][i]
                put("next.observation", true_next)
                put("next.reward", np.asarray(reward, dtype=np.float32))
                put("next.terminated", np.asarray(terminated, dtype=bool))
                put("next.truncated", np.asarray(truncated, dtype=bool))
                put("next.done", np.asarray(done, dtype=bool))
                self.obs = next_obs
        out = {k: np.stack(v) for k, v in rows.items()}
        self._check(out)
        return out

    def _check(self, arrays: dict[str, np.ndarray], first_row: int = 0) -> None:
        """Raise :class:`EnvDataError` for the first non-finite env value (one pass per array).

        ``arrays`` hold batch rows from ``first_row`` on. ``"observation"`` row ``t``
        was produced by the step of row ``t - 1`` (-1: before the batch), the
        ``"next.*"`` rows by their own.
        """
        parts = {k: arrays[k] for k in ("observation", "next.observation", "next.reward")
                 if k in arrays}
        found = _first_non_finite(parts)
        if found is None:
            return
        key, row, env = found
        what = {"observation": "observation", "next.reward": "reward"}.get(key)
        if key == "next.observation":
            done = arrays.get("next.done")
            final = done is not None and bool(done[row, env])
            what = "final observation" if final else "observation"
        elif key == "observation":
            row -= 1  # "observation" rows were produced by the step before
        raise EnvDataError(what, self.worker_index, env, first_row + row)

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy) of the vector env and its current observation."""
        import copy

        return copy.deepcopy({"envs": self.envs, "obs": self.obs})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.envs.close()
        self.envs, self.obs = state["envs"], state["obs"]

    def close(self) -> None:
        self.envs.close()


def to_tensordict(arrays: dict[str, np.ndarray], device: Any = None) -> TensorDict:
    """Arrays from :meth:`EnvRunner.run` -> the ``[T, N]`` batch (``"next.x"`` -> ``("next", "x")``).

    Examples:
        >>> td = to_tensordict({"observation": np.zeros((2, 3, 4), np.float32),
        ...                     "next.reward": np.ones((2, 3), np.float32)})
        >>> td.batch_size, td["next", "reward"].sum().item()
        (torch.Size([2, 3]), 6.0)
    """
    first = next(iter(arrays.values()))
    out = TensorDict({}, batch_size=first.shape[:2], device=device)
    for key, value in arrays.items():
        path = tuple(key.split(".")) if key.startswith("next.") else key
        out.set(path, torch.from_numpy(value).to(device) if device else torch.from_numpy(value))
    return out


def nbytes(arrays: Any) -> int:
    """Total bytes of the numpy arrays / tensors in a (nested) dict.

    Examples:
        >>> nbytes({"a": np.zeros(3, np.float32), "b": {"c": torch.zeros(2)}})
        20
    """
    if isinstance(arrays, dict):
        return sum(nbytes(v) for v in arrays.values())
    if isinstance(arrays, torch.Tensor):
        return arrays.numel() * arrays.element_size()
    return int(getattr(arrays, "nbytes", 0))


class Collector:
    """Common interface: iterate batches, ``update_policy_weights_()``, ``shutdown()``.

    Subclasses implement ``_next_batch()``, ``update_policy_weights_()``,
    ``state_dict()``/``load_state_dict()`` and ``shutdown()``, and set
    ``num_envs`` (all sub-envs) and ``steps_per_batch``. Iteration stops once
    ``total_frames`` env steps have been yielded (never when it is ``-1``).
    ``timing`` holds the split of the last batch: ``collect_s`` (env +
    policy time), ``transfer_s`` (everything else before the batch is in the
    learner's hands), ``bytes_in`` (batch) and ``bytes_out`` (weights sent).

    Examples:
        >>> from tdrl.collectors import LocalCollector, RayCollector
        >>> issubclass(LocalCollector, Collector), issubclass(RayCollector, Collector)
        (True, True)
    """

    num_envs: int
    steps_per_batch: int
    total_frames: int = -1

    def __init__(self) -> None:
        self.frames = 0
        self.timing: dict[str, float] = {}

    @property
    def frames_per_batch(self) -> int:
        """Env steps per batch (``steps_per_batch * num_envs``)."""
        return self.steps_per_batch * self.num_envs

    def __iter__(self) -> Iterator[TensorDict]:
        while self.total_frames < 0 or self.frames < self.total_frames:
            start = time.perf_counter()
            batch = self._next_batch()
            self.timing["batch_s"] = time.perf_counter() - start
            self.frames += batch.numel()
            yield batch

    def _next_batch(self) -> TensorDict:  # pragma: no cover - abstract
        raise NotImplementedError

    def update_policy_weights_(self, weights: dict[str, torch.Tensor] | None = None) -> None:
        raise NotImplementedError  # pragma: no cover

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover

    def shutdown(self) -> None:
        raise NotImplementedError  # pragma: no cover

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
