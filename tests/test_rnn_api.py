"""LSTMModule / GRUModule API: construction checks, modes, state specs, containers."""
from __future__ import annotations

import threading

import pytest
import torch
from rnn_cases import F_IN, make
from tensordict import TensorDict
from torch import nn

from tdrl.data import Composite, Unbounded
from tdrl.modules import (
    GRUModule,
    LSTMModule,
    SafeModule,
    SafeSequential,
    recurrent_mode,
    set_recurrent_mode,
)
from tdrl.modules.tensordict_module.rnn import LSTM

KEYS = dict(in_keys=["obs", "h", "c"], out_keys=["feat", ("next", "h"), ("next", "c")])


def test_default_keys():
    lstm = LSTMModule(3, 4, in_key="obs", out_key="feat")
    assert lstm.in_keys == ["obs", "recurrent_state_h", "recurrent_state_c", "is_init"]
    assert lstm.out_keys == ["feat", ("next", "recurrent_state_h"), ("next", "recurrent_state_c")]
    gru = GRUModule(3, 4, in_key=("a", "b"), out_key="feat")
    assert gru.in_keys == [("a", "b"), "recurrent_state", "is_init"]
    assert gru.out_keys == ["feat", ("next", "recurrent_state")]
    # an explicit trailing "is_init" is accepted
    assert LSTMModule(3, 4, in_keys=["o", "h", "c", "is_init"], out_keys=KEYS["out_keys"]).in_keys[-1] == "is_init"


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        (dict(batch_first=False, **KEYS), ValueError, "batch_first"),
        (dict(in_keys=["obs", "h"], out_keys=KEYS["out_keys"]), ValueError, "in_keys"),
        (dict(in_keys="abc", out_keys=KEYS["out_keys"]), TypeError, "incompatible function arguments"),
        (dict(in_key="x", **KEYS), ValueError, "in_key and in_keys"),
        (dict(in_keys=KEYS["in_keys"], out_keys=["feat", ("next", "h")]), ValueError, "out_keys"),
        (dict(out_key="x", **KEYS), ValueError, "out_key and out_keys"),
        (dict(bidirectional=True, **KEYS), ValueError, "future steps"),
        (dict(recurrent_backend="other", **KEYS), ValueError, r"recurrent_backend.*\['auto', 'pad'"),
        (dict(recurrent_backend="scan", **KEYS), NotImplementedError, "'pad' / 'auto'"),
        (dict(recurrent_recompute="full", **KEYS), ValueError, "recurrent_recompute"),
    ],
)
def test_constructor_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        LSTMModule(3, 4, **kwargs)


def test_wrapped_rnn_checks():
    with pytest.raises(ValueError, match="batch_first=True"):
        LSTMModule(lstm=nn.LSTM(3, 4), **KEYS)
    with pytest.raises(ValueError, match="not both"):
        LSTMModule(3, lstm=nn.LSTM(3, 4, batch_first=True), **KEYS)
    with pytest.raises(ValueError, match="future steps"):
        LSTMModule(lstm=nn.LSTM(3, 4, batch_first=True, bidirectional=True), **KEYS)
    with pytest.raises(TypeError, match="torch.nn.GRU or tdrl GRU"):
        GRUModule(gru=nn.LSTM(3, 4, batch_first=True), in_key="o", out_key="f")
    m = LSTMModule(lstm=LSTM(3, 4, num_layers=2), **KEYS)
    assert m._layers == 2 and isinstance(m.lstm, LSTM)


def test_input_errors_name_the_problem():
    m = make("lstm", False)
    with pytest.raises(KeyError, match=r"'is_init'.*keys present: \['obs'\].*trajectory starts"):
        m(TensorDict(obs=torch.randn(F_IN)))
    with pytest.raises(KeyError, match=r"'obs'.*keys present: \['is_init'\]"):
        m(TensorDict(is_init=torch.ones(1, dtype=torch.bool)))
    with pytest.raises(TypeError, match="is_init must be torch.bool, got torch.float32"):
        m(TensorDict(obs=torch.randn(F_IN), is_init=torch.ones(1)))
    td = TensorDict(obs=torch.randn(2, F_IN), is_init=torch.ones(2, 1, dtype=torch.bool),
                    recurrent_state_h=torch.zeros(2, 2, 5), recurrent_state_c=torch.zeros(2, 2, 5),
                    batch_size=[2])
    with pytest.raises(ValueError, match=r"'recurrent_state_h' has shape \[2, 2, 5\], expected \[2, 1, 5\]"):
        m(td)
    with pytest.raises(ValueError, match=r"is_init has shape \[3, 1\], expected \[2\]"):
        m(TensorDict(obs=torch.randn(2, F_IN), is_init=torch.ones(3, 1, dtype=torch.bool)))


@pytest.mark.parametrize("default", [None, False, True])
def test_set_recurrent_mode_nests_and_restores(default):
    m = make("gru", False, default_recurrent_mode=default)
    assert m.recurrent_mode is bool(default)
    with set_recurrent_mode(True):
        assert m.recurrent_mode is True
        with set_recurrent_mode("sequential"):
            assert m.recurrent_mode is False
            with set_recurrent_mode(None):  # back to the module's default
                assert m.recurrent_mode is bool(default)
            with pytest.raises(ZeroDivisionError), set_recurrent_mode("recurrent"):
                raise ZeroDivisionError  # an exception still restores the outer mode
            assert m.recurrent_mode is False
        assert m.recurrent_mode is True
    assert recurrent_mode() is None and m.recurrent_mode is bool(default)


def test_set_recurrent_mode_decorator_and_threads():
    seen = []

    @set_recurrent_mode("recurrent")
    def inner():
        seen.append(recurrent_mode())
        worker = threading.Thread(target=lambda: seen.append(recurrent_mode()))
        worker.start()
        worker.join()

    inner()
    inner()  # reusable: each call enters a fresh manager
    assert seen == [True, None, True, None] and recurrent_mode() is None
    with pytest.raises(ValueError, match="'recurrent' or 'sequential'"):
        set_recurrent_mode("both")


def test_mode_is_not_a_module_flag():
    m = make("lstm", False)
    with pytest.raises(RuntimeError, match="set_recurrent_mode"):
        m.recurrent_mode = True
    with pytest.raises(RuntimeError, match="no longer exists"):
        m.set_recurrent_mode(True)
    with pytest.raises(RuntimeError, match="deprecated"):
        _ = m.temporal_mode


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_state_spec_and_initial_state(kind):
    m = make(kind, False, 2)
    if kind == "lstm":
        m = LSTMModule(F_IN, 5, num_layers=2, proj_size=3, in_key="obs", out_key="feat")
    spec = m.recurrent_state_spec([4, 2])
    assert isinstance(spec, Composite) and spec.shape == (4, 2)
    sizes = [3, 5] if kind == "lstm" else [5]
    for key, size in zip(m.in_keys[1:-1], sizes):
        assert isinstance(spec[key], Unbounded) and spec[key].shape == (4, 2, 2, size)
    zero = m.initial_state([4, 2], dtype=torch.float64)
    assert zero.batch_size == (4, 2) and set(zero.keys()) == set(m.in_keys[1:-1])
    for key, size in zip(m.in_keys[1:-1], sizes):
        assert zero[key].shape == (4, 2, 2, size) and zero[key].dtype == torch.float64
        assert (zero[key] == 0).all() and spec.is_in(zero.float())
    with pytest.raises(NotImplementedError, match="recurrent_state_spec.*initial_state"):
        m.make_tensordict_primer()


def test_state_helpers_need_carry_names():
    m = LSTMModule(3, 4, in_keys=["obs", "h", "c"], out_keys=["f", ("next", "h"), "c2"])
    with pytest.raises(RuntimeError, match=r"written under 'c2' is not read back from 'c'"):
        m.recurrent_state_spec()
    with pytest.raises(RuntimeError, match="initial_state"):
        m.initial_state([2])


def test_keyword_tensors_return_the_outputs():
    m = LSTMModule(3, 4, num_layers=2, default_recurrent_mode=True, **KEYS)
    obs, h = torch.rand(2, 6, 3), torch.rand(2, 6, 2, 4)
    feat, nh, nc = m(obs=obs, h=h, c=h, is_init=torch.zeros(2, 6, dtype=torch.bool))
    assert feat.shape == (2, 6, 4) and nh.shape == nc.shape == (2, 6, 2, 4)


@pytest.mark.parametrize("python_based", [False, True])
def test_trunk_lstm_heads_in_a_sequence(python_based):
    """The recurrent PPO shape: trunk -> LSTM -> policy / value heads, in both modes."""
    torch.manual_seed(0)
    lstm = LSTMModule(8, 16, in_key="hidden", out_key="memory", python_based=python_based)
    net = SafeSequential(
        SafeModule(nn.Sequential(nn.Linear(4, 8), nn.Tanh()), in_keys=["obs"], out_keys=["hidden"]),
        lstm,
        SafeModule(nn.Linear(16, 2), in_keys=["memory"], out_keys=["logits"]),
        SafeModule(nn.Linear(16, 1), in_keys=["memory"], out_keys=["value"]),
    )
    assert "is_init" in net.in_keys and "recurrent_state_h" in net.in_keys
    obs = torch.randn(3, 5, 4)
    is_init = torch.zeros(3, 5, 1, dtype=torch.bool)
    is_init[:, 0] = True
    is_init[1, 2] = True
    step = TensorDict(obs=obs[:, 0], is_init=is_init[:, 0], batch_size=[3]).update(
        lstm.initial_state([3]))
    logits = []
    with torch.no_grad():
        for t in range(5):
            step["obs"], step["is_init"] = obs[:, t], is_init[:, t]
            out = net(step)
            logits.append(out["logits"])
            step = out.select("recurrent_state_h", "recurrent_state_c", "obs", "is_init",
                              ("next", "recurrent_state_h"), ("next", "recurrent_state_c"))
            step = TensorDict(obs=out["obs"], is_init=out["is_init"], batch_size=[3],
                              recurrent_state_h=out["next", "recurrent_state_h"],
                              recurrent_state_c=out["next", "recurrent_state_c"])
    data = TensorDict(obs=obs, is_init=is_init, batch_size=[3, 5])
    with set_recurrent_mode(True):
        replay = net(data)
    torch.testing.assert_close(replay["logits"], torch.stack(logits, 1), rtol=1e-5, atol=1e-5)
    replay["value"].sum().backward()
    assert all(p.grad is not None for p in lstm.parameters())


def test_lstm_trunk_of_an_actor_value_operator():
    """A nested trunk (SafeSequential: Linear -> LSTM) shared by a policy and a value head."""
    from tensordict.nn import TensorDictModule

    from tdrl.modules import ActorValueOperator, ProbabilisticActor, ValueOperator

    torch.manual_seed(1)
    lstm = LSTMModule(8, 16, in_key="hidden", out_key="memory")
    trunk = SafeSequential(SafeModule(nn.Linear(4, 8), in_keys=["obs"], out_keys=["hidden"]), lstm)
    assert trunk._optional_in_keys == ("recurrent_state_h", "recurrent_state_c")
    policy = ProbabilisticActor(TensorDictModule(nn.Linear(16, 2), ["memory"], ["logits"]),
                                in_keys=["logits"], distribution_class=torch.distributions.Categorical,
                                return_log_prob=True)
    op = ActorValueOperator(trunk, policy, ValueOperator(nn.Linear(16, 1), in_keys=["memory"]))
    start = TensorDict(obs=torch.randn(3, 4), is_init=torch.ones(3, 1, dtype=torch.bool),
                       batch_size=[3])
    out = op(start)
    assert out["next", "recurrent_state_c"].shape == (3, 1, 16) and out["state_value"].shape == (3, 1)
    data = TensorDict(obs=torch.randn(3, 5, 4), is_init=torch.zeros(3, 5, 1, dtype=torch.bool),
                      batch_size=[3, 5]).update(lstm.initial_state([3, 5]))
    with set_recurrent_mode(True):
        out = op.get_value_operator()(data)
    assert out["state_value"].shape == (3, 5, 1)


@pytest.mark.parametrize(("kind", "python_based"), [("lstm", False), ("gru", False), ("lstm", True)])
def test_copies_and_pickles_use_their_own_weights(kind, python_based, tmp_path):
    import copy

    m = make(kind, python_based)
    td = TensorDict(obs=torch.randn(2, F_IN), is_init=torch.ones(2, 1, dtype=torch.bool),
                    batch_size=[2])
    ref = m(td.clone())["feat"]
    target = copy.deepcopy(m)
    torch.save(m, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(1.0)
    torch.testing.assert_close(m(td.clone())["feat"], ref)  # the original is untouched
    assert not torch.allclose(target(td.clone())["feat"], ref)  # the copy runs its own weights
    torch.testing.assert_close(loaded(td.clone())["feat"], ref)
