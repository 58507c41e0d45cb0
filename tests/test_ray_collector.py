"""RayCollector on a local Ray instance (2 CPUs, started once for the module).

Worker processes are slow to start on a loaded machine, so most tests share
one two-worker collector (``fleet``); they run in file order, serially
(``make test-ray``: ``-p no:xdist``). The fleet's workers take half a CPU
each, so the instance keeps one CPU free for the other tests' workers (a
worker that cannot get its CPU waits, and an actor call waits with it).

Every test has a hard time limit (pytest-timeout, ``thread`` method: Ray's
blocking calls swallow the ``signal`` method's exception, so only ending the
process turns a stall into a failure).
"""

from __future__ import annotations

import copy
import functools
import os
import signal
import sys
import time

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict

from tdrl.collectors import (
    CollectorError,
    LocalCollector,
    RayCollector,
    WorkerError,
    gym_vector_env,
)
from tdrl.envs.utils import ExplorationType
from tdrl.modules import MLP, QValueActor
from tdrl.recipes.remote import _apex_explorer

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'tdrl[ray]'")
# env factories below are defined in this test module; ship them by value to the workers
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.timeout(120, method="thread")
# the same instance settings as tests/test_ray_train.py: 2 CPUs, no dashboard, small object store
RAY_INIT = {
    "num_cpus": 2,
    "include_dashboard": False,
    "logging_level": "warning",
    "object_store_memory": 200 * 1024**2,
}
ENV2 = functools.partial(gym_vector_env, "CartPole-v1", 2)
GREEDY = ExplorationType.DETERMINISTIC
LOG: list[str] = []


def qnet(seed: int = 0) -> QValueActor:
    torch.manual_seed(seed)
    return QValueActor(
        MLP(in_features=4, out_features=2, num_cells=[16]),
        in_keys=["observation"],
        action_space="categorical",
    )


NET = qnet()


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(**RAY_INIT)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def fleet():
    with RayCollector(
        ENV2,
        NET,
        steps_per_batch=40,
        num_workers=2,
        exploration_type=GREEDY,
        num_cpus_per_worker=0.5,
        log=LOG.append,
    ) as c:
        yield c


def weight_bytes(net) -> int:
    return sum(p.numel() * p.element_size() for p in net.state_dict().values())


@pytest.mark.timeout(240, method="thread")  # includes starting the module's Ray and the fleet
def test_two_workers_equal_one_local_vector_env_of_all_their_envs(fleet):
    # greedy policy: same weights + same env seeds -> the very same trajectories
    batch = next(iter(fleet))
    assert fleet.num_envs == 4 and fleet.frames_per_batch == 160
    assert fleet.timing["bytes_in"] == sum(
        v.numel() * v.element_size() for v in batch.values(True, True)
    )
    assert fleet.timing["bytes_out"] == weight_bytes(NET)  # the first weights, once
    with LocalCollector(
        functools.partial(gym_vector_env, "CartPole-v1", 4),
        NET,
        steps_per_batch=40,
        exploration_type=GREEDY,
    ) as local:
        expected = next(iter(local))
    assert batch.batch_size == torch.Size([40, 4])
    assert set(batch.keys(True, True)) == set(expected.keys(True, True))
    # env data bit for bit; Q-values to float precision (matmuls over 2 vs 4 rows)
    for key in expected.keys(True, True):
        if key in ("action_value", "chosen_action_value"):
            torch.testing.assert_close(batch[key], expected[key])
        else:
            assert torch.equal(batch[key], expected[key]), key


def test_weights_go_out_once_per_update_and_reach_every_worker(fleet):
    it = iter(fleet)
    next(it)
    assert fleet.timing["bytes_out"] == 0  # nothing new, nothing sent
    old = copy.deepcopy(NET)
    last = [m for m in NET.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # make action 1 always best, in the learner's module only
        last.bias.copy_(torch.tensor([-100.0, 100.0]))
    stale = next(it)  # workers still act on their old copy
    with torch.no_grad():
        replay = old(TensorDict(observation=stale["observation"], batch_size=[40, 4]))
    assert torch.equal(stale["action"], replay["action"])
    fleet.update_policy_weights_()
    batch = next(it)
    assert fleet.timing["bytes_out"] == weight_bytes(NET)
    assert (batch["action"] == 1).all()


def test_state_dict_round_trip(fleet):
    it = iter(fleet)
    state = fleet.state_dict()
    expected = next(it)
    fleet.load_state_dict(state)
    assert (next(it) == expected).all()
    with pytest.raises(Exception, match="state saved with 1 workers, this collector has 2"):
        fleet.load_state_dict({"runners": state["runners"][:1], "frames": 0})


@pytest.mark.timeout(240, method="thread")  # a restart is a process start: slow on a loaded machine
def test_sigkilled_worker_is_restarted_and_its_share_redone(fleet):
    it = iter(fleet)
    frames = fleet.frames
    victim = fleet.worker_info()[1]["pid"]
    os.kill(victim, signal.SIGKILL)
    batch = next(it)
    assert batch.batch_size == torch.Size([40, 4])
    assert fleet.frames == frames + 160 and fleet.restarts == 1
    assert fleet.worker_info()[1]["pid"] != victim
    assert (next(it)["next", "reward"] == 1).all()  # and it keeps working
    assert len(LOG) == 1
    assert LOG[0].startswith("collector worker 1: its process died")
    assert "redone (attempt 2/3)" in LOG[0]


def test_policy_wrapper_per_worker_and_prefetch_one_batch_in_flight():
    net = qnet(3)
    # worker 0 acts greedily around its copy, worker 1 uniformly at random (epsilon 1)
    wrapper = functools.partial(_apex_explorer, [0.0, 1.0], 2)
    with RayCollector(ENV2, net, steps_per_batch=40, num_workers=2, num_cpus_per_worker=0.5,
                      policy_wrapper=wrapper, prefetch=True) as c:
        it = iter(c)
        first = next(it)
        with torch.no_grad():
            greedy = net(TensorDict(observation=first["observation"], batch_size=[40, 4]))
        assert torch.equal(first["action"][:, :2], greedy["action"][:, :2])
        assert not torch.equal(first["action"][:, 2:], greedy["action"][:, 2:])
        old = copy.deepcopy(net)
        last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.bias.copy_(torch.tensor([100.0, -100.0]))  # action 0 always best
        c.update_policy_weights_()
        in_flight = next(it)  # started before the update: still the old weights
        with torch.no_grad():
            replay = old(TensorDict(observation=in_flight["observation"], batch_size=[40, 4]))
        assert torch.equal(in_flight["action"][:, :2], replay["action"][:, :2])
        assert c.timing["bytes_out"] == weight_bytes(net)  # out with the next batch's calls
        assert (next(it)["action"][:, :2] == 0).all()
        assert c.timing["bytes_out"] == 0


class _Exploding(gym.Wrapper):
    def step(self, action):
        raise RuntimeError("the simulator exploded")


def _exploding_envs():
    fns = [lambda: _Exploding(gym.make("CartPole-v1"))]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


@pytest.mark.timeout(240, method="thread")  # a restart is a process start: slow on a loaded machine
def test_worker_that_keeps_failing_stops_with_the_env_exception():
    lines = []
    c = RayCollector(
        _exploding_envs, NET, steps_per_batch=3, num_workers=1, max_failures=2, log=lines.append
    )
    handles = list(c.workers)
    with pytest.raises(WorkerError) as info, c:
        next(iter(c))
    assert str(info.value) == (
        "collector worker 0 failed 2 times in a row; last error: "
        "RuntimeError: the simulator exploded"
    )
    assert info.value.worker == 0
    assert len(lines) == 1 and "RuntimeError: the simulator exploded" in lines[0]
    # the with block shut the workers down, but not the Ray session it did not start
    assert c.workers == [] and ray.is_initialized()
    assert _dies_within(handles[0], 60)


def _dies_within(handle, seconds: float) -> bool:
    """Whether the actor stops answering within ``seconds`` (``ray.kill`` lands asynchronously:
    a call sent right after it may still reach the old process)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            ray.get(handle.info.remote(), timeout=seconds)
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.2)
    return False


def test_workers_that_cannot_get_a_cpu_fail_after_the_start_timeout(fleet):
    # the fleet holds 1 of the 2 CPUs: a 2-CPU worker waits for resources that never free up
    with pytest.raises(CollectorError) as info:
        RayCollector(ENV2, NET, steps_per_batch=3, num_workers=1, num_cpus_per_worker=2,
                     start_timeout=3)
    assert str(info.value) == (
        "1 workers x 2 CPU not all started after 3 s; the Ray cluster has 1 of 2 CPUs free "
        "(other actors hold the rest?)"
    )
    deadline = time.monotonic() + 30  # the waiting worker was removed: the free CPU stays free
    while ray.available_resources().get("CPU") != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU") == 1
