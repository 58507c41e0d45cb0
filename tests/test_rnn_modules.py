"""LSTMModule / GRUModule: the two modes, is_init, and the TorchRL bugs tdrl does not have."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rnn_cases import F_IN, alone, batch, make, state_keys
from tensordict import TensorDict

from tdrl.envs.utils import step_mdp
from tdrl.modules import LSTMModule, set_recurrent_mode
from tdrl.modules.tensordict_module import rnn_base

KINDS = [("lstm", False), ("lstm", True), ("gru", False), ("gru", True)]
IDS = ["lstm-native", "lstm-python", "gru-native", "gru-python"]


def _init(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


# ---- pytorch/rl #3711: every trajectory in a padded batch gets its own state ----------------
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_each_trajectory_as_if_alone(kind, python_based, num_layers):
    torch.manual_seed(0)
    m = make(kind, python_based, num_layers)
    # row 0: continues a trajectory for 2 steps, then one of 4, then one of 1 (mid-batch starts);
    # row 1: one trajectory over the whole row; row 2: starts at 0, another starts at 3
    init = _init([[0, 0, 1, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0, 0]])
    td = batch(m, 3, 7, init)
    with set_recurrent_mode(True), torch.no_grad():
        out = m(td.clone())
    ys, states, ends = alone(m, td)
    torch.testing.assert_close(out["feat"], ys)
    for key, ref in zip(state_keys(m), states):
        got = out["next", key]
        torch.testing.assert_close(got[ends], ref[ends])  # each trajectory's own final state
        assert (got[~ends] == 0).all()  # documented: zeros where a trajectory goes on


@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_short_trajectories_keep_their_final_state(kind, python_based):
    # TorchRL's own regression case (#3711), with several short trajectories per row
    torch.manual_seed(1)
    m = make(kind, python_based, 2)
    init = _init([[1, 0, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0]])
    td = batch(m, 2, 8, init, stored=False)
    with set_recurrent_mode(True), torch.no_grad():
        out = m(td.clone())
    ys, states, ends = alone(m, td)
    torch.testing.assert_close(out["feat"], ys)
    torch.testing.assert_close(out["next", state_keys(m)[0]][ends], states[0][ends])


# ---- sb3-contrib #169 / #239: an episode start is a fresh zero state, in both modes ---------
@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_episode_start_ignores_the_previous_terminal_state_sequential(kind, python_based):
    torch.manual_seed(2)
    m = make(kind, python_based)
    obs = torch.randn(2, F_IN)
    fresh = m(TensorDict(obs=obs, is_init=torch.ones(2, 1, dtype=torch.bool), batch_size=[2])
              .update(m.initial_state([2])))
    stale = TensorDict(obs=obs, is_init=torch.ones(2, 1, dtype=torch.bool), batch_size=[2])
    for key in state_keys(m):  # the last episode's terminal state is still in the TensorDict
        stale[key] = torch.randn(2, 1, 5) * 3
    out = m(stale)
    torch.testing.assert_close(out["feat"], fresh["feat"])
    stale["is_init"][:] = False  # the same state continuing a trajectory is used
    assert not torch.allclose(m(stale)["feat"], fresh["feat"])


@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_episode_start_ignores_the_stored_state_recurrent(kind, python_based):
    torch.manual_seed(3)
    m = make(kind, python_based)
    init = _init([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0]])
    td = batch(m, 2, 5, init)  # a random (stale) state stored at every step, is_init ones too
    zero = td.clone()
    for key in state_keys(m):
        zero[key][0] = 0.0  # row 0 starts at is_init: its stored state must not matter
        zero[key][1, 2:] = 0.0  # row 1's mid-row start neither
    with set_recurrent_mode(True), torch.no_grad():
        a, b = m(td.clone()), m(zero)
    torch.testing.assert_close(a["feat"], b["feat"])
    # row 1 continues a trajectory at step 0: its stored state there is used
    moved = td.clone()
    moved[state_keys(m)[0]][1, 0] += 1.0
    with set_recurrent_mode(True), torch.no_grad():
        c = m(moved)
    assert not torch.allclose(c["feat"][1, :2], a["feat"][1, :2])
    torch.testing.assert_close(c["feat"][1, 2:], a["feat"][1, 2:])


# ---- pytorch/rl #2327: never silently restart from zeros every step ------------------------
@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_state_not_carried_raises_on_the_second_step(kind, python_based):
    m = make(kind, python_based)
    keys = state_keys(m)

    def env_step(first: bool) -> TensorDict:  # an env that knows nothing of the policy's state
        return TensorDict(obs=torch.randn(4, F_IN),
                          is_init=torch.full((4, 1), first, dtype=torch.bool), batch_size=[4])

    m(env_step(True))  # a rollout's first step: zeros are right
    with pytest.raises(KeyError) as err:
        m(env_step(False))
    msg = err.value.args[0]
    for key in keys:
        assert repr(key) in msg
    assert "keys present: ['is_init', 'obs']" in msg
    assert "step_mdp" in msg and "initial_state" in msg and "no memory" in msg


@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_carried_state_and_fresh_starts_never_raise(kind, python_based):
    m = make(kind, python_based)
    td = TensorDict(obs=torch.randn(2, F_IN), is_init=torch.zeros(2, 1, dtype=torch.bool),
                    batch_size=[2])
    for _ in range(3):  # TorchRL's pattern: the first step without a state, then carried
        td = step_mdp(m(td))
        assert all(k in td.keys() for k in state_keys(m))
    for _ in range(3):  # every entry a trajectory start: zeros are the right state each time
        m(TensorDict(obs=torch.randn(2, F_IN), is_init=torch.ones(2, 1, dtype=torch.bool),
                     batch_size=[2]))
    td = TensorDict(obs=torch.randn(2, F_IN), is_init=torch.zeros(2, 1, dtype=torch.bool),
                    batch_size=[2]).update(m.initial_state([2]))
    m(td)


def test_part_of_the_state_missing_always_raises():
    m = make("lstm", False)
    td = TensorDict(obs=torch.randn(2, F_IN), is_init=torch.ones(2, 1, dtype=torch.bool),
                    recurrent_state_h=torch.zeros(2, 1, 5), batch_size=[2])
    with pytest.raises(KeyError, match=r"\['recurrent_state_c'\].*only part of the recurrent"):
        m(td)


# ---- pytorch/rl #3147: the layout is documented, time is the last batch dimension ----------
def test_recurrent_layout_is_documented():
    doc = " ".join((rnn_base.__doc__ or "").split())
    assert "time is the LAST batch dimension" in doc
    assert "``is_init[..., t]`` marks the steps where a trajectory starts" in doc
    assert "time is the LAST batch dim" in " ".join((LSTMModule.__doc__ or "").split())


@pytest.mark.parametrize(("kind", "python_based"), KINDS, ids=IDS)
def test_time_is_the_last_batch_dim(kind, python_based):
    torch.manual_seed(4)
    m = make(kind, python_based)
    init = _init([[1, 0, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0]])
    td = batch(m, 3, 4, init)
    nested = td.unsqueeze(0).expand(2, 3, 4).clone()  # [2, 3, T]: leading dims are batch
    with set_recurrent_mode(True), torch.no_grad():
        flat, deep, row = m(td.clone()), m(nested), m(td[1].clone())  # td[1]: a [T] sequence
    torch.testing.assert_close(deep["feat"][1], flat["feat"])
    torch.testing.assert_close(row["feat"], flat["feat"][1])
    with set_recurrent_mode(True), pytest.raises(ValueError, match="needs a time dimension"):
        m(TensorDict(obs=torch.randn(F_IN), is_init=torch.ones(1, dtype=torch.bool)))


# ---- property: sequential (state carried by step_mdp) == recurrent (one call) --------------
@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    num_layers=st.integers(1, 2),
    b=st.integers(1, 3),
    t=st.integers(1, 6),
    p_init=st.floats(0.0, 0.6),
    seed=st.integers(0, 2**16),
)
def test_sequential_equals_recurrent(kind, num_layers, b, t, p_init, seed):
    torch.manual_seed(seed)
    m = make(kind[0], kind[1], num_layers)
    g = torch.Generator().manual_seed(seed)
    init = torch.rand(b, t, generator=g) < p_init
    data = batch(m, b, t, init, seed=seed)
    with set_recurrent_mode(True), torch.no_grad():
        rec = m(data.clone())
    keys = state_keys(m)
    step = data[:, 0].select("obs", "is_init", *keys).clone()
    feats, nexts = [], [[] for _ in keys]
    with torch.no_grad():
        for i in range(t):
            step["obs"], step["is_init"] = data["obs"][:, i], data["is_init"][:, i]
            out = m(step)
            feats.append(out["feat"])
            for j, key in enumerate(keys):
                nexts[j].append(out["next", key])
            step = step_mdp(out)
    torch.testing.assert_close(torch.stack(feats, 1), rec["feat"], rtol=1e-5, atol=1e-5)
    ends = torch.cat([init[:, 1:], torch.ones(b, 1, dtype=torch.bool)], 1)
    for j, key in enumerate(keys):
        seq = torch.stack(nexts[j], 1)
        torch.testing.assert_close(seq[ends], rec["next", key][ends], rtol=1e-5, atol=1e-5)


# ---- gradients and backends -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_python_and_native_agree_on_gradients_with_resets(kind):
    torch.manual_seed(5)
    native = make(kind, False, 2)
    python = make(kind, False, 2)
    python.load_state_dict(native.state_dict())
    python.make_python_based()
    init = _init([[0, 0, 1, 0, 0], [1, 0, 0, 0, 1]])
    td = batch(native, 2, 5, init)
    grads = []
    for m in (native, python):
        m.zero_grad()
        with set_recurrent_mode(True):
            out = m(td.clone())
        (out["feat"].square().sum() + out["next", state_keys(m)[0]].sum()).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_switching_backends_keeps_the_parameters(kind):
    m = make(kind, False, 2)
    before = list(m.parameters())
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.make_python_based()
    assert [id(p) for p in m.parameters()] == [id(p) for p in before]  # optimizers keep working
    td = TensorDict(obs=torch.randn(2, F_IN), is_init=torch.ones(2, 1, dtype=torch.bool),
                    batch_size=[2])
    m(td)["feat"].sum().backward()
    opt.step()
    a = m(td.clone())["feat"]
    m.make_cudnn_based()
    assert isinstance(getattr(m, m._rnn_attr), torch.nn.RNNBase)
    torch.testing.assert_close(m(td.clone())["feat"], a)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_vmap_over_parameter_sets(kind):
    torch.manual_seed(6)
    m = make(kind, True)
    init = torch.rand(4, 6) < 0.3
    td = batch(m, 4, 6, init, stored=False)
    params = torch.stack([
        TensorDict.from_module(m).data.clone().apply(lambda p, i=i: p + 0.1 * i) for i in range(3)
    ])

    def call(p):
        with set_recurrent_mode(True), p.to_module(m):
            return m(td.clone())["feat"]

    out = torch.vmap(call)(params)
    for i in range(3):
        torch.testing.assert_close(out[i], call(params[i]), rtol=1e-5, atol=1e-5)
