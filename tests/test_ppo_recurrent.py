"""PPO with a recurrent trunk (--recurrent lstm|gru): config checks, the memory carried in collection,
sequence replay in the update, resume, eval and export round trips."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import QUIET, crash_run, metrics_rows, summary

from tdrl.cli import main
from tdrl.modules import set_recurrent_mode
from tdrl.recipes import get_recipe
from tdrl.recipes.config import TrainError
from tdrl.recipes.envs import EnvInfo
from tdrl.recipes.memory import NoMemory, PolicyAct, RecurrentMemory, make_memory
from tdrl.recipes.ppo import PPO, PPOConfig, build_agent
from tdrl.recipes.runfiles import load_checkpoint
from tdrl.recipes.trunks import build_trunk, trunk_module

TINY = ["--env", "CartPoleNoVel-v1", "--total-steps", "2048", "--checkpoint-every", "512",
        "--num-envs", "4", "--n-steps", "32", "--batch-size", "64", "--rnn-seq-len", "16",
        "--epochs", "2", "--rnn-hidden", "16", "--hidden", "16", "--eval-episodes", "3",
        *QUIET]


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("kwargs, message", [
    ({"recurrent": "rnn"}, "invalid --recurrent 'rnn'; valid choices: '' (none), lstm, gru"),
    ({"recurrent": "lstm", "rnn_hidden": 0}, "--rnn-hidden must be > 0, got 0"),
    ({"recurrent": "gru", "rnn_seq_len": -1}, "--rnn-seq-len must be >= 0"),
    ({"recurrent": "lstm", "rnn_seq_len": 5}, "--rnn-seq-len 5 must divide --n-steps 32"),
    ({"recurrent": "lstm", "rnn_seq_len": 16, "batch_size": 40},
     "--batch-size 40 must be a multiple of the sequence length 16"),
    ({"recurrent": "lstm", "batch_size": 64, "n_steps": 128},
     "--batch-size 64 must be a multiple of the sequence length 128"),
    ({"recurrent": "lstm", "workers": 2}, "--recurrent does not run with --workers"),
    ({"recurrent": "gru", "module": "pkg.mod:factory"}, "--recurrent builds the recipe's own"),
])
def test_config_refuses_bad_recurrent_options(kwargs, message):
    with pytest.raises(TrainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PPOConfig(**kwargs).validate()


def test_api_refuses_before_writing(tmp_path):
    import tdrl

    out = tmp_path / "run"
    with pytest.raises(TrainError, match="must be one of , lstm, gru, got 'transformer'"):
        tdrl.train("ppo", env="CartPoleNoVel-v1", recurrent="transformer", out=out, log=None)
    with pytest.raises(TrainError, match="--workers"):
        tdrl.train("ppo", env="CartPoleNoVel-v1", recurrent="lstm", workers=2, out=out, log=None)
    assert not out.exists()


def test_feed_forward_agent_has_no_memory():
    cfg = PPOConfig(total_steps=256, epochs=1)
    algo = PPO(cfg, EnvInfo(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2), None))
    try:
        assert isinstance(algo.memory, NoMemory)
        assert algo.memory.keys == ()
        assert algo.state_dict()["memory"] == {}
        batch = algo.collect()
        assert set(batch.keys()) == {"observation", "action", "sample_log_prob", "state_value",
                                     "advantage", "value_target"}
    finally:
        algo.close()


# ----------------------------------------------------------------------------- memory
def test_minibatches_are_whole_sequences_covering_the_rollout_once():
    from tdrl.modules import GRUModule

    memory = RecurrentMemory([GRUModule(2, 3, in_key="x", out_key="y")], seq_len=4)
    torch.manual_seed(0)
    batches = memory.minibatches(n_steps=8, n_envs=3, batch_size=8, device="cpu")
    assert [tuple(b.shape) for b in batches] == [(2, 4), (2, 4), (2, 4)]
    flat = torch.cat([b.reshape(-1) for b in batches])
    assert sorted(flat.tolist()) == list(range(24))
    for seq in torch.cat(batches):  # one env, consecutive steps (time-major: stride n_envs)
        assert (seq.diff() == 3).all() and seq[0] % 3 == seq[-1] % 3
    assert memory.minibatches(8, 3, 24, "cpu")[0].shape == (6, 4)  # batch covers the rollout


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_replay_of_chunks_matches_the_collected_steps(kind):
    """Step-by-step collection with episode resets, then replay of 3-step chunks from the stored
    state at each chunk start: the trunk's outputs are those of collection."""
    torch.manual_seed(0)
    body = build_trunk(gym.spaces.Box(-1, 1, (2,)), hidden=(5,), activation="tanh")
    trunk, _ = trunk_module(body, "observation", "hidden", recurrent=kind, rnn_hidden=4)
    memory = make_memory(trunk, seq_len=3)
    n_steps, n_envs = 6, 3
    done = np.zeros((n_steps, n_envs), dtype=bool)
    done[1, 0] = done[3, 1] = done[4, 1] = True  # episodes end mid-chunk and at a chunk end
    obs = torch.randn(n_steps, n_envs, 2)
    stored, hidden = {k: [] for k in memory.keys}, []
    with torch.no_grad():
        for t in range(n_steps):
            td = trunk(memory.inputs(obs[t]))
            for k in memory.keys:
                stored[k].append(td.get(k))
            hidden.append(td.get("hidden"))
            memory.advance(td, done[t])
    from tensordict import TensorDict

    flat = TensorDict({k: torch.stack(v) for k, v in stored.items()},
                      batch_size=[n_steps, n_envs]).reshape(-1)
    flat["observation"] = obs.reshape(-1, 2)
    expected = torch.stack(hidden).reshape(n_steps * n_envs, -1)
    # is_init follows the ends: True at step 0 and after each done
    assert flat["is_init"].view(n_steps, n_envs)[2, 0] and flat["is_init"].view(n_steps, n_envs)[5, 1]
    idx = memory.whole(n_steps, n_envs, "cpu")
    with torch.no_grad(), set_recurrent_mode(True):
        out = trunk(memory.replay(flat, idx, "observation", flat["observation"][idx]))
    torch.testing.assert_close(out["hidden"], expected[idx])
    # the chunks starting mid-episode need their stored state: zeros there give other outputs
    naive = flat.clone()
    for k in memory.keys[:-1]:
        naive[k] = torch.zeros_like(naive[k])
    with torch.no_grad(), set_recurrent_mode(True):
        wrong = trunk(memory.replay(naive, idx, "observation", flat["observation"][idx]))
    assert not torch.allclose(wrong["hidden"], expected[idx])


def test_collect_stores_state_and_resets_at_episode_starts():
    cfg = PPOConfig(env="CartPoleNoVel-v1", total_steps=512, num_envs=2, n_steps=64,
                    batch_size=64, epochs=1, recurrent="lstm", rnn_hidden=8, hidden=(8,))
    from tdrl.recipes.envs import probe_env

    algo = PPO(cfg, probe_env(cfg.env))
    try:
        batch = algo.collect()
        assert batch["recurrent_state_h"].shape == (64, 2, 1, 8)
        is_init = batch["is_init"]
        assert is_init[0].all() and not is_init[1:].all()
        # the stored state at step t + 1 is what the trunk wrote at step t
        agent_td = algo.memory.inputs(algo.obs)
        assert agent_td["recurrent_state_h"].shape == (2, 1, 8)
        assert batch["recurrent_state_h"][1:].abs().sum() > 0
        losses = algo.update(batch)
        assert np.isfinite(list(losses.values())).all()
    finally:
        algo.close()


def test_policy_act_forgets_ended_episodes_only():
    torch.manual_seed(1)
    space = gym.spaces.Box(-1, 1, (3,))
    cfg = PPOConfig(recurrent="gru", rnn_hidden=6, hidden=(8,))
    policy = build_agent(cfg, space, gym.spaces.Box(-1.0, 1.0, (1,))).agent.get_policy_operator()
    act = PolicyAct(policy, "cpu", lambda a: a.numpy())
    obs = np.ones((2, 3), dtype=np.float32)
    first = act(obs)
    second = act(obs)
    assert not np.allclose(first, second)
    act.reset(np.array([True, False]))
    third = act(obs)
    np.testing.assert_array_equal(third[0], first[0])  # env 0 restarted
    assert not np.allclose(third[1], first[1])


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_train_resume_eval_export_round_trip(kind, tmp_path, monkeypatch, capsys):
    flags = [*TINY, "--recurrent", kind]
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert main(["train", "ppo", *flags, "--out", str(full)]) == 0
    crash_run(monkeypatch, "ppo", [*flags, "--out", str(crashed)], at_step=1024)
    saved = load_checkpoint(crashed / "checkpoint.pt")
    memory = saved["algo_state"]["memory"]
    assert memory["state"].batch_size == (4,) and memory["is_init"].shape == (4,)
    assert main(["train", "ppo", "--out", str(crashed), "--resume", *QUIET]) == 0
    assert metrics_rows(crashed / "metrics.csv") == metrics_rows(full / "metrics.csv")
    assert summary(crashed)["final_eval_returns"] == summary(full)["final_eval_returns"]
    capsys.readouterr()

    final = summary(full)["final_eval_return"]
    assert main(["eval", str(full), "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["mean_return"] == final
    for fmt in ("onnx", "pt2"):
        assert main(["export", str(full), "--format", fmt]) == 0
        side = json.loads((full / f"policy.{fmt}.json").read_text())
        assert [i["name"] for i in side["inputs"]][0] == "observation"
        names = ["recurrent_state_h", "recurrent_state_c"] if kind == "lstm" else [
            "recurrent_state"]
        assert [i["name"] for i in side["inputs"]][1:] == names
        assert [o["name"] for o in side["outputs"]] == ["action", *(f"next.{n}" for n in names)]
        assert [s["shape"] for s in side["recurrent_state"]] == [[1, 16]] * len(names)
        capsys.readouterr()
        assert main(["eval", str(full), "--policy", str(full / f"policy.{fmt}"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["returns"] == summary(full)["final_eval_returns"]


def test_box_actions_eval_in_float64_carries_state(tmp_path, capsys):
    """PendulumNoVel (continuous): the float64 evaluation policy and its export agree exactly."""
    run = tmp_path / "pend"
    flags = ["--env", "PendulumNoVel-v1", "--total-steps", "512", "--num-envs", "2",
             "--n-steps", "64", "--batch-size", "64", "--epochs", "1", "--recurrent", "lstm",
             "--rnn-hidden", "8", "--hidden", "8", "--eval-episodes", "2", *QUIET]
    assert main(["train", "ppo", *flags, "--out", str(run)]) == 0
    import json

    assert main(["export", str(run), "--format", "onnx"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--policy", str(run / "policy.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["returns"] == summary(run)["final_eval_returns"]


def test_recipe_lists_recurrent_flags():
    names = {f.name for f in __import__("dataclasses").fields(get_recipe("ppo").config)}
    assert {"recurrent", "rnn_hidden", "rnn_seq_len"} <= names


def test_bootstrap_input_continues_the_ended_episode_state():
    """A time-limit bootstrap scores the final observation with the state after the last step
    (is_init False), although the env's next step restarts from zeros."""
    from tdrl.modules import LSTMModule

    lstm = LSTMModule(2, 3, in_key="observation", out_key="y")
    memory = make_memory(lstm)
    with torch.no_grad():
        td = lstm(memory.inputs(torch.randn(3, 2)))
        memory.advance(td, np.array([False, True, False]))
    assert memory.is_init.tolist() == [False, True, False]
    final = memory.inputs(torch.ones(1, 2), rows=np.array([False, True, False]))
    assert final["is_init"].tolist() == [False]
    torch.testing.assert_close(final["recurrent_state_h"], td["next", "recurrent_state_h"][1:2])
    assert final["recurrent_state_h"].abs().sum() > 0
    memory.reset(np.array([True, False, False]))
    assert memory.is_init.tolist() == [True, True, False]
    memory.reset()
    assert memory.inputs(torch.zeros(2, 2))["is_init"].tolist() == [True, True]


@settings(max_examples=40, deadline=None)
@given(chunks=st.integers(1, 4), seq_len=st.integers(1, 5), n_envs=st.integers(1, 4),
       per=st.integers(1, 6), seed=st.integers(0, 100))
def test_minibatches_property(chunks, seq_len, n_envs, per, seed):
    from tdrl.modules import GRUModule

    n_steps = chunks * seq_len
    memory = RecurrentMemory([GRUModule(2, 3, in_key="x", out_key="y")], seq_len=seq_len)
    torch.manual_seed(seed)
    batches = memory.minibatches(n_steps, n_envs, per * seq_len, "cpu")
    every = torch.cat([b.reshape(-1) for b in batches])
    assert sorted(every.tolist()) == list(range(n_steps * n_envs))
    assert all(b.shape[1] == seq_len and b.shape[0] <= per for b in batches)
    for seq in torch.cat(batches):
        env, t = seq % n_envs, seq // n_envs
        assert (env == env[0]).all() and (t.diff() == 1).all() and int(t[0]) % seq_len == 0
