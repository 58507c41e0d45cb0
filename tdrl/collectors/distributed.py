"""A Ray collector: one actor per worker, each with its own vector env and policy copy.

Needs the ``ray`` extra (``pip install 'tdrl[ray]'``); ray is imported when a
:class:`RayCollector` is built, never by ``import tdrl.collectors``.

Per batch, the learner sends each worker one ``collect`` call; a worker
whose weights are older than the learner's loads the new ones first. The
weights go into Ray's object store once per :meth:`RayCollector.update_policy_weights_`
(one ``ray.put``), and every worker reads that one object. The workers'
``[T, N_w]`` arrays come back as numpy (zero-copy out of the object store)
and are concatenated along the env dimension in worker order.

Faults: a worker whose process dies is restarted by Ray (fresh env, seeds
shifted by the restart count) and its share of the batch is redone; a worker whose code
raises (e.g. the env) is killed, restarted and retried the same way. After
``max_failures`` failures in a row of one worker, :class:`WorkerError`
names the worker and its last error. A NaN or infinite value from an env is
its data, not a crash: :class:`~tdrl.collectors.base.EnvDataError` (worker,
sub-env, fleet env step) at once, never retried. Every wait on Ray has a
timeout and returns to Python at least once a second, so signal handlers run.

Examples:
    >>> import functools
    >>> from tdrl.collectors import RayCollector, gym_vector_env
    >>> from tdrl.modules import MLP, QValueActor
    >>> qnet = QValueActor(MLP(in_features=4, out_features=2), in_keys=["observation"],
    ...                    action_space="categorical")
    >>> with RayCollector(functools.partial(gym_vector_env, "CartPole-v1", 2), qnet,
    ...                   steps_per_batch=4, num_workers=2,
    ...                   policy_keys=["action"]) as c:  # doctest: +SKIP
    ...     batch = next(iter(c))
    >>> batch.batch_size  # doctest: +SKIP
    torch.Size([4, 4])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from tdrl.collectors.base import (
    Collector,
    CollectorError,
    EnvDataError,
    WorkerError,
    nbytes,
    to_tensordict,
)
from tdrl.collectors.ray_setup import check_ray_address, import_ray, init_ray
from tdrl.collectors.ray_worker import RolloutWorker, weights_to_numpy
from tdrl.envs.utils import ExplorationType

__all__ = ["RayCollector", "check_ray_address", "import_ray", "init_ray"]

_log = logging.getLogger("tdrl.collectors")


class RayCollector(Collector):
    """Collect ``[steps_per_batch, num_workers * envs_per_worker]`` batches on Ray actors.

    Same interface and batch layout as :class:`~tdrl.collectors.LocalCollector`.
    ``create_env_fn`` and ``policy`` must pickle (``functools.partial`` of
    :func:`~tdrl.collectors.gym_vector_env`; any tdrl module). Worker ``i``
    resets its envs with ``seed + i * envs_per_worker`` (so the fleet's
    sub-envs get ``seed, seed + 1, ...`` like one big local vector env) and
    seeds its own torch RNG from ``seed`` and ``i``: same seed, same worker
    count, same batches. ``log`` receives one line per worker failure.
    Workers that are not all up after ``start_timeout`` seconds (e.g. the
    cluster has no free CPU for them) raise :class:`CollectorError`, and so
    does a batch or a state that takes longer than ``call_timeout`` seconds.
    A worker that dies while :meth:`state_dict` asks for its state is waited
    for (restarted, reseeded) and asked again, as in a batch.

    ``policy_wrapper(worker_index, policy_copy)`` (picklable, e.g. a
    ``functools.partial``) builds the module a worker acts with around its
    copy -- e.g. its own epsilon-greedy exploration; weights still load into
    the copy. ``prefetch=True`` keeps one batch in flight: as soon as a batch
    is in, the workers start the next one (with the weights current then), so
    collection overlaps the learner's update and every batch is one update
    staler than without prefetch.

    Ray is reused when already initialized, else started locally (or joined at
    ``ray_address``) and shut down again by :meth:`shutdown`.

    Examples:
        >>> RayCollector.frames_per_batch.__doc__
        'Env steps per batch (``steps_per_batch * num_envs``).'
    """

    def __init__(
        self,
        create_env_fn: Callable[[], Any],
        policy: Any,
        steps_per_batch: int,
        *,
        num_workers: int,
        total_frames: int = -1,
        policy_keys: Sequence[str] | None = None,
        action_to_env: Callable[[torch.Tensor], np.ndarray] | None = None,
        exploration_type: Any = ExplorationType.RANDOM,
        seed: int = 0,
        ray_address: str | None = None,
        num_cpus_per_worker: float = 1.0,
        max_failures: int = 3,
        start_timeout: float = 300.0,
        call_timeout: float = 3600.0,
        policy_wrapper: Callable[[int, Any], Any] | None = None,
        prefetch: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        if num_workers <= 0:
            raise ValueError(f"num_workers must be > 0, got {num_workers}")
        if steps_per_batch <= 0:
            raise ValueError(f"steps_per_batch must be > 0, got {steps_per_batch}")
        ray = import_ray()
        self._ray = ray
        self.policy = policy
        self.steps_per_batch = int(steps_per_batch)
        self.total_frames = int(total_frames)
        self.num_workers = int(num_workers)
        self.max_failures = int(max_failures)
        self.call_timeout = float(call_timeout)
        self.log = log or _log.warning
        self.restarts = 0
        self.prefetch = bool(prefetch)
        self._in_flight: dict[Any, int] = {}
        self._cpus_per_worker = num_cpus_per_worker
        self.workers: list[Any] = []
        self._owns_ray = init_ray(ray_address)
        try:
            cpus = ray.cluster_resources().get("CPU", 0)
            if self._owns_ray and not ray_address and num_workers * num_cpus_per_worker > cpus:
                raise CollectorError(
                    f"{num_workers} workers x {num_cpus_per_worker} CPU need more than the "
                    f"{cpus:g} CPUs of the local Ray instance; use fewer workers or a cluster "
                    "(ray_address)"
                )
            actor = ray.remote(num_cpus=num_cpus_per_worker, max_restarts=-1, max_task_retries=0)(
                RolloutWorker
            )
            runner_kwargs = {
                "policy_keys": policy_keys,
                "action_to_env": action_to_env,
                "exploration_type": exploration_type,
            }
            # kept alive: Ray re-runs __init__ with the same arguments when it restarts a worker
            self._policy_ref = ray.put(_cpu_copy(policy))
            self.workers = [
                actor.remote(
                    i, create_env_fn, self._policy_ref, runner_kwargs, seed, policy_wrapper
                )
                for i in range(num_workers)
            ]
            per_worker = {info["num_envs"] for info in self._started(start_timeout)}
            if len(per_worker) != 1:
                raise CollectorError(f"workers built different env counts: {sorted(per_worker)}")
            per_worker = per_worker.pop()
            self.num_envs = per_worker * num_workers
            self._version = -1
            self._weights: list[Any] = [None]
            self._new_weights = False
            self.update_policy_weights_()
        except BaseException:
            self.shutdown()
            raise

    def _started(self, timeout: float) -> list[dict[str, Any]]:
        """The workers' info once they are up; a clear error instead of waiting forever."""
        ray = self._ray
        try:
            return self._get([w.info.remote() for w in self.workers], timeout)
        except TimeoutError:
            free = ray.available_resources().get("CPU", 0.0)
            total = ray.cluster_resources().get("CPU", 0.0)
            raise CollectorError(
                f"{self.num_workers} workers x {self._cpus_per_worker:g} CPU not all started "
                f"after {timeout:g} s; the Ray cluster has {free:g} of {total:g} CPUs free "
                "(other actors hold the rest?)"
            ) from None

    def _wait(self, refs: list[Any], timeout: float) -> None:
        """Wait until every ref is done (or failed), in slices of at most 1 s.

        Between slices Python runs its signal handlers. Raises ``TimeoutError``
        (``ray.exceptions.GetTimeoutError`` is one) after ``timeout`` seconds.
        """
        ray = self._ray
        deadline = time.monotonic() + timeout
        pending = list(refs)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ray.exceptions.GetTimeoutError(
                    f"{len(pending)} of {len(refs)} Ray calls not done after {timeout:g} s"
                )
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=min(1.0, left))

    def _get(self, refs: list[Any], timeout: float) -> list[Any]:
        """``ray.get(refs)`` after :meth:`_wait` (so: a timeout, and signals are honoured)."""
        self._wait(refs, timeout)
        return self._ray.get(list(refs))

    def worker_info(self) -> list[dict[str, Any]]:
        """``{"pid", "node", "num_envs"}`` of each worker (e.g. to find a worker's process)."""
        try:
            return self._get([w.info.remote() for w in self.workers], self.call_timeout)
        except TimeoutError as err:
            raise CollectorError(f"workers did not answer: {err}") from None

    def update_policy_weights_(self, weights: dict[str, torch.Tensor] | None = None) -> None:
        """Put the policy's (or ``weights``) state in the object store once; workers load it."""
        state = (
            weights_to_numpy(self.policy)
            if weights is None
            else {k: v.detach().cpu().numpy() for k, v in weights.items()}
        )
        self._weights = [self._ray.put(state)]
        self._weights_bytes = nbytes(state)
        self._version += 1
        self._new_weights = True

    def _submit(self, i: int) -> Any:
        return self.workers[i].collect.remote(self.steps_per_batch, self._weights, self._version)

    def _next_batch(self) -> TensorDict:
        ray = self._ray
        start = time.perf_counter()
        pending = self._in_flight or {self._submit(i): i for i in range(self.num_workers)}
        self._in_flight = {}
        results: list[Any] = [None] * self.num_workers
        failures = [0] * self.num_workers
        deadline = start + self.call_timeout
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            if not ready:  # back in Python once a second: signal handlers run
                if time.perf_counter() > deadline:
                    workers = sorted(pending.values())
                    raise CollectorError(
                        f"collector workers {workers} sent no batch within {self.call_timeout:g} s"
                    )
                continue
            ref = ready[0]
            i = pending.pop(ref)
            old_pid = None
            try:
                results[i] = ray.get(ref)
                continue
            except ray.exceptions.RayActorError as err:
                what = f"its process died ({_first_line(err)})"
            except ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None) or err
                if isinstance(cause, EnvDataError):  # the env's data: no restart fixes it
                    self._in_flight = {}
                    cause.step = self.frames + (cause.row + 1) * self.num_envs
                    raise cause from None
                what = f"{type(cause).__name__}: {_first_line(cause)}"
                if failures[i] + 1 < self.max_failures:
                    # fresh process and env; the kill lands asynchronously, so remember which
                    # process to wait out (a call sent now may still reach the old one)
                    old_pid = self._pid(i)
                    ray.kill(self.workers[i], no_restart=False)
            failures[i] += 1
            if failures[i] >= self.max_failures:
                raise WorkerError(i, failures[i], what)
            self.restarts += 1
            self.log(
                f"collector worker {i}: {what}; Ray restarts it and its share of the batch "
                f"({self.steps_per_batch * self.num_envs // self.num_workers} env steps) is "
                f"redone (attempt {failures[i] + 1}/{self.max_failures})"
            )
            self._wait_restarted(i, failures[i], what, old_pid)
            pending[self._submit(i)] = i
        if self.prefetch:  # the next batch is collected while the learner uses this one
            self._in_flight = {self._submit(i): i for i in range(self.num_workers)}
        wall = time.perf_counter() - start
        parts = [r[0] for r in results]
        collect_s = max(r[1] for r in results)
        batch = to_tensordict({k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]})
        self.timing.update(
            collect_s=collect_s,
            # (prefetch: the batch may have been ready before this call, so clamp at 0)
            transfer_s=max(0.0, time.perf_counter() - start - collect_s),
            bytes_in=sum(nbytes(p) for p in parts),
            bytes_out=self._weights_bytes if self._new_weights else 0,
            wall_s=wall,
        )
        self._new_weights = False
        return batch

    def _pid(self, i: int, timeout: float = 60.0) -> int | None:
        """Worker ``i``'s process id (None if it does not answer in ``timeout`` s)."""
        ray = self._ray
        try:
            return self._get([self.workers[i].info.remote()], timeout)[0]["pid"]
        except (ray.exceptions.RayError, TimeoutError):
            return None

    def _wait_restarted(
        self, i: int, failures: int, what: str, old_pid: int | None, timeout: float = 300.0
    ) -> None:
        """Reseed worker ``i`` once it is back: a process other than ``old_pid`` answers."""
        ray = self._ray
        deadline = time.monotonic() + timeout
        while True:
            try:
                left = max(deadline - time.monotonic(), 0.1)
                pid = self._get([self.workers[i].reseed.remote(self.restarts)], left)[0]
                if pid != old_pid:
                    return
                # the call reached the old process before the kill landed: ask again
            except (ray.exceptions.ActorUnavailableError, TimeoutError):  # still restarting
                pass
            except ray.exceptions.RayActorError as err:  # dead for good (e.g. __init__ raised)
                raise WorkerError(i, failures + 1, f"cannot restart: {_first_line(err)}") from None
            if time.monotonic() > deadline:
                raise WorkerError(i, failures, f"{what}; not back after {timeout:g} s")
            time.sleep(0.2)

    def state_dict(self) -> dict[str, Any]:
        """Each worker's vector env, observation and torch RNG (to resume exactly).

        With ``prefetch`` the state is taken after the batch in flight, which a
        run resumed from it never receives.
        """
        ray = self._ray
        refs = [w.state_dict.remote() for w in self.workers]
        try:
            self._wait(refs, self.call_timeout)
        except TimeoutError:
            raise CollectorError(
                f"collector workers sent no state within {self.call_timeout:g} s"
            ) from None
        runners = []
        for i, ref in enumerate(refs):
            failures = 0
            while True:
                try:
                    runners.append(ray.get(ref))
                    break
                except ray.exceptions.RayError as err:  # died (or restarting) meanwhile
                    failures += 1
                    what = f"its process died while saving its state ({_first_line(err)})"
                    if failures >= self.max_failures:
                        raise WorkerError(i, failures, what) from None
                    self.restarts += 1
                    self.log(
                        f"collector worker {i}: {what}; Ray restarts it and its fresh state is "
                        f"saved (attempt {failures + 1}/{self.max_failures})"
                    )
                    self._wait_restarted(i, failures, what, None)
                    ref = self.workers[i].state_dict.remote()
                    try:
                        self._wait([ref], self.call_timeout)
                    except TimeoutError:
                        raise WorkerError(i, failures, f"{what}; no state after restart") from None
        return {"runners": runners, "frames": self.frames}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        runners = state["runners"]
        if len(runners) != self.num_workers:
            raise CollectorError(
                f"state saved with {len(runners)} workers, this collector has {self.num_workers}"
            )
        self._drop_in_flight()
        refs = [w.load_state_dict.remote(s) for w, s in zip(self.workers, runners)]
        try:
            self._get(refs, self.call_timeout)
        except TimeoutError:
            raise CollectorError(
                f"collector workers did not load their state within {self.call_timeout:g} s"
            ) from None
        self.frames = int(state["frames"])

    def _drop_in_flight(self) -> None:
        """Wait for (and discard) a prefetched batch, so the workers' state is final."""
        if self._in_flight:
            refs, self._in_flight = list(self._in_flight), {}
            try:
                self._get(refs, self.call_timeout)
            except (TimeoutError, self._ray.exceptions.RayError):
                pass  # discarded anyway; a dead worker is handled by the next call

    def shutdown(self) -> None:
        """Kill the workers; shut Ray down if this collector started it."""
        ray = self._ray
        self._in_flight = {}
        for w in self.workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:  # already gone  # noqa: BLE001
                pass
        self.workers = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False


def _cpu_copy(policy: Any) -> Any:
    import copy

    return copy.deepcopy(policy).to("cpu")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
