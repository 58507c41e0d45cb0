"""TanhModule: tanh squashing into [low, high], bounds from arguments or specs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from tdrl.data import Bounded, Composite
from tdrl.modules import TanhModule
from tdrl.modules.tensordict_module.actors import TanhModule as TanhModuleAtTorchRLPath


def test_import_paths():
    assert TanhModuleAtTorchRLPath is TanhModule


def test_default_bounds_are_plain_tanh():
    mod = TanhModule(in_keys=["a"])
    x = torch.randn(7)
    td = mod(TensorDict(a=x.clone()))
    torch.testing.assert_close(td["a"], x.tanh())
    assert mod.non_trivial == {"a": False}
    assert mod.a_low.item() == -1 and mod.a_high.item() == 1


def test_affine_map_to_bounds_and_separate_out_keys():
    mod = TanhModule(in_keys=["x"], out_keys=["y"], low=torch.tensor([0.0, -4.0]), high=[2.0, 4.0])
    x = torch.tensor([[0.0, 0.0], [50.0, -50.0]])
    td = mod(TensorDict(x=x, batch_size=[2]))
    assert torch.equal(td["x"], x)  # the input is kept
    torch.testing.assert_close(td["y"], torch.tensor([[1.0, 0.0], [2.0, -4.0]]))


def test_bounds_from_spec_and_per_key_composite():
    mod = TanhModule(in_keys=["act"], spec=Bounded(-3.0, 1.0, shape=()))
    assert (mod.act_low.item(), mod.act_high.item()) == (-3.0, 1.0)
    spec = Composite(a=Bounded(-2.0, 0.0, shape=()))
    mod = TanhModule(in_keys=[("n", "a"), "b"], out_keys=["a", "b"], spec=spec)
    td = mod(TensorDict({("n", "a"): torch.full((3,), 100.0), "b": torch.full((3,), 100.0)}))
    torch.testing.assert_close(td["a"], torch.zeros(3))
    torch.testing.assert_close(td["b"], torch.ones(3))  # no spec for "b": [-1, 1]
    # nested out keys name their buffers with "_"
    mod = TanhModule(in_keys=["x"], out_keys=[("p", "q")], low=0.0, high=5.0)
    assert mod.p_q_high.item() == 5.0


def test_clamp_keeps_outputs_off_the_bounds():
    x = torch.tensor([-1e3, 1e3])
    eps = torch.finfo(torch.float32).resolution
    plain = TanhModule(in_keys=["x"], low=-2.0, high=2.0)(TensorDict(x=x.clone()))["x"]
    clamped = TanhModule(in_keys=["x"], low=-2.0, high=2.0, clamp=True)(TensorDict(x=x.clone()))["x"]
    assert plain.tolist() == [-2.0, 2.0]
    assert (clamped.abs() < 2.0).all() and (clamped.abs() >= 2.0 - 4 * eps).all()


def test_errors():
    with pytest.raises(ValueError, match=r"in_keys and out_keys should have the same length.*\['a', 'b'\].*\['a'\]"):
        TanhModule(in_keys=["a", "b"], out_keys=["a"])
    spec = Bounded(-1.0, 1.0, shape=())
    with pytest.raises(ValueError, match=r"The minimum value \(-2\) provided to TanhModule .*\(-1.0\)"):
        TanhModule(in_keys=["act"], low=-2, spec=spec)
    with pytest.raises(ValueError, match=r"The maximum value \(3\) provided to TanhModule"):
        TanhModule(in_keys=["act"], high=3, spec=spec)
    with pytest.raises(ValueError, match=r"Got high < low in TanhModule for the key 'act'"):
        TanhModule(in_keys=["act"], high=-2, low=-1)
    with pytest.raises(TypeError, match="spec must be a TensorSpec or a Composite"):
        TanhModule(in_keys=["act"], spec="bounded")
    td = TensorDict(other=torch.zeros(2))
    with pytest.raises(KeyError, match="TanhModule expected the key 'act'"):
        TanhModule(in_keys=["act"])(td)


def test_numpy_bounds_and_device_move():
    mod = TanhModule(in_keys=["a"], low=-np.ones(2), high=np.ones(2) * 3)
    assert isinstance(mod.a_high, torch.Tensor) and mod.a_high.tolist() == [3.0, 3.0]
    assert {n for n, _ in mod.named_buffers()} == {"a_low", "a_high"}
    mod = mod.to(torch.float64)
    out = mod(TensorDict(a=torch.zeros(2, dtype=torch.float64)))["a"]
    assert out.dtype == torch.float64 and out.tolist() == [1.0, 1.0]


@settings(max_examples=60, deadline=None)
@given(
    low=st.floats(-50, 50),
    width=st.floats(1e-3, 100),
    xs=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8),
)
def test_property_outputs_stay_in_bounds_and_are_monotone(low, width, xs):
    high = low + width
    mod = TanhModule(in_keys=["x"], low=low, high=high)
    x = torch.tensor(sorted(xs), dtype=torch.float64)
    y = mod(TensorDict(x=x))["x"]
    tol = 1e-6 * max(1.0, abs(low), abs(high))
    assert (y >= low - tol).all() and (y <= high + tol).all()
    assert (y.diff() >= -tol).all()
