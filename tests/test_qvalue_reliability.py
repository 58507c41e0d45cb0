"""Q-value modules: NaN action values, export-time checks, TorchRL's argument names and error phrases."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qvalue_cases import (
    SPACES,
    _values,
)
from tensordict import TensorDict
from torch import nn

from tdrl.data import (
    Categorical,
    Composite,
    MultiOneHot,
    OneHot,
)
from tdrl.modules import (
    DistributionalQValueHook,
    DistributionalQValueModule,
    QValueActor,
    QValueHook,
    QValueModule,
)
from tdrl.modules.tensordict_module import actors as actors_mod


# --- reliability: NaN action values ---------------------------------------------------------------
@pytest.mark.parametrize("sid", list(SPACES))
def test_nan_action_values_raise_naming_the_key(sid):
    spec = SPACES[sid][0]()
    values = _values((3,), sid)
    values[1, 1] = float("nan")
    td = TensorDict(q=values, batch_size=[3])
    with pytest.raises(ValueError, match=r"QValueModule: the action values 'q' contain NaN \(1 of 3 rows\)"):
        QValueModule(spec=spec, action_value_key="q")(td)
    assert "action" not in td.keys()


def test_nan_in_qvalue_actor_fused_path_and_distributional():
    # TorchRL picks action 1 for [0, nan, 5] (max propagates NaN); tdrl refuses
    net = nn.Linear(1, 3)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.copy_(torch.tensor([0.0, float("nan"), 5.0]))
    actor = QValueActor(net, spec=OneHot(3))
    with pytest.raises(ValueError, match="'action_value' contain NaN"):
        actor(TensorDict(observation=torch.zeros(2, 1), batch_size=[2]))
    # an all-NaN row is refused too (TorchRL picks 0)
    module = QValueModule(action_space="categorical")
    with pytest.raises(ValueError, match="contain NaN"):
        module(TensorDict(action_value=torch.full((1, 3), float("nan")), batch_size=[1]))
    dist = DistributionalQValueModule(spec=OneHot(2), support=torch.tensor([0.0, 1.0]))
    log_p = torch.full((2, 2), 0.5).log()
    log_p[0, 1] = float("nan")
    with pytest.raises(ValueError, match="DistributionalQValueModule: .* contain NaN"):
        dist(TensorDict(action_value=log_p, batch_size=[]))


class _PickWithMask(nn.Module):
    """Tensors in, greedy action out: what torch.export traces (no TensorDict at the boundary)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, values, mask):
        td = TensorDict(action_value=values, mask=mask, batch_size=values.shape[:1])
        return self.module(td)["action"]


@pytest.mark.parametrize("sid", ["categorical", "multi-categorical"])
def test_value_checks_run_eagerly_and_are_left_out_of_an_exported_graph(sid):
    # the NaN and fully-masked checks branch on values: the module skips them by itself while
    # torch.export (or torch.compile) traces, and keeps them in eager mode
    spec = SPACES[sid][0]()
    n = 4 if sid == "categorical" else 5
    pick = _PickWithMask(QValueModule(spec=spec, action_mask_key="mask"))
    values, mask = torch.randn(3, n), torch.ones(3, n, dtype=torch.bool)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(pick, (values, mask), dynamic_shapes=({0: batch}, {0: batch}),
                                  strict=False)
    targets = {str(node.target) for node in program.graph.nodes}
    assert not any("_local_scalar_dense" in t or "_assert" in t and "metadata" not in t
                   for t in targets), targets
    new_values, new_mask = torch.randn(6, n), torch.rand(6, n) > 0.3
    new_mask[:, 0] = new_mask[:, -1] = True  # every row / sub-space keeps an allowed action
    assert torch.equal(program.module()(new_values, new_mask), pick(new_values, new_mask))
    bad_mask, nan_values = mask.clone(), values.clone()
    bad_mask[1] = False
    nan_values[2] = float("nan")
    program.module()(values, bad_mask)  # no check in the graph
    program.module()(nan_values, mask)
    with pytest.raises(ValueError, match="no valid action to pick"):
        pick(values, bad_mask)
    with pytest.raises(ValueError, match=r"'action_value' contain NaN \(1 of 3 rows\)"):
        pick(nan_values, mask)


def test_nan_at_a_masked_action_is_ignored_and_inf_is_not_nan():
    # a NaN the mask excludes cannot be chosen: no error; +inf and -inf are valid values
    module = QValueModule(spec=Categorical(3), action_mask_key="mask")
    td = TensorDict(
        action_value=torch.tensor([[float("nan"), 1.0, 2.0], [float("inf"), float("-inf"), 0.0]]),
        mask=torch.tensor([[False, True, True], [True, True, True]]),
        batch_size=[2],
    )
    assert module(td)["action"].tolist() == [2, 0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sid=st.sampled_from(sorted(SPACES)),
    rows=st.integers(1, 4),
    nan_at=st.data(),
)
def test_property_any_unmasked_nan_raises(sid, rows, nan_at):
    spec = SPACES[sid][0]()
    values = _values((rows,), sid)
    r = nan_at.draw(st.integers(0, rows - 1))
    c = nan_at.draw(st.integers(0, values.shape[-1] - 1))
    values[r, c] = float("nan")
    with pytest.raises(ValueError, match="contain NaN"):
        QValueModule(spec=spec)(TensorDict(action_value=values, batch_size=[rows]))


# --- TorchRL's argument names and error phrases -------------------------------------------------
def test_strict_shape():
    spec = Categorical(4, shape=(1,))
    for strict in (None, True, False, "auto"):
        actor = QValueActor(nn.Linear(3, 4), spec=spec, strict_shape=strict)
        td = actor(TensorDict(observation=torch.randn(12, 3), batch_size=[12]))
        assert td["action"].shape == (12, 1)  # always the spec's shape
    bad = TensorDict(observation=torch.randn(12, 3), batch_size=[12])
    with pytest.raises(RuntimeError, match=r"\(12, 1\), which does not match expected shape \[\.\.\., 4\]"):
        QValueActor(nn.Linear(3, 1), spec=spec, strict_shape=True)(bad)
    with pytest.raises(ValueError, match="does not match expected shape"):
        QValueActor(nn.Linear(3, 1), spec=spec, strict_shape="auto")(bad)
    with pytest.raises(ValueError, match=r"strict_shape must be one of \[None, True, False, 'auto'\]"):
        QValueModule(spec=spec, strict_shape="yes")


def test_torchrl_error_phrases_keep_tdrl_detail():
    with pytest.raises(ValueError, match="^action_space was not specified/not compatible: .*'wrong'"):
        QValueHook(action_space="wrong")
    with pytest.raises(ValueError, match="^Neither action_space nor spec was defined: QValueActor"):
        QValueActor(nn.Linear(3, 3))
    with pytest.raises(
        ValueError, match="^The action spec and the action space do not match: .*OneHot.*'mult-one-hot'"
    ):
        QValueActor(nn.Linear(3, 3), spec=OneHot(3), action_space="mult-one-hot")
    process = actors_mod._process_action_space_spec
    assert process("one_hot", None) == ("one-hot", None)
    spec = MultiOneHot([3, 3])
    assert process(spec, spec) == ("mult-one-hot", spec)
    with pytest.raises(ValueError, match="^Passing an action_space as a TensorSpec and a spec"):
        process(OneHot(3), spec)
    with pytest.raises(ValueError, match="^action_space cannot be of type Composite"):
        process(Composite(), spec)
    with pytest.raises(KeyError, match="action could not be found in the spec.*its keys: \\[\\]"):
        process(None, Composite())
    with pytest.raises(KeyError, match="Action mask key m not found in TensorDict.*keys present"):
        QValueActor(nn.Linear(3, 3), spec=OneHot(3), action_mask_key="m")(
            TensorDict(observation=torch.zeros(1, 3), batch_size=[1])
        )


def test_qvalue_hook_refuses_nan_values():
    # the hook's tensor path checks NaN as the module does (one read of the greedy values)
    net = nn.Linear(2, 3)
    with torch.no_grad():
        net.bias.copy_(torch.tensor([0.0, float("nan"), 1.0]))
    net.register_forward_hook(QValueHook("one_hot"))
    with pytest.raises(ValueError, match=r"QValueModule: the action values .* contain NaN \(2 of 2"):
        net(torch.zeros(2, 2))


def test_fully_masked_row_found_by_the_probe_in_a_batch():
    # one-hot / categorical defer the mask check to the selection's probe: same error
    module = QValueModule(spec=Categorical(3), action_mask_key="mask")
    mask = torch.tensor([[True, False, True], [False, False, False]])
    td = TensorDict(action_value=torch.randn(2, 3), mask=mask, batch_size=[2])
    with pytest.raises(ValueError, match=r"'mask' has a row where every action is masked"):
        module(td)
    assert "action" not in td.keys()  # nothing written


def test_distributional_hook_refuses_nan_values():
    # the distributional hook's tensor path runs the same checked pick as the module
    hook = DistributionalQValueHook("categorical", support=torch.tensor([0.0, 1.0]))
    log_p = torch.tensor([[0.9, 0.2], [0.1, 0.8]]).log()
    assert hook(None, None, log_p)[0].item() == 1
    log_p[0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"DistributionalQValueModule: .* contain NaN \(1 of 1"):
        hook(None, None, log_p)
