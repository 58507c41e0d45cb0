"""LocalCollector, EnvRunner and the batch layout (no Ray needed)."""

from __future__ import annotations

import functools
import subprocess
import sys

import gymnasium as gym
import pytest
import torch

from tdrl.collectors import (
    CollectorError,
    EnvRunner,
    LocalCollector,
    RayCollector,
    gym_vector_env,
)
from tdrl.envs.utils import ExplorationType
from tdrl.modules import MLP, QValueActor


def qnet(seed: int = 0) -> QValueActor:
    torch.manual_seed(seed)
    return QValueActor(
        MLP(in_features=4, out_features=2, num_cells=[16]),
        in_keys=["observation"],
        action_space="categorical",
    )


ENV2 = functools.partial(gym_vector_env, "CartPole-v1", 2)


def test_batch_layout_and_final_observations():
    with LocalCollector(ENV2, qnet(), steps_per_batch=60) as c:
        batch = next(iter(c))
    assert batch.batch_size == torch.Size([60, 2])
    assert batch["observation"].dtype == torch.float32
    assert batch["next", "observation"].shape == (60, 2, 4)
    assert batch["action"].dtype == torch.int64
    for key in ("terminated", "truncated", "done"):
        assert batch["next", key].dtype == torch.bool
    assert torch.equal(
        batch["next", "done"], batch["next", "terminated"] | batch["next", "truncated"]
    )
    assert torch.all(batch["next", "reward"] == 1.0)
    done = batch["next", "done"][:-1]
    follows = batch["observation"][1:]
    # without an episode end, the next row starts where this one ended
    assert torch.equal(batch["next", "observation"][:-1][~done], follows[~done])
    # a random CartPole policy ends episodes within 60 steps; the next row is a fresh reset
    assert done.any()
    final = batch["next", "observation"][:-1][done]
    assert not torch.equal(final, follows[done])
    assert (follows[done].abs() <= 0.05).all()  # CartPole resets in [-0.05, 0.05]
    terminal_angle = final[:, 2].abs() > 0.2095
    terminal_pos = final[:, 0].abs() > 2.4
    assert (terminal_angle | terminal_pos).all()  # the true last observation of each episode


def test_total_frames_and_frames_per_batch():
    c = LocalCollector(ENV2, qnet(), steps_per_batch=3, total_frames=13)
    assert c.frames_per_batch == 6
    assert [b.numel() for b in c] == [6, 6, 6]  # the last batch is whole
    assert c.frames == 18
    c.shutdown()


def test_same_seed_same_batches_and_seeds_differ():
    def run(seed: int):
        torch.manual_seed(0)
        with LocalCollector(ENV2, qnet(), steps_per_batch=20, seed=seed) as c:
            return next(iter(c))

    a, b, other = run(3), run(3), run(4)
    assert (a == b).all()
    assert not torch.equal(a["observation"][0], other["observation"][0])


def test_policy_keys_selects_and_missing_key_is_named():
    with LocalCollector(ENV2, qnet(), steps_per_batch=2, policy_keys=["action"]) as c:
        batch = next(iter(c))
    assert sorted(k for k in batch.keys() if k != "next") == ["action", "observation"]
    with pytest.raises(CollectorError, match=r"did not write \['logits'\]; it wrote \["):
        LocalCollector(ENV2, qnet(), steps_per_batch=2, policy_keys=["logits"]).runner.run(1)


def test_update_policy_weights_loads_given_weights():
    learner, copy_ = qnet(0), qnet(1)
    with LocalCollector(ENV2, copy_, steps_per_batch=2) as c:
        c.update_policy_weights_(learner.state_dict())
    for a, b in zip(learner.parameters(), copy_.parameters()):
        assert torch.equal(a, b)


def test_deterministic_exploration_is_greedy():
    net = qnet()
    with LocalCollector(
        ENV2, net, steps_per_batch=5, exploration_type=ExplorationType.DETERMINISTIC
    ) as c:
        batch = next(iter(c))
    assert torch.equal(batch["action"], batch["action_value"].argmax(-1))


def test_vector_env_without_same_step_autoreset_is_refused():
    def next_step_env():
        return gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])

    with pytest.raises(CollectorError, match="autoreset_mode=SAME_STEP, got NEXT_STEP"):
        EnvRunner(next_step_env, qnet())


def test_bad_steps_per_batch():
    with pytest.raises(ValueError, match="steps_per_batch must be > 0, got 0"):
        LocalCollector(ENV2, qnet(), steps_per_batch=0)


def test_state_dict_resumes_the_same_episodes():
    c = LocalCollector(ENV2, qnet(), steps_per_batch=7)
    it = iter(c)
    next(it)
    state = c.state_dict()
    torch.manual_seed(5)
    expected = next(it)
    c.load_state_dict(state)
    torch.manual_seed(5)
    again = next(iter(c))
    assert (expected == again).all()
    c.shutdown()


def test_import_tdrl_and_collectors_never_import_ray():
    code = (
        "import sys, tdrl, tdrl.collectors, tdrl.recipes, tdrl.cli; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ray_collector_without_ray_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(
        CollectorError, match=r"needs Ray; install it with: pip install 'tdrl\[ray\]'"
    ):
        RayCollector(ENV2, qnet(), steps_per_batch=2, num_workers=1)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_cli_workers_without_ray_names_the_install_command(algo, tmp_path, monkeypatch, capsys):
    from tdrl.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    out = tmp_path / "run"
    assert main(["train", algo, "--workers", "2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "distributed collection needs Ray; install it with: pip install 'tdrl[ray]'" in err
    assert not out.exists()  # refused before anything is written


def test_cli_bad_workers_flags(tmp_path, capsys):
    from tdrl.cli import main

    assert main(["train", "ppo", "--workers", "-1", "--out", str(tmp_path / "a")]) == 2
    assert "--workers must be >= 0, got -1" in capsys.readouterr().err
    assert main(["train", "ppo", "--ray-address", "auto", "--out", str(tmp_path / "b")]) == 2
    assert "--ray-address needs --workers N (N >= 1)" in capsys.readouterr().err
    argv = ["train", "dqn", "--workers", "2", "--sync-every", "0", "--out", str(tmp_path / "c")]
    assert main(argv) == 2
    assert "--sync-every must be > 0, got 0" in capsys.readouterr().err


def test_apex_epsilons_and_the_dqn_help(capsys):
    from tdrl.cli import main
    from tdrl.recipes.remote import apex_epsilons

    eps = apex_epsilons(8)
    assert eps[0] == pytest.approx(0.4) and eps[-1] == pytest.approx(0.4**8)
    assert eps == sorted(eps, reverse=True)
    with pytest.raises(ValueError, match="Ape-X epsilons need >= 2 workers, got 1"):
        apex_epsilons(1)
    with pytest.raises(SystemExit):
        main(["train", "dqn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "N >= 2: Ape-X's 0.4 ** (1 + 7 i / (N - 1))" in text
    assert "Resuming such a run is not bit-exact" in text
    assert "--sync-every N with --workers: push the Q-network to the workers every N" in text


# -- a NaN / inf from the env is its data: EnvDataError naming what, worker, sub-env, row --------
@pytest.mark.parametrize("steps", [40, 64])  # 40: the end-of-batch check; 64: the policy fails first
@pytest.mark.parametrize("env_id, what", [("NAN_OBS", "observation"), ("INF_REWARD", "reward")])
def test_non_finite_env_values_raise_env_data_error(env_id, what, steps):
    import ray_nan_envs

    from tdrl.collectors import EnvDataError

    env_fn = functools.partial(gym_vector_env, getattr(ray_nan_envs, env_id), 2)
    with LocalCollector(env_fn, qnet(), steps_per_batch=steps, policy_keys=["action"]) as c:
        with pytest.raises(EnvDataError) as info:
            next(iter(c))
    err = info.value
    # every sub-env turns bad on its 40th step: batch row 39, sub-env 0 found first
    assert (err.worker, err.env, err.row, err.step) == (0, 0, ray_nan_envs.AT - 1, None)
    assert err.what in ((what, "final observation") if what == "observation" else (what,))
    assert str(err) == f"non-finite {err.what} from the env on collector worker 0 (sub-env 0)"


def test_a_policy_failure_on_finite_observations_stays_the_policy_s():
    def broken(td):
        raise ValueError("the policy's own bug")

    runner = EnvRunner(ENV2, broken, policy_keys=["action"], seed=0)
    with pytest.raises(ValueError, match="the policy's own bug"):
        runner.run(3)
    runner.close()
