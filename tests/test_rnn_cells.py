"""The python LSTM / GRU and their cells against torch.nn, and the fused-kernel fast path."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tdrl._compat import fused_rnn
from tdrl.modules import GRU, LSTM, GRUCell, LSTMCell


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(("ours", "ref"), [(LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)])
def test_cells_match_torch_both_ways(ours, ref, bias):
    torch.manual_seed(0)
    a, b = ours(3, 4, bias=bias), ref(3, 4, bias=bias)
    a.load_state_dict(b.state_dict())
    b.load_state_dict(a.state_dict())
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    x = torch.randn(5, 3)
    state = (torch.randn(5, 4), torch.randn(5, 4)) if ours is LSTMCell else torch.randn(5, 4)
    torch.testing.assert_close(a(x, state), b(x, state))
    torch.testing.assert_close(a(x), b(x))  # zero state
    unbatched = (state[0][0], state[1][0]) if ours is LSTMCell else state[0]
    torch.testing.assert_close(a(x[0], unbatched), b(x[0], unbatched))


def test_cell_rejects_mismatched_state():
    with pytest.raises(ValueError, match=r"input has shape \[2, 3\] but state 0 has shape \[4\]"):
        LSTMCell(3, 4)(torch.randn(2, 3), (torch.randn(4), torch.randn(4)))
    with pytest.raises(ValueError, match="expected a 1-D or 2-D input"):
        GRUCell(3, 4)(torch.randn(1, 2, 3))


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["lstm", "gru"]),
    num_layers=st.integers(1, 3),
    bias=st.booleans(),
    batch_first=st.booleans(),
    proj=st.booleans(),
    with_state=st.booleans(),
    b=st.integers(1, 3),
    t=st.integers(1, 5),
)
def test_networks_match_torch(kind, num_layers, bias, batch_first, proj, with_state, b, t):
    torch.manual_seed(b * 10 + t)
    kw = dict(num_layers=num_layers, bias=bias, batch_first=batch_first)
    if kind == "lstm":
        kw["proj_size"] = 2 if proj else 0
        ours, ref = LSTM(3, 4, **kw), nn.LSTM(3, 4, **kw)
    else:
        ours, ref = GRU(3, 4, **kw), nn.GRU(3, 4, **kw)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(b, t, 3) if batch_first else torch.randn(t, b, 3)
    hx = None
    if with_state:
        h = torch.randn(num_layers, b, 2 if (kind == "lstm" and proj) else 4)
        hx = (h, torch.randn(num_layers, b, 4)) if kind == "lstm" else h
    y1, s1 = ours(x, hx)
    y2, s2 = ref(x, hx)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s1, s2, rtol=1e-5, atol=1e-5)
    # gradients too
    g1 = torch.autograd.grad(y1.square().sum(), list(ours.parameters()))
    g2 = torch.autograd.grad(y2.square().sum(), list(ref.parameters()))
    for a, c in zip(g1, g2):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_unbatched_input_as_torch():
    torch.manual_seed(1)
    ours, ref = LSTM(3, 4, num_layers=2), nn.LSTM(3, 4, num_layers=2, batch_first=True)
    ours.load_state_dict(ref.state_dict())
    x, hx = torch.randn(6, 3), (torch.randn(2, 4), torch.randn(2, 4))
    y1, (h1, c1) = ours(x, hx)
    y2, (h2, c2) = ref(x, hx)
    assert y1.shape == (6, 4) and h1.shape == (2, 4)
    torch.testing.assert_close((y1, h1, c1), (y2, h2, c2))


def test_dropout_between_layers_in_training_only():
    torch.manual_seed(2)
    lstm = LSTM(3, 8, num_layers=2, dropout=0.5)
    x = torch.randn(4, 5, 3)
    lstm.eval()
    a, b = lstm(x)[0], lstm(x)[0]
    torch.testing.assert_close(a, b)
    lstm.train()
    assert not torch.allclose(lstm(x)[0], a)
    ref = nn.LSTM(3, 8, num_layers=2, dropout=0.5, batch_first=True).eval()
    ref.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(ref(x)[0], a)


def test_bidirectional_and_bad_shapes_refused():
    with pytest.raises(NotImplementedError, match="unidirectional"):
        LSTM(3, 4, bidirectional=True)
    with pytest.raises(NotImplementedError, match="unidirectional"):
        GRU(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match=r"expected 3 input features, got shape \[2, 5, 4\]"):
        LSTM(3, 4)(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"state 0 must have shape \[num_layers=1, batch=2, 4\]"):
        GRU(3, 4)(torch.randn(2, 5, 3), torch.randn(1, 3, 4))


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_reset_equals_running_the_pieces_alone(cls):
    torch.manual_seed(3)
    rnn = cls(3, 4, num_layers=2)
    x = torch.randn(1, 7, 3)
    reset = torch.zeros(1, 7, dtype=torch.bool)
    reset[0, 4] = True
    y, _, steps = rnn.run_sequences(x, None, reset, step_states=True)
    y_a, s_a = rnn(x[:, :4])
    y_b, s_b = rnn(x[:, 4:])
    torch.testing.assert_close(y, torch.cat([y_a, y_b], 1))
    first = s_a[0] if cls is LSTM else s_a
    torch.testing.assert_close(steps[0][:, 3], first.transpose(0, 1))


def test_cells_under_vmap():
    torch.manual_seed(4)
    cell = GRUCell(3, 4)
    x, h = torch.randn(5, 2, 3), torch.randn(5, 2, 4)
    out = torch.vmap(cell)(x, h)
    for i in range(5):
        torch.testing.assert_close(out[i], cell(x[i], h[i]))


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_fused_kernel_matches_the_module_and_sees_swapped_weights(cls):
    torch.manual_seed(5)
    rnn = cls(3, 4, num_layers=2, batch_first=True)
    step = fused_rnn(rnn)
    if step is None:
        pytest.skip("no fused kernel in this torch (or TDRL_COMPAT_FALLBACK=1)")
    x = torch.randn(2, 3, 3)
    hx = (torch.randn(2, 2, 4), torch.randn(2, 2, 4)) if cls is nn.LSTM else torch.randn(2, 2, 4)
    torch.testing.assert_close(step(x, hx), rnn(x, hx))
    with torch.no_grad():  # parameters replaced behind the module's back (to_module does this)
        rnn._parameters["weight_hh_l1"] = nn.Parameter(torch.zeros_like(rnn.weight_hh_l1))
    torch.testing.assert_close(step(x, hx), rnn(x, hx))
    calls = []
    handle = rnn.register_forward_hook(lambda *a: calls.append(1))
    step(x, hx)
    handle.remove()
    assert calls == [1]  # a hooked module is called through nn.Module.__call__


def test_no_fused_kernel_for_subclasses_or_bidirectional():
    assert fused_rnn(nn.LSTM(3, 4, bidirectional=True, batch_first=True)) is None
    assert fused_rnn(LSTM(3, 4)) is None
    assert fused_rnn(nn.LSTM(3, 4)) is None  # not batch_first
